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
	"regexp"
	"strings"

	"github.com/streamdet/streamdet/pkg/drift"
	"github.com/streamdet/streamdet/services/detect/engine"
	"github.com/streamdet/streamdet/tools/eval"
)

var datasetCommands = map[string]command{
	"export": {"label frames with a teacher version's detections, in YOLO and COCO formats, for training a student elsewhere", runDatasetExport},
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// runDatasetExport writes DIR/images/*.jpg|png, DIR/labels/*.txt (YOLO: class cx cy w h,
// normalised), DIR/classes.txt, DIR/data.yaml (Ultralytics) and DIR/annotations.json (COCO, each
// annotation with the teacher's score) from the teacher's detections at or above --conf.
func runDatasetExport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dataset export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: detctl dataset export --model TEACHER --out DIR [flags] IMAGE|DIR|VIDEO...\n\n"+
			"Labels the frames with the teacher's detections (score ≥ --conf, classes in --classes) and writes them\n"+
			"as a YOLO dataset (images/, labels/, classes.txt, data.yaml) and COCO annotations (annotations.json).\n\nFlags:")
		fs.PrintDefaults()
	}
	model := fs.String("model", "", "teacher: ONNX file (FILE,format=F) or NAME@VERSION")
	outDir := fs.String("out", "", "output directory (created; must be empty if it exists)")
	conf := fs.Float64("conf", 0.5, "lowest teacher score kept as a label")
	classes := fs.String("classes", "", "comma-separated class names to keep (default: all the teacher knows)")
	names := fs.String("names", "", "class names file for a teacher without names")
	format := fs.String("format", "auto", "the teacher file's format when not given with ,format=")
	fps := fs.Float64("fps", 2, "frames per second sampled from videos")
	drifting := fs.Float64("drifting", 0, "pipeline:N samples only streams whose drift (PSI, any feature) is at least this, e.g. 0.25")
	driftModel := fs.String("drift-model", "", "the model whose drift --drifting reads (default: the teacher's NAME of NAME@VERSION)")
	paths, err := parse(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *model == "" || *outDir == "" || len(paths) == 0 || *conf <= 0 || *conf >= 1 || *fps <= 0 {
		fs.Usage()
		return 2
	}
	fail := func(err error) int { fmt.Fprintln(stderr, "detctl dataset export:", err); return 1 }
	f, err := engine.ParseFormat(*format)
	if err != nil {
		fmt.Fprintln(stderr, "detctl dataset export:", err)
		return 2
	}
	data, cfg, err := loadModel(ctx, *model, *names, engine.Config{Format: f, Conf: float32(*conf), Sessions: 1, IntraOpThreads: max(1, numCPU())})
	if err != nil {
		return fail(err)
	}
	teacher, err := engine.New(data, cfg)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", *model, err))
	}
	defer teacher.Close()
	// The exported classes: those asked for, in that order, or every class the teacher names.
	var keep []string
	if *classes != "" {
		for _, c := range strings.Split(*classes, ",") {
			if c = strings.TrimSpace(c); c != "" {
				keep = append(keep, c)
			}
		}
	} else {
		keep = teacher.Info().Names
	}
	if len(keep) == 0 {
		return fail(errors.New("the teacher names no classes: give --names or --classes"))
	}
	index := map[string]int{}
	for i, c := range keep {
		if strings.ContainsAny(c, "\n\r") {
			return fail(fmt.Errorf("class name %q", c))
		}
		index[c] = i
	}
	var streams map[string]bool
	if *drifting > 0 {
		name := *driftModel
		if name == "" {
			name, _, _ = strings.Cut(*model, "@")
			if !strings.Contains(*model, "@") {
				return fail(errors.New("--drifting with a teacher file: give --drift-model NAME"))
			}
		}
		if streams, err = driftingStreams(ctx, name, *drifting); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stderr, "detctl dataset export: %d streams of %s drift ≥ %g: %s\n", len(streams), name, *drifting, strings.Join(sortedKeys(streams), ", "))
	}
	frames, err := evalFramesOf(ctx, paths, *fps, streams)
	if err != nil {
		return fail(err)
	}
	if len(frames) == 0 {
		return fail(fmt.Errorf("no frames in %s", strings.Join(paths, ", ")))
	}
	if entries, err := os.ReadDir(*outDir); err == nil && len(entries) > 0 {
		return fail(fmt.Errorf("%s is not empty", *outDir))
	}
	for _, d := range []string{"images", "labels"} {
		if err := os.MkdirAll(filepath.Join(*outDir, d), 0o755); err != nil {
			return fail(err)
		}
	}
	coco := eval.Dataset{Images: []eval.Image{}, Annotations: []eval.Annotation{}}
	for i, c := range keep {
		coco.Categories = append(coco.Categories, eval.Category{ID: int64(i + 1), Name: c})
	}
	type scored struct {
		eval.Annotation
		Score float64 `json:"score"`
	}
	var anns []scored
	used := map[string]bool{}
	labels, skipped := 0, 0
	for _, fr := range frames {
		res, err := teacher.Detect(ctx, fr.data)
		if err != nil {
			fmt.Fprintf(stderr, "detctl dataset export: %s: %v (skipped)\n", fr.name, err)
			skipped++
			continue
		}
		name := datasetName(fr, used)
		if err := os.WriteFile(filepath.Join(*outDir, "images", name), fr.data, 0o644); err != nil {
			return fail(err)
		}
		img := int64(len(coco.Images) + 1)
		coco.Images = append(coco.Images, eval.Image{ID: img, FileName: name, Width: res.Width, Height: res.Height})
		var b strings.Builder
		for _, d := range res.Detections {
			k, ok := index[d.Label]
			if !ok || float64(d.Score) < *conf {
				continue
			}
			box := clampBox(d.Box, res.Width, res.Height)
			x, y, w, h := box[0], box[1], box[2]-box[0], box[3]-box[1]
			if w <= 0 || h <= 0 {
				continue
			}
			fmt.Fprintf(&b, "%d %.6f %.6f %.6f %.6f\n", k, (float64(x)+float64(w)/2)/float64(res.Width), (float64(y)+float64(h)/2)/float64(res.Height),
				float64(w)/float64(res.Width), float64(h)/float64(res.Height))
			xywh := eval.XYWH(box)
			anns = append(anns, scored{eval.Annotation{ID: int64(len(anns) + 1), ImageID: img, CategoryID: int64(k + 1), BBox: xywh, Area: xywh[2] * xywh[3]}, float64(d.Score)})
			labels++
		}
		if err := os.WriteFile(filepath.Join(*outDir, "labels", strings.TrimSuffix(name, filepath.Ext(name))+".txt"), []byte(b.String()), 0o644); err != nil {
			return fail(err)
		}
	}
	doc := map[string]any{"images": coco.Images, "annotations": anns, "categories": coco.Categories,
		"info": map[string]any{"description": "labels from a teacher model's detections (detctl dataset export)", "teacher": *model,
			"teacher_sha256": teacher.Info().SHA256, "min_score": *conf}}
	b, _ := json.MarshalIndent(doc, "", " ")
	var yaml strings.Builder
	fmt.Fprintf(&yaml, "# Ultralytics dataset: labels from %s (score >= %g)\npath: .\ntrain: images\nval: images\nnames:\n", yamlQuote(*model), *conf)
	for i, c := range keep {
		fmt.Fprintf(&yaml, "  %d: %s\n", i, yamlQuote(c))
	}
	for file, content := range map[string][]byte{"annotations.json": b, "classes.txt": []byte(strings.Join(keep, "\n") + "\n"), "data.yaml": []byte(yaml.String())} {
		if err := os.WriteFile(filepath.Join(*outDir, file), content, 0o644); err != nil {
			return fail(err)
		}
	}
	fmt.Fprintf(stdout, "exported %d frames, %d labels of %d classes to %s (YOLO: images/, labels/, data.yaml; COCO: annotations.json)", len(coco.Images), labels, len(keep), *outDir)
	if skipped > 0 {
		fmt.Fprintf(stdout, "; %d frames could not be decoded", skipped)
	}
	fmt.Fprintln(stdout)
	return 0
}

// datasetName is a frame's file name in images/: its base name made safe, numbered if taken.
func datasetName(fr frame, used map[string]bool) string {
	ext := strings.ToLower(filepath.Ext(fr.name))
	if ext != ".png" && ext != ".jpeg" {
		ext = ".jpg"
	}
	base := unsafeName.ReplaceAllString(strings.TrimSuffix(filepath.Base(fr.name), filepath.Ext(fr.name)), "_")
	if base == "" || base[0] == '.' {
		base = "frame" + base
	}
	name := base + ext
	for i := 2; used[name]; i++ {
		name = fmt.Sprintf("%s-%d%s", base, i, ext)
	}
	used[name] = true
	return name
}

func clampBox(b [4]float32, w, h int) [4]float32 {
	c := func(v float32, hi int) float32 { return min(max(v, 0), float32(hi)) }
	return [4]float32{c(b[0], w), c(b[1], h), c(b[2], w), c(b[3], h)}
}

func yamlQuote(s string) string {
	q, _ := json.Marshal(s) // a JSON string is a valid YAML double-quoted scalar
	return string(q)
}

// driftingStreams reads a model's latest drift values and returns the streams (not "*") whose
// PSI on some feature, for any version, is at least threshold.
func driftingStreams(ctx context.Context, model string, threshold float64) (map[string]bool, error) {
	c, err := connect(ctx, true)
	if err != nil {
		return nil, err
	}
	defer c.routes.Close()
	vs, err := c.routes.ReadDrift(ctx, model)
	if err != nil {
		return nil, fmt.Errorf("drift of %s: %w", model, err)
	}
	out := drifted(vs, threshold)
	if len(out) == 0 {
		return nil, fmt.Errorf("no stream of %s drifts by %g or more (detctl drift %s)", model, threshold, model)
	}
	return out, nil
}

// drifted are the streams (not "*") with a PSI of at least threshold.
func drifted(vs []drift.Value, threshold float64) map[string]bool {
	out := map[string]bool{}
	for _, v := range vs {
		if v.Stream != "*" && v.PSI >= threshold {
			out[v.Stream] = true
		}
	}
	return out
}
