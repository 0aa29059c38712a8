package telemetry

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
)

// TestSetupLeavesGlobalsAlone: two services set up in one process each get their own providers,
// and the process-wide ones change only through InstallGlobal.
func TestSetupLeavesGlobalsAlone(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("STREAMDET_LOG_LEVEL", "debug")
	before := otel.GetTracerProvider()
	a, err := Setup(context.Background(), "ingest")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Setup(context.Background(), "sink")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	defer b.Shutdown(context.Background())
	if otel.GetTracerProvider() != before {
		t.Fatal("Setup replaced the global tracer provider")
	}
	if a.TracerProvider == b.TracerProvider {
		t.Fatal("two services share a tracer provider")
	}
	ctx, span := a.Tracer.Start(context.Background(), "x")
	if !span.SpanContext().IsValid() {
		t.Fatal("no trace ids without an exporter")
	}
	span.End()
	a.Logger.InfoContext(ctx, "with trace")
	c, _ := a.Meter.Int64Counter("streamdet_test_total")
	c.Add(ctx, 3)
	rec := httptest.NewRecorder()
	a.Metrics.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "streamdet_test_total") {
		t.Fatalf("metrics do not show the counter:\n%s", rec.Body.String())
	}
	a.InstallGlobal()
	if otel.GetTracerProvider() != a.TracerProvider {
		t.Fatal("InstallGlobal did not install")
	}
	otel.SetTracerProvider(before)
	if err := Discard().Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
