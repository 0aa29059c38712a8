package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/streamdet/streamdet/pkg/testenv"
)

func TestPlanFor(t *testing.T) {
	base := planInput{Cameras: 100, FPS: 5, DetectMS: 36, IngestMS: 3, SinkMS: 1, KafkaMS: 12, StorageMS: 9, CoresPerReplica: 2, Utilization: 0.7}
	for _, tc := range []struct {
		name                             string
		in                               func(planInput) planInput
		replicas, partitions, ingest, lt int
		detectCores                      float64
	}{
		// 500 frames/s × 36 ms = 18 CPU-s/s → 25.7 cores at 70 % → 13 replicas of 2 → 27 partitions.
		{"100 cameras at 5 fps", func(p planInput) planInput { return p }, 13, 27, 3, 77, 25.71},
		{"one camera", func(p planInput) planInput { p.Cameras, p.FPS = 1, 1; return p }, 1, 6, 2, 77, 0.05},
		{"4-core replicas", func(p planInput) planInput { p.CoresPerReplica = 4; return p }, 7, 15, 3, 155, 25.71},
	} {
		p := planFor(tc.in(base))
		if p.DetectReplicas != tc.replicas || p.Partitions != tc.partitions || p.IngestReplicas != tc.ingest || p.LagThreshold != tc.lt ||
			p.DetectCores < tc.detectCores-0.01 || p.DetectCores > tc.detectCores+0.01 {
			t.Errorf("%s: %+v", tc.name, p)
		}
		if p.Partitions < p.DetectReplicas {
			t.Errorf("%s: fewer partitions (%d) than replicas (%d)", tc.name, p.Partitions, p.DetectReplicas)
		}
	}
}

func TestPlanRefusesBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"--cameras", "0", "--fps", "5", "--detect-ms", "30"},
		{"--cameras", "10", "--fps", "0", "--detect-ms", "30"},
		{"--cameras", "10", "--fps", "5"},
		{"--cameras", "10", "--fps", "5", "--detect-ms", "30", "--utilization", "1.5"},
	} {
		var out, errb bytes.Buffer
		if code := runPlan(context.Background(), args, &out, &errb); code != 2 || !strings.Contains(errb.String(), "detctl plan:") {
			t.Errorf("%v: exit %d, %q", args, code, errb.String())
		}
	}
}

// TestPlanMeasuresModel: with --model the detector's CPU time is measured here.
func TestPlanMeasuresModel(t *testing.T) {
	testenv.ONNXRuntimeLib(t)
	model := testenv.Shared(t, "models", "yolox_nano.onnx")
	var out, errb bytes.Buffer
	if code := runPlan(context.Background(), []string{"--cameras", "20", "--fps", "2", "--model", model, "--format", "yolox", "--frames", "3", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var p deploymentPlan
	if err := json.Unmarshal(out.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if p.Input.DetectMS < 1 || p.Input.DetectMS > 5000 || p.DetectReplicas < 1 || p.FramesPerSecond != 40 {
		t.Fatalf("plan %+v", p)
	}
	t.Logf("yolox_nano: %.1f CPU ms per frame here → %d replicas for 40 frames/s", p.Input.DetectMS, p.DetectReplicas)
}
