// Package telemetry sets up a service's OpenTelemetry traces and metrics and its structured
// logs. Traces are exported over OTLP when the standard variables ask for it
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; OTEL_EXPORTER_OTLP_PROTOCOL
// grpc or http/protobuf, default http/protobuf; OTEL_TRACES_SAMPLER and the rest as the SDK reads
// them); without an endpoint spans are still created, so trace ids reach logs and messages.
// Metrics are served in the Prometheus text format. Logs are JSON on stderr and carry the
// trace_id and span_id of the context they are written with.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Telemetry is one service's tracer, meter, logger, metrics handler and propagator. It is
// handed to the service's components; nothing in streamdet reads OpenTelemetry's process-wide
// globals, so services sharing a process (the all-in-one mode) keep their own.
type Telemetry struct {
	Tracer         trace.Tracer
	Meter          metric.Meter
	Logger         *slog.Logger
	Metrics        http.Handler
	TracerProvider trace.TracerProvider // for libraries' spans (object storage)
	Propagator     propagation.TextMapPropagator
	tp             *sdktrace.TracerProvider
	mp             *sdkmetric.MeterProvider
}

// propagator is W3C trace context and baggage.
func propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// InstallGlobal makes t the process-wide OpenTelemetry providers, propagator and error handler,
// for third-party code that reads the globals. Only a process's main calls it (service.Main).
func (t *Telemetry) InstallGlobal() {
	otel.SetTracerProvider(t.TracerProvider)
	otel.SetTextMapPropagator(t.Propagator)
	if t.mp != nil {
		otel.SetMeterProvider(t.mp)
	}
	logger := t.Logger
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { logger.Warn("telemetry", "err", err) }))
}

// Setup creates the service's telemetry. It does not touch OpenTelemetry's globals (see
// InstallGlobal).
func Setup(ctx context.Context, service string) (*Telemetry, error) {
	// service.name defaults to the service; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override.
	res, err := resource.New(ctx, resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if exp, err := traceExporter(ctx); err != nil {
		return nil, err
	} else if exp != nil {
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pexp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(pexp))

	logger := slog.New(traceHandler{slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()})}).With("service", service)
	return &Telemetry{
		Tracer: tp.Tracer("github.com/streamdet/streamdet/" + service), Meter: mp.Meter("github.com/streamdet/streamdet/" + service),
		Logger: logger, Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			// OpenMetrics when the scraper asks for it: histogram samples then carry exemplars with
			// the trace id of a recorded measurement (a latency spike links to its trace).
			EnableOpenMetrics: true,
		}), TracerProvider: tp, Propagator: propagator(),
		tp: tp, mp: mp,
	}, nil
}

func traceExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	if os.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return nil, nil
	}
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return nil, nil
	}
	proto := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch proto {
	case "grpc":
		return otlptracegrpc.New(ctx)
	case "", "http/protobuf":
		return otlptracehttp.New(ctx)
	}
	return nil, errors.New("OTEL_EXPORTER_OTLP_PROTOCOL " + proto + ": want grpc or http/protobuf")
}

func logLevel() slog.Level {
	switch strings.ToLower(os.Getenv("STREAMDET_LOG_LEVEL")) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Shutdown flushes spans and metrics.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t.tp == nil {
		return nil
	}
	return errors.Join(t.tp.Shutdown(ctx), t.mp.Shutdown(ctx))
}

// traceHandler adds the trace and span ids of the record's context.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}
func (h traceHandler) WithGroup(n string) slog.Handler { return traceHandler{h.Handler.WithGroup(n)} }

// Discard is telemetry that records nothing, for tests: spans and metrics are no-ops and logs
// go nowhere. Shutdown is safe on it.
func Discard() *Telemetry {
	tp := tracenoop.NewTracerProvider()
	return &Telemetry{
		Tracer: tp.Tracer("discard"), Meter: metricnoop.NewMeterProvider().Meter("discard"),
		Logger: slog.New(slog.DiscardHandler), Metrics: http.NotFoundHandler(), TracerProvider: tp, Propagator: propagator(),
	}
}
