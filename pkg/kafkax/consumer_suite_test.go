package kafkax

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/testenv"
)

// backend is a Kafka the consumer suite runs on: kfake in the unit tests, the real broker in
// the integration tests. The assertions are the same.
type backend struct {
	brokers []string
	// topic creates a fresh topic with the given partitions and returns a client of the brokers.
	topic func(t *testing.T, partitions int) (string, *kafka.Client)
	// commitInterval is the consumers' Config.CommitInterval.
	commitInterval time.Duration
}

func (b backend) config() Config {
	return Config{Brokers: b.brokers, MaxMessageBytes: 1 << 20, CommitInterval: b.commitInterval}
}

// consumerSuite is every consumer-semantics test, run on b with each message committed as it is
// handled and with commits coalesced (the services' default).
func consumerSuite(t *testing.T, b backend) {
	for _, interval := range []time.Duration{0, 200 * time.Millisecond} {
		b.commitInterval = interval
		for name, f := range map[string]func(*testing.T, backend){
			"ordered commits": orderedCommits, "redelivery after an error": redeliveryAfterError,
			"drain on shutdown": drainOnShutdown, "group churn": groupChurn,
		} {
			t.Run(fmt.Sprintf("%s/commit interval %v", name, interval), func(t *testing.T) { f(t, b) })
		}
	}
}

func fakeBackend(t *testing.T) backend {
	brokers := testenv.FakeKafka(t)
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	return backend{brokers: brokers, topic: func(t *testing.T, partitions int) (string, *kafka.Client) {
		name := fmt.Sprintf("suite.%d", time.Now().UnixNano())
		resp, err := client.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: name, NumPartitions: partitions, ReplicationFactor: 1}}})
		if err != nil || resp.Errors[name] != nil {
			t.Fatalf("create topic: %v %v", err, resp)
		}
		return name, client
	}}
}

// TestConsumerSuiteFake runs the consumer suite on an in-process kfake cluster.
func TestConsumerSuiteFake(t *testing.T) { consumerSuite(t, fakeBackend(t)) }

func produceN(ctx context.Context, t *testing.T, cfg Config, topic string, n int) {
	w, _ := cfg.Writer(topic)
	defer w.Close()
	var msgs []kafka.Message
	for i := 0; i < n; i++ {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprint(i % 7)), Value: []byte(fmt.Sprint(i))})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

func committedSum(ctx context.Context, client *kafka.Client, group, topic string, parts int) int64 {
	ps := make([]int, parts)
	for i := range ps {
		ps[i] = i
	}
	r, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil {
		return -1
	}
	var sum int64
	for _, p := range r.Topics[topic] {
		sum += max(p.CommittedOffset, 0)
	}
	return sum
}

// redeliveryAfterError: a handler error stops the consumer with the message uncommitted; the
// next consumer of the group is handed it again, and nothing before it twice.
func redeliveryAfterError(t *testing.T, b backend) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic, client := b.topic(t, 1)
	cfg := b.config()
	produceN(ctx, t, cfg, topic, 20)
	c, _ := NewConsumer(cfg, ConsumerConfig{Group: topic, Topic: topic, Concurrency: 1})
	boom := errors.New("cannot handle 10")
	err := c.Run(ctx, func(_ context.Context, m kafka.Message) error {
		if m.Offset == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Run returned %v, want the handler's error", err)
	}
	if got := committedSum(ctx, client, topic, topic, 1); got != 10 {
		t.Fatalf("committed %d after the failure at offset 10, want 10", got)
	}
	var mu sync.Mutex
	first := int64(1 << 62) // the lowest offset handled again
	var n atomic.Int64
	c2, _ := NewConsumer(cfg, ConsumerConfig{Group: topic, Topic: topic, Concurrency: 4})
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- c2.Run(rctx, func(_ context.Context, m kafka.Message) error {
			mu.Lock()
			first = min(first, m.Offset)
			mu.Unlock()
			n.Add(1)
			return nil
		})
	}()
	for committedSum(ctx, client, topic, topic, 1) != 20 {
		if ctx.Err() != nil {
			t.Fatal("the second consumer did not finish the topic")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if first != 10 || n.Load() != 10 {
		t.Fatalf("second consumer started at %d and handled %d, want 10 and 10", first, n.Load())
	}
}

// drainOnShutdown: messages in flight when the context ends finish and are committed (within
// the drain timeout); nothing new is fetched.
func drainOnShutdown(t *testing.T, b backend) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic, client := b.topic(t, 1)
	cfg := b.config()
	produceN(ctx, t, cfg, topic, 50)
	c, _ := NewConsumer(cfg, ConsumerConfig{Group: topic, Topic: topic, Concurrency: 8, DrainTimeout: 10 * time.Second})
	started := make(chan struct{}, 64)
	var handled atomic.Int64
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- c.Run(rctx, func(hctx context.Context, m kafka.Message) error {
			started <- struct{}{}
			time.Sleep(300 * time.Millisecond) // in flight when the context ends
			if hctx.Err() != nil {
				return hctx.Err()
			}
			handled.Add(1)
			return nil
		})
	}()
	for i := 0; i < 8; i++ {
		<-started
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	h := handled.Load()
	if h < 8 || h > 16 {
		t.Fatalf("%d handled across the shutdown, want the 8 in flight (and no more than a second window)", h)
	}
	if got := committedSum(ctx, client, topic, topic, 1); got != h {
		t.Fatalf("committed %d, handled %d: what finished during the drain must be committed", got, h)
	}
}

// orderedCommits: with many messages in flight and one of them stuck, nothing at or after the
// stuck offset is committed; once it finishes, everything is.
func orderedCommits(t *testing.T, b backend) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic, client := b.topic(t, 1)
	cfg := b.config()
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
		t.Fatalf("%d messages handled with offset %d stuck and a window of 16: the window is not bounded", k, stuck)
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

// groupChurn: a long-lived member handles messages slowly (so they are in flight across
// rebalances) while other members join and leave the group again and again. Every message is
// handled (at least once), the long-lived consumer never stalls (its window comes back to
// empty), and every offset ends committed.
func groupChurn(t *testing.T, b backend) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const parts, n = 4, 800
	topic, client := b.topic(t, parts)
	cfg := b.config()
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
