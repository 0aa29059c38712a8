package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/kafkax"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/pkg/telemetry"
	"github.com/streamdet/streamdet/pkg/testenv"
)

// TestPublishAndDeadLetter against kfake and gofakes3: a published event carries CloudEvents
// headers and trace context; a dead letter keeps the value and headers and says why; one too
// large for the topic keeps its value in object storage and carries a reference.
func TestPublishAndDeadLetter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	brokers := testenv.FakeKafka(t, "t.out", "t.dlq")
	store, _ := testenv.FakeS3(t, "deadletters")
	kc := kafkax.Config{Brokers: brokers, MaxMessageBytes: 64 << 10}
	dlq, _ := kc.Writer("t.dlq")
	out, _ := kc.Writer("t.out")
	defer dlq.Close()
	defer out.Close()
	s, err := New("ingest", telemetry.Discard(), service.NewHealth(), KafkaProducer(dlq))
	if err != nil {
		t.Fatal(err)
	}
	s.Store, s.DeadLetterBucket, s.MaxMessageBytes = store, "deadletters", kc.MaxMessageBytes
	if err := s.Publish(ctx, KafkaProducer(out), Event{Key: "cam-1", ID: "f-1", Type: contract.TypeFrameRef, Subject: "cam-1", Time: time.Now(), Value: []byte(`{"a":1}`)}); err != nil {
		t.Fatal(err)
	}
	got := testenv.ReadTopic(ctx, t, brokers, "t.out", 1)
	if len(got) != 1 || header(got[0], contract.HeaderID) != "f-1" || header(got[0], contract.HeaderType) != contract.TypeFrameRef || header(got[0], "ce_source") != "/streamdet/ingest" {
		t.Fatalf("published %+v", got)
	}

	small := kafka.Message{Topic: "t.raw", Partition: 1, Offset: 5, Key: []byte("cam-1"), Value: []byte("not an image"), Headers: []kafka.Header{{Key: "ce_id", Value: []byte("x")}}}
	big := kafka.Message{Topic: "t.raw", Partition: 1, Offset: 6, Key: []byte("cam-1"), Value: bytes.Repeat([]byte("B"), 63<<10)}
	// The refusing attempt's trace goes into the dead letter, so that an operator finds it.
	tid := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	traced := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled}))
	for _, m := range []kafka.Message{small, big} {
		if err := s.DeadLetter(traced, m, Rejectf(contract.ReasonUnsupportedFormat, "no")); err != nil {
			t.Fatal(err)
		}
	}
	dls := testenv.ReadTopic(ctx, t, brokers, "t.dlq", 2)
	if len(dls) != 2 {
		t.Fatalf("%d dead letters", len(dls))
	}
	for _, m := range dls {
		var dl contract.DeadLetter
		json.Unmarshal([]byte(header(m, contract.HeaderDeadLetter)), &dl)
		if dl.Reason != contract.ReasonUnsupportedFormat || dl.Source.Topic != "t.raw" || dl.Stage != "ingest" || dl.TraceID != tid.String() {
			t.Fatalf("dead letter %+v", dl)
		}
		switch dl.Source.Offset {
		case 5:
			if !bytes.Equal(m.Value, small.Value) || header(m, "ce_id") != "x" || dl.Payload != nil {
				t.Fatalf("small dead letter: %q %+v", m.Value, dl)
			}
		case 6:
			if len(m.Value) != 0 || dl.Payload == nil {
				t.Fatalf("large dead letter: %d bytes, payload %+v", len(m.Value), dl.Payload)
			}
			b, err := store.Get(ctx, dl.Payload.Bucket, dl.Payload.Key, 1<<20)
			if err != nil || !bytes.Equal(b, big.Value) {
				t.Fatalf("payload: %v", err)
			}
		}
	}
}

func header(m kafka.Message, k string) string {
	for _, h := range m.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}
