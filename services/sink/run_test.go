package sink

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/pkg/telemetry"
	"github.com/streamdet/streamdet/pkg/testenv"
)

// TestRunWithDeps runs the whole service from a Config and Deps, object storage, producers and
// the clock injected (only an in-process Kafka protocol server runs, for the consumer group):
// rows wait while the injected clock stands still and no batch is full, are written when it
// moves past the flush interval, each exactly once though the topic holds duplicates; Run
// returns once ctx ends.
func TestRunWithDeps(t *testing.T) {
	brokers := testenv.FakeKafka(t, "t.detections")
	store := testenv.NewMemStore()
	topics := testenv.NewMemTopics()
	var now atomic.Int64
	start := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	now.Store(start.UnixNano())
	cfg := DefaultConfig()
	cfg.Kafka.Brokers, cfg.Kafka.TopicPrefix = brokers, "t"
	cfg.Store.Endpoint, cfg.Store.AccessKey, cfg.Store.SecretKey = "unused.invalid:9000", "unused", "unused-secret"
	cfg.Server.Addr = testenv.FreeAddr(t)
	cfg.Server.Auth = service.AuthNone
	cfg.BatchRows, cfg.FlushInterval, cfg.DrainTimeout = 100, 200*time.Millisecond, 5*time.Second
	deps := Deps{Deps: pipeline.Deps{
		Telemetry: telemetry.Discard(),
		Producer:  func(topic string) (pipeline.Producer, error) { return topics.Open(topic), nil },
		Now:       func() time.Time { return time.Unix(0, now.Load()) },
	}, Store: store}
	stop := testenv.RunService(t, cfg.Server.Addr, cfg.DrainTimeout+5*time.Second, func(ctx context.Context) error { return Run(ctx, cfg, deps) })
	ctx := context.Background()

	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "t.detections", BatchTimeout: time.Millisecond}
	defer w.Close()
	var msgs []kafka.Message
	for i := 0; i < 10; i++ {
		_, raw := message("cam-r", fmt.Sprint(i%8), 0) // frames 0 and 1 twice: duplicates from upstream
		msgs = append(msgs, kafka.Message{Key: []byte("cam-r"), Value: raw})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // well past the flush interval in real time
	if got := rows(t, store); len(got) != 0 {
		t.Fatalf("%d rows written while the clock stood still and no batch was full", len(got))
	}
	now.Add(int64(time.Second))
	for deadline := time.Now().Add(30 * time.Second); len(rows(t, store)) < 8; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("rows written: %d, want 8", len(rows(t, store)))
		}
	}
	stop()
	exactlyOnce(t, store, 8)
	if n := len(topics.Messages("t.dlq")); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}
