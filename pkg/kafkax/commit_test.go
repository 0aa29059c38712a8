package kafkax

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// recorder is a commitFn that records each request; gate, when set, holds the first request
// until it is closed; fail makes the next n requests fail.
type recorder struct {
	mu    sync.Mutex
	calls [][]kafka.Message
	gate  chan struct{}
	fail  int
}

func (r *recorder) commit(_ context.Context, ms ...kafka.Message) error {
	r.mu.Lock()
	first := len(r.calls) == 0
	r.calls = append(r.calls, append([]kafka.Message(nil), ms...))
	fail := r.fail > 0
	if fail {
		r.fail--
	}
	r.mu.Unlock()
	if first && r.gate != nil {
		<-r.gate
	}
	if fail {
		return errors.New("coordinator not available")
	}
	return nil
}

func (r *recorder) n() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func coalescing(interval time.Duration, r *recorder) *Consumer {
	return &Consumer{topic: "t", window: make(chan struct{}, 1024), parts: map[int]*partition{}, committed: map[int]int64{},
		log: slog.New(slog.DiscardHandler), commitFn: r.commit, interval: interval, due: map[int]kafka.Message{}, assigns: map[int]uint64{}, kick: make(chan struct{}, 1)}
}

func deliver(c *Consumer, part int, off int64) *delivery {
	c.window <- struct{}{}
	d, _ := c.track(kafka.Message{Partition: part, Offset: off})
	return d
}

// TestCommitsCoalesce: with a commit interval, handled messages give their window places back
// at once — even while a commit is stuck at the broker — and two partitions' 400 messages cost
// a handful of commits, each carrying every partition's latest handled offset; stopping commits
// what is due.
func TestCommitsCoalesce(t *testing.T) {
	r := &recorder{gate: make(chan struct{})}
	c := coalescing(50*time.Millisecond, r)
	stop := c.startCommits(context.Background())
	c.finish(context.Background(), deliver(c, 0, 0))
	for r.n() == 0 { // the first commit is now held at the "broker"
		time.Sleep(time.Millisecond)
	}
	for off := int64(0); off < 200; off++ {
		for part := 0; part < 2; part++ {
			if part == 0 && off == 0 {
				continue
			}
			c.finish(context.Background(), deliver(c, part, off))
		}
	}
	if n, tokens := c.InFlight(), len(c.window); n != 0 || tokens != 0 {
		t.Fatalf("%d deliveries, %d window tokens held while the first commit is in flight: handling waits for the broker", n, tokens)
	}
	if got := r.n(); got != 1 {
		t.Fatalf("%d commits started while the first was in flight, want 1", got)
	}
	close(r.gate)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.commitMu.Lock()
		p0, p1 := c.committed[0], c.committed[1]
		c.commitMu.Unlock()
		if p0 == 199 && p1 == 199 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed %d and %d, want 199 and 199 (commits %d)", p0, p1, r.n())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop(time.Now().Add(5 * time.Second))
	if got := r.n(); got > 3 {
		t.Errorf("%d commits for 400 messages, want at most 3 (the first, one after the interval, the final)", got)
	}
	if last := r.calls[len(r.calls)-1]; len(last) != 2 {
		t.Errorf("the last commit carried %d partitions, want both in one request (requests %v)", len(last), r.calls)
	}
}

// TestCommitRetriedAfterFailure: a failed commit is retried after the interval by itself, with
// nothing else handled meanwhile.
func TestCommitRetriedAfterFailure(t *testing.T) {
	r := &recorder{fail: 1}
	c := coalescing(20*time.Millisecond, r)
	stop := c.startCommits(context.Background())
	defer stop(time.Now().Add(5 * time.Second))
	c.finish(context.Background(), deliver(c, 0, 7))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if off, ok := c.Committed(0); ok && off == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("offset 7 not committed after a failed commit (%d attempts)", r.n())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := r.n(); got != 2 {
		t.Errorf("%d attempts, want 2", got)
	}
}

// TestStopCommitsWhatIsDue: a message handled during the interval after a commit is committed
// when the consumer stops, not left for the next owner to redo.
func TestStopCommitsWhatIsDue(t *testing.T) {
	r := &recorder{}
	c := coalescing(time.Hour, r)
	stop := c.startCommits(context.Background())
	c.finish(context.Background(), deliver(c, 0, 1))
	for r.n() == 0 {
		time.Sleep(time.Millisecond)
	}
	c.finish(context.Background(), deliver(c, 0, 2)) // due for an hour from now
	stop(time.Now().Add(5 * time.Second))
	if off, _ := c.Committed(0); off != 3 {
		t.Fatalf("next offset after the stop %d, want 3", off)
	}
}

// TestRewindDropsDueCommit: after a rebalance rewind the group's committed offset is the truth;
// a commit still due from before is dropped rather than sent with the next one.
func TestRewindDropsDueCommit(t *testing.T) {
	r := &recorder{}
	c := coalescing(time.Hour, r)
	for off := int64(10); off < 13; off++ {
		c.finish(context.Background(), deliver(c, 3, off))
	}
	deliver(c, 3, 10) // delivered again: the partition was reassigned
	if failed := c.flushDue(context.Background()); failed != nil || r.n() != 0 {
		t.Fatalf("a commit from before the rewind was sent (%d requests)", r.n())
	}
}

// TestReassignDuringFailedCommit: a commit that fails while its partition is reassigned is not
// put back as due: sent later it would move the group's offset back behind the new owner's.
func TestReassignDuringFailedCommit(t *testing.T) {
	r := &recorder{gate: make(chan struct{}), fail: 1}
	c := coalescing(time.Hour, r)
	for off := int64(10); off < 13; off++ {
		c.finish(context.Background(), deliver(c, 3, off))
	}
	failed := make(chan []kafka.Message)
	go func() { failed <- c.flushDue(context.Background()) }()
	for r.n() == 0 { // the commit of offset 12 is in flight
		time.Sleep(time.Millisecond)
	}
	deliver(c, 3, 40) // the partition was reassigned meanwhile (another member advanced it)
	close(r.gate)
	if f := <-failed; len(f) != 1 {
		t.Fatalf("flushDue reported %d failed commits, want 1", len(f))
	}
	c.dueMu.Lock()
	m, requeued := c.due[3]
	c.dueMu.Unlock()
	if requeued {
		t.Fatalf("the failed commit of offset %d was put back after the partition was reassigned", m.Offset)
	}
	c.finish(context.Background(), deliver(c, 0, 5)) // another partition's failure is still retried
	r.fail = 1
	if f := c.flushDue(context.Background()); len(f) != 1 {
		t.Fatalf("flushDue reported %d failed commits, want 1", len(f))
	}
	c.dueMu.Lock()
	_, requeued = c.due[0]
	c.dueMu.Unlock()
	if !requeued {
		t.Fatal("a failed commit of a partition still owned was not kept for the next round")
	}
}

// TestStopEndsByDeadline: a commit that hangs (the coordinator unreachable) does not hold a
// shutdown past its drain deadline, whether it is the loop's or the final one.
func TestStopEndsByDeadline(t *testing.T) {
	var calls atomic.Int32
	c := coalescing(time.Hour, &recorder{})
	c.commitFn = func(ctx context.Context, _ ...kafka.Message) error {
		calls.Add(1)
		<-ctx.Done()
		return ctx.Err()
	}
	stop := c.startCommits(context.Background())
	c.finish(context.Background(), deliver(c, 0, 1)) // the loop's commit hangs
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	t0 := time.Now()
	stop(t0.Add(200 * time.Millisecond))
	if took := time.Since(t0); took > 2*time.Second {
		t.Fatalf("stop took %v with a deadline of 200ms", took)
	}
	if _, ok := c.Committed(0); ok {
		t.Fatal("a commit that never completed counted as committed")
	}
}
