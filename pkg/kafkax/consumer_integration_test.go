//go:build integration

package kafkax

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/testenv"
)

// TestIntegrationOrderedCommits: with many messages in flight and one of them stuck, nothing at
// or after the stuck offset is committed; once it finishes, everything is.
func TestIntegrationOrderedCommits(t *testing.T) {
	st := testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := fmt.Sprintf("kafkax.ordered.%d", time.Now().UnixNano())
	client := testenv.Topics(t, st.KafkaBrokers, 1, topic)
	cfg := Config{Brokers: st.KafkaBrokers, MaxMessageBytes: 1 << 20}
	w, _ := cfg.Writer(topic)
	const n, stuck = 300, 50
	var msgs []kafka.Message
	for i := 0; i < n; i++ {
		msgs = append(msgs, kafka.Message{Value: []byte(fmt.Sprint(i))})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	c, err := NewConsumer(cfg, ConsumerConfig{Group: topic, Topic: topic, Concurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var mu sync.Mutex
	handled := map[int64]bool{}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- c.Run(runCtx, func(ctx context.Context, m kafka.Message) error {
			if m.Offset == stuck {
				<-release
			} else {
				time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
			}
			mu.Lock()
			handled[m.Offset] = true
			mu.Unlock()
			return nil
		})
	}()
	committed := func() int64 {
		r, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: topic, Topics: map[string][]int{topic: {0}}})
		if err != nil {
			t.Fatal(err)
		}
		return r.Topics[topic][0].CommittedOffset
	}
	// The window of 16 in flight stops at the stuck message: at most offsets up to stuck+15 are
	// handled, and the commit must not pass the stuck offset.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		k := len(handled)
		mu.Unlock()
		if k >= stuck+15 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	k := len(handled)
	mu.Unlock()
	if k > stuck+15 {
		t.Fatalf("%d messages handled with offset %d stuck and a window of 16: the uncommitted window is not bounded", k, stuck)
	}
	if got := committed(); got > stuck {
		t.Fatalf("committed offset %d passes the unfinished message at %d", got, stuck)
	} else {
		t.Logf("with offset %d stuck: committed %d, handled %d", stuck, got, k)
	}
	close(release)
	for committed() != n {
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("committed %d after release, want %d", committed(), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationGroupChurn: a long-lived member handles messages slowly (so they are in flight
// across rebalances) while other members join and leave the group again and again. Every message
// is handled (at least once), the long-lived consumer never stalls (its window comes back to
// empty), and every offset ends committed.
func TestIntegrationGroupChurn(t *testing.T) {
	st := testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	topic := fmt.Sprintf("kafkax.churn.%d", time.Now().UnixNano())
	const parts, n = 4, 800
	client := testenv.Topics(t, st.KafkaBrokers, parts, topic)
	cfg := Config{Brokers: st.KafkaBrokers, MaxMessageBytes: 1 << 20}
	w, _ := cfg.Writer(topic)
	defer w.Close()

	var mu sync.Mutex
	handled := map[string]int{}
	handler := func(ctx context.Context, m kafka.Message) error {
		time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond) // in flight across rebalances
		mu.Lock()
		handled[string(m.Value)]++
		mu.Unlock()
		return nil
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(handled)
	}
	main, err := NewConsumer(cfg, ConsumerConfig{Group: topic, Topic: topic, Concurrency: 8, DrainTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	mainCtx, stopMain := context.WithCancel(ctx)
	mainDone := make(chan error, 1)
	go func() { mainDone <- main.Run(mainCtx, handler) }()

	// Produce steadily while members come and go.
	produced := make(chan error, 1)
	go func() {
		produced <- func() error {
			for i := 0; i < n; i++ {
				if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(fmt.Sprint(i % 16)), Value: []byte(fmt.Sprint(i))}); err != nil {
					return err
				}
				time.Sleep(25 * time.Millisecond)
			}
			return nil
		}()
	}()
	for round := 0; round < 6; round++ {
		c, err := NewConsumer(cfg, ConsumerConfig{Group: topic, Topic: topic, Concurrency: 8, DrainTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		cctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(cctx, handler) }()
		time.Sleep(time.Duration(1500+rand.IntN(1500)) * time.Millisecond)
		stop()
		if err := <-done; err != nil {
			t.Logf("churn member %d: %v", round, err)
		}
		time.Sleep(time.Duration(500+rand.IntN(1000)) * time.Millisecond)
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("stalled: %d of %d messages handled, %d window tokens held by the remaining member", count(), n, main.InFlight())
		}
		time.Sleep(200 * time.Millisecond)
	}
	committed := func() int64 {
		req := &kafka.OffsetFetchRequest{GroupID: topic, Topics: map[string][]int{topic: {0, 1, 2, 3}}}
		r, err := client.OffsetFetch(ctx, req)
		if err != nil {
			return 0
		}
		var sum int64
		for _, p := range r.Topics[topic] {
			sum += max(p.CommittedOffset, 0)
		}
		return sum
	}
	for committed() != n || main.InFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("committed %d of %d; %d window tokens still held with nothing in flight", committed(), n, main.InFlight())
		}
		time.Sleep(200 * time.Millisecond)
	}
	stopMain()
	if err := <-mainDone; err != nil {
		t.Fatal(err)
	}
	dups := 0
	for _, c := range handled {
		dups += c - 1
	}
	t.Logf("%d messages over %d partitions with 6 members joining and leaving: none lost, %d handled twice (redelivered after a rebalance), committed %d", n, parts, dups, committed())
}
