package kafkax

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/segmentio/kafka-go"
)

// TestWindowSurvivesRewinds replays what a consumer sees when members join and leave its group
// while messages are in flight: the same offsets delivered again after one, two and three
// rewinds, handlers finishing in every order. Every token comes back; nothing is committed
// twice or out of order.
func TestWindowSurvivesRewinds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order func(ds []*delivery) []*delivery // the order handlers finish in
	}{
		{"finish in delivery order", func(ds []*delivery) []*delivery { return ds }},
		{"finish newest first", func(ds []*delivery) []*delivery {
			out := make([]*delivery, len(ds))
			for i, d := range ds {
				out[len(ds)-1-i] = d
			}
			return out
		}},
		{"finish interleaved", func(ds []*delivery) []*delivery {
			var out []*delivery
			for i := 0; i < len(ds); i += 2 {
				out = append(out, ds[i])
			}
			for i := 1; i < len(ds); i += 2 {
				out = append(out, ds[i])
			}
			return out
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var commits []int64
			c := &Consumer{window: make(chan struct{}, 64), parts: map[int]*partition{}, committed: map[int]int64{}, assigns: map[int]uint64{}, log: slog.Default(),
				commitFn: func(_ context.Context, ms ...kafka.Message) error {
					mu.Lock()
					defer mu.Unlock()
					commits = append(commits, ms[len(ms)-1].Offset)
					return nil
				}}
			fetch := func(off int64) *delivery {
				c.window <- struct{}{}
				d, _ := c.track(kafka.Message{Partition: 0, Offset: off})
				return d
			}
			var all []*delivery
			// Offsets 100..104 delivered; a rewind to 100 (rebalance) three times while the
			// first deliveries are still running, offset 102 finishing between rewinds.
			for round := 0; round < 4; round++ {
				for off := int64(100); off < 105; off++ {
					all = append(all, fetch(off))
				}
				if round == 1 {
					c.finish(context.Background(), all[2])
				}
			}
			for _, d := range tc.order(all) {
				if d == all[2] {
					continue // finished above
				}
				c.finish(context.Background(), d)
			}
			if n, tokens := c.InFlight(), len(c.window); n != 0 || tokens != 0 {
				t.Fatalf("%d deliveries and %d window tokens held after every delivery finished", n, tokens)
			}
			for i := 1; i < len(commits); i++ {
				if commits[i] <= commits[i-1] {
					t.Fatalf("commits out of order or repeated: %v", commits)
				}
			}
			if last := c.committed[0]; last != 104 {
				t.Fatalf("committed up to %d, want 104 (commits %v)", last, commits)
			}
		})
	}
}

// TestAssignedOnAnyBreak: OnAssign fires for a new partition, a rewind and a jump forward (the
// partition came back after another member advanced it), not for contiguous delivery; after a
// jump, deliveries still pending finish and commit in order.
func TestAssignedOnAnyBreak(t *testing.T) {
	var commits []int64
	c := &Consumer{window: make(chan struct{}, 64), parts: map[int]*partition{}, committed: map[int]int64{}, assigns: map[int]uint64{}, log: slog.Default(),
		commitFn: func(_ context.Context, ms ...kafka.Message) error {
			commits = append(commits, ms[len(ms)-1].Offset)
			return nil
		}}
	fetch := func(off int64) (*delivery, bool) {
		c.window <- struct{}{}
		return c.track(kafka.Message{Partition: 3, Offset: off})
	}
	var ds []*delivery
	for i, tc := range []struct {
		off      int64
		assigned bool
	}{{10, true}, {11, false}, {12, false}, {200, true}, {201, false}, {150, true}, {151, false}} {
		d, a := fetch(tc.off)
		if a != tc.assigned {
			t.Fatalf("delivery %d (offset %d): assigned %v, want %v", i, tc.off, a, tc.assigned)
		}
		ds = append(ds, d)
		if tc.off == 201 { // before the rewind: finish everything so far, oldest last
			for j := len(ds) - 1; j >= 0; j-- {
				c.finish(context.Background(), ds[j])
			}
		}
	}
	for _, d := range ds[5:] {
		c.finish(context.Background(), d)
	}
	if c.InFlight() != 0 || len(c.window) != 0 {
		t.Fatalf("%d deliveries, %d tokens held", c.InFlight(), len(c.window))
	}
	if got := c.committed[3]; got != 201 {
		t.Fatalf("committed through %d (commits %v), want 201", got, commits)
	}
}
