package edge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/pkg/routing"
	"github.com/streamdet/streamdet/services/detect"
)

// The model cache keeps, under <data>/models, what the device needs to serve with the centre
// unreachable (Redis and object storage down, even across a restart):
//
//	route-<model>.json                     the last route read from Redis
//	<model>/<version>/model.onnx           each version fetched and verified
//	<model>/<version>/manifest.json        its manifest (the sha256 the bytes are checked against)
//
// Every name is checked by the identifier grammar before it becomes part of a path.

// keepVersions is how many versions of a model the cache keeps (the newest used).
const keepVersions = 3

// CachedRegistry is a detect.ModelSource that keeps each version it fetched on disk and serves
// it from there, verified again by its digest, when the registry cannot be reached. Refusals by
// the registry (unknown, untrusted or tampered versions) are never served from the cache.
type CachedRegistry struct {
	Source detect.ModelSource
	Dir    string
	Log    *slog.Logger
}

// Fetch implements detect.ModelSource.
func (c *CachedRegistry) Fetch(ctx context.Context, name, version string) ([]byte, registry.Manifest, error) {
	if err := contract.CheckIDs("model name", name, "model version", version); err != nil {
		return nil, registry.Manifest{}, err
	}
	dir := filepath.Join(c.Dir, name, version)
	b, m, err := c.Source.Fetch(ctx, name, version)
	if err == nil {
		if serr := c.save(dir, b, m); serr != nil {
			c.Log.Warn("cannot keep the model version on disk", "model", name, "version", version, "err", serr)
		}
		c.prune(name)
		return b, m, nil
	}
	if errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrDigest) || errors.Is(err, registry.ErrUntrusted) {
		return nil, m, err
	}
	cb, cm, cerr := c.load(dir)
	if cerr != nil {
		return nil, m, fmt.Errorf("%w (and no verified copy on disk: %v)", err, cerr)
	}
	c.Log.Warn("registry unreachable: serving the verified copy on disk", "model", name, "version", version, "err", err)
	now := time.Now()
	os.Chtimes(dir, now, now)
	return cb, cm, nil
}

func (c *CachedRegistry) save(dir string, b []byte, m registry.Manifest) error {
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
		now := time.Now()
		return os.Chtimes(dir, now, now) // already kept (versions are immutable); mark used
	}
	mj, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// The model first, the manifest last: a manifest on disk means a complete copy.
	if err := writeFileAtomic(filepath.Join(dir, "model.onnx"), b); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "manifest.json"), mj)
}

func (c *CachedRegistry) load(dir string) ([]byte, registry.Manifest, error) {
	var m registry.Manifest
	mj, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, m, err
	}
	if err := json.Unmarshal(mj, &m); err != nil {
		return nil, m, fmt.Errorf("cached manifest: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
	if err != nil {
		return nil, m, err
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != m.SHA256 {
		return nil, m, fmt.Errorf("%w: the copy on disk of %s/%s", registry.ErrDigest, m.Name, m.Version)
	}
	return b, m, nil
}

// prune keeps the keepVersions most recently used versions of name.
func (c *CachedRegistry) prune(name string) {
	entries, err := os.ReadDir(filepath.Join(c.Dir, name))
	if err != nil || len(entries) <= keepVersions {
		return
	}
	type used struct {
		name string
		at   time.Time
	}
	var vs []used
	for _, e := range entries {
		if info, err := e.Info(); err == nil && e.IsDir() {
			vs = append(vs, used{e.Name(), info.ModTime()})
		}
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].at.After(vs[j].at) })
	for _, v := range vs[min(keepVersions, len(vs)):] {
		os.RemoveAll(filepath.Join(c.Dir, name, v.name))
	}
}

// CachedRoutes is a detect.RouteSource that applies the last route it saw from disk at once
// (before Redis answers, or when it never does) and keeps every route Redis gives it.
type CachedRoutes struct {
	Source detect.RouteSource
	Dir    string
	Log    *slog.Logger
}

func (c *CachedRoutes) path(model string) string { return filepath.Join(c.Dir, "route-"+model+".json") }

// Watch implements detect.RouteSource.
func (c *CachedRoutes) Watch(ctx context.Context, model string, resync time.Duration, apply func(*routing.Route), health func(error)) {
	if contract.CheckID("model name", model) != nil {
		health(fmt.Errorf("edge: model name %q is not an identifier", model))
		return
	}
	if b, err := os.ReadFile(c.path(model)); err == nil {
		var r routing.Route
		err := json.Unmarshal(b, &r)
		if err == nil {
			err = r.Validate()
		}
		if err == nil && r.Model != model {
			err = fmt.Errorf("it is the route of %q", r.Model)
		}
		if err != nil {
			c.Log.Warn("ignoring the route kept on disk", "path", c.path(model), "err", err)
		} else {
			c.Log.Info("applying the route kept on disk until Redis answers", "model", model, "revision", r.Revision)
			apply(&r)
		}
	}
	c.Source.Watch(ctx, model, resync, func(r *routing.Route) {
		b, err := json.Marshal(r)
		if err == nil {
			err = os.MkdirAll(c.Dir, 0o700)
		}
		if err == nil {
			err = writeFileAtomic(c.path(model), b)
		}
		if err != nil {
			c.Log.Warn("cannot keep the route on disk", "model", model, "err", err)
		}
		apply(r)
	}, health)
}

// SetStatus implements detect.RouteSource.
func (c *CachedRoutes) SetStatus(ctx context.Context, model, version string, st routing.Status) error {
	return c.Source.SetStatus(ctx, model, version, st)
}

// writeFileAtomic writes b to path through a synced temporary file renamed over it: a crash
// leaves the old file or the new one, never a torn one.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
