package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/services/detect/engine"
	"github.com/streamdet/streamdet/tools/bench"
	"github.com/streamdet/streamdet/tools/eval"
)

// evalVersion is one model version's row of `detctl eval`.
type evalVersion struct {
	Model      string          `json:"model"`
	SizeBytes  int             `json:"size_bytes"`
	SHA256     string          `json:"sha256"`
	Threads    int             `json:"intra_op_threads"`
	Frames     int             `json:"frames"`
	Failed     int             `json:"failed"`
	P50ms      float64         `json:"latency_p50_ms"`
	P99ms      float64         `json:"latency_p99_ms"`
	FPS        float64         `json:"fps"`
	PeakRSSMiB float64         `json:"peak_rss_mib,omitempty"`
	Agreement  *eval.Agreement `json:"agreement,omitempty"` // against the first version
	COCO       *eval.Stats     `json:"coco,omitempty"`      // against --gt
	Unmapped   int             `json:"unmapped_detections,omitempty"`
	detections map[string][]contract.Detection
}

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: detctl eval --model A [--model B ...] [flags] IMAGE|DIR|VIDEO...\n\n"+
			"Runs each model version over the frames: latency, throughput, size, peak memory; agreement of every\n"+
			"version with the first (boxes matched at IoU ≥ --match-iou, same class); COCO mAP with --gt.\n"+
			"A model is an ONNX file or NAME@VERSION from the registry.\n\nFlags:")
		fs.PrintDefaults()
	}
	var models multiFlag
	fs.Var(&models, "model", "ONNX file (FILE,format=yolox to set its format) or NAME@VERSION (repeat; the first is the baseline)")
	gtPath := fs.String("gt", "", "COCO ground truth (instances JSON): images matched by file name, classes by name")
	format := fs.String("format", "auto", "model format of files: auto, yolox, yolov5, yolov8 or end2end")
	namesFile := fs.String("names", "", "class names file for models without names in their metadata")
	conf := fs.Float64("conf", 0.25, "score threshold (0.001 for a COCO-style mAP)")
	threads := fs.Int("threads", 0, "intra-op threads (default: all cores, one session)")
	imgsz := fs.Int("imgsz", 0, "input size for models with a dynamic input shape")
	matchIoU := fs.Float64("match-iou", 0.5, "IoU at which two versions' boxes of the same class agree")
	fps := fs.Float64("fps", 2, "frames per second sampled from videos")
	jsonOut := fs.String("json", "", "write the report as JSON to this file (- for stdout)")
	save := fs.Bool("save", false, "store each registry version's row as its report.json in the registry (versions that have none)")
	paths, err := parse(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(models) == 0 || len(paths) == 0 || *conf <= 0 || *conf >= 1 || *matchIoU <= 0 || *matchIoU > 1 || *fps <= 0 {
		fs.Usage()
		return 2
	}
	fail := func(err error) int { fmt.Fprintln(stderr, "detctl eval:", err); return 1 }
	f, err := engine.ParseFormat(*format)
	if err != nil {
		fmt.Fprintln(stderr, "detctl eval:", err)
		return 2
	}
	frames, err := evalFrames(ctx, paths, *fps)
	if err != nil {
		return fail(err)
	}
	if len(frames) == 0 {
		return fail(fmt.Errorf("no frames in %s", strings.Join(paths, ", ")))
	}
	var gt *eval.Dataset
	if *gtPath != "" {
		b, err := os.ReadFile(*gtPath)
		if err != nil {
			return fail(err)
		}
		d, err := eval.ParseDataset(b)
		if err != nil {
			return fail(err)
		}
		gt = &d
	}
	var names []string
	if *namesFile != "" {
		b, err := os.ReadFile(*namesFile)
		if err != nil {
			return fail(err)
		}
		names = engine.ReadNames(b)
	}
	base := engine.Config{Format: f, Conf: float32(*conf), Sessions: 1, IntraOpThreads: *threads, InputWidth: *imgsz, InputHeight: *imgsz, Names: names}
	if base.IntraOpThreads == 0 {
		base.IntraOpThreads = max(1, numCPU())
	}
	var rows []*evalVersion
	for _, ref := range models {
		row, err := evalModel(ctx, ref, base, frames)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", ref, err))
		}
		if len(rows) > 0 {
			a := eval.NewAgreement(*matchIoU)
			for _, fr := range frames {
				a.Add(rows[0].detections[fr.name], row.detections[fr.name])
			}
			row.Agreement = a
		}
		if gt != nil {
			dets, unmapped, err := cocoDetections(*gt, row.detections)
			if err == nil {
				var s eval.Stats
				if s, err = eval.Evaluate(*gt, dets); err == nil {
					row.COCO, row.Unmapped = &s, unmapped
				}
			}
			if err != nil {
				return fail(fmt.Errorf("%s: %w", ref, err))
			}
		}
		rows = append(rows, row)
	}
	printEval(stdout, rows)
	if *save {
		if err := saveReports(ctx, rows, len(frames), *conf, stdout); err != nil {
			return fail(err)
		}
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"frames": len(frames), "conf": *conf, "versions": rows}, "", "  ")
		b = append(b, '\n')
		if *jsonOut == "-" {
			stdout.Write(b)
		} else if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return fail(err)
		}
	}
	return 0
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// evalFrames reads images and folders, samples videos at fps, and samples the pipeline's own
// stored frames for "pipeline:N".
func evalFrames(ctx context.Context, paths []string, fps float64) ([]frame, error) {
	return evalFramesOf(ctx, paths, fps, nil)
}

// evalFramesOf is evalFrames with the pipeline's frames taken from streams only (nil: all).
func evalFramesOf(ctx context.Context, paths []string, fps float64, streams map[string]bool) ([]frame, error) {
	var out []frame
	for _, p := range paths {
		if strings.HasPrefix(p, pipelinePrefix) {
			fr, err := pipelineSource(ctx, p, streams)
			if err != nil {
				return nil, err
			}
			out = append(out, fr...)
			continue
		}
		if !isVideo(p) {
			fr, err := loadFrames([]string{p})
			if err != nil {
				return nil, err
			}
			out = append(out, fr...)
			continue
		}
		i := 0
		err := videoFrames(ctx, p, fps, func(f frame) error {
			f.name = fmt.Sprintf("%s#%d", p, i)
			i++
			out = append(out, f)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// evalModel loads one version (a file, or NAME@VERSION from the registry), runs it over the
// frames one at a time after a warm-up, and measures it.
func evalModel(ctx context.Context, ref string, cfg engine.Config, frames []frame) (*evalVersion, error) {
	data, cfg, err := loadModelRef(ctx, ref, cfg)
	if err != nil {
		return nil, err
	}
	resetPeakRSS()
	eng, err := engine.New(data, cfg)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	row := &evalVersion{Model: ref, SizeBytes: len(data), SHA256: eng.Info().SHA256, Threads: cfg.IntraOpThreads, detections: map[string][]contract.Detection{}}
	if _, err := eng.Detect(ctx, frames[0].data); err != nil { // warm-up
		return nil, fmt.Errorf("%s: %w", frames[0].name, err)
	}
	var lat []time.Duration
	start := time.Now()
	for _, fr := range frames {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		t := time.Now()
		res, err := eng.Detect(ctx, fr.data)
		if err != nil {
			row.Failed++
			continue
		}
		lat = append(lat, time.Since(t))
		row.detections[fr.name] = res.Detections
	}
	wall := time.Since(start)
	row.Frames = len(lat)
	if row.Frames == 0 {
		return nil, errors.New("no frame could be decoded")
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	row.P50ms, row.P99ms = ms(bench.Percentile(lat, 50)), ms(bench.Percentile(lat, 99))
	row.FPS = float64(row.Frames) / wall.Seconds()
	row.PeakRSSMiB = peakRSSMiB()
	return row, nil
}

// loadModel reads the class names file (if any) into cfg, then the model (loadModelRef); errors
// name the model.
func loadModel(ctx context.Context, ref, namesFile string, cfg engine.Config) ([]byte, engine.Config, error) {
	if namesFile != "" {
		b, err := os.ReadFile(namesFile)
		if err != nil {
			return nil, cfg, err
		}
		cfg.Names = engine.ReadNames(b)
	}
	data, cfg, err := loadModelRef(ctx, ref, cfg)
	if err != nil {
		return nil, cfg, fmt.Errorf("%s: %w", ref, err)
	}
	return data, cfg, nil
}

// registryRef splits NAME@VERSION: a reference that is not an existing file, has no
// ",format=" and has an @.
func registryRef(ref string) (name, version string, ok bool) {
	if _, err := os.Stat(ref); err == nil || strings.Contains(ref, ",format=") {
		return "", "", false
	}
	return strings.Cut(ref, "@")
}

// loadModelRef reads a model file, or fetches NAME@VERSION from the registry (its format, input
// size and names then come from the manifest).
func loadModelRef(ctx context.Context, ref string, cfg engine.Config) ([]byte, engine.Config, error) {
	if path, opt, ok := strings.Cut(ref, ",format="); ok {
		f, err := engine.ParseFormat(opt)
		if err != nil {
			return nil, cfg, err
		}
		cfg.Format = f
		b, err := os.ReadFile(path)
		return b, cfg, err
	}
	name, version, ok := registryRef(ref)
	if !ok {
		b, err := os.ReadFile(ref)
		return b, cfg, err
	}
	if err := contract.CheckIDs("model name", name, "model version", version); err != nil {
		return nil, cfg, err
	}
	c, err := connect(ctx, false)
	if err != nil {
		return nil, cfg, err
	}
	defer c.close()
	data, man, err := c.reg.Fetch(ctx, name, version)
	if err != nil {
		return nil, cfg, err
	}
	if cfg.Format, err = engine.ParseFormat(man.Format); err != nil {
		return nil, cfg, err
	}
	if len(man.Names) > 0 {
		cfg.Names = man.Names
	}
	if man.InputWidth > 0 && man.InputHeight > 0 {
		cfg.InputWidth, cfg.InputHeight = man.InputWidth, man.InputHeight
	}
	return data, cfg, nil
}

// cocoDetections maps a version's detections onto the ground truth: frames to images by file
// name, labels to categories by name. Detections of labels the ground truth has no category for
// are counted, not evaluated; a frame the ground truth has no image for is an error.
func cocoDetections(gt eval.Dataset, byFrame map[string][]contract.Detection) ([]eval.Detection, int, error) {
	images, cats := map[string]int64{}, map[string]int64{}
	for _, im := range gt.Images {
		images[filepath.Base(im.FileName)] = im.ID
	}
	for _, c := range gt.Categories {
		cats[c.Name] = c.ID
	}
	var out []eval.Detection
	unmapped := 0
	for name, dets := range byFrame {
		img, ok := images[filepath.Base(name)]
		if !ok {
			return nil, 0, fmt.Errorf("frame %s: no image of that file name in the ground truth", name)
		}
		for _, d := range dets {
			cat, ok := cats[d.Label]
			if !ok {
				unmapped++
				continue
			}
			out = append(out, eval.Detection{ImageID: img, CategoryID: cat, BBox: eval.XYWH(d.Box), Score: float64(d.Score)})
		}
	}
	return out, unmapped, nil
}

func printEval(w io.Writer, rows []*evalVersion) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "model\tMB\tthreads\tframes\tp50 ms\tp99 ms\tfps\tpeak RSS MiB\tprecision\trecall\tF1\tmean IoU\tmAP\tmAP50\t\n")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%.1f\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.0f\t", r.Model, float64(r.SizeBytes)/(1<<20), r.Threads, r.Frames, r.P50ms, r.P99ms, r.FPS, r.PeakRSSMiB)
		if a := r.Agreement; a != nil {
			fmt.Fprintf(tw, "%.3f\t%.3f\t%.3f\t%.3f\t", a.All.Precision(), a.All.Recall(), a.All.F1(), a.MeanIoU)
		} else {
			fmt.Fprint(tw, "baseline\t\t\t\t")
		}
		if c := r.COCO; c != nil {
			fmt.Fprintf(tw, "%.3f\t%.3f\t\n", c.MAP, c.MAP50)
		} else {
			fmt.Fprint(tw, "\t\t\n")
		}
	}
	tw.Flush()
}

// resetPeakRSS starts a new peak-RSS measurement (Linux: /proc/self/clear_refs, 5).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSSMiB is the process's peak resident memory since resetPeakRSS (VmHWM), 0 if unknown.
func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}

// saveReports stores the rows of registry versions as their report.json (never overwriting one).
func saveReports(ctx context.Context, rows []*evalVersion, frames int, conf float64, stdout io.Writer) error {
	var c *clients
	for _, r := range rows {
		name, version, ok := registryRef(r.Model)
		if !ok {
			continue
		}
		if c == nil {
			var err error
			if c, err = connect(ctx, false); err != nil {
				return err
			}
			defer c.close()
		}
		b, _ := json.MarshalIndent(map[string]any{"eval": r, "frames": frames, "conf": conf, "created": time.Now().UTC()}, "", "  ")
		switch err := c.reg.AddReport(ctx, name, version, b); {
		case errors.Is(err, registry.ErrExists):
			fmt.Fprintf(stdout, "%s/%s has a report already: kept\n", name, version)
		case err != nil:
			return err
		default:
			fmt.Fprintf(stdout, "saved the report of %s/%s\n", name, version)
		}
	}
	return nil
}
