// Package registry keeps versioned models in object storage: <name>/<version>/model.onnx and
// beside it manifest.json (schemas/v1/manifest.schema.json) with the family, input size, class
// names, sha256 digest, size, creation time, notes and source. A version, once pushed, is never
// overwritten (each object is created conditionally, so two pushes of one version cannot both
// succeed); whoever fetches a model gets bytes whose digest matched the manifest and — with a
// Ledger — the digest recorded at push time outside the model bucket, so replacing both the
// model and its manifest in the bucket does not make a version servable.
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/objstore"
)

// Sentinel errors.
var (
	// ErrExists: the version was pushed before; versions are immutable.
	ErrExists = errors.New("registry: version already exists")
	// ErrNotFound: no such model or version.
	ErrNotFound = errors.New("registry: no such model version")
	// ErrDigest: the bytes fetched do not match the manifest's sha256 or the ledger's
	// (tampered or corrupt).
	ErrDigest = errors.New("registry: model digest does not match its manifest or its recorded digest")
	// ErrUntrusted: the ledger holds no digest for the version (it was not pushed through the
	// registry with a ledger), so it is not served.
	ErrUntrusted = errors.New("registry: no digest recorded for this version at push time")
)

// Ledger records each version's digest where the model bucket's writers cannot change it (Redis
// in streamdet: routing.Store).
type Ledger interface {
	// RecordDigest records version's sha256 if none is recorded yet; it returns ErrExists
	// (wrapped) when a different digest is already recorded.
	RecordDigest(ctx context.Context, model, version, sha256 string) error
	// Digest returns the recorded sha256, or an error wrapping ErrNotFound.
	Digest(ctx context.Context, model, version string) (string, error)
}

// Manifest describes one model version.
type Manifest struct {
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	Format      string    `json:"format"`
	InputWidth  int       `json:"input_width"`
	InputHeight int       `json:"input_height"`
	Names       []string  `json:"names"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	Created     time.Time `json:"created"`
	Notes       string    `json:"notes,omitempty"`
	Source      string    `json:"source,omitempty"`
	// Lineage says how this version was made from another (detctl optimize); nil for a version
	// pushed as it came.
	Lineage *Lineage `json:"lineage,omitempty"`
}

// Lineage is where a derived version came from and what made it.
type Lineage struct {
	Parent      string            `json:"parent"`           // version of the same model
	Method      string            `json:"method"`           // e.g. int8-static, fp16
	Params      map[string]any    `json:"params,omitempty"` // the method's parameters as applied
	Calibration *Calibration      `json:"calibration,omitempty"`
	Tools       map[string]string `json:"tools,omitempty"` // tool → version
	// ReportSHA256 is the digest of report.json, stored beside the manifest: the evaluation
	// that admitted this version.
	ReportSHA256 string `json:"report_sha256,omitempty"`
}

// Calibration describes the frames a quantized version was calibrated on.
type Calibration struct {
	Count  int    `json:"count"`
	Source string `json:"source"`
	// Digest is the sha256 of the sorted list of the frames' sha256s.
	Digest string `json:"digest"`
}

// ValidName reports whether s can be a model name or version: the identifier grammar of
// contract.IDPattern.
func ValidName(s string) bool { return contract.ValidID(s) }

// Store is what the registry needs from object storage; *objstore.Store implements it, with
// its errors (objstore.ErrNotFound, objstore.ErrExists).
type Store interface {
	EnsureBucket(ctx context.Context, bucket string) error
	Get(ctx context.Context, bucket, key string, max int64) ([]byte, error)
	Create(ctx context.Context, bucket, key string, data []byte, contentType string) error
	List(ctx context.Context, bucket, prefix string) ([]string, error)
	Remove(ctx context.Context, bucket, key string) error
}

// Registry is a models bucket.
type Registry struct {
	store  Store
	bucket string
	ledger Ledger
}

// WithLedger returns the registry recording digests in l at push and checking them at fetch.
func (r *Registry) WithLedger(l Ledger) *Registry {
	c := *r
	c.ledger = l
	return &c
}

// Open opens the registry in bucket as it is, without reaching object storage: for readers
// whose credentials may not create buckets (the edge runtime), and that start while the store
// is unreachable.
func Open(store Store, bucket string) *Registry { return &Registry{store: store, bucket: bucket} }

// New opens the registry in bucket (created if missing).
func New(ctx context.Context, store Store, bucket string) (*Registry, error) {
	if err := store.EnsureBucket(ctx, bucket); err != nil {
		return nil, err
	}
	return &Registry{store: store, bucket: bucket}, nil
}

func key(name, version, file string) string { return name + "/" + version + "/" + file }

// Push stores a new version: the model, then its manifest (whose presence makes the version
// exist). The manifest's digest and size are computed here. PushWithReport also stores an
// evaluation report beside them.
//
// With a ledger the digest is recorded there first. Then the model and the manifest are each
// created only if absent (If-None-Match: *), so of two concurrent pushes of a version one fails
// with ErrExists.
func (r *Registry) Push(ctx context.Context, m Manifest, model []byte) (Manifest, error) {
	return r.PushWithReport(ctx, m, model, nil)
}

// MaxReportBytes bounds a version's report.json.
const MaxReportBytes = 4 << 20

// PushWithReport is Push with report.json (any JSON document, at most MaxReportBytes) stored
// before the manifest, its digest in m.Lineage.ReportSHA256 when m has a lineage.
func (r *Registry) PushWithReport(ctx context.Context, m Manifest, model, report []byte) (Manifest, error) {
	if report != nil && (len(report) > MaxReportBytes || !json.Valid(report)) {
		return m, fmt.Errorf("registry: report of %s/%s: not JSON or over %d bytes", m.Name, m.Version, MaxReportBytes)
	}
	if err := contract.CheckIDs("model name", m.Name, "model version", m.Version); err != nil {
		return m, fmt.Errorf("registry: %w", err)
	}
	if _, err := r.Manifest(ctx, m.Name, m.Version); err == nil {
		return m, fmt.Errorf("%w: %s/%s", ErrExists, m.Name, m.Version)
	} else if !errors.Is(err, ErrNotFound) {
		return m, err
	}
	sum := sha256.Sum256(model)
	m.SHA256, m.Size = hex.EncodeToString(sum[:]), int64(len(model))
	if m.Created.IsZero() {
		m.Created = time.Now().UTC()
	}
	if r.ledger != nil {
		if err := r.ledger.RecordDigest(ctx, m.Name, m.Version, m.SHA256); err != nil {
			return m, err
		}
	}
	if err := r.create(ctx, key(m.Name, m.Version, "model.onnx"), model, "application/octet-stream"); err != nil {
		return m, err
	}
	if report != nil {
		if m.Lineage != nil {
			rs := sha256.Sum256(report)
			m.Lineage.ReportSHA256 = hex.EncodeToString(rs[:])
		}
		if err := r.create(ctx, key(m.Name, m.Version, "report.json"), report, "application/json"); err != nil {
			return m, err
		}
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	return m, r.create(ctx, key(m.Name, m.Version, "manifest.json"), b, "application/json")
}

// create writes an object only if it does not exist.
func (r *Registry) create(ctx context.Context, k string, data []byte, contentType string) error {
	err := r.store.Create(ctx, r.bucket, k, data, contentType)
	if errors.Is(err, objstore.ErrExists) {
		return fmt.Errorf("%w: %s (created concurrently)", ErrExists, k)
	}
	if err != nil {
		return fmt.Errorf("registry: create %s: %w", k, err)
	}
	return nil
}

// Manifest reads a version's manifest.
func (r *Registry) Manifest(ctx context.Context, name, version string) (Manifest, error) {
	if err := contract.CheckIDs("model name", name, "model version", version); err != nil {
		return Manifest{}, fmt.Errorf("registry: %w", err)
	}
	b, err := r.store.Get(ctx, r.bucket, key(name, version, "manifest.json"), 16<<20)
	if errors.Is(err, objstore.ErrNotFound) {
		return Manifest{}, fmt.Errorf("%w: %s/%s", ErrNotFound, name, version)
	}
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("registry: manifest %s/%s: %w", name, version, err)
	}
	return m, nil
}

// AddReport stores report.json for an existing version that has none (detctl eval --save);
// ErrExists when it has one (reports, like versions, are never overwritten).
func (r *Registry) AddReport(ctx context.Context, name, version string, report []byte) error {
	if len(report) > MaxReportBytes || !json.Valid(report) {
		return fmt.Errorf("registry: report of %s/%s: not JSON or over %d bytes", name, version, MaxReportBytes)
	}
	if _, err := r.Manifest(ctx, name, version); err != nil {
		return err
	}
	return r.create(ctx, key(name, version, "report.json"), report, "application/json")
}

// Report returns a version's report.json; ErrNotFound when it has none.
func (r *Registry) Report(ctx context.Context, name, version string) ([]byte, error) {
	if err := contract.CheckIDs("model name", name, "model version", version); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	b, err := r.store.Get(ctx, r.bucket, key(name, version, "report.json"), MaxReportBytes)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s/%s report.json", ErrNotFound, name, version)
	}
	return b, err
}

// Fetch returns a version's model bytes after checking them against the manifest's digest.
func (r *Registry) Fetch(ctx context.Context, name, version string) ([]byte, Manifest, error) {
	m, err := r.Manifest(ctx, name, version)
	if err != nil {
		return nil, m, err
	}
	b, err := r.store.Get(ctx, r.bucket, key(name, version, "model.onnx"), 4<<30)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, m, fmt.Errorf("%w: %s/%s model.onnx", ErrNotFound, name, version)
	}
	if err != nil {
		return nil, m, err
	}
	sum := sha256.Sum256(b)
	got := hex.EncodeToString(sum[:])
	if got != m.SHA256 {
		return nil, m, fmt.Errorf("%w: %s/%s is sha256 %s, manifest says %s", ErrDigest, name, version, got, m.SHA256)
	}
	if r.ledger != nil {
		want, err := r.ledger.Digest(ctx, name, version)
		if errors.Is(err, ErrNotFound) {
			return nil, m, fmt.Errorf("%w: %s/%s", ErrUntrusted, name, version)
		}
		if err != nil {
			return nil, m, fmt.Errorf("registry: recorded digest of %s/%s: %w", name, version, err)
		}
		if got != want {
			return nil, m, fmt.Errorf("%w: %s/%s is sha256 %s, recorded at push %s", ErrDigest, name, version, got, want)
		}
	}
	return b, m, nil
}

// List returns the manifests of every version of name, or of every model when name is "".
func (r *Registry) List(ctx context.Context, name string) ([]Manifest, error) {
	prefix := ""
	if name != "" {
		prefix = name + "/"
	}
	var out []Manifest
	keys, err := r.store.List(ctx, r.bucket, prefix)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	for _, k := range keys {
		parts := strings.Split(k, "/")
		if len(parts) != 3 || parts[2] != "manifest.json" {
			continue
		}
		m, err := r.Manifest(ctx, parts[0], parts[1])
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Created.Before(out[j].Created)
	})
	return out, nil
}

// Delete removes a version (manifest first, so a half-deleted version does not exist).
func (r *Registry) Delete(ctx context.Context, name, version string) error {
	if _, err := r.Manifest(ctx, name, version); err != nil {
		return err
	}
	for _, f := range []string{"manifest.json", "model.onnx", "report.json"} {
		if err := r.store.Remove(ctx, r.bucket, key(name, version, f)); err != nil && !(f == "report.json" && errors.Is(err, objstore.ErrNotFound)) {
			return fmt.Errorf("registry: delete %s/%s/%s: %w", name, version, f, err)
		}
	}
	return nil
}
