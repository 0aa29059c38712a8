package edge

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/metadata"
	"github.com/segmentio/kafka-go/protocol/produce"

	"github.com/streamdet/streamdet/pkg/kafkax"
)

// produceCounter is a kafka-go transport for one broker with one single-partition topic that
// acknowledges every produce request and counts them.
type produceCounter struct {
	mu       sync.Mutex
	requests int
	records  int
}

func (p *produceCounter) RoundTrip(_ context.Context, _ net.Addr, req kafka.Request) (protocol.Message, error) {
	switch r := req.(type) {
	case *metadata.Request:
		res := &metadata.Response{Brokers: []metadata.ResponseBroker{{NodeID: 1, Host: "127.0.0.1", Port: 9092}}, ControllerID: 1}
		for _, t := range r.TopicNames {
			res.Topics = append(res.Topics, metadata.ResponseTopic{Name: t,
				Partitions: []metadata.ResponsePartition{{PartitionIndex: 0, LeaderID: 1, ReplicaNodes: []int32{1}, IsrNodes: []int32{1}}}})
		}
		return res, nil
	case *produce.Request:
		p.mu.Lock()
		defer p.mu.Unlock()
		p.requests++
		res := &produce.Response{}
		for _, t := range r.Topics {
			rt := produce.ResponseTopic{Topic: t.Topic}
			for _, part := range t.Partitions {
				for rec := part.RecordSet.Records; ; {
					if _, err := rec.ReadRecord(); err != nil {
						break
					}
					p.records++
				}
				rt.Partitions = append(rt.Partitions, produce.ResponsePartition{Partition: part.Partition})
			}
			res.Topics = append(res.Topics, rt)
		}
		return res, nil
	}
	return nil, fmt.Errorf("unexpected request %T", req)
}

// TestUplinkOneBatchPerCall: everything forward sends in one call for one stream (a partition)
// leaves as one produce request, so it is stored or refused as a whole and a stream's records can
// never be stored out of order (kafka-go's default of 100 per batch made 3 requests of 256).
func TestUplinkOneBatchPerCall(t *testing.T) {
	w, err := uplinkWriter(kafkax.Config{Brokers: []string{"127.0.0.1:9092"}, MaxMessageBytes: 10 << 20})
	if err != nil {
		t.Fatal(err)
	}
	pc := &produceCounter{}
	w.Transport = pc
	defer w.Close()
	entries := make([]Entry, forwardBatch)
	msgs := make([]kafka.Message, 0, forwardBatch)
	for i := range entries {
		entries[i] = Entry{Record: Record{Topic: "streamdet.detections", Key: "box1.gate", Value: make([]byte, 1500)}}
	}
	for _, e := range forwardable(entries, w.BatchBytes) {
		msgs = append(msgs, kafka.Message{Topic: e.Topic, Key: []byte(e.Key), Value: e.Value})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	if pc.requests != 1 || pc.records != forwardBatch {
		t.Fatalf("%d records of one stream sent as %d produce requests with %d records, want one with all", len(msgs), pc.requests, pc.records)
	}
}

// TestForwardable: a call carries at most half of the writer's batch bytes, and at least one
// record.
func TestForwardable(t *testing.T) {
	e := func(n int) Entry { return Entry{Record: Record{Key: "k", Value: make([]byte, n-1)}} }
	for _, tc := range []struct {
		sizes []int
		max   int64
		want  int
	}{
		{[]int{10, 10, 10}, 100, 3},
		{[]int{30, 30, 30}, 100, 1},
		{[]int{200}, 100, 1},
		{[]int{20, 20, 20, 20}, 100, 2},
		{nil, 100, 0},
	} {
		var es []Entry
		for _, s := range tc.sizes {
			es = append(es, e(s))
		}
		if got := len(forwardable(es, tc.max)); got != tc.want {
			t.Errorf("sizes %v, max %d: %d entries, want %d", tc.sizes, tc.max, got, tc.want)
		}
	}
}
