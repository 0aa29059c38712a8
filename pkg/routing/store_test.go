package routing

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
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
