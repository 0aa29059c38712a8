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

// TestLineageAndReport: a derived version keeps its lineage in the manifest and its evaluation
// report beside it, the report's digest in the lineage; deleting the version removes the report.
func TestLineageAndReport(t *testing.T) {
	ctx := context.Background()
	store, _ := testenv.FakeS3(t)
	reg, err := registry.New(ctx, store, "models")
	if err != nil {
		t.Fatal(err)
	}
	model := bytes.Repeat([]byte{7}, 100)
	if _, err := reg.Push(ctx, registry.Manifest{Name: "coco", Version: "1"}, model); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Report(ctx, "coco", "1"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("report of a version without one: %v", err)
	}
	lin := &registry.Lineage{Parent: "1", Method: "int8-static", Params: map[string]any{"calibrate": "minmax"},
		Calibration: &registry.Calibration{Count: 200, Source: "augmented", Digest: "ab"}, Tools: map[string]string{"onnxruntime": "1.30.0"}}
	report := []byte(`{"agreement":{"f1":0.97}}`)
	m, err := reg.PushWithReport(ctx, registry.Manifest{Name: "coco", Version: "2", Lineage: lin}, model, report)
	if err != nil {
		t.Fatal(err)
	}
	got, err := reg.Manifest(ctx, "coco", "2")
	if err != nil || got.Lineage == nil || got.Lineage.Parent != "1" || got.Lineage.Calibration.Count != 200 ||
		got.Lineage.ReportSHA256 != m.Lineage.ReportSHA256 || len(got.Lineage.ReportSHA256) != 64 {
		t.Fatalf("manifest %+v, %v", got.Lineage, err)
	}
	if b, err := reg.Report(ctx, "coco", "2"); err != nil || !bytes.Equal(b, report) {
		t.Fatalf("report %q, %v", b, err)
	}
	if _, err := reg.PushWithReport(ctx, registry.Manifest{Name: "coco", Version: "3"}, model, []byte("{not json")); err == nil {
		t.Fatal("a report that is not JSON was stored")
	}
	if _, err := reg.Manifest(ctx, "coco", "3"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("version 3 exists after its refused push: %v", err)
	}
	if err := reg.AddReport(ctx, "coco", "2", []byte(`{}`)); !errors.Is(err, registry.ErrExists) {
		t.Fatalf("second report of a version: %v", err)
	}
	if err := reg.AddReport(ctx, "coco", "1", []byte(`{"eval":1}`)); err != nil {
		t.Fatalf("report added to version 1: %v", err)
	}
	if err := reg.AddReport(ctx, "coco", "9", []byte(`{}`)); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("report of a missing version: %v", err)
	}
	if err := reg.Delete(ctx, "coco", "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Report(ctx, "coco", "2"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("report after delete: %v", err)
	}
	if err := reg.Delete(ctx, "coco", "1"); err != nil {
		t.Fatalf("delete of a version with an added report: %v", err)
	}
}
