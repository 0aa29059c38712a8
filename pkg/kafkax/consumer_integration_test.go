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
