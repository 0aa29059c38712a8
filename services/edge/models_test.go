package edge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/pkg/routing"
)

type fakeSource struct {
	model []byte
	err   error
}

func (f *fakeSource) Fetch(_ context.Context, name, version string) ([]byte, registry.Manifest, error) {
	if f.err != nil {
		return nil, registry.Manifest{}, f.err
	}
	sum := sha256.Sum256(f.model)
	return f.model, registry.Manifest{Name: name, Version: version, Format: "yolox", SHA256: hex.EncodeToString(sum[:])}, nil
}

func TestCachedRegistry(t *testing.T) {
	dir := t.TempDir()
	src := &fakeSource{model: []byte("onnx bytes")}
	c := &CachedRegistry{Source: src, Dir: dir, Log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	if _, _, err := c.Fetch(ctx, "m", "1"); err != nil {
		t.Fatal(err)
	}
	// Unreachable: the verified copy serves.
	src.err = errors.New("dial tcp: connection refused")
	b, m, err := c.Fetch(ctx, "m", "1")
	if err != nil || string(b) != "onnx bytes" || m.Format != "yolox" {
		t.Fatalf("cached fetch: %q %+v %v", b, m, err)
	}
	// Never fetched: nothing to serve.
	if _, _, err := c.Fetch(ctx, "m", "2"); err == nil {
		t.Fatal("a version never fetched was served")
	}
	// A refusal by the registry is not overridden by the cache.
	for _, refusal := range []error{registry.ErrDigest, registry.ErrUntrusted, registry.ErrNotFound} {
		src.err = refusal
		if _, _, err := c.Fetch(ctx, "m", "1"); !errors.Is(err, refusal) {
			t.Fatalf("%v served from the cache: %v", refusal, err)
		}
	}
	// A tampered copy on disk is refused.
	src.err = errors.New("unreachable")
	os.WriteFile(filepath.Join(dir, "m", "1", "model.onnx"), []byte("evil"), 0o600)
	if _, _, err := c.Fetch(ctx, "m", "1"); err == nil || !errors.Is(err, src.err) {
		t.Fatalf("tampered copy: %v", err)
	}
	// Names outside the grammar never reach a path.
	if _, _, err := c.Fetch(ctx, "../m", "1"); err == nil {
		t.Fatal("path traversal accepted")
	}
	// The cache keeps the newest versions only.
	src.err = nil
	for _, v := range []string{"2", "3", "4", "5"} {
		if _, _, err := c.Fetch(ctx, "m", v); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if es, _ := os.ReadDir(filepath.Join(dir, "m")); len(es) != keepVersions {
		t.Fatalf("%d versions kept, want %d", len(es), keepVersions)
	}
}

type fakeRoutes struct {
	routes []*routing.Route
	err    error
}

func (f *fakeRoutes) Watch(ctx context.Context, _ string, _ time.Duration, apply func(*routing.Route), health func(error)) {
	if f.err != nil {
		health(f.err)
		return
	}
	for _, r := range f.routes {
		apply(r)
	}
}

func (f *fakeRoutes) SetStatus(context.Context, string, string, routing.Status) error { return f.err }

func TestCachedRoutes(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	r := &routing.Route{Model: "m", Arms: []routing.Arm{{Version: "2", Weight: 1}}, Pins: map[string]string{"yards": "3"}, Revision: 4}
	var got []*routing.Route
	apply := func(r *routing.Route) { got = append(got, r) }
	(&CachedRoutes{Source: &fakeRoutes{routes: []*routing.Route{r}}, Dir: dir, Log: log}).Watch(context.Background(), "m", time.Second, apply, func(error) {})
	// Redis unreachable at the next start: the route on disk applies at once.
	got = nil
	var health error
	(&CachedRoutes{Source: &fakeRoutes{err: errors.New("down")}, Dir: dir, Log: log}).Watch(context.Background(), "m", time.Second, apply, func(err error) { health = err })
	if len(got) != 1 || got[0].Revision != 4 || got[0].Pins["yards"] != "3" || health == nil {
		t.Fatalf("offline start applied %+v (health %v)", got, health)
	}
	// A corrupt or foreign route on disk is ignored, never applied.
	for _, doc := range []string{`{"model":"m","arms":[]}`, `{"model":"other","arms":[{"version":"1","weight":1}]}`, `garbage`} {
		os.WriteFile(filepath.Join(dir, "route-m.json"), []byte(doc), 0o600)
		got = nil
		(&CachedRoutes{Source: &fakeRoutes{err: errors.New("down")}, Dir: dir, Log: log}).Watch(context.Background(), "m", time.Second, apply, func(error) {})
		if len(got) != 0 {
			t.Fatalf("applied %s", doc)
		}
	}
}
