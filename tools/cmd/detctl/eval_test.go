package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/pkg/testenv"
	"github.com/streamdet/streamdet/tools/eval"
)

// TestEvalCommand: yolox_nano against ground truth made from the independent reference
// implementation's detections (shared/reference), then yolov8n_int8 compared with it.
func TestEvalCommand(t *testing.T) {
	testenv.ONNXRuntimeLib(t)
	// Ground truth: the reference's boxes scored ≥ 0.35 (the ones every implementation must find).
	f, err := os.Open(testenv.Shared(t, "reference", "yolox_nano.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var gt eval.Dataset
	cats := map[string]int64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ref struct {
			Image      string               `json:"image"`
			Detections []contract.Detection `json:"detections"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ref); err != nil {
			t.Fatal(err)
		}
		img := int64(len(gt.Images) + 1)
		gt.Images = append(gt.Images, eval.Image{ID: img, FileName: ref.Image})
		for _, d := range ref.Detections {
			if d.Score < 0.35 {
				continue
			}
			if cats[d.Label] == 0 {
				cats[d.Label] = int64(len(cats) + 1)
				gt.Categories = append(gt.Categories, eval.Category{ID: cats[d.Label], Name: d.Label})
			}
			b := eval.XYWH(d.Box)
			gt.Annotations = append(gt.Annotations, eval.Annotation{ID: int64(len(gt.Annotations) + 1), ImageID: img, CategoryID: cats[d.Label], BBox: b, Area: b[2] * b[3]})
		}
	}
	dir := t.TempDir()
	gtPath, out := filepath.Join(dir, "gt.json"), filepath.Join(dir, "eval.json")
	b, _ := json.Marshal(gt)
	if err := os.WriteFile(gtPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"eval", "--gt", gtPath, "--names", testenv.Shared(t, "models", "coco.names"), "--threads", "1",
		"--model", testenv.Shared(t, "models", "yolox_nano.onnx") + ",format=yolox",
		"--model", testenv.Shared(t, "models", "yolov8n_int8.onnx"),
		"--json", out, testenv.Shared(t, "images")}, &stdout, &stderr)
	t.Logf("detctl eval:\n%s%s", stdout.String(), stderr.String())
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var rep struct {
		Frames   int           `json:"frames"`
		Versions []evalVersion `json:"versions"`
	}
	b, err = os.ReadFile(out)
	if err == nil {
		err = json.Unmarshal(b, &rep)
	}
	if err != nil || rep.Frames != 3 || len(rep.Versions) != 2 {
		t.Fatalf("report: %v, %d frames, %d versions", err, rep.Frames, len(rep.Versions))
	}
	x, v8 := rep.Versions[0], rep.Versions[1]
	// yolox_nano finds what the reference found at ≥ 0.35: AP at IoU 0.5 of 1 for every class.
	if x.COCO == nil || x.COCO.MAP50 < 0.99 || x.COCO.MAP < 0.8 || x.Agreement != nil {
		t.Errorf("yolox_nano: %+v, agreement %+v", x.COCO, x.Agreement)
	}
	if x.Frames != 3 || x.P50ms <= 0 || x.P99ms < x.P50ms || x.FPS <= 0 || x.SizeBytes < 1<<20 || x.Threads != 1 || x.PeakRSSMiB <= 0 {
		t.Errorf("yolox_nano measures: %+v", x)
	}
	a := v8.Agreement
	if a == nil || a.Frames != 3 || a.All.Baseline == 0 || a.All.Matched == 0 || a.All.F1() <= 0 || a.All.F1() >= 1 || a.MeanIoU < 0.5 || v8.COCO == nil {
		t.Errorf("yolov8n_int8 against yolox_nano: %+v, COCO %+v", a, v8.COCO)
	}
}

func TestLineageTree(t *testing.T) {
	m := func(v, parent string) registry.Manifest {
		r := registry.Manifest{Name: "coco", Version: v}
		if parent != "" {
			r.Lineage = &registry.Lineage{Parent: parent, Method: "int8-static"}
		}
		return r
	}
	rows := lineageTree([]registry.Manifest{m("1", ""), m("1-fp16", "1-int8"), m("1-int8", "1"), m("2", ""), m("3", "9"), m("x", "y"), m("y", "x")})
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%d:%s", r.depth, r.m.Version))
	}
	want := "0:1 1:1-int8 2:1-fp16 0:2 0:3 0:x 1:y" // an unknown parent stays at the top; a cycle is listed once
	if strings.Join(got, " ") != want {
		t.Errorf("tree %v, want %s", got, want)
	}
}
