package eval

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func readFixture(t *testing.T) (Dataset, []Detection, Stats) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "coco", "gt.json"))
	if err != nil {
		t.Fatal(err)
	}
	gt, err := ParseDataset(b)
	if err != nil {
		t.Fatal(err)
	}
	var dets []Detection
	var ref Stats
	for name, v := range map[string]any{"dt.json": &dets, "reference.json": &ref} {
		b, err := os.ReadFile(filepath.Join("testdata", "coco", name))
		if err == nil {
			err = json.Unmarshal(b, v)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return gt, dets, ref
}

// TestEvaluateMatchesPycocotools: the fixture has 4 images and 3 categories, with an image
// without detections, an image without ground truth, a category without ground truth (left out),
// a duplicate detection, a detection that matches only at the lower IoU thresholds, and a score
// tied across images. reference.json is pycocotools 2.0.8's output on it (make coco-reference
// recomputes it and fails if it changed).
func TestEvaluateMatchesPycocotools(t *testing.T) {
	gt, dets, ref := readFixture(t)
	got, err := Evaluate(gt, dets)
	if err != nil {
		t.Fatal(err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(got.MAP, ref.MAP) || !near(got.MAP50, ref.MAP50) {
		t.Errorf("mAP@[.5:.95] %.6f, mAP@.5 %.6f; pycocotools %.6f, %.6f", got.MAP, got.MAP50, ref.MAP, ref.MAP50)
	}
	if len(got.PerClass) != len(ref.PerClass) {
		t.Errorf("AP for categories %v; pycocotools %v", got.PerClass, ref.PerClass)
	}
	for c, want := range ref.PerClass {
		if !near(got.PerClass[c], want) {
			t.Errorf("category %d: AP %.6f; pycocotools %.6f", c, got.PerClass[c], want)
		}
	}
}

// TestPycocotoolsReference recomputes reference.json with pycocotools when
// STREAMDET_PYCOCOTOOLS names a Python that has it (make coco-reference).
func TestPycocotoolsReference(t *testing.T) {
	py := os.Getenv("STREAMDET_PYCOCOTOOLS")
	if py == "" {
		t.Skip("pycocotools not configured: make coco-reference sets STREAMDET_PYCOCOTOOLS")
	}
	dir := filepath.Join("testdata", "coco")
	out, err := exec.Command(py, filepath.Join(dir, "reference.py"), filepath.Join(dir, "gt.json"), filepath.Join(dir, "dt.json")).Output()
	if err != nil {
		t.Fatalf("pycocotools: %v", err)
	}
	var fresh Stats
	if err := json.Unmarshal(out, &fresh); err != nil {
		t.Fatal(err)
	}
	_, _, ref := readFixture(t)
	if fresh.MAP != ref.MAP || fresh.MAP50 != ref.MAP50 || len(fresh.PerClass) != len(ref.PerClass) {
		t.Fatalf("pycocotools now says %+v; reference.json says %+v", fresh, ref)
	}
}

func TestEvaluateEdges(t *testing.T) {
	gt, dets, _ := readFixture(t)
	// Perfect detections: AP 1 everywhere.
	var perfect []Detection
	for _, a := range gt.Annotations {
		perfect = append(perfect, Detection{ImageID: a.ImageID, CategoryID: a.CategoryID, BBox: a.BBox, Score: 0.9})
	}
	if s, err := Evaluate(gt, perfect); err != nil || s.MAP != 1 || s.MAP50 != 1 {
		t.Errorf("perfect detections: %+v, %v", s, err)
	}
	// No detections at all: AP 0 for every category with ground truth.
	if s, err := Evaluate(gt, nil); err != nil || s.MAP != 0 || len(s.PerClass) != 2 {
		t.Errorf("no detections: %+v, %v", s, err)
	}
	for _, bad := range []Detection{
		{ImageID: 99, CategoryID: 1, BBox: [4]float64{0, 0, 1, 1}, Score: 1},
		{ImageID: 1, CategoryID: 9, BBox: [4]float64{0, 0, 1, 1}, Score: 1},
		{ImageID: 1, CategoryID: 1, BBox: [4]float64{0, 0, -1, 1}, Score: 1},
		{ImageID: 1, CategoryID: 1, BBox: [4]float64{0, 0, 1, 1}, Score: math.NaN()},
	} {
		if _, err := Evaluate(gt, append(dets[:1:1], bad)); err == nil {
			t.Errorf("detection %+v accepted", bad)
		}
	}
}

func TestParseDatasetRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"not json":         `{`,
		"image twice":      `{"images":[{"id":1},{"id":1}]}`,
		"unknown image":    `{"images":[{"id":1}],"categories":[{"id":1}],"annotations":[{"id":1,"image_id":2,"category_id":1,"bbox":[0,0,1,1]}]}`,
		"unknown class":    `{"images":[{"id":1}],"categories":[{"id":1}],"annotations":[{"id":1,"image_id":1,"category_id":2,"bbox":[0,0,1,1]}]}`,
		"crowd":            `{"images":[{"id":1}],"categories":[{"id":1}],"annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,1,1],"iscrowd":1}]}`,
		"negative size":    `{"images":[{"id":1}],"categories":[{"id":1}],"annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,-1,1]}]}`,
		"annotation twice": `{"images":[{"id":1}],"categories":[{"id":1}],"annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,1,1]},{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,1,1]}]}`,
	} {
		if _, err := ParseDataset([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.HasPrefix(err.Error(), "eval: ground truth") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
