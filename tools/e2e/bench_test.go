//go:build integration

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamdet/streamdet/pkg/testenv"
	"github.com/streamdet/streamdet/tools/bench"
)

// benchResult is detctl bench --json's document.
type benchResult struct {
	Run   string       `json:"run"`
	Steps []bench.Step `json:"steps"`
}

// runBench runs a short two-step sweep with detctl bench and checks what every run must hold:
// every frame back once, latency and throughput measured, the plot written, CPU accounted to
// the processes in own.
func runBench(t *testing.T, env, extra []string, own ...bench.Group) benchResult {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"bench", "--rate", "3,6", "--streams", "3", "--warmup", "2s", "--duration", "5s", "--wait", "60s",
		"--json", filepath.Join(dir, "bench.json"), "--plot", filepath.Join(dir, "bench.png"), "--latencies", filepath.Join(dir, "latencies.csv")}, extra...)
	out := mustDetctl(t, env, append(args, testenv.Shared(t, "images"))...)
	t.Logf("detctl bench:\n%s", out)
	var res benchResult
	b, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	if err == nil {
		err = json.Unmarshal(b, &res)
	}
	if err != nil || len(res.Steps) != 2 {
		t.Fatalf("bench.json: %v (%d steps)", err, len(res.Steps))
	}
	for _, s := range res.Steps {
		if s.Lost != 0 || s.Received != s.Sent || s.Sent < 10 {
			t.Errorf("step at %.0f/s: %d sent, %d back, %d lost", s.Offered, s.Sent, s.Received, s.Lost)
		}
		if s.Achieved < 0.5*s.Offered || s.P50 <= 0 || s.P99 < s.P50 || s.StageMS["inference"]+s.StageMS["infer"] <= 0 {
			t.Errorf("step at %.0f/s: %+v", s.Offered, s)
		}
		for _, g := range own {
			if s.CPUms[g] <= 0 {
				t.Errorf("step at %.0f/s: no CPU accounted to %s: %v", s.Offered, g, s.CPUms)
			}
		}
		if s.OwnCPUms <= 0 || s.TotalCPUms < s.OwnCPUms {
			t.Errorf("step at %.0f/s: own %.1f, total %.1f ms/frame", s.Offered, s.OwnCPUms, s.TotalCPUms)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "bench.png")); err != nil || st.Size() < 1000 {
		t.Errorf("plot: %v", err)
	}
	// Every frame back in the latencies, one row each, and the tail of each step counted.
	back := 0
	for _, s := range res.Steps {
		back += s.Received
		if s.TailFrames < 1 || s.TailBursts < 1 || s.TailBursts > s.TailFrames {
			t.Errorf("step at %.0f/s: %d frames at or above the p99 in %d bursts", s.Offered, s.TailFrames, s.TailBursts)
		}
	}
	csv, err := os.ReadFile(filepath.Join(dir, "latencies.csv"))
	if rows := strings.Split(strings.TrimSpace(string(csv)), "\n"); err != nil || rows[0] != "step,offered_fps,sent_ms,sent_unix_ms,latency_ms,trace_id" || len(rows) != 1+back {
		t.Errorf("latencies.csv: %v, %d rows for %d frames back", err, len(rows)-1, back)
	}
	return res
}

// TestIntegrationBench: detctl bench against services on the local stack (CPU of ingest, detect
// and sink, and of Kafka, MinIO and Redis) and against detctl dev (all in one process).
func TestIntegrationBench(t *testing.T) {
	st := testenv.Require(t)
	ops := testenv.RequireOps(t)
	t.Run("local stack", func(t *testing.T) {
		run := fmt.Sprintf("bn%d", time.Now().UnixNano()%1e9)
		testenv.Topics(t, st.KafkaBrokers, 3, runTopics(run, "frames.raw", "frames", "detections", "detections.shadow", "dlq")...)
		env := []string{
			"STREAMDET_TOPIC_PREFIX=" + run, "STREAMDET_FRAMES_BUCKET=" + run + "-frames", "STREAMDET_DETECTIONS_BUCKET=" + run + "-detections",
			"STREAMDET_INGEST_GROUP=" + run + "-ingest", "STREAMDET_DETECT_GROUP=" + run + "-detect", "STREAMDET_SINK_GROUP=" + run + "-sink",
			"STREAMDET_INGEST_EVENTS=false", "STREAMDET_LOG_LEVEL=warn", "OTEL_BSP_SCHEDULE_DELAY=100",
		}
		startService(t, "ingest", env)
		startService(t, "detect", append(env, "STREAMDET_MODEL_PATH="+testenv.Shared(t, "models", "yolox_nano.onnx"), "STREAMDET_MODEL_FORMAT=yolox",
			"STREAMDET_MODEL_NAME=coco", "STREAMDET_MODEL_VERSION=1"))
		startService(t, "sink", env)
		res := runBench(t, env, []string{"--baseline", testenv.Shared(t, "models", "yolox_nano.onnx"), "--baseline-format", "yolox", "--baseline-time", "2s", "--baseline-layout", "2x1,1x2",
			"--jaeger", ops.JaegerURL, "--spans", "5", "--slow-spans", "3"},
			bench.Ingest, bench.Detect, bench.Sink, bench.Kafka, bench.MinIO)
		for _, s := range res.Steps {
			if len(s.Baselines) != 2 || s.Baselines[0].Layout != "2x1" || s.Baselines[1].Layout != "1x2" {
				t.Errorf("step at %.0f/s: baselines %+v, want layouts 2x1 and 1x2", s.Offered, s.Baselines)
			}
			for _, b := range s.Baselines {
				if b.FPS <= 0 || b.CPUms <= 0 || b.LatencyMS <= 0 {
					t.Errorf("step at %.0f/s: baseline %+v", s.Offered, b)
				}
			}
			// The latency broken into stages from the frames' traces in Jaeger.
			stages := map[string]float64{}
			for _, st := range s.SpanStages {
				stages[st.Name] = st.MeanMS
			}
			if s.SpanTraces < 3 || stages["ingest"] <= 0 || stages["detect"] <= 0 || stages["detect inference"] <= 0 ||
				stages["→detect"] < 0 || stages["→back"] < 0 || len(s.SpanStages) < 8 {
				t.Errorf("step at %.0f/s: %d traces, stages %v", s.Offered, s.SpanTraces, s.SpanStages)
			}
			// And the tail: the slowest frames' stages, all of them at least as slow as the median.
			slow := map[string]float64{}
			for _, st := range s.SlowSpanStages {
				slow[st.Name] = st.MeanMS
			}
			if s.SlowSpanTraces < 2 || s.SlowFromMS < s.P50 || slow["detect inference"] <= 0 {
				t.Errorf("step at %.0f/s (p50 %.1f ms): %d slowest traces from %.1f ms, stages %v", s.Offered, s.P50, s.SlowSpanTraces, s.SlowFromMS, s.SlowSpanStages)
			}
		}
	})
	t.Run("detctl dev", func(t *testing.T) {
		env, _ := devStack(t)
		runBench(t, env, []string{"--spans", "0"}, bench.Detctl)
	})
}
