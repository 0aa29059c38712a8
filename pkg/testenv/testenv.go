// Package testenv hands integration tests the endpoints and credentials of the local stack that
// deploy/local/stack.sh starts (its `env` subcommand prints them as STREAMDET_* variables), and
// locates the shared test data. A test that needs the stack fails, never skips, when the
// variables are missing: a skipped integration test would hide a broken CI.
package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Stack is what deploy/local/stack.sh env exports.
type Stack struct {
	KafkaBrokers   []string
	MinIOEndpoint  string
	MinIOAccessKey string
	MinIOSecretKey string
	RedisAddr      string
	RedisPassword  string
	ONNXRuntimeLib string
}

// Require returns the local stack's settings or fails the test naming every missing variable.
func Require(t testing.TB) Stack {
	t.Helper()
	if os.Getenv("STREAMDET_INTEGRATION") != "1" {
		t.Skip("integration test: needs the local stack; run `make integration` (or set STREAMDET_INTEGRATION=1 after `make up`)")
	}
	var missing []string
	get := func(k string) string {
		v := os.Getenv(k)
		if v == "" {
			missing = append(missing, k)
		}
		return v
	}
	s := Stack{
		KafkaBrokers:   strings.Split(get("STREAMDET_KAFKA_BROKERS"), ","),
		MinIOEndpoint:  get("STREAMDET_MINIO_ENDPOINT"),
		MinIOAccessKey: get("STREAMDET_MINIO_ACCESS_KEY"),
		MinIOSecretKey: get("STREAMDET_MINIO_SECRET_KEY"),
		RedisAddr:      get("STREAMDET_REDIS_ADDR"),
		RedisPassword:  get("STREAMDET_REDIS_PASSWORD"),
		ONNXRuntimeLib: get("ONNXRUNTIME_LIB"),
	}
	if len(missing) > 0 {
		t.Fatalf("local stack not configured: %s unset; run `make up` and `eval \"$(make -s env)\"`, or use `make test`",
			strings.Join(missing, ", "))
	}
	return s
}

// Ops is the local stack's observability: Jaeger, Zipkin (the trace UI) and Prometheus (make up
// starts them).
type Ops struct {
	JaegerURL         string // query API, e.g. http://127.0.0.1:16686
	PrometheusURL     string // e.g. http://127.0.0.1:9090
	PrometheusTargets string // file_sd directory Prometheus scrapes targets from
	TraceURL          string // link template with {trace_id}: a trace's page in ZipkinURL's UI
	ZipkinURL         string // the trace UI, e.g. http://127.0.0.1:9411 (its pages under /zipkin/)
}

// RequireOps returns the stack's Jaeger and Prometheus or fails the test naming what is unset.
func RequireOps(t testing.TB) Ops {
	t.Helper()
	o := Ops{JaegerURL: os.Getenv("STREAMDET_JAEGER_URL"), PrometheusURL: os.Getenv("STREAMDET_PROMETHEUS_URL"),
		PrometheusTargets: os.Getenv("STREAMDET_PROMETHEUS_TARGETS"), TraceURL: os.Getenv("STREAMDET_TRACE_URL"),
		ZipkinURL: os.Getenv("STREAMDET_ZIPKIN_URL")}
	if o.JaegerURL == "" || o.PrometheusURL == "" || o.PrometheusTargets == "" || o.TraceURL == "" || o.ZipkinURL == "" {
		t.Fatalf("local stack's Jaeger/Zipkin/Prometheus not configured (STREAMDET_JAEGER_URL, STREAMDET_ZIPKIN_URL, STREAMDET_PROMETHEUS_URL, STREAMDET_PROMETHEUS_TARGETS, STREAMDET_TRACE_URL); run `make up` and `eval \"$(make -s env)\"`, or use `make test`")
	}
	return o
}

// ONNXRuntimeLib returns the path of libonnxruntime.so from ONNXRUNTIME_LIB, or fails the test.
func ONNXRuntimeLib(t testing.TB) string {
	t.Helper()
	p := os.Getenv("ONNXRUNTIME_LIB")
	if p == "" {
		t.Skip("ONNXRUNTIME_LIB unset: run `make unit`/`make test` (they set it), or `eval \"$(make -s env)\"` after `make up`")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("ONNXRUNTIME_LIB: %v", err)
	}
	return p
}

// RepoRoot walks up from the working directory to the directory holding go.work.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.work not found above the working directory")
		}
		dir = parent
	}
}

// Shared returns the path of a file under the shared test data directory: $STREAMDET_SHARED, or
// ../shared beside the repository.
func Shared(t testing.TB, elem ...string) string {
	t.Helper()
	base := os.Getenv("STREAMDET_SHARED")
	if base == "" {
		base = filepath.Join(RepoRoot(t), "..", "shared")
	}
	p := filepath.Join(append([]string{base}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("STREAMDET_SHARED") == "" {
			// A checkout without the shared data beside it: say why, and skip. The Makefile
			// always sets STREAMDET_SHARED when it finds the data, so `make test` never skips.
			t.Skipf("shared test data not found (%v): set STREAMDET_SHARED to the shared/ directory", err)
		}
		t.Fatalf("shared test data: %v (STREAMDET_SHARED=%s)", err, os.Getenv("STREAMDET_SHARED"))
	}
	return p
}
