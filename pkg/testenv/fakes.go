package testenv

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamdet/streamdet/pkg/objstore"
)

// FakeKafka starts an in-process Kafka-protocol cluster (franz-go's kfake) with the given
// topics (3 partitions each) for a unit test, and returns its bootstrap addresses. The
// integration tests use the real broker; this is for tests that need no server.
func FakeKafka(t testing.TB, topics ...string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// FakeS3 starts an in-process S3 API (gofakes3) with the given buckets and returns a Store on it.
func FakeS3(t testing.TB, buckets ...string) (*objstore.Store, objstore.Config) {
	t.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	cfg := objstore.Config{Endpoint: strings.TrimPrefix(srv.URL, "http://"), AccessKey: "test-access", SecretKey: "test-secret-key", Region: "us-east-1"}
	st, err := objstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range buckets {
		if err := st.EnsureBucket(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	return st, cfg
}

// ReadTopic returns the messages on topic (every partition, read directly, no consumer group),
// waiting until n are in or the context ends.
func ReadTopic(ctx context.Context, t testing.TB, brokers []string, topic string, n int) []kafka.Message {
	t.Helper()
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	for {
		var out []kafka.Message
		for _, p := range parts {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p.ID, MaxBytes: 12 << 20, MaxWait: 50 * time.Millisecond})
			for {
				rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				m, err := r.ReadMessage(rctx)
				cancel()
				if err != nil {
					break
				}
				out = append(out, m)
			}
			r.Close()
		}
		if len(out) >= n || ctx.Err() != nil {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}
