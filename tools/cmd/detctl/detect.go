package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/services/detect/engine"
)

// detectOutput is one line of `detctl detect`.
type detectOutput struct {
	Image      string               `json:"image"`
	Width      int                  `json:"width"`
	Height     int                  `json:"height"`
	Detections []contract.Detection `json:"detections"`
	Timing     engine.Timing        `json:"timing_ms"`
}

func runDetect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("detect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: detctl detect --model PATH [flags] IMAGE...\n\nRuns the detector on each image and prints one JSON object per image.\n\nFlags:")
		fs.PrintDefaults()
	}
	model := fs.String("model", "", "ONNX model file (required)")
	format := fs.String("format", "auto", "model format: auto, yolox, yolov5, yolov8 or end2end")
	namesFile := fs.String("names", "", "class names file, one per line (default: the model's metadata)")
	conf := fs.Float64("conf", 0.25, "score threshold")
	iou := fs.Float64("iou", 0.45, "NMS IoU threshold")
	agnostic := fs.Bool("agnostic", false, "class-agnostic NMS")
	maxDet := fs.Int("max-det", 300, "most detections per image")
	threads := fs.Int("threads", 0, "intra-op threads (default: all cores, one session)")
	imgsz := fs.Int("imgsz", 0, "input size for models with a dynamic input shape")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *model == "" || fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	f, err := engine.ParseFormat(*format)
	if err != nil {
		fmt.Fprintln(stderr, "detctl detect:", err)
		return 2
	}
	cfg := engine.Config{
		Format: f, Conf: float32(*conf), IoU: float32(*iou), ClassAgnostic: *agnostic, MaxDetections: *maxDet,
		Sessions: 1, IntraOpThreads: *threads, InputWidth: *imgsz, InputHeight: *imgsz,
	}
	if cfg.IntraOpThreads == 0 {
		cfg.IntraOpThreads = max(1, numCPU())
	}
	if *namesFile != "" {
		b, err := os.ReadFile(*namesFile)
		if err != nil {
			fmt.Fprintln(stderr, "detctl detect:", err)
			return 2
		}
		cfg.Names = engine.ReadNames(b)
	}
	data, err := os.ReadFile(*model)
	if err != nil {
		fmt.Fprintln(stderr, "detctl detect:", err)
		return 1
	}
	eng, err := engine.New(data, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "detctl detect: %s: %v\n", *model, err)
		return 1
	}
	defer eng.Close()

	enc := json.NewEncoder(stdout)
	var failures []string
	for _, path := range fs.Args() {
		if ctx.Err() != nil {
			break
		}
		img, err := os.ReadFile(path)
		if err == nil {
			var res engine.Result
			if res, err = eng.Detect(ctx, img); err == nil {
				out := detectOutput{Image: path, Width: res.Width, Height: res.Height, Detections: res.Detections, Timing: res.Timing}
				if out.Detections == nil {
					out.Detections = []contract.Detection{}
				}
				if err := enc.Encode(out); err != nil {
					fmt.Fprintln(stderr, "detctl detect:", err)
					return 1
				}
				continue
			}
		}
		failures = append(failures, fmt.Sprintf("detctl detect: %s: %v", path, err))
	}
	for _, f := range failures {
		fmt.Fprintln(stderr, f)
	}
	if len(failures) > 0 || ctx.Err() != nil {
		return 1
	}
	return 0
}
