package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/kafkax"
)

// Handler handles one consumed message; see kafkax.Handler for what its result means.
type Handler = kafkax.Handler

// Middleware wraps a Handler with one concern (Watermill's HandlerMiddleware).
type Middleware func(Handler) Handler

// Chain wraps h in mw, the first outermost: Chain(h, a, b) is a(b(h)).
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Tracing starts the consumer span of each message, continuing the trace its headers carry;
// a failure marks the span.
func Tracing(s *Stage) Middleware {
	return func(h Handler) Handler {
		return func(ctx context.Context, m kafka.Message) error {
			ctx, span := s.Consume(ctx, m)
			defer span.End()
			err := h(ctx, m)
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			return err
		}
	}
}

// Timing records how long each message took, in latency.
func Timing(latency metric.Float64Histogram, attrs metric.MeasurementOption) Middleware {
	return func(h Handler) Handler {
		return func(ctx context.Context, m kafka.Message) error {
			t0 := time.Now()
			err := h(ctx, m)
			latency.Record(ctx, time.Since(t0).Seconds(), attrs)
			return err
		}
	}
}

// DeadLetterer sends a refused message to the dead-letter topic (Stage does).
type DeadLetterer interface {
	DeadLetter(ctx context.Context, m kafka.Message, r *Reject) error
}

// DeadLetters sends every permanent failure (a *Reject, or an error Classify calls permanent)
// to the dead-letter topic: the message is then finished with (nil), unless dead-lettering
// itself failed.
func DeadLetters(dl DeadLetterer) Middleware {
	return func(h Handler) Handler {
		return func(ctx context.Context, m kafka.Message) error {
			err := h(ctx, m)
			if rej, ok := rejectOf(err); ok {
				return dl.DeadLetter(ctx, m, rej)
			}
			return err
		}
	}
}

// Retrier retries fn with backoff while it fails transiently, reporting component not ready
// meanwhile (Stage does).
type Retrier interface {
	Retry(ctx context.Context, component string, fn func() error, permanent func(error) bool) error
}

// Retry runs the handler again, with backoff, while it fails transiently and ctx lasts: a
// transient failure a handler did not retry itself (an unexpected error) delays its message
// instead of stopping the consumer.
func Retry(r Retrier) Middleware {
	return func(h Handler) Handler {
		return func(ctx context.Context, m kafka.Message) error {
			// Once ctx has ended, nothing is retried: the message stays uncommitted.
			return r.Retry(ctx, "handler", func() error { return h(ctx, m) }, func(err error) bool { return IsPermanent(err) || ctx.Err() != nil })
		}
	}
}

// Recover turns a panic in the handler into a permanent failure (reason internal_error), so that
// one message that trips a bug is dead-lettered — with the stack logged — instead of killing
// the service, and then every instance after it that is handed the same message.
func Recover(log *slog.Logger) Middleware {
	return func(h Handler) Handler {
		return func(ctx context.Context, m kafka.Message) (err error) {
			defer func() {
				if p := recover(); p != nil {
					log.ErrorContext(ctx, "handler panicked; the message is dead-lettered", "panic", fmt.Sprint(p),
						"topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "stack", string(debug.Stack()))
					err = Rejectf(contract.ReasonInternal, "handler panicked: %v", p)
				}
			}()
			return h(ctx, m)
		}
	}
}
