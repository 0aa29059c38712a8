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

	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/pkg/testenv"
)

// TestIntegrationOptimize: detctl optimize on a registered YOLOX-Nano (real MinIO and Redis, the
// pinned ONNX Runtime tooling in its private Python environment): int8-static calibrated on
// augmented frames is pushed as a new version with its lineage and report when the gates pass;
// a gate that fails pushes nothing and exits non-zero.
func TestIntegrationOptimize(t *testing.T) {
	longRunning(t)
	testenv.Require(t)
	run := fmt.Sprintf("op%d", time.Now().UnixNano()%1e9)
	model := "coco" + run
	redisAddr, redisPW, _ := ownRedis(t)
	// The Python environment: detctl's default, the machine's cache, made once per machine.
	env := []string{"STREAMDET_REDIS_ADDR=" + redisAddr, "STREAMDET_REDIS_PASSWORD=" + redisPW, "STREAMDET_LOG_LEVEL=warn"}
	shared := testenv.Shared(t, "models")
	images := testenv.Shared(t, "images")
	mustDetctl(t, env, "model", "push", "--name", model, "--version", "1", "--format", "yolox", "--names", filepath.Join(shared, "coco.names"), filepath.Join(shared, "yolox_nano.onnx"))

	out := mustDetctl(t, env, "optimize", "--model", model+"@1", "--method", "int8-static", "--augment", "--calib-frames", "24", "--holdout", "12",
		"--float-nodes", "/backbone/backbone/stem,/backbone/backbone/dark2,/backbone/backbone/dark3",
		"--min-agreement", "0.5", "--min-speedup", "0.5", images)
	t.Logf("detctl optimize:\n%s", out)
	if !strings.Contains(out, "pushed "+model+"/1-int8-static (parent 1, int8-static)") {
		t.Fatalf("not pushed:\n%s", out)
	}
	show := mustDetctl(t, env, "model", "show", model, "1-int8-static")
	var doc struct {
		Manifest registry.Manifest `json:"manifest"`
		Report   struct {
			F1      float64 `json:"agreement_f1"`
			Speedup float64 `json:"speedup"`
			Holdout int     `json:"holdout_frames"`
		} `json:"report"`
	}
	if err := json.Unmarshal([]byte(show), &doc); err != nil {
		t.Fatalf("model show: %v\n%s", err, show)
	}
	l := doc.Manifest.Lineage
	if l == nil || l.Parent != "1" || l.Method != "int8-static" || l.Calibration == nil || l.Calibration.Count != 24 || len(l.Calibration.Digest) != 64 ||
		l.Tools["onnxruntime"] != "1.30.0" || len(l.ReportSHA256) != 64 || l.Params["calibrate"] != "minmax" || l.Params["per_channel"] != true {
		t.Errorf("lineage %+v", l)
	}
	if doc.Report.Holdout != 12 || doc.Report.F1 < 0.5 || doc.Report.Speedup <= 0 {
		t.Errorf("report %+v", doc.Report)
	}
	ls := mustDetctl(t, env, "model", "ls", model)
	if !strings.Contains(ls, "└ 1-int8-static") || !strings.Contains(ls, "int8-static of 1") {
		t.Errorf("model ls does not show the version under its parent:\n%s", ls)
	}

	// detctl eval --save stores the evaluation as the report of a version that has none.
	out = mustDetctl(t, env, "eval", "--save", "--threads", "1", "--model", model+"@1", "--model", model+"@1-int8-static", images)
	if !strings.Contains(out, "saved the report of "+model+"/1") || !strings.Contains(out, model+"/1-int8-static has a report already: kept") {
		t.Errorf("eval --save:\n%s", out)
	}
	if show := mustDetctl(t, env, "model", "show", model, "1"); !strings.Contains(show, `"report"`) || !strings.Contains(show, `"latency_p50_ms"`) {
		t.Errorf("model show of version 1 after eval --save:\n%s", show)
	}

	// Percentile calibration in bounded memory: ONNX Runtime's histogram calibrator keeps every
	// activation of every frame (64 frames of YOLOX-Nano: about 8 GB); detctl's tool runs it on
	// chunks of 8 frames.
	pct := filepath.Join(t.TempDir(), "pct.onnx")
	out = mustDetctl(t, env, "optimize", "--model", filepath.Join(shared, "yolox_nano.onnx")+",format=yolox", "--names", filepath.Join(shared, "coco.names"),
		"--method", "int8-static", "--calibrate", "percentile", "--augment", "--calib-frames", "64", "--holdout", "6",
		"--op-types", "Conv,Sigmoid,Mul,Add,Concat,MaxPool,Resize", "--quantize-tail",
		"--min-agreement", "0", "--min-speedup", "0", "--out", pct, images)
	var rep struct {
		Params map[string]any `json:"params"`
		Peak   int64          `json:"tool_peak_rss_bytes"`
	}
	if b, err := os.ReadFile(strings.TrimSuffix(pct, ".onnx") + ".report.json"); err != nil || json.Unmarshal(b, &rep) != nil {
		t.Fatalf("percentile report: %v\n%s", err, out)
	}
	t.Logf("percentile calibration on 64 frames: tool peak RSS %d MiB", rep.Peak>>20)
	if rep.Params["calibrate"] != "percentile" || rep.Peak <= 0 || rep.Peak > 3<<30 {
		t.Errorf("percentile calibration: params %v, tool peak RSS %d MiB (want under 3 GiB)", rep.Params, rep.Peak>>20)
	}
	// --op-types and --quantize-tail reach ONNX Runtime's tool: the types as given, no node kept in float.
	if fmt.Sprint(rep.Params["op_types"]) != "[Conv Sigmoid Mul Add Concat MaxPool Resize]" || rep.Params["float_nodes"] != float64(0) {
		t.Errorf("--op-types/--quantize-tail: op_types %v, float_nodes %v", rep.Params["op_types"], rep.Params["float_nodes"])
	}

	// A gate that cannot pass: nothing pushed, non-zero exit, the failed gate named.
	out, code := detctl(t, env, "optimize", "--model", model+"@1", "--method", "graph", "--augment", "--holdout", "6", "--min-speedup", "10", images)
	if code == 0 || !strings.Contains(out, "kept nothing") || !strings.Contains(out, "--min-speedup 10.00×") {
		t.Fatalf("gate --min-speedup 10: exit %d\n%s", code, out)
	}
	if _, code := detctl(t, env, "model", "show", model, "1-graph"); code == 0 {
		t.Fatal("a version was pushed although its gate failed")
	}
}
