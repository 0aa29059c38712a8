package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math"
	"os"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/streamdet/streamdet/services/detect/engine"
)

// planInput is what a deployment plan is computed from: the load, and CPU milliseconds per frame
// of each part of the pipeline on the target machine's cores.
type planInput struct {
	Cameras         int     `json:"cameras"`
	FPS             float64 `json:"fps_per_camera"`
	DetectMS        float64 `json:"detect_cpu_ms_per_frame"`
	IngestMS        float64 `json:"ingest_cpu_ms_per_frame"`
	SinkMS          float64 `json:"sink_cpu_ms_per_frame"`
	KafkaMS         float64 `json:"kafka_cpu_ms_per_frame"`
	StorageMS       float64 `json:"object_storage_cpu_ms_per_frame"`
	CoresPerReplica int     `json:"detect_cores_per_replica"`
	Utilization     float64 `json:"target_utilization"`
}

// deploymentPlan is what `detctl plan` prints.
type deploymentPlan struct {
	Input           planInput `json:"input"`
	FramesPerSecond float64   `json:"frames_per_second"`
	DetectCores     float64   `json:"detect_cores"`
	DetectReplicas  int       `json:"detect_replicas"`
	Sessions        int       `json:"detect_sessions_per_replica"`
	Partitions      int       `json:"frames_partitions"`
	LagThreshold    int       `json:"keda_lag_threshold"`
	IngestReplicas  int       `json:"ingest_replicas"`
	SinkReplicas    int       `json:"sink_replicas"`
	PlatformCores   float64   `json:"kafka_and_storage_cores"`
	TotalCores      float64   `json:"total_cores"`
}

// planFor sizes a deployment: cores for the CPU time per second at the target utilisation;
// detect replicas of CoresPerReplica cores (one single-threaded session per core); frames
// partitions leaving room to double the replicas (KEDA never scales past the partitions); a lag
// threshold of two seconds of one replica's work.
func planFor(in planInput) deploymentPlan {
	fps := float64(in.Cameras) * in.FPS
	cores := func(ms float64) float64 { return fps * ms / 1000 / in.Utilization }
	p := deploymentPlan{Input: in, FramesPerSecond: fps, DetectCores: cores(in.DetectMS), Sessions: in.CoresPerReplica}
	p.DetectReplicas = max(1, int(math.Ceil(p.DetectCores/float64(in.CoresPerReplica))))
	p.Partitions = max(6, 3*int(math.Ceil(float64(2*p.DetectReplicas)/3)))
	perReplica := float64(in.CoresPerReplica) * 1000 / in.DetectMS * in.Utilization
	p.LagThreshold = max(10, int(2*perReplica))
	ingest, sink := cores(in.IngestMS), cores(in.SinkMS)
	p.IngestReplicas = max(2, int(math.Ceil(ingest))) // two for availability
	p.SinkReplicas = max(1, int(math.Ceil(sink)))
	p.PlatformCores = cores(in.KafkaMS + in.StorageMS)
	p.TotalCores = p.DetectCores + ingest + sink + p.PlatformCores
	return p
}

func validatePlan(in planInput) error {
	var errs []error
	if in.Cameras < 1 {
		errs = append(errs, fmt.Errorf("--cameras %d: at least 1", in.Cameras))
	}
	if in.FPS <= 0 || in.FPS > 240 {
		errs = append(errs, fmt.Errorf("--fps %g: in (0, 240]", in.FPS))
	}
	if in.CoresPerReplica < 1 || in.CoresPerReplica > 128 {
		errs = append(errs, fmt.Errorf("--cores-per-replica %d: in [1, 128]", in.CoresPerReplica))
	}
	if in.Utilization <= 0 || in.Utilization > 1 {
		errs = append(errs, fmt.Errorf("--utilization %g: in (0, 1]", in.Utilization))
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"--ingest-ms", in.IngestMS}, {"--sink-ms", in.SinkMS}, {"--kafka-ms", in.KafkaMS}, {"--storage-ms", in.StorageMS}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s %g: not negative", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: detctl plan --cameras N --fps F (--model PATH | --detect-ms MS) [flags]

Sizes a deployment: partitions, replicas and cores for N cameras at F frames per second. The
detector's CPU time per frame is measured here (--model: one session, one thread, on a 1920×1080
JPEG or --image), so run it on the target kind of machine; the other stages' figures default to
those measured on the project's machine at 1080p (docs/deploy.md).

Flags:`)
		fs.PrintDefaults()
	}
	in := planInput{}
	fs.IntVar(&in.Cameras, "cameras", 0, "cameras (streams)")
	fs.Float64Var(&in.FPS, "fps", 0, "frames per second per camera")
	model := fs.String("model", "", "ONNX model file to measure")
	format := fs.String("format", "auto", "model format: auto, yolox, yolov5, yolov8 or end2end")
	imgsz := fs.Int("imgsz", 0, "input size for models with a dynamic input shape")
	imagePath := fs.String("image", "", "a representative frame (default: a 1920×1080 JPEG)")
	frames := fs.Int("frames", 30, "frames to measure the model on")
	fs.Float64Var(&in.DetectMS, "detect-ms", 0, "detect CPU ms per frame (instead of measuring --model)")
	fs.Float64Var(&in.IngestMS, "ingest-ms", 3, "ingest CPU ms per frame")
	fs.Float64Var(&in.SinkMS, "sink-ms", 1, "sink CPU ms per frame")
	fs.Float64Var(&in.KafkaMS, "kafka-ms", 12, "Kafka broker CPU ms per frame (claim-check traffic)")
	fs.Float64Var(&in.StorageMS, "storage-ms", 9, "object storage CPU ms per frame")
	fs.IntVar(&in.CoresPerReplica, "cores-per-replica", 2, "cores (one session each) per detect replica")
	fs.Float64Var(&in.Utilization, "utilization", 0.7, "target CPU utilisation (headroom for bursts)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := validatePlan(in); err != nil || (*model == "") == (in.DetectMS <= 0) || *frames < 1 {
		if err != nil {
			fmt.Fprintln(stderr, "detctl plan:", err)
		} else {
			fmt.Fprintln(stderr, "detctl plan: give --model (to measure) or --detect-ms, not both; --frames ≥ 1")
		}
		return 2
	}
	if *model != "" {
		ms, err := measureDetect(ctx, *model, *format, *imgsz, *imagePath, *frames)
		if err != nil {
			fmt.Fprintln(stderr, "detctl plan:", err)
			return 1
		}
		in.DetectMS = ms
	}
	p := planFor(in)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(p); err != nil {
			return 1
		}
		return 0
	}
	w := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "load\t%d cameras × %g fps = %.0f frames/s\n", in.Cameras, in.FPS, p.FramesPerSecond)
	fmt.Fprintf(w, "detect\t%.1f CPU ms/frame → %.1f cores at %.0f %% → %d replicas × %d cores (STREAMDET_ENGINE_SESSIONS=%d, THREADS=1)\n",
		in.DetectMS, p.DetectCores, 100*in.Utilization, p.DetectReplicas, in.CoresPerReplica, p.Sessions)
	fmt.Fprintf(w, "frames topic\t%d partitions (room to double detect; KEDA maxReplicas ≤ partitions), lagThreshold %d\n", p.Partitions, p.LagThreshold)
	fmt.Fprintf(w, "ingest, sink\t%d and %d replicas\n", p.IngestReplicas, p.SinkReplicas)
	fmt.Fprintf(w, "Kafka + S3\t%.1f cores for the claim-check traffic\n", p.PlatformCores)
	fmt.Fprintf(w, "total\t%.1f cores\n", p.TotalCores)
	w.Flush()
	return 0
}

// measureDetect returns the detector's mean CPU milliseconds per frame (decode to postprocess)
// with one session of one thread: what one core of a detect replica does.
func measureDetect(ctx context.Context, model, format string, imgsz int, imagePath string, frames int) (float64, error) {
	f, err := engine.ParseFormat(format)
	if err != nil {
		return 0, err
	}
	data, err := os.ReadFile(model)
	if err != nil {
		return 0, err
	}
	img, err := planFrame(imagePath)
	if err != nil {
		return 0, err
	}
	eng, err := engine.New(data, engine.Config{Format: f, Sessions: 1, IntraOpThreads: 1, InputWidth: imgsz, InputHeight: imgsz})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", model, err)
	}
	defer eng.Close()
	if err := eng.Warm(ctx); err != nil {
		return 0, err
	}
	if _, err := eng.Detect(ctx, img); err != nil {
		return 0, fmt.Errorf("%s: %w", model, err)
	}
	cpu0, t0 := cpuTime(), time.Now()
	for i := 0; i < frames; i++ {
		if _, err := eng.Detect(ctx, img); err != nil {
			return 0, err
		}
	}
	cpu, wall := cpuTime()-cpu0, time.Since(t0)
	// CPU time counts the process's every thread (ONNX Runtime may keep a helper busy); never
	// less than the wall time of one thread.
	return float64(max(cpu, wall).Microseconds()) / 1000 / float64(frames), nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// planFrame is the image to measure on: the given file, or a 1920×1080 JPEG with structure (a
// gradient and blocks) so that decoding costs what a camera frame does.
func planFrame(path string) ([]byte, error) {
	if path != "" {
		return os.ReadFile(path)
	}
	m := image.NewRGBA(image.Rect(0, 0, 1920, 1080))
	for y := 0; y < 1080; y++ {
		for x := 0; x < 1920; x++ {
			m.Set(x, y, color.RGBA{uint8(x * 255 / 1920), uint8(y * 255 / 1080), uint8((x/64 + y/64) % 2 * 200), 255})
		}
	}
	var b bytes.Buffer
	err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 90})
	return b.Bytes(), err
}
