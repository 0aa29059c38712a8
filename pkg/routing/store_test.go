package routing

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/streamdet/streamdet/pkg/drift"
)

// TestInvalidRouteIgnored: a route document in Redis that breaks the schema or the identifier
// grammar is never applied; the watcher reports it and the last good route stays.
func TestInvalidRouteIgnored(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.RequireAuth("pw-0123456789")
	s, err := NewStore(RedisConfig{Addr: mr.Addr(), Password: "pw-0123456789", KeyPrefix: "sd"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Set(ctx, &Route{Model: "coco", Arms: []Arm{{"1", 100}}}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var applied []*Route
	var lastErr error
	go s.Watch(ctx, "coco", 50*time.Millisecond, func(r *Route) {
		mu.Lock()
		applied = append(applied, r)
		mu.Unlock()
	}, func(err error) {
		mu.Lock()
		lastErr = err
		mu.Unlock()
	})
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("the good route", func() bool { mu.Lock(); defer mu.Unlock(); return len(applied) == 1 })
	for _, doc := range []string{
		`{"model":"coco","arms":[{"version":"../../x","weight":100}]}`,
		`{"model":"coco","arms":[{"version":"1","weight":100}],"pins":{"a/../b":"1"}}`,
		`{"model":"other","arms":[{"version":"1","weight":100}]}`,
		`{"model":"coco","arms":[{"version":"1","weight":-5}]}`,
		`not json`,
		`{"model":"coco","arms":[{"version":"1","weight":100}],"shadow":{"version":"<script>","sample":2}}`,
	} {
		mr.Set("sd:route:coco", doc)
		mr.Publish("sd:routes", "coco")
		if _, err := s.Get(ctx, "coco"); !errors.Is(err, ErrInvalidRoute) {
			t.Errorf("%s: Get says %v, want ErrInvalidRoute", doc, err)
		}
		waitFor("the error for "+doc, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return lastErr != nil && errors.Is(lastErr, ErrInvalidRoute)
		})
	}
	mu.Lock()
	if len(applied) != 1 || applied[0].Arms[0].Version != "1" {
		t.Errorf("an invalid route was applied: %+v", applied)
	}
	mu.Unlock()
	big := `{"model":"coco","arms":[{"version":"1","weight":100}],"notes":"` + strings.Repeat("x", MaxDocBytes) + `"}`
	mr.Set("sd:route:coco", big)
	if _, err := s.Get(ctx, "coco"); !errors.Is(err, ErrInvalidRoute) {
		t.Errorf("a route document over %d bytes: %v", MaxDocBytes, err)
	}
	// An operator can replace an invalid route with a good one.
	if err := s.Set(ctx, &Route{Model: "coco", Arms: []Arm{{"2", 100}}}); err != nil {
		t.Fatalf("replacing an invalid route: %v", err)
	}
	waitFor("the new good route", func() bool { mu.Lock(); defer mu.Unlock(); return len(applied) == 2 })
}

// TestDriftReferenceStore: the first reference kept wins and is handed to the replica whose
// capture came second; what is stored is checked (another key's reference, bad JSON, a size
// over the limit) before use; identifiers and baselines are checked before they name a key.
func TestDriftReferenceStore(t *testing.T) {
	s, mr := testStore(t)
	ctx := context.Background()
	capture := func(brightness float64) drift.Reference {
		tr := drift.NewTracker(drift.Config{ReferenceFrames: 10, WindowFrames: 10})
		var out drift.Reference
		for i := 0; i < 10; i++ {
			for _, c := range tr.Observe("coco", "2", "1764936000000", "cam-1", drift.Frame{Width: 640, Height: 480, Brightness: brightness}).Captured {
				if c.Stream == "cam-1" {
					out = c
				}
			}
		}
		return out
	}
	k := drift.Key{Model: "coco", Version: "2", Baseline: "1764936000000", Stream: "cam-1"}
	if r, err := s.DriftReference(ctx, k); r != nil || err != nil {
		t.Fatalf("nothing stored: %v %v", r, err)
	}
	first, second := capture(200), capture(20)
	second.At = first.At.Add(time.Second)
	if kept, err := s.SaveDriftReference(ctx, first); err != nil || !kept.At.Equal(first.At) {
		t.Fatalf("first save: %v %v", kept, err)
	}
	kept, err := s.SaveDriftReference(ctx, second)
	if err != nil || !kept.At.Equal(first.At) || kept.Hist["brightness"][6] != 10 {
		t.Fatalf("second save kept %+v, %v; want the first", kept, err)
	}
	if got, err := s.DriftReference(ctx, k); err != nil || got == nil || !got.At.Equal(first.At) {
		t.Fatalf("read back: %+v %v", got, err)
	}
	if ttl := mr.TTL("sd:driftref:v1:coco|2|1764936000000"); ttl != DriftReferenceTTL {
		t.Errorf("TTL %s", ttl)
	}

	// Hostile contents of the hash.
	other := first
	other.Stream = "cam-9"
	b, _ := json.Marshal(other)
	for name, raw := range map[string]string{
		"another stream's reference": string(b),
		"not JSON":                   "{",
		"too large":                  strings.Repeat(" ", maxReferenceBytes+1),
	} {
		mr.HSet("sd:driftref:v1:coco|2|1764936000000", "cam-1", raw)
		if r, err := s.DriftReference(ctx, k); err == nil {
			t.Errorf("%s: read as %+v", name, r)
		}
	}
	// An unreadable stored reference is replaced by the next capture.
	if kept, err := s.SaveDriftReference(ctx, second); err != nil || !kept.At.Equal(second.At) {
		t.Errorf("save over an unreadable reference: %+v %v", kept, err)
	}
	for _, bad := range []drift.Key{
		{Model: "coco", Version: "2", Baseline: "1:2", Stream: "cam-1"},
		{Model: "coco", Version: "2", Baseline: "", Stream: "cam-1"},
		{Model: "coco", Version: "../2", Baseline: "0", Stream: "cam-1"},
		{Model: "coco", Version: "2", Baseline: "0", Stream: "a b"},
	} {
		if _, err := s.DriftReference(ctx, bad); err == nil {
			t.Errorf("key %+v accepted", bad)
		}
	}
}

func TestDriftBaselines(t *testing.T) {
	since := time.UnixMilli(1764936000000).UTC()
	cur := &Route{Model: "coco", Arms: []Arm{{"1", 100}}, DriftReference: map[string]time.Time{"1": since, "0": since}}
	if cur.DriftBaseline("1") != "1764936000000" || cur.DriftBaseline("2") != "0" {
		t.Fatalf("baselines %s %s", cur.DriftBaseline("1"), cur.DriftBaseline("2"))
	}
	next := &Route{Model: "coco", Arms: []Arm{{"1", 90}, {"2", 10}}}
	next.KeepDriftReferences(cur)
	if len(next.DriftReference) != 1 || !next.DriftReference["1"].Equal(since) {
		t.Errorf("kept %v: want version 1's only (0 is no longer routed)", next.DriftReference)
	}
	bad := &Route{Model: "coco", Arms: []Arm{{"1", 100}}, DriftReference: map[string]time.Time{"../x": since}}
	if bad.Validate() == nil {
		t.Error("a drift reference version that breaks the grammar validated")
	}
}

// testStore is a Store (prefix "sd") on a miniredis that requires a password.
func testStore(t *testing.T) (*Store, *miniredis.Miniredis) {
	t.Helper()
	mr := miniredis.RunT(t)
	mr.RequireAuth("pw-0123456789")
	s, err := NewStore(RedisConfig{Addr: mr.Addr(), Password: "pw-0123456789", KeyPrefix: "sd"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, mr
}
