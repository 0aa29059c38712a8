package routing

import (
	"context"
	"encoding/json"
	"sort"
	"strings"

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
