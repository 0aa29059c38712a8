package registry_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/pkg/routing"
	"github.com/streamdet/streamdet/pkg/testenv"
)

func TestRegistry(t *testing.T) {
	ctx := context.Background()
	store, _ := testenv.FakeS3(t)
	mr := miniredis.RunT(t)
	mr.RequireAuth("pw-0123456789")
	ledger, err := routing.NewStore(routing.RedisConfig{Addr: mr.Addr(), Password: "pw-0123456789", KeyPrefix: "sd"})
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	plain, err := registry.New(ctx, store, "models")
	if err != nil {
		t.Fatal(err)
	}
	reg := plain.WithLedger(ledger)
	model := bytes.Repeat([]byte{1, 2, 3}, 1000)
	m, err := reg.Push(ctx, registry.Manifest{Name: "coco", Version: "1", Format: "yolox", Notes: "first"}, model)
	if err != nil {
		t.Fatal(err)
	}
	if m.Size != int64(len(model)) || len(m.SHA256) != 64 || m.Created.IsZero() {
		t.Fatalf("manifest %+v", m)
	}
	if d, err := ledger.Digest(ctx, "coco", "1"); err != nil || d != m.SHA256 {
		t.Fatalf("ledger digest %q %v", d, err)
	}
	if _, err := reg.Push(ctx, registry.Manifest{Name: "coco", Version: "1"}, model); !errors.Is(err, registry.ErrExists) {
		t.Fatalf("second push of a version: %v", err)
	}
	for _, bad := range [][2]string{{"a/b", "1"}, {"coco", ".."}, {"coco", ""}} {
		if _, err := reg.Push(ctx, registry.Manifest{Name: bad[0], Version: bad[1]}, model); !errors.Is(err, contract.ErrInvalidID) {
			t.Errorf("push %q/%q: %v", bad[0], bad[1], err)
		}
	}
	b, got, err := reg.Fetch(ctx, "coco", "1")
	if err != nil || !bytes.Equal(b, model) || got.Notes != "first" {
		t.Fatalf("fetch: %v %+v", err, got)
	}
	if _, _, err := reg.Fetch(ctx, "coco", "9"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("fetch of a missing version: %v", err)
	}
	// One byte changed in the bucket.
	evil := bytes.Clone(model)
	evil[10] ^= 1
	store.Put(ctx, "models", "coco/1/model.onnx", evil, "")
	if _, _, err := reg.Fetch(ctx, "coco", "1"); !errors.Is(err, registry.ErrDigest) {
		t.Fatalf("tampered model: %v", err)
	}
	// Model and manifest replaced together (consistent in the bucket): the ledger refuses it.
	store.Put(ctx, "models", "coco/1/model.onnx", model, "")
	if _, err := plain.Push(ctx, registry.Manifest{Name: "coco", Version: "2"}, evil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Fetch(ctx, "coco", "2"); !errors.Is(err, registry.ErrUntrusted) {
		t.Fatalf("version pushed without the ledger: %v", err)
	}
	if err := ledger.RecordDigest(ctx, "coco", "2", m.SHA256); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Fetch(ctx, "coco", "2"); !errors.Is(err, registry.ErrDigest) {
		t.Fatalf("bucket consistent, ledger not: %v", err)
	}
	if err := ledger.RecordDigest(ctx, "coco", "2", "other"); !errors.Is(err, registry.ErrExists) {
		t.Fatalf("a second, different digest: %v", err)
	}
	list, err := reg.List(ctx, "coco")
	if err != nil || len(list) != 2 || list[0].Version != "1" {
		t.Fatalf("list: %v %+v", err, list)
	}
	if all, err := reg.List(ctx, ""); err != nil || len(all) != 2 {
		t.Fatalf("list all: %v %d", err, len(all))
	}
	if err := reg.Delete(ctx, "coco", "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Manifest(ctx, "coco", "2"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}
