package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamdet/streamdet/pkg/contract"

	"github.com/streamdet/streamdet/pkg/drift"
)

// RecordDrift keeps the latest drift values of a model (<prefix>:drift:<model>, field
// "<version>|<stream>|<feature>"), expiring with the statistics horizon.
func (s *Store) RecordDrift(ctx context.Context, model string, vs []drift.Value) error {
	if len(vs) == 0 {
		return nil
	}
	key := s.k("drift", model)
	fields := make([]any, 0, 2*len(vs))
	for _, v := range vs {
		b, _ := json.Marshal(v)
		fields = append(fields, v.Version+"|"+v.Stream+"|"+v.Feature, b)
	}
	p := s.rdb.Pipeline()
	p.HSet(ctx, key, fields...)
	p.Expire(ctx, key, s.horizon)
	_, err := p.Exec(ctx)
	return err
}

// ReadDrift returns a model's latest drift values, largest PSI first.
func (s *Store) ReadDrift(ctx context.Context, model string) ([]drift.Value, error) {
	m, err := s.rdb.HGetAll(ctx, s.k("drift", model)).Result()
	if err != nil {
		return nil, err
	}
	var out []drift.Value
	for f, raw := range m {
		var v drift.Value
		if len(raw) > 4096 || json.Unmarshal([]byte(raw), &v) != nil || strings.Count(f, "|") != 2 {
			continue
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PSI != out[j].PSI {
			return out[i].PSI > out[j].PSI
		}
		return out[i].Stream+out[i].Feature < out[j].Stream+out[j].Feature
	})
	return out, nil
}

// DriftReferenceTTL is how long a captured drift reference is kept after it was last written
// or read (a version serving longer keeps its reference in every running detect process).
const DriftReferenceTTL = 30 * 24 * time.Hour

// maxReferenceBytes bounds a drift reference read back (about 2 kB of counts).
const maxReferenceBytes = 64 << 10

// driftRefKey is <prefix>:driftref:v1:<model>|<version>|<baseline>, one hash field per stream
// (identifiers may hold ':', never '|').
func (s *Store) driftRefKey(k drift.Key) (string, error) {
	if err := contract.CheckIDs("model", k.Model, "version", k.Version); err != nil {
		return "", err
	}
	if k.Stream != "*" {
		if err := contract.CheckID("stream", k.Stream); err != nil {
			return "", err
		}
	}
	for _, c := range k.Baseline {
		if c < '0' || c > '9' {
			return "", fmt.Errorf("drift baseline %q: want digits", k.Baseline)
		}
	}
	if k.Baseline == "" || len(k.Baseline) > 20 {
		return "", fmt.Errorf("drift baseline %q: want 1 to 20 digits", k.Baseline)
	}
	return s.k("driftref", "v1", k.Model+"|"+k.Version+"|"+k.Baseline), nil
}

// DriftReference reads the stored reference of k (nil, nil when none is stored). What is
// stored is checked as hostile: its size, its JSON, that it is the reference of k, and every
// feature's bins.
func (s *Store) DriftReference(ctx context.Context, k drift.Key) (*drift.Reference, error) {
	key, err := s.driftRefKey(k)
	if err != nil {
		return nil, err
	}
	raw, err := s.rdb.HGet(ctx, key, k.Stream).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.rdb.Expire(ctx, key, DriftReferenceTTL)
	return decodeReference(k, raw)
}

func decodeReference(k drift.Key, raw []byte) (*drift.Reference, error) {
	if len(raw) > maxReferenceBytes {
		return nil, fmt.Errorf("drift reference %v: %d bytes, limit %d", k, len(raw), maxReferenceBytes)
	}
	var r drift.Reference
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("drift reference %v: %w", k, err)
	}
	if r.Key != k {
		return nil, fmt.Errorf("drift reference stored for %v names %v", k, r.Key)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("drift reference %v: %w", k, err)
	}
	return &r, nil
}

// SaveDriftReference keeps r unless a reference of the same key is kept already (another
// replica's, captured first): it returns the one kept, which every replica then adopts.
func (s *Store) SaveDriftReference(ctx context.Context, r drift.Reference) (drift.Reference, error) {
	key, err := s.driftRefKey(r.Key)
	if err != nil {
		return r, err
	}
	if err := r.Validate(); err != nil {
		return r, err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return r, err
	}
	set, err := s.rdb.HSetNX(ctx, key, r.Stream, b).Result()
	if err != nil {
		return r, err
	}
	s.rdb.Expire(ctx, key, DriftReferenceTTL)
	if set {
		return r, nil
	}
	kept, err := s.DriftReference(ctx, r.Key)
	if err != nil || kept == nil {
		// What is stored is unreadable: replace it with this capture.
		return r, s.rdb.HSet(ctx, key, r.Stream, b).Err()
	}
	return *kept, nil
}
