// Package pipeline holds what every streamdet stage does around its own work: continue the
// trace a message carries (a consumer span per message, a producer span per message sent, both
// following the OpenTelemetry messaging conventions), stamp outgoing messages with CloudEvents
// headers, send refused messages to the dead-letter topic with a reason, and count it all.
package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamdet/streamdet/pkg/backoff"
	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/imageinfo"
	"github.com/streamdet/streamdet/pkg/kafkax"
	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/telemetry"
)

// Stage is one service's view of the pipeline.
type Stage struct {
	Name   string // ingest, detect, sink
	Tel    *telemetry.Telemetry
	Health interface{ Set(string, error) }
	// Now is the clock of event times (Deps.Now); time.Now unless the Runtime sets another.
	Now func() time.Time
	dlq Producer

	// Store and DeadLetterBucket keep the values of messages too large to dead-letter whole
	// (over MaxMessageBytes); set by Runtime.
	Store interface {
		Put(ctx context.Context, bucket, key string, data []byte, contentType string) error
	}
	DeadLetterBucket string
	MaxMessageBytes  int

	In, Out   metric.Int64Counter
	Errors    metric.Int64Counter
	Latency   metric.Float64Histogram
	StageTime metric.Float64Histogram
}

// New creates a Stage that dead-letters through dlq (a writer for the dead-letter topic).
func New(name string, tel *telemetry.Telemetry, health interface{ Set(string, error) }, dlq Producer) (*Stage, error) {
	s := &Stage{Name: name, Tel: tel, Health: health, dlq: dlq, Now: time.Now}
	m := tel.Meter
	var errs []error
	var err error
	s.In, err = m.Int64Counter("streamdet_frames_in", metric.WithDescription("messages taken in"))
	errs = append(errs, err)
	s.Out, err = m.Int64Counter("streamdet_frames_out", metric.WithDescription("messages produced downstream"))
	errs = append(errs, err)
	s.Errors, err = m.Int64Counter("streamdet_errors", metric.WithDescription("refused messages (dead-lettered) and transient failures, by reason"))
	errs = append(errs, err)
	s.Latency, err = m.Float64Histogram("streamdet_message_duration_seconds", metric.WithDescription("time to handle one message"),
		metric.WithExplicitBucketBoundaries(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
	errs = append(errs, err)
	s.StageTime, err = m.Float64Histogram("streamdet_step_duration_seconds", metric.WithDescription("time of each step (fetch, decode, preprocess, infer, postprocess, put, produce, write)"),
		metric.WithExplicitBucketBoundaries(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))
	errs = append(errs, err)
	return s, errors.Join(errs...)
}

// Attrs are the measurement attributes of the stage's metrics: stage=<name> and kv.
func (s *Stage) Attrs(kv ...attribute.KeyValue) metric.MeasurementOption {
	return metric.WithAttributes(append([]attribute.KeyValue{attribute.String("stage", s.Name)}, kv...)...)
}

// Step records the duration of a named step.
func (s *Stage) Step(ctx context.Context, step string, d time.Duration) {
	s.StageTime.Record(ctx, d.Seconds(), s.Attrs(attribute.String("step", step)))
}

// Consume starts the consumer span of message m, continuing the trace in its headers.
func (s *Stage) Consume(ctx context.Context, m kafka.Message) (context.Context, trace.Span) {
	hs := m.Headers
	ctx = s.Tel.Propagator.Extract(ctx, kafkax.Headers{H: &hs})
	s.In.Add(ctx, 1, s.Attrs(attribute.String("topic", m.Topic)))
	return s.Tel.Tracer.Start(ctx, "process "+m.Topic, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", m.Topic),
			attribute.Int("messaging.destination.partition.id", m.Partition),
			attribute.Int64("messaging.kafka.offset", m.Offset),
			attribute.String("messaging.kafka.message.key", string(m.Key)),
			attribute.String("messaging.consumer.group.name", s.Name),
		))
}

// Event is an outgoing message.
type Event struct {
	Key     string // stream id
	ID      string // ce_id
	Type    string // ce_type
	Subject string // ce_subject (stream id)
	Time    time.Time
	Value   []byte
}

// Publish sends ev on w with CloudEvents headers and the current trace context, inside a
// producer span, retrying transient failures until ctx ends. When it returns nil the broker
// has acknowledged the message from every in-sync replica.
func (s *Stage) Publish(ctx context.Context, w Producer, ev Event) error {
	ctx, span := s.Tel.Tracer.Start(ctx, "send "+w.Topic(), trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", w.Topic()),
			attribute.String("messaging.message.id", ev.ID),
			attribute.String("messaging.kafka.message.key", ev.Key),
		))
	defer span.End()
	hs := []kafka.Header{
		{Key: contract.HeaderSpecVersion, Value: []byte("1.0")},
		{Key: contract.HeaderID, Value: []byte(ev.ID)},
		{Key: contract.HeaderSource, Value: []byte("/streamdet/" + s.Name)},
		{Key: contract.HeaderType, Value: []byte(ev.Type)},
		{Key: contract.HeaderTime, Value: []byte(ev.Time.UTC().Format(time.RFC3339Nano))},
		{Key: contract.HeaderSubject, Value: []byte(ev.Subject)},
		{Key: contract.HeaderContentType, Value: []byte("application/json")},
	}
	s.Tel.Propagator.Inject(ctx, kafkax.Headers{H: &hs})
	msg := kafka.Message{Key: []byte(ev.Key), Value: ev.Value, Headers: hs}
	t0 := time.Now()
	err := s.Retry(ctx, "kafka", func() error { return w.WriteMessages(ctx, msg) }, nil)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return fmt.Errorf("publish to %s: %w", w.Topic(), err)
	}
	s.Step(ctx, "produce", time.Since(t0))
	s.Out.Add(ctx, 1, s.Attrs(attribute.String("topic", w.Topic())))
	return nil
}

// transient returns a Retry callback that marks component not ready and counts the failure.
func (s *Stage) transient(component string) func(error, time.Duration) {
	return func(err error, wait time.Duration) {
		s.Health.Set(component, err)
		s.Errors.Add(context.Background(), 1, s.Attrs(attribute.String("reason", "transient_"+component)))
		s.Tel.Logger.Warn("transient failure, retrying", "component", component, "in", wait.String(), "err", err)
	}
}

// Retry runs fn with backoff until it succeeds, fails permanently, or ctx ends; component is
// reported not ready meanwhile and ready again once it answers (with success or a permanent
// refusal). permanent decides which failures are permanent; nil means Classify's.
func (s *Stage) Retry(ctx context.Context, component string, fn func() error, permanent func(error) bool) error {
	if permanent == nil {
		permanent = IsPermanent
	}
	err := backoff.Retry(ctx, fn, permanent, s.transient(component))
	if err == nil || permanent(err) {
		s.Health.Set(component, nil)
	}
	return err
}

// Reject is a permanent refusal: the message goes to the dead-letter topic with this reason.
type Reject struct {
	Reason contract.Reason
	Err    error
}

func (r *Reject) Error() string { return string(r.Reason) + ": " + r.Err.Error() }
func (r *Reject) Unwrap() error { return r.Err }

// Rejectf makes a Reject.
func Rejectf(reason contract.Reason, format string, a ...any) *Reject {
	return &Reject{Reason: reason, Err: fmt.Errorf(format, a...)}
}

// RejectReason maps an error that is permanent for the frame — an imageinfo error, or its object
// missing from storage — to its dead-letter reason.
func RejectReason(err error) (contract.Reason, bool) {
	switch {
	case errors.Is(err, imageinfo.ErrEmpty):
		return contract.ReasonEmpty, true
	case errors.Is(err, imageinfo.ErrUnsupportedFormat):
		return contract.ReasonUnsupportedFormat, true
	case errors.Is(err, imageinfo.ErrTooLarge):
		return contract.ReasonTooLarge, true
	case errors.Is(err, imageinfo.ErrCorrupt):
		return contract.ReasonCorruptImage, true
	case errors.Is(err, objstore.ErrNotFound):
		return contract.ReasonMissingObject, true
	case errors.Is(err, objstore.ErrTooLarge):
		return contract.ReasonTooLarge, true
	}
	return "", false
}

// maxReasonBytes bounds the error text a dead letter carries.
const maxReasonBytes = 1024

// DeadLetter sends m, value and headers untouched, to the dead-letter topic with why, and
// counts it. It retries transient failures until ctx ends. A message too large for the topic
// still loses nothing: its value goes to object storage (under a key derived from its position,
// so a retry writes the same object) and the dead letter carries a reference to it.
func (s *Stage) DeadLetter(ctx context.Context, m kafka.Message, r *Reject) error {
	msg := r.Err.Error()
	if len(msg) > maxReasonBytes {
		msg = msg[:maxReasonBytes] + "…"
	}
	dl := contract.DeadLetter{
		Stage: s.Name, Reason: r.Reason, Message: msg,
		Source: contract.SourceRecord{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}, At: time.Now().UTC(),
	}
	span := trace.SpanFromContext(ctx)
	if sc := span.SpanContext(); sc.HasTraceID() {
		dl.TraceID = sc.TraceID().String()
	}
	span.SetStatus(codes.Error, string(r.Reason))
	span.SetAttributes(attribute.String("streamdet.deadletter.reason", string(r.Reason)))
	s.Errors.Add(ctx, 1, s.Attrs(attribute.String("reason", string(r.Reason))))
	s.Tel.Logger.WarnContext(ctx, "dead-lettered", "reason", r.Reason, "err", msg,
		"topic", m.Topic, "partition", m.Partition, "offset", m.Offset)
	// Whole, unless it cannot fit; if the broker still finds it too large, by reference. Any
	// other failure to dead-letter is retried (not ready meanwhile) until ctx ends: the message
	// stays uncommitted rather than lost.
	oversized := func(err error) bool { return Classify(err).Reason == contract.ReasonOversizedMessage }
	if !s.tooLarge(m) {
		err := s.Retry(ctx, "kafka", func() error { return s.dlq.WriteMessages(ctx, s.deadLetter(m, dl, m.Value, m.Headers)) }, oversized)
		if err == nil || !oversized(err) {
			return err
		}
	}
	ref, err := s.keepPayload(ctx, m)
	if err != nil {
		return err
	}
	dl.Payload = ref
	headers := m.Headers
	if headerBytes(headers) > s.MaxMessageBytes/2 {
		headers = nil // the original headers alone would not fit: the dead letter says so
		dl.Message += " (original headers dropped: too large)"
	}
	return s.Retry(ctx, "kafka", func() error { return s.dlq.WriteMessages(ctx, s.deadLetter(m, dl, nil, headers)) }, func(error) bool { return false })
}

// deadLetter is the dead-letter message of m: value and headers (the original's, or less), plus
// the dead-letter document and its reason and offset as headers.
func (s *Stage) deadLetter(m kafka.Message, dl contract.DeadLetter, value []byte, headers []kafka.Header) kafka.Message {
	doc, _ := json.Marshal(dl)
	hs := append(append([]kafka.Header(nil), headers...), kafka.Header{Key: contract.HeaderDeadLetter, Value: doc},
		kafka.Header{Key: "streamdet_deadletter_reason", Value: []byte(dl.Reason)},
		kafka.Header{Key: "streamdet_deadletter_offset", Value: []byte(strconv.FormatInt(m.Offset, 10))})
	return kafka.Message{Key: m.Key, Value: value, Headers: hs}
}

// tooLarge reports whether m, dead-lettered whole, could exceed the topic's message limit
// (with room for the dead-letter headers).
func (s *Stage) tooLarge(m kafka.Message) bool {
	return s.MaxMessageBytes > 0 && len(m.Key)+len(m.Value)+headerBytes(m.Headers)+4096 > s.MaxMessageBytes
}

func headerBytes(hs []kafka.Header) int {
	n := 0
	for _, h := range hs {
		n += len(h.Key) + len(h.Value) + 8
	}
	return n
}

// keepPayload writes m's value to the dead-letter bucket.
func (s *Stage) keepPayload(ctx context.Context, m kafka.Message) (*contract.ObjectRef, error) {
	if s.Store == nil || s.DeadLetterBucket == "" {
		return nil, fmt.Errorf("dead letter of %d bytes is over the topic's limit and no dead-letter bucket is configured", len(m.Value))
	}
	sum := sha256.Sum256(m.Value)
	ref := &contract.ObjectRef{
		Bucket: s.DeadLetterBucket, Size: int64(len(m.Value)), SHA256: hex.EncodeToString(sum[:]),
		// Topic names are the service's own (configured), partition and offset are numbers.
		Key: fmt.Sprintf("%s/%s/%d/%020d", s.Name, m.Topic, m.Partition, m.Offset),
	}
	// Even a permanent refusal is retried (not ready meanwhile): the dead letter is the last
	// place this message can go.
	err := s.Retry(ctx, "minio", func() error {
		return s.Store.Put(ctx, ref.Bucket, ref.Key, m.Value, "application/octet-stream")
	}, func(error) bool { return false })
	if err != nil {
		return nil, fmt.Errorf("keep dead letter payload: %w", err)
	}
	return ref, nil
}

// Handle wraps a stage's message handler in the standard chain, outermost first: the consumer
// span (Tracing), the handling time (Timing), dead letters for permanent failures
// (DeadLetters), retry of transient ones until the context ends (Retry), and recovery from
// panics (Recover). Errors left — the context ended — leave the message uncommitted.
func (s *Stage) Handle(h Handler) Handler {
	return Chain(h, Tracing(s), Timing(s.Latency, s.Attrs()), DeadLetters(s), Retry(s), Recover(s.Tel.Logger))
}
