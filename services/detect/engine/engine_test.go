package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/testenv"
	"github.com/streamdet/streamdet/services/detect/imaging"
)

// refLine is one line of ../shared/reference/*.jsonl.
type refLine struct {
	Image      string               `json:"image"`
	Width      int                  `json:"width"`
	Height     int                  `json:"height"`
	Detections []contract.Detection `json:"detections"`
}

func readReference(t testing.TB, name string) []refLine {
	t.Helper()
	f, err := os.Open(testenv.Shared(t, "reference", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []refLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r refLine
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// compare applies the shared README's criterion (testenv.CompareDetections).
func compare(got, want []contract.Detection, minScore, minIoU float32) []string {
	return testenv.CompareDetections(got, want, minScore, minIoU)
}

func boxIoU(a, b [4]float32) float32 { return contract.IoU(a, b) }

var (
	enginesMu sync.Mutex
	engines   = map[string]*Engine{}
)

// testEngine returns a shared engine for a model, created once per test binary.
func testEngine(t testing.TB, key string, model func() []byte, cfg Config) *Engine {
	t.Helper()
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if e, ok := engines[key]; ok {
		return e
	}
	cfg.LibraryPath = testenv.ONNXRuntimeLib(t)
	e, err := New(model(), cfg)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	engines[key] = e
	return e
}

func yoloxEngine(t testing.TB) *Engine {
	return testEngine(t, "yolox", func() []byte { return sharedModel(t, "yolox_nano.onnx") }, Config{Format: FormatYOLOX, Names: cocoNames(t)})
}

func yolov8Engine(t testing.TB) *Engine {
	return testEngine(t, "yolov8", func() []byte { return sharedModel(t, "yolov8n_int8.onnx") }, Config{})
}

func cocoNames(t testing.TB) []string {
	b, err := os.ReadFile(testenv.Shared(t, "models", "coco.names"))
	if err != nil {
		t.Fatal(err)
	}
	return ReadNames(b)
}

func readImage(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(testenv.Shared(t, "images", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReference checks both shared models on the shared images against the independent
// reference outputs, with the criterion of ../shared/README.md.
func TestReference(t *testing.T) {
	for _, tc := range []struct {
		ref string
		eng func(testing.TB) *Engine
	}{
		{"yolox_nano.jsonl", yoloxEngine},
		{"yolov8n_int8.jsonl", yolov8Engine},
	} {
		for _, ref := range readReference(t, tc.ref) {
			t.Run(tc.ref+"/"+ref.Image, func(t *testing.T) {
				res, err := tc.eng(t).Detect(context.Background(), readImage(t, ref.Image))
				if err != nil {
					t.Fatal(err)
				}
				if res.Width != ref.Width || res.Height != ref.Height {
					t.Errorf("size %d×%d, want %d×%d", res.Width, res.Height, ref.Width, ref.Height)
				}
				for _, p := range compare(res.Detections, ref.Detections, 0.35, 0.8) {
					t.Error(p)
				}
				for _, d := range res.Detections {
					if d.Label == "" {
						t.Errorf("detection without a label: %+v", d)
					}
				}
			})
		}
	}
}

// TestFormatAutoDetection: Ultralytics metadata selects yolov8; a model that says nothing about
// itself is refused with the list of formats rather than guessed.
func TestFormatAutoDetection(t *testing.T) {
	if got := yolov8Engine(t).Info(); got.Format != FormatYOLOv8 || got.InputWidth != 640 || len(got.Names) != 80 || got.Names[16] != "dog" {
		t.Errorf("yolov8 auto: %+v", got)
	}
	_, err := New(sharedModel(t, "yolox_nano.onnx"), Config{LibraryPath: testenv.ONNXRuntimeLib(t)})
	if !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("yolox without a format: %v, want ErrUnknownFormat", err)
	}
	for _, f := range Formats {
		if !strings.Contains(err.Error(), string(f)) {
			t.Errorf("error %q does not name format %s", err, f)
		}
	}
}

// TestYOLOv5Layout runs the YOLOv5-layout wrap of the shared YOLOv8 model: auto-detected from
// YOLOv5 metadata, it must give the YOLOv8 reference boxes.
func TestYOLOv5Layout(t *testing.T) {
	e := testEngine(t, "yolov5", func() []byte { return yolov5Model(t) }, Config{})
	if f := e.Info().Format; f != FormatYOLOv5 {
		t.Fatalf("auto-detected %s, want yolov5", f)
	}
	for _, ref := range readReference(t, "yolov8n_int8.jsonl") {
		res, err := e.Detect(context.Background(), readImage(t, ref.Image))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range compare(res.Detections, ref.Detections, 0.35, 0.8) {
			t.Errorf("%s: %s", ref.Image, p)
		}
	}
}

// TestEnd2EndLayout runs the shared YOLOv8 model with NMS inside (ONNX NonMaxSuppression):
// [1, K, 6] output, auto-detected from end2end metadata, must give the reference boxes.
func TestEnd2EndLayout(t *testing.T) {
	e := testEngine(t, "end2end", func() []byte { return end2endModel(t) }, Config{})
	if f := e.Info().Format; f != FormatEnd2End {
		t.Fatalf("auto-detected %s, want end2end", f)
	}
	for _, ref := range readReference(t, "yolov8n_int8.jsonl") {
		res, err := e.Detect(context.Background(), readImage(t, ref.Image))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Detections) == 0 {
			t.Fatalf("%s: no detections", ref.Image)
		}
		for _, p := range compare(res.Detections, ref.Detections, 0.35, 0.8) {
			t.Errorf("%s: %s", ref.Image, p)
		}
	}
}

// TestDynamicBatch runs frames of different colours and sizes through one batched inference and
// checks each frame got its own result, mapped back to its own size.
func TestDynamicBatch(t *testing.T) {
	e := testEngine(t, "batch", batchModel, Config{MaxBatch: 3, Conf: 0.01})
	if !e.Info().DynamicBatch || e.Info().Format != FormatEnd2End {
		t.Fatalf("info %+v: want a dynamic batch end2end model", e.Info())
	}
	var dec imaging.Decoder
	defer dec.Close()
	colours := [][3]uint8{{200, 100, 50}, {10, 20, 30}, {255, 255, 255}, {114, 114, 114}, {0, 250, 0}}
	var frames [][]byte
	var want []float32
	for i, c := range colours {
		side := 128 * (i + 1) // square frames: no padding, so the mean is the colour's mean
		frames = append(frames, solidPNG(t, side, side, c))
		want = append(want, (float32(c[0])+float32(c[1])+float32(c[2]))/3/255)
	}
	frames = append(frames[:2], append([][]byte{[]byte("not an image")}, frames[2:]...)...)
	want = append(want[:2], append([]float32{-1}, want[2:]...)...)

	res, errs := e.DetectBatch(context.Background(), frames)
	for i := range frames {
		if want[i] < 0 {
			if !errors.Is(errs[i], imaging.ErrUnsupportedFormat) {
				t.Errorf("frame %d: error %v, want ErrUnsupportedFormat", i, errs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("frame %d: %v", i, errs[i])
		}
		if len(res[i].Detections) != 1 {
			t.Fatalf("frame %d: %d detections", i, len(res[i].Detections))
		}
		d := res[i].Detections[0]
		if diff := d.Score - want[i]; diff > 0.003 || diff < -0.003 {
			t.Errorf("frame %d: score %v, want the frame's mean %v", i, d.Score, want[i])
		}
		g := float32(res[i].Width) / 64 // [8,8,40,40] in the 64×64 input, mapped back
		if wantBox := [4]float32{8 * g, 8 * g, 40 * g, 40 * g}; boxIoU(d.Box, wantBox) < 0.99 || d.ClassID != 3 || d.Label != "d" {
			t.Errorf("frame %d: %+v, want class 3 'd' at %v", i, d, wantBox)
		}
	}
}

// TestConcurrentDetect runs several goroutines on one engine; the results must not mix.
func TestConcurrentDetect(t *testing.T) {
	e := yoloxEngine(t)
	refs := readReference(t, "yolox_nano.jsonl")
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				ref := refs[(g+i)%len(refs)]
				res, err := e.Detect(context.Background(), readImage(t, ref.Image))
				if err != nil {
					t.Error(err)
					return
				}
				if p := compare(res.Detections, ref.Detections, 0.35, 0.8); len(p) > 0 {
					t.Errorf("%s: %v", ref.Image, p)
				}
			}
		}(g)
	}
	wg.Wait()
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, e := range engines {
		e.Close()
	}
	os.Exit(code)
}

// TestInferOnly: the bare-inference probe detctl bench compares the pipeline with runs the
// engine's own sessions, and refuses once the engine is closed.
func TestInferOnly(t *testing.T) {
	e, err := New(sharedModel(t, "yolox_nano.onnx"), Config{Format: FormatYOLOX, Sessions: 1, LibraryPath: testenv.ONNXRuntimeLib(t)})
	if err != nil {
		t.Fatal(err)
	}
	if e.Sessions() != 1 {
		t.Fatalf("sessions %d", e.Sessions())
	}
	for i := 0; i < 3; i++ {
		if d, err := e.InferOnly(context.Background()); err != nil || d <= 0 {
			t.Fatalf("InferOnly: %v, %v", d, err)
		}
	}
	e.Close()
	if _, err := e.InferOnly(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestInput: the tensor Input returns is the one Detect feeds the model (same detections when
// run bare), with the padding written.
func TestInput(t *testing.T) {
	e := yoloxEngine(t)
	img := readImage(t, "dog.jpg")
	in, shape, err := e.Input(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	if len(shape) != 4 || shape[0] != 1 || shape[1] != 3 || shape[2] != 416 || shape[3] != 416 || len(in) != 3*416*416 {
		t.Fatalf("shape %v, %d values", shape, len(in))
	}
	// dog.jpg is 768×576: letterboxed top-left, the bottom rows are padding (114, BGR unscaled).
	if last := in[len(in)-1]; last != 114 {
		t.Errorf("last value %v, want the padding 114", last)
	}
	if _, _, err := e.Input(context.Background(), []byte("not an image")); err == nil {
		t.Error("garbage accepted")
	}
}
