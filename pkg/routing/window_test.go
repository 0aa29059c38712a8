package routing

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/streamdet/streamdet/pkg/drift"
)

// TestWindow: statistics are kept per minute and summed over any window within the horizon;
// agreement is kept per (candidate, reference, arm); the latency histogram gives quantiles; the
// buckets expire after the horizon.
func TestWindow(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.RequireAuth("pw-0123456789")
	base, err := NewStore(RedisConfig{Addr: mr.Addr(), Password: "pw-0123456789", KeyPrefix: "sd", StatsHorizon: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 12, 0, 10, 0, time.UTC)
	now := t0
	s := base.WithClock(func() time.Time { return now })
	rec := func(at time.Duration, smp Sample, agr *Agreement) {
		now = t0.Add(at)
		if err := s.Record(ctx, "m", smp, agr); err != nil {
			t.Fatal(err)
		}
	}
	// Minute 0: version 1 serves 10 frames at 10 ms; minute 5: 10 frames at 40 ms, one error.
	for i := 0; i < 10; i++ {
		rec(0, Sample{Version: "1", Arm: ArmPrimary, LatencyMS: 9, Detections: 2, ScoreSum: 1.6}, nil)
		if i == 0 {
			rec(5*time.Minute, Sample{Version: "1", Arm: ArmPrimary, Error: true}, nil)
			continue
		}
		rec(5*time.Minute, Sample{Version: "1", Arm: ArmPrimary, LatencyMS: 35, Detections: 3}, nil)
	}
	// The canary 2, compared with 1 on its frames: 90 of 100 reference boxes found; a shadow 3
	// compared with 1: 50 of 100.
	rec(5*time.Minute, Sample{Version: "2", Arm: ArmCanary, LatencyMS: 12, Detections: 4},
		&Agreement{Version: "2", Reference: "1", Arm: ArmCanary, PrimaryBoxes: 100, PrimaryMatched: 90, ShadowBoxes: 95, ShadowMatched: 90})
	rec(5*time.Minute, Sample{Version: "1", Arm: ArmPrimary, LatencyMS: 35, Detections: 3},
		&Agreement{Version: "3", Reference: "1", PrimaryBoxes: 100, PrimaryMatched: 50, ShadowBoxes: 60, ShadowMatched: 50})

	now = t0.Add(6 * time.Minute)
	all, err := s.ReadWindow(ctx, "m", t0)
	if err != nil {
		t.Fatal(err)
	}
	v1 := all.Version("1", ArmPrimary)
	if v1.Frames != 21 || v1.Errors != 1 || math.Abs(v1.DetectionsPerFrame()-(20+30)/20.0) > 1e-9 {
		t.Fatalf("version 1 over 6 min: %+v (det/frame %.3f)", v1, v1.DetectionsPerFrame())
	}
	recent, _ := s.ReadWindow(ctx, "m", now.Add(-2*time.Minute))
	r1 := recent.Version("1", "")
	if r1.Frames != 11 || r1.ErrorRate() != 1.0/11 {
		t.Fatalf("last 2 minutes: %+v", r1)
	}
	if p99 := r1.LatencyQuantile(0.99); p99 < 30 || p99 > 40 {
		t.Fatalf("p99 %.1f ms, want in the 30–40 ms bucket", p99)
	}
	if p50 := all.Version("1", "").LatencyQuantile(0.5); p50 < 5 || p50 > 40 {
		t.Fatalf("p50 %.1f", p50)
	}
	canary := recent.Pair("2", "1")
	share, lo, hi := canary.Agreement()
	if canary.Compared != 1 || share != 0.9 || !(lo > 0.82 && lo < 0.9 && hi > 0.9 && hi < 0.95) {
		t.Fatalf("canary agreement %+v: %.3f [%.3f, %.3f]", canary, share, lo, hi)
	}
	if sh := recent.Pair("3", "1"); sh.RefMatched != 50 || sh.Arm != "" && sh.Arm != ArmShadow {
		t.Fatalf("shadow pair %+v", sh)
	}
	if len(recent.Pairs) != 2 || recent.Pairs[1].Arm != ArmShadow {
		t.Fatalf("pairs %+v", recent.Pairs)
	}
	// The cumulative statistics keep working.
	if st, _ := s.ReadStats(ctx, "m"); len(st) == 0 {
		t.Fatal("no cumulative stats")
	}
	// After the horizon the buckets are gone: nothing outlives it.
	mr.FastForward(2 * time.Hour)
	now = t0.Add(2 * time.Hour)
	late, _ := s.ReadWindow(ctx, "m", t0)
	if f := late.Version("1", "").Frames; f != 0 {
		t.Fatalf("%d frames after the horizon", f)
	}
	if _, err := NewStore(RedisConfig{Addr: mr.Addr(), Password: "pw-0123456789", StatsHorizon: time.Minute}); err == nil {
		t.Fatal("a 1 min horizon accepted")
	}
}

func TestWilson(t *testing.T) {
	for _, tc := range []struct {
		k, n   int64
		lo, hi float64
	}{{0, 0, 0, 1}, {90, 100, 0.825, 0.945}, {9, 10, 0.59, 0.99}, {100, 100, 0.96, 1}} {
		_, lo, hi := wilson(tc.k, tc.n)
		if math.Abs(lo-tc.lo) > 0.01 || math.Abs(hi-tc.hi) > 0.01 {
			t.Errorf("wilson(%d, %d) = [%.3f, %.3f], want about [%.3f, %.3f]", tc.k, tc.n, lo, hi, tc.lo, tc.hi)
		}
	}
}

func TestDriftStore(t *testing.T) {
	s, mr := testStore(t)
	ctx := context.Background()
	s.RecordDrift(ctx, "m", []drift.Value{{Model: "m", Version: "1", Stream: "a", Feature: "boxes", PSI: 0.1}, {Model: "m", Version: "1", Stream: "b", Feature: "boxes", PSI: 1.2}})
	s.RecordDrift(ctx, "m", []drift.Value{{Model: "m", Version: "1", Stream: "a", Feature: "boxes", PSI: 0.5}}) // latest wins
	mr.HSet("sd:drift:m", "junk", "{not json")
	vs, err := s.ReadDrift(ctx, "m")
	if err != nil || len(vs) != 2 || vs[0].Stream != "b" || vs[1].PSI != 0.5 {
		t.Fatalf("%+v %v", vs, err)
	}
}
