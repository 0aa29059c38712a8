package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image"
	_ "image/jpeg"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/drift"
	"github.com/streamdet/streamdet/pkg/testenv"
	"github.com/streamdet/streamdet/tools/eval"
)

// box is a label read back: class name and pixel box [x1, y1, x2, y2].
type box struct {
	class string
	b     [4]float64
}

// readYOLO reads a YOLO dataset as a trainer does: classes.txt, and per image its labels file of
// "class cx cy w h" normalised by the image's size.
func readYOLO(t *testing.T, dir string) map[string][]box {
	t.Helper()
	cb, err := os.ReadFile(filepath.Join(dir, "classes.txt"))
	if err != nil {
		t.Fatal(err)
	}
	classes := strings.Split(strings.TrimSpace(string(cb)), "\n")
	out := map[string][]box{}
	imgs, _ := os.ReadDir(filepath.Join(dir, "images"))
	for _, e := range imgs {
		f, err := os.Open(filepath.Join(dir, "images", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		cfg, _, err := image.DecodeConfig(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		lf, err := os.Open(filepath.Join(dir, "labels", strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))+".txt"))
		if err != nil {
			t.Fatalf("no labels file for %s: %v", e.Name(), err)
		}
		sc := bufio.NewScanner(lf)
		out[e.Name()] = []box{}
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) != 5 {
				t.Fatalf("%s: label %q", e.Name(), sc.Text())
			}
			k, _ := strconv.Atoi(fs[0])
			v := make([]float64, 4)
			for i := range v {
				v[i], _ = strconv.ParseFloat(fs[i+1], 64)
				if v[i] < 0 || v[i] > 1 {
					t.Fatalf("%s: not normalised: %q", e.Name(), sc.Text())
				}
			}
			W, H := float64(cfg.Width), float64(cfg.Height)
			out[e.Name()] = append(out[e.Name()], box{classes[k], [4]float64{(v[0] - v[2]/2) * W, (v[1] - v[3]/2) * H, (v[0] + v[2]/2) * W, (v[1] + v[3]/2) * H}})
		}
		lf.Close()
	}
	return out
}

// readCOCO reads annotations.json as a COCO reader does.
func readCOCO(t *testing.T, dir string) map[string][]box {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "annotations.json"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := eval.ParseDataset(b)
	if err != nil {
		t.Fatal(err)
	}
	files, cats := map[int64]string{}, map[int64]string{}
	out := map[string][]box{}
	for _, im := range d.Images {
		files[im.ID] = im.FileName
		out[im.FileName] = []box{}
	}
	for _, c := range d.Categories {
		cats[c.ID] = c.Name
	}
	for _, a := range d.Annotations {
		out[files[a.ImageID]] = append(out[files[a.ImageID]], box{cats[a.CategoryID], [4]float64{a.BBox[0], a.BBox[1], a.BBox[0] + a.BBox[2], a.BBox[1] + a.BBox[3]}})
	}
	return out
}

// TestDatasetExport: the teacher's boxes (score ≥ 0.5) come back from both formats within a
// pixel, for every image (two images share a name), and --classes keeps only those classes.
func TestDatasetExport(t *testing.T) {
	testenv.ONNXRuntimeLib(t)
	images := testenv.Shared(t, "images")
	teacher := testenv.Shared(t, "models", "yolox_nano.onnx") + ",format=yolox"
	names := testenv.Shared(t, "models", "coco.names")
	// What the teacher detects, by image.
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"detect", "--model", testenv.Shared(t, "models", "yolox_nano.onnx"), "--format", "yolox", "--names", names,
		"--conf", "0.5", filepath.Join(images, "dog.jpg"), filepath.Join(images, "horses.jpg"), filepath.Join(images, "person.jpg")}, &stdout, &stderr); code != 0 {
		t.Fatalf("detect: %s", stderr.String())
	}
	want := map[string][]box{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var o struct {
			Image      string               `json:"image"`
			Detections []contract.Detection `json:"detections"`
		}
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatal(err)
		}
		for _, d := range o.Detections {
			want[filepath.Base(o.Image)] = append(want[filepath.Base(o.Image)], box{d.Label, [4]float64{float64(d.Box[0]), float64(d.Box[1]), float64(d.Box[2]), float64(d.Box[3])}})
		}
	}
	want["dog-2.jpg"] = want["dog.jpg"] // the same image given twice: exported under a second name

	out := filepath.Join(t.TempDir(), "ds")
	stdout.Reset()
	if code := run(context.Background(), []string{"dataset", "export", "--model", teacher, "--names", names, "--conf", "0.5", "--out", out,
		images, filepath.Join(images, "dog.jpg")}, &stdout, &stderr); code != 0 {
		t.Fatalf("export: %s", stderr.String())
	}
	t.Log(stdout.String())
	for format, got := range map[string]map[string][]box{"YOLO": readYOLO(t, out), "COCO": readCOCO(t, out)} {
		if len(got) != 4 {
			t.Errorf("%s: %d images, want 4: %v", format, len(got), got)
		}
		for img, w := range want {
			g := got[img]
			if len(g) != len(w) {
				t.Errorf("%s %s: %d labels, want %d", format, img, len(g), len(w))
				continue
			}
			sortBoxes(g)
			sortBoxes(w)
			for i := range w {
				for k := 0; k < 4; k++ {
					if g[i].class != w[i].class || math.Abs(g[i].b[k]-w[i].b[k]) > 1 {
						t.Errorf("%s %s: label %+v, teacher %+v", format, img, g[i], w[i])
						break
					}
				}
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, "data.yaml")); !strings.Contains(string(b), "names:\n  0: \"person\"") {
		t.Errorf("data.yaml:\n%s", b)
	}

	only := filepath.Join(t.TempDir(), "dogs")
	if code := run(context.Background(), []string{"dataset", "export", "--model", teacher, "--names", names, "--classes", "dog", "--out", only, images}, &stdout, &stderr); code != 0 {
		t.Fatalf("export --classes dog: %s", stderr.String())
	}
	n := 0
	for _, bs := range readYOLO(t, only) {
		for _, b := range bs {
			if b.class != "dog" {
				t.Errorf("--classes dog exported a %s", b.class)
			}
			n++
		}
	}
	dogs := 0
	for img, bs := range want {
		for _, b := range bs {
			if b.class == "dog" && img != "dog-2.jpg" {
				dogs++
			}
		}
	}
	if n != dogs || n == 0 {
		t.Errorf("%d dog labels, the teacher found %d", n, dogs)
	}
	if code := run(context.Background(), []string{"dataset", "export", "--model", teacher, "--names", names, "--out", only, images}, &stdout, &stderr); code == 0 {
		t.Error("export into a non-empty directory accepted")
	}
}

func sortBoxes(bs []box) {
	sort.Slice(bs, func(i, j int) bool {
		if bs[i].class != bs[j].class {
			return bs[i].class < bs[j].class
		}
		return bs[i].b[0] < bs[j].b[0]
	})
}

func TestDrifted(t *testing.T) {
	got := drifted([]drift.Value{
		{Version: "1", Stream: "cam-1", Feature: "class", PSI: 0.4},
		{Version: "2", Stream: "cam-2", Feature: "brightness", PSI: 0.25},
		{Version: "1", Stream: "cam-3", Feature: "boxes", PSI: 0.1},
		{Version: "1", Stream: "*", Feature: "boxes", PSI: 0.9},
	}, 0.25)
	if strings.Join(sortedKeys(got), ",") != "cam-1,cam-2" {
		t.Errorf("drifted %v", got)
	}
}
