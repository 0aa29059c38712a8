package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// Topics creates the named topics, each with the given partitions, for this test only (the local
// broker does not create topics on demand), deletes them when the test ends, and returns a client
// of the brokers for further requests.
func Topics(t testing.TB, brokers []string, partitions int, names ...string) *kafka.Client {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := &kafka.CreateTopicsRequest{}
	for _, n := range names {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: n, NumPartitions: partitions, ReplicationFactor: 1})
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		t.Fatalf("create topics %v: %v", names, err)
	}
	for _, n := range names {
		if err := resp.Errors[n]; err != nil {
			t.Fatalf("create topic %s: %v", n, err)
		}
	}
	t.Cleanup(func() {
		client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: names})
	})
	return client
}
