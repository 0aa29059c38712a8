package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/pkg/telemetry"
)

func testStage(t *testing.T) (*Stage, *tracetest.SpanRecorder, *sdkmetric.ManualReader) {
	t.Helper()
	tel := telemetry.Discard()
	rec := tracetest.NewSpanRecorder()
	tel.Tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	reader := sdkmetric.NewManualReader()
	tel.Meter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	s, err := New("test", tel, service.NewHealth(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, rec, reader
}

var msg = kafka.Message{Topic: "t", Partition: 1, Offset: 42, Key: []byte("cam-1"), Value: []byte("{}")}

func TestChainOrder(t *testing.T) {
	var order []string
	mw := func(name string) Middleware {
		return func(h Handler) Handler {
			return func(ctx context.Context, m kafka.Message) error {
				order = append(order, name+">")
				err := h(ctx, m)
				order = append(order, "<"+name)
				return err
			}
		}
	}
	Chain(func(context.Context, kafka.Message) error { order = append(order, "h"); return nil }, mw("a"), mw("b"))(context.Background(), msg)
	if got := strings.Join(order, " "); got != "a> b> h <b <a" {
		t.Fatalf("order %s", got)
	}
}

func TestTracing(t *testing.T) {
	s, rec, _ := testStage(t)
	m := msg
	m.Headers = []kafka.Header{{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}
	h := Tracing(s)(func(ctx context.Context, m kafka.Message) error { return errors.New("boom") })
	if err := h(context.Background(), m); err == nil {
		t.Fatal("error swallowed")
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	sp := spans[0]
	if sp.Name() != "process t" || sp.Parent().TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || sp.Status().Code != codes.Error {
		t.Fatalf("span %s parent %s status %v", sp.Name(), sp.Parent().TraceID(), sp.Status())
	}
}

func TestTiming(t *testing.T) {
	s, _, reader := testStage(t)
	h := Timing(s.Latency, metric.WithAttributes())(func(context.Context, kafka.Message) error { return nil })
	h(context.Background(), msg)
	h(context.Background(), msg)
	var rm metricdata.ResourceMetrics
	reader.Collect(context.Background(), &rm)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "streamdet_message_duration_seconds" {
				if n := m.Data.(metricdata.Histogram[float64]).DataPoints[0].Count; n != 2 {
					t.Fatalf("%d recorded, want 2", n)
				}
				return
			}
		}
	}
	t.Fatal("no duration recorded")
}

type fakeDLQ struct {
	mu   sync.Mutex
	got  []*Reject
	fail error
}

func (f *fakeDLQ) DeadLetter(_ context.Context, _ kafka.Message, r *Reject) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, r)
	return f.fail
}

func TestDeadLetters(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err, fail error
		want      contract.Reason
		returns   bool
	}{
		{"reject", Rejectf(contract.ReasonCorruptImage, "x"), nil, contract.ReasonCorruptImage, false},
		{"classified permanent", contract.CheckID("stream id", "a/b"), nil, contract.ReasonInvalidID, false},
		{"transient passes through", errors.New("timeout"), nil, "", true},
		{"dead-lettering fails", Rejectf(contract.ReasonEmpty, "x"), errors.New("dlq down"), contract.ReasonEmpty, true},
		{"success", nil, nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeDLQ{fail: tc.fail}
			err := DeadLetters(f)(func(context.Context, kafka.Message) error { return tc.err })(context.Background(), msg)
			if (err != nil) != tc.returns {
				t.Fatalf("returned %v", err)
			}
			if tc.want == "" && len(f.got) > 0 || tc.want != "" && (len(f.got) != 1 || f.got[0].Reason != tc.want) {
				t.Fatalf("dead letters %+v, want %q", f.got, tc.want)
			}
		})
	}
}

func TestRetryMiddleware(t *testing.T) {
	s, _, _ := testStage(t)
	calls := 0
	h := Retry(s)(func(context.Context, kafka.Message) error {
		calls++
		if calls < 3 {
			return errors.New("transient")
		}
		return nil
	})
	if err := h(context.Background(), msg); err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	if _, ok := s.Health.(*service.Health).Check(context.Background()); !ok {
		t.Fatal("not ready after the retried handler succeeded")
	}
	calls = 0
	perm := Rejectf(contract.ReasonEmpty, "x")
	if err := Retry(s)(func(context.Context, kafka.Message) error { calls++; return perm })(context.Background(), msg); !errors.Is(err, perm) || calls != 1 {
		t.Fatalf("permanent failure: %v after %d calls", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls = 0
	if err := Retry(s)(func(context.Context, kafka.Message) error { calls++; return errors.New("transient") })(ctx, msg); err == nil || calls != 1 {
		t.Fatalf("after the context ended: %v after %d calls", err, calls)
	}
}

func TestRecover(t *testing.T) {
	s, _, _ := testStage(t)
	f := &fakeDLQ{}
	h := Chain(func(context.Context, kafka.Message) error { panic("index out of range") }, DeadLetters(f), Recover(s.Tel.Logger))
	if err := h(context.Background(), msg); err != nil {
		t.Fatalf("returned %v", err)
	}
	if len(f.got) != 1 || f.got[0].Reason != contract.ReasonInternal || !strings.Contains(f.got[0].Error(), "index out of range") {
		t.Fatalf("dead letters %+v", f.got)
	}
}

// TestStageHandle: the standard chain dead-letters a panic and a permanent failure, retries a
// transient one, and spans every message.
func TestStageHandle(t *testing.T) {
	s, rec, _ := testStage(t)
	f := &fakeDLQ{}
	s.dlq = nil
	h := Chain(func(ctx context.Context, m kafka.Message) error {
		switch string(m.Value) {
		case "panic":
			panic("bug")
		case "bad":
			return Rejectf(contract.ReasonCorruptImage, "bad")
		}
		return nil
	}, Tracing(s), Timing(s.Latency, s.Attrs()), DeadLetters(f), Retry(s), Recover(s.Tel.Logger))
	for _, v := range []string{"ok", "panic", "bad"} {
		m := msg
		m.Value = []byte(v)
		if err := h(context.Background(), m); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
	}
	if len(f.got) != 2 || len(rec.Ended()) != 3 {
		t.Fatalf("%d dead letters, %d spans", len(f.got), len(rec.Ended()))
	}
}
