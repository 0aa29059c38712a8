package engine

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/streamdet/streamdet/services/detect/imaging"
)

// Benchmarks (docs/benchmarks.md has the command and the figures):
//
//	BenchmarkStages      each stage of one frame on its own: decode, preprocess, infer, postprocess
//	BenchmarkEngineVsRaw the engine (all stages, one frame at a time) against ONNX Runtime's bare
//	                     Run on the same model, threads and tensors, interleaved in one loop so both
//	                     see the same machine; reports engine/raw, the ratio of frames per second.

// benchThreads is the intra-op thread count of both sides of every ratio: the machine's 2 cores
// by default, STREAMDET_BENCH_THREADS to compare (1 is the detect service's default per session).
var benchThreads = func() int {
	if n, err := strconv.Atoi(os.Getenv("STREAMDET_BENCH_THREADS")); err == nil && n > 0 {
		return n
	}
	return 2
}()

type benchImage struct {
	name string
	data []byte
}

func benchImages(b *testing.B) []benchImage {
	var out []benchImage
	for _, n := range []string{"dog.jpg", "horses.jpg", "person.jpg"} {
		out = append(out, benchImage{n, readImage(b, n)})
	}
	return append(out, benchImage{"1920x1080.jpg", frame1080(b)})
}

// frame1080 is a 1920×1080 JPEG made from the shared dog.jpg: scaled 2.5× and cropped.
func frame1080(b testing.TB) []byte {
	src := refRGB(b, readImage(b, "dog.jpg"))
	big := refResize(src, 1920, 1440)
	crop := imaging.RGB{Width: 1920, Height: 1080, Stride: big.Stride, Pix: big.Pix[180*big.Stride:]}
	var d imaging.Decoder
	defer d.Close()
	out, err := d.EncodeJPEG(crop, 90, false)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

type benchModel struct {
	name string
	cfg  Config
}

var benchModels = []benchModel{
	{"yolox_nano.onnx", Config{Format: FormatYOLOX}},
	{"yolov8n_int8.onnx", Config{}},
}

func benchEngine(b *testing.B, m benchModel) *Engine {
	cfg := m.cfg
	cfg.Sessions, cfg.IntraOpThreads = 1, benchThreads
	return testEngine(b, fmt.Sprintf("bench/%s/%d", m.name, benchThreads), func() []byte { return sharedModel(b, m.name) }, cfg)
}

func BenchmarkStages(b *testing.B) {
	for _, m := range benchModels {
		e := benchEngine(b, m)
		for _, img := range benchImages(b) {
			w := <-e.pool
			in := w.input[1]
			b.Run(fmt.Sprintf("%s/%s/decode", m.name, img.name), func(b *testing.B) {
				for b.Loop() {
					if _, _, err := w.dec.Decode(img.data, e.info.InputWidth, e.info.InputHeight); err != nil {
						b.Fatal(err)
					}
				}
			})
			dimg, cfg, _ := w.dec.Decode(img.data, e.info.InputWidth, e.info.InputHeight)
			dimg.Pix = append([]byte(nil), dimg.Pix...)
			lb := geometry(e.fam, cfg.Width, cfg.Height, e.info.InputWidth, e.info.InputHeight)
			b.Run(fmt.Sprintf("%s/%s/preprocess", m.name, img.name), func(b *testing.B) {
				for b.Loop() {
					w.pre.run(e.fam, dimg, lb, e.info.InputWidth, e.info.InputHeight, in.GetData())
				}
			})
			b.Run(fmt.Sprintf("%s/%s/infer", m.name, img.name), func(b *testing.B) {
				for b.Loop() {
					if _, _, _, err := e.infer(w, in, 1); err != nil {
						b.Fatal(err)
					}
				}
			})
			out, dims, release, _ := e.infer(w, in, 1)
			pr := prepared{cfg: cfg, lb: lb}
			b.Run(fmt.Sprintf("%s/%s/postprocess", m.name, img.name), func(b *testing.B) {
				for b.Loop() {
					e.post(w, pr, out, dims)
				}
			})
			release()
			e.pool <- w
		}
	}
}

func BenchmarkEngineVsRaw(b *testing.B) {
	for _, m := range benchModels {
		e := benchEngine(b, m)
		// The bare baseline: a session with the engine's options, fixed input and output tensors.
		opts, err := sessionOptions(e.cfg)
		if err != nil {
			b.Fatal(err)
		}
		in, _ := ort.NewEmptyTensor[float32](ort.NewShape(1, 3, int64(e.info.InputHeight), int64(e.info.InputWidth)))
		out, _ := ort.NewEmptyTensor[float32](e.staticOutput(1))
		raw, err := ort.NewAdvancedSessionWithONNXData(sharedModel(b, m.name), []string{e.info.InputName}, []string{e.info.OutputName},
			[]ort.Value{in}, []ort.Value{out}, opts)
		opts.Destroy()
		if err != nil {
			b.Fatal(err)
		}
		for _, img := range benchImages(b) {
			b.Run(fmt.Sprintf("%s/%s", m.name, img.name), func(b *testing.B) {
				var rawT, engT time.Duration
				var stages Timing
				for b.Loop() {
					t0 := time.Now()
					if err := raw.Run(); err != nil {
						b.Fatal(err)
					}
					t1 := time.Now()
					res, err := e.Detect(context.Background(), img.data)
					if err != nil {
						b.Fatal(err)
					}
					engT += time.Since(t1)
					rawT += t1.Sub(t0)
					stages.DecodeMS += res.Timing.DecodeMS
					stages.PreprocessMS += res.Timing.PreprocessMS
					stages.InferMS += res.Timing.InferMS
					stages.PostprocessMS += res.Timing.PostprocessMS
				}
				n := float64(b.N)
				b.ReportMetric(n/rawT.Seconds(), "raw-fps")
				b.ReportMetric(n/engT.Seconds(), "engine-fps")
				b.ReportMetric(rawT.Seconds()/engT.Seconds(), "engine/raw")
				b.ReportMetric(stages.DecodeMS/n, "decode-ms")
				b.ReportMetric(stages.PreprocessMS/n, "pre-ms")
				b.ReportMetric(stages.InferMS/n, "infer-ms")
				b.ReportMetric(stages.PostprocessMS/n, "post-ms")
			})
		}
		raw.Destroy()
		in.Destroy()
		out.Destroy()
	}
}
