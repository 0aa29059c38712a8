package kafkax

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// scriptedReader answers FetchMessage from a script of errors and messages, then blocks.
type scriptedReader struct {
	mu      sync.Mutex
	script  []any // error or kafka.Message
	forever error // once the script is done: this error every 50 ms (kafka-go retrying), if set
}

func (r *scriptedReader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	r.mu.Lock()
	if len(r.script) == 0 {
		r.mu.Unlock()
		if r.forever != nil {
			select {
			case <-ctx.Done():
				return kafka.Message{}, ctx.Err()
			case <-time.After(50 * time.Millisecond):
				return kafka.Message{}, r.forever
			}
		}
		<-ctx.Done()
		return kafka.Message{}, ctx.Err()
	}
	next := r.script[0]
	r.script = r.script[1:]
	r.mu.Unlock()
	if err, ok := next.(error); ok {
		return kafka.Message{}, err
	}
	return next.(kafka.Message), nil
}

func (r *scriptedReader) Stats() kafka.ReaderStats { return kafka.ReaderStats{} }
func (r *scriptedReader) Close() error             { return nil }

func fakeConsumer(r groupReader, retry time.Duration, onErr func(error)) *Consumer {
	return &Consumer{reader: r, topic: "t", concurrency: 4, drainTimeout: time.Second, log: slog.New(slog.DiscardHandler),
		window: make(chan struct{}, 4), parts: map[int]*partition{}, committed: map[int]int64{}, assigns: map[int]uint64{},
		commitFn: func(context.Context, ...kafka.Message) error { return nil }, onFetchError: onErr, fetchRetry: retry}
}

// TestFetchErrorsAreTransient: a broker or coordinator lost makes FetchMessage fail for a while
// (kafka-go keeps healing); the consumer retries, reports itself failing and then healthy again,
// and handles what comes after — it does not stop the service.
func TestFetchErrorsAreTransient(t *testing.T) {
	lost := errors.New("failed to dial: connection refused")
	r := &scriptedReader{script: []any{lost, lost, lost, kafka.Message{Partition: 0, Offset: 7}, kafka.Message{Partition: 0, Offset: 8}}}
	var mu sync.Mutex
	var reports []error
	c := fakeConsumer(r, time.Minute, func(err error) { mu.Lock(); reports = append(reports, err); mu.Unlock() })
	ctx, cancel := context.WithCancel(context.Background())
	handled := make(chan int64, 2)
	done := make(chan error)
	go func() {
		done <- c.Run(ctx, func(_ context.Context, m kafka.Message) error { handled <- m.Offset; return nil })
	}()
	got := map[int64]bool{}
	for len(got) < 2 {
		select {
		case off := <-handled: // concurrently: in either order
			got[off] = true
		case err := <-done:
			t.Fatalf("Run stopped on a transient fetch error: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("messages after the fetch errors never handled")
		}
	}
	if !got[7] || !got[8] {
		t.Fatalf("handled %v, want offsets 7 and 8", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 4 || reports[0] == nil || reports[3] != nil {
		t.Fatalf("reports %v: want three failures then healthy (nil)", reports)
	}
	if off, ok := c.Committed(0); !ok || off != 9 { // the next offset to deliver
		t.Fatalf("committed %d %v, want 9", off, ok)
	}
}

// TestFetchGivesUp: fetching that keeps failing past FetchRetryTimeout, or a closed reader
// (io.EOF), stops Run with the error, so that the process exits and is restarted.
func TestFetchGivesUp(t *testing.T) {
	lost := errors.New("coordinator not available")
	for _, tc := range []struct {
		name    string
		script  []any
		forever error
		want    string
	}{
		{"keeps failing", nil, lost, "coordinator not available"},
		{"reader closed", []any{io.EOF}, nil, "EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeConsumer(&scriptedReader{script: tc.script, forever: tc.forever}, 300*time.Millisecond, nil)
			done := make(chan error)
			go func() { done <- c.Run(context.Background(), func(context.Context, kafka.Message) error { return nil }) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "fetch from t") {
					t.Fatalf("Run: %v, want an error naming the topic and %q", err, tc.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not give up")
			}
		})
	}
}

// TestQueuedFetchErrorsDrainFast: kafka-go queues the errors of its retries (one per partition
// and attempt) with the messages while a broker is away; once it is back they must not hold the
// consumer up. The suite found a consumer that slept a growing backoff per queued error still
// failing 40 s after the broker had returned.
func TestQueuedFetchErrorsDrainFast(t *testing.T) {
	lost := errors.New("failed to dial: connection refused")
	script := make([]any, 0, 17)
	for i := 0; i < 16; i++ {
		script = append(script, lost)
	}
	script = append(script, kafka.Message{Partition: 0, Offset: 1})
	c := fakeConsumer(&scriptedReader{script: script}, time.Minute, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	handled := make(chan struct{}, 1)
	go c.Run(ctx, func(context.Context, kafka.Message) error { handled <- struct{}{}; return nil })
	select {
	case <-handled:
	case <-time.After(5 * time.Second): // 16 queued errors; a growing backoff took over a minute
		t.Fatal("the message after 16 queued fetch errors was not handled within 5 s")
	}
}
