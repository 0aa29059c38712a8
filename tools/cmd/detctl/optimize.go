package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	_ "image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	xdraw "golang.org/x/image/draw"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/services/detect/engine"
	"github.com/streamdet/streamdet/tools/bench"
	"github.com/streamdet/streamdet/tools/eval"
)

// The quantization itself is ONNX Runtime's own tooling (its Python package), pinned in
// requirements.txt and run in a private virtual environment; detctl prepares the calibration
// tensors, evaluates the result against its parent and decides whether it is kept.
var (
	//go:embed optimize/optimize.py
	optimizeScript []byte
	//go:embed optimize/requirements.txt
	optimizeRequirements []byte
)

var optimizeMethods = map[string]bool{"int8-static": true, "int8-dynamic": true, "fp16": true, "graph": true}

// optimizeReport is report.json of a version made by detctl optimize.
type optimizeReport struct {
	Parent      string                `json:"parent"`
	Method      string                `json:"method"`
	Params      map[string]any        `json:"params"`
	Tools       map[string]string     `json:"tools"`
	Calibration *registry.Calibration `json:"calibration,omitempty"`
	Holdout     int                   `json:"holdout_frames"`
	Agreement   *eval.Agreement       `json:"agreement"`
	F1          float64               `json:"agreement_f1"`
	ParentP50ms float64               `json:"parent_latency_p50_ms"`
	ChildP50ms  float64               `json:"latency_p50_ms"`
	Speedup     float64               `json:"speedup"`
	ParentBytes int                   `json:"parent_size_bytes"`
	ChildBytes  int                   `json:"size_bytes"`
	Threads     int                   `json:"intra_op_threads"`
	// ToolPeakRSS is the optimisation tool's peak resident memory (calibration keeps
	// activations in memory: bounded by chunks, see optimize.py).
	ToolPeakRSS int64              `json:"tool_peak_rss_bytes"`
	Gates       map[string]float64 `json:"gates"`
	Failed      []string           `json:"failed_gates,omitempty"`
	Created     time.Time          `json:"created"`
}

func runOptimize(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("optimize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: detctl optimize --model FILE[,format=F]|NAME@VERSION --method M [flags] IMAGE|DIR|VIDEO...\n\n"+
			"Makes an optimised version with ONNX Runtime's tooling (int8-static: QDQ, per-channel weights, calibrated on\n"+
			"the frames; int8-dynamic; fp16; graph: offline graph optimisation), evaluates it against its parent on\n"+
			"held-out frames and keeps it only if it passes the gates: pushed to the registry as a new version with its\n"+
			"lineage and report (a registry parent, or --push NAME), or written to --out.\n\nFlags:")
		fs.PrintDefaults()
	}
	model := fs.String("model", "", "parent: ONNX file (FILE,format=F) or NAME@VERSION from the registry")
	method := fs.String("method", "int8-static", "int8-static, int8-dynamic, fp16 or graph")
	calibrate := fs.String("calibrate", "minmax", "int8-static calibration: minmax, entropy or percentile")
	perTensor := fs.Bool("per-tensor", false, "int8-static: one scale per weight tensor instead of per channel")
	quantFormat := fs.String("quant-format", "qdq", "int8-static: qdq (QuantizeLinear/DequantizeLinear pairs that ONNX Runtime fuses) or qoperator (QLinearConv, QLinearSigmoid, ... operators)")
	floatNodes := fs.String("float-nodes", "", "int8-static: node name prefixes kept in float (comma-separated), e.g. the layers quantization hurts most")
	opTypes := fs.String("op-types", "", "int8-static: operator types to quantize, comma-separated (default: every type ONNX Runtime can)")
	quantizeTail := fs.Bool("quantize-tail", false, "int8-static: also quantize the nodes after the last convolution (the output's decoding, kept in float by default)")
	calibN := fs.Int("calib-frames", 200, "frames to calibrate on")
	holdoutN := fs.Int("holdout", 60, "held-out frames to evaluate on (never calibrated on)")
	augment := fs.Bool("augment", false, "make the calibration and held-out frames from the images given by random crops, flips and scales (distinct draws for each set)")
	seed := fs.Uint64("seed", 1, "seed of --augment and of the calibration/hold-out split")
	minAgree := fs.Float64("min-agreement", 0.95, "gate: agreement F1 with the parent on the held-out frames")
	minSpeed := fs.Float64("min-speedup", 1.0, "gate: parent's median latency ÷ the new version's, measured interleaved")
	threads := fs.Int("threads", 1, "intra-op threads for the latency measurement (1: detect's default per session)")
	names := fs.String("names", "", "class names file for a parent without names")
	push := fs.String("push", "", "registry model name to push the result to (default: the parent's, when it came from the registry)")
	version := fs.String("version", "", "version to push as (default: PARENT-METHOD)")
	out := fs.String("out", "", "file to write the result to when not pushing (default: PARENT-METHOD.onnx beside the parent)")
	cache := fs.String("cache", envOr("STREAMDET_CACHE_DIR", userCache()), "where the private Python environment lives (made once per machine, shared by checkouts)")
	fps := fs.Float64("fps", 2, "frames per second sampled from videos")
	keep := fs.String("keep", "", "keep the work directory (calibration tensors, models) here instead of deleting it")
	paths, err := parse(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case *model == "" || len(paths) == 0 || !optimizeMethods[*method] || *calibN < 1 || *calibN > 10000 || *holdoutN < 1 || *holdoutN > 10000 ||
		*minAgree < 0 || *minAgree > 1 || *minSpeed < 0 || *threads < 1 || *fps <= 0:
		fs.Usage()
		return 2
	case *quantFormat != "qdq" && *quantFormat != "qoperator":
		fmt.Fprintf(stderr, "detctl optimize: --quant-format %q: want qdq or qoperator\n", *quantFormat)
		return 2
	case *calibrate != "minmax" && *calibrate != "entropy" && *calibrate != "percentile":
		fmt.Fprintf(stderr, "detctl optimize: --calibrate %q: want minmax, entropy or percentile\n", *calibrate)
		return 2
	case *version != "" && !contract.ValidID(*version), *push != "" && !contract.ValidID(*push):
		fmt.Fprintln(stderr, "detctl optimize: --push and --version must be identifiers ([A-Za-z0-9][A-Za-z0-9._:-]*)")
		return 2
	}
	fail := func(err error) int { fmt.Fprintln(stderr, "detctl optimize:", err); return 1 }

	parentData, cfg, err := loadModel(ctx, *model, *names, engine.Config{Format: engine.FormatAuto, Sessions: 1, IntraOpThreads: *threads})
	if err != nil {
		return fail(err)
	}
	regName, regVersion, fromRegistry := registryRef(*model)
	src, err := evalFrames(ctx, paths, *fps)
	if err != nil {
		return fail(err)
	}
	var calib, holdout []frame
	source := "frames: " + strings.Join(paths, ", ")
	if *augment {
		if calib, err = augmentFrames(src, *calibN, *seed); err == nil {
			holdout, err = augmentFrames(src, *holdoutN, *seed+1_000_003)
		}
		if err != nil {
			return fail(err)
		}
		source = fmt.Sprintf("augmented (crops, flips, scales; seed %d) from %d images: %s", *seed, len(src), strings.Join(paths, ", "))
	} else {
		if len(src) < 2 {
			return fail(errors.New("need at least 2 frames (some to calibrate on, some held out), or --augment"))
		}
		r := rand.New(rand.NewPCG(*seed, 0))
		r.Shuffle(len(src), func(i, j int) { src[i], src[j] = src[j], src[i] })
		nh := min(*holdoutN, max(1, len(src)/4))
		holdout, calib = src[:nh], src[nh:]
		if len(calib) > *calibN {
			calib = calib[:*calibN]
		}
	}

	parent, err := engine.New(parentData, cfg)
	if err != nil {
		return fail(fmt.Errorf("parent: %w", err))
	}
	defer parent.Close()
	tmp := *keep
	if tmp == "" {
		if tmp, err = os.MkdirTemp("", "detctl-optimize-"); err != nil {
			return fail(err)
		}
		defer os.RemoveAll(tmp)
	} else if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fail(err)
	}
	var calibration *registry.Calibration
	if *method == "int8-static" {
		if calibration, err = writeCalibration(ctx, parent, calib, filepath.Join(tmp, "calib")); err != nil {
			return fail(err)
		}
		calibration.Source = source
	}
	py, err := optimizeEnv(*cache, stderr)
	if err != nil {
		return fail(err)
	}
	in, outPath, script := filepath.Join(tmp, "parent.onnx"), filepath.Join(tmp, "child.onnx"), filepath.Join(tmp, "optimize.py")
	if err := os.WriteFile(in, parentData, 0o600); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(script, optimizeScript, 0o600); err != nil {
		return fail(err)
	}
	pyArgs := []string{script, "--method", *method, "--input", in, "--output", outPath}
	if *method == "int8-static" {
		pyArgs = append(pyArgs, "--calib", filepath.Join(tmp, "calib"), "--calibrate", *calibrate, "--quant-format", *quantFormat)
		if *perTensor {
			pyArgs = append(pyArgs, "--per-tensor")
		}
		if *floatNodes != "" {
			pyArgs = append(pyArgs, "--float-nodes", *floatNodes)
		}
		if *opTypes != "" {
			pyArgs = append(pyArgs, "--op-types", *opTypes)
		}
		if *quantizeTail {
			pyArgs = append(pyArgs, "--quantize-tail")
		}
	}
	fmt.Fprintf(stderr, "detctl optimize: %s of %s with ONNX Runtime's tooling (%d calibration frames)…\n", *method, *model, len(calib))
	cmd := exec.CommandContext(ctx, py, pyArgs...)
	var pyOut, pyErr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &pyOut, &pyErr
	if err := cmd.Run(); err != nil {
		return fail(fmt.Errorf("%s: %v\n%s", *method, err, tail(pyErr.String(), 2000)))
	}
	var peak int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		peak = ru.Maxrss * 1024 // kilobytes on Linux
	}
	var tool struct {
		Params map[string]any    `json:"params"`
		Tools  map[string]string `json:"tools"`
	}
	if err := json.Unmarshal(lastLine(pyOut.Bytes()), &tool); err != nil {
		return fail(fmt.Errorf("%s: unreadable result: %v", *method, err))
	}
	childData, err := os.ReadFile(outPath)
	if err != nil {
		return fail(err)
	}
	child, err := engine.New(childData, cfg)
	if err != nil {
		return fail(fmt.Errorf("the %s version does not load: %w", *method, err))
	}
	defer child.Close()

	rep, err := compareVersions(ctx, parent, child, holdout)
	if err != nil {
		return fail(err)
	}
	rep.Parent, rep.Method, rep.Params, rep.Tools, rep.Calibration = *model, *method, tool.Params, tool.Tools, calibration
	rep.ParentBytes, rep.ChildBytes, rep.Threads, rep.Created = len(parentData), len(childData), *threads, time.Now().UTC()
	rep.ToolPeakRSS = peak
	rep.Gates = map[string]float64{"min_agreement": *minAgree, "min_speedup": *minSpeed}
	if rep.F1 < *minAgree {
		rep.Failed = append(rep.Failed, fmt.Sprintf("agreement F1 %.3f < --min-agreement %.3f", rep.F1, *minAgree))
	}
	if rep.Speedup < *minSpeed {
		rep.Failed = append(rep.Failed, fmt.Sprintf("speed-up %.2f× < --min-speedup %.2f×", rep.Speedup, *minSpeed))
	}
	fmt.Fprintf(stdout, "%s of %s: agreement F1 %.3f (precision %.3f, recall %.3f, mean IoU %.3f) on %d held-out frames; p50 %.1f → %.1f ms (%.2f×, %d thread); %.1f → %.1f MB\n",
		*method, *model, rep.F1, rep.Agreement.All.Precision(), rep.Agreement.All.Recall(), rep.Agreement.MeanIoU, rep.Holdout,
		rep.ParentP50ms, rep.ChildP50ms, rep.Speedup, *threads, float64(rep.ParentBytes)/(1<<20), float64(rep.ChildBytes)/(1<<20))
	if len(rep.Failed) > 0 {
		fmt.Fprintf(stderr, "detctl optimize: kept nothing: %s\n", strings.Join(rep.Failed, "; "))
		return 1
	}
	report, _ := json.MarshalIndent(rep, "", "  ")
	if *push != "" {
		regName, fromRegistry = *push, true
	}
	if fromRegistry {
		v := *version
		if v == "" {
			v = regVersion + "-" + *method
			if regVersion == "" {
				v = "1-" + *method
			}
		}
		lin := &registry.Lineage{Parent: regVersion, Method: *method, Params: tool.Params, Calibration: calibration, Tools: tool.Tools}
		if regVersion == "" {
			lin.Parent = "file:" + filepath.Base(*model)
		}
		return withClients(ctx, "optimize", true, stderr, func(c *clients) error {
			m, err := c.reg.PushWithReport(ctx, registry.Manifest{Name: regName, Version: v, Format: string(child.Info().Format),
				InputWidth: child.Info().InputWidth, InputHeight: child.Info().InputHeight, Names: child.Info().Names,
				Source: fmt.Sprintf("%s of %s", *method, *model), Lineage: lin}, childData, report)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "pushed %s/%s (parent %s, %s), sha256 %s\n", m.Name, m.Version, lin.Parent, *method, m.SHA256)
			return nil
		})
	}
	dst := *out
	if dst == "" {
		base, _, _ := strings.Cut(*model, ",format=")
		dst = strings.TrimSuffix(base, ".onnx") + "-" + *method + ".onnx"
	}
	if err := os.WriteFile(dst, childData, 0o644); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(strings.TrimSuffix(dst, ".onnx")+".report.json", append(report, '\n'), 0o644); err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "wrote %s and its report\n", dst)
	return 0
}

// compareVersions runs parent and child on the held-out frames, interleaved frame by frame (two
// passes) so both see the same machine, and compares their detections.
func compareVersions(ctx context.Context, parent, child *engine.Engine, holdout []frame) (optimizeReport, error) {
	var pl, cl []time.Duration
	a := eval.NewAgreement(0.5)
	for pass := 0; pass < 2; pass++ {
		for _, fr := range holdout {
			t0 := time.Now()
			pr, err := parent.Detect(ctx, fr.data)
			t1 := time.Now()
			if err != nil {
				return optimizeReport{}, fmt.Errorf("parent on %s: %w", fr.name, err)
			}
			cr, err := child.Detect(ctx, fr.data)
			t2 := time.Now()
			if err != nil {
				return optimizeReport{}, fmt.Errorf("new version on %s: %w", fr.name, err)
			}
			pl, cl = append(pl, t1.Sub(t0)), append(cl, t2.Sub(t1))
			if pass == 0 {
				a.Add(pr.Detections, cr.Detections)
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	r := optimizeReport{Holdout: len(holdout), Agreement: a, F1: a.All.F1(),
		ParentP50ms: ms(bench.Percentile(pl, 50)), ChildP50ms: ms(bench.Percentile(cl, 50))}
	if r.ChildP50ms > 0 {
		r.Speedup = r.ParentP50ms / r.ChildP50ms
	}
	return r, nil
}

// writeCalibration writes the engine's input tensors for the frames (what the deployed engine
// will feed the model) as little-endian float32 files with meta.json, for optimize.py.
func writeCalibration(ctx context.Context, e *engine.Engine, frames []frame, dir string) (*registry.Calibration, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var shape []int64
	var sums []string
	n := 0
	for _, fr := range frames {
		in, sh, err := e.Input(ctx, fr.data)
		if err != nil {
			return nil, fmt.Errorf("calibration frame %s: %w", fr.name, err)
		}
		shape = sh
		buf := make([]byte, 4*len(in))
		for i, v := range in {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%06d.f32", n)), buf, 0o600); err != nil {
			return nil, err
		}
		s := sha256.Sum256(fr.data)
		sums = append(sums, hex.EncodeToString(s[:]))
		n++
	}
	if n == 0 {
		return nil, errors.New("no calibration frames")
	}
	meta, _ := json.Marshal(map[string]any{"input": e.Info().InputName, "shape": shape, "count": n})
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), meta, 0o600); err != nil {
		return nil, err
	}
	sort.Strings(sums)
	d := sha256.Sum256([]byte(strings.Join(sums, "\n")))
	return &registry.Calibration{Count: n, Digest: hex.EncodeToString(d[:])}, nil
}

// optimizeEnv returns the Python of the private environment for optimize.py, creating it (a
// venv with the pinned requirements) on first use. The environment is named by the pins' digest
// and made under a temporary name, then renamed into place, so concurrent first uses (two
// checkouts' tests sharing the machine's cache) never see or break a half-made one: the loser of
// the rename discards its copy and uses the winner's. A venv works renamed when, as here, it is
// run as bin/python (its prefix is found from pyvenv.cfg beside the link).
func optimizeEnv(cache string, log io.Writer) (string, error) {
	sum := sha256.Sum256(optimizeRequirements)
	dir, err := filepath.Abs(filepath.Join(cache, "optimize-"+hex.EncodeToString(sum[:6])))
	if err != nil {
		return "", err
	}
	py := filepath.Join(dir, "bin", "python")
	if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
		return py, nil
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		return "", fmt.Errorf("detctl optimize needs python3 (3.9+) to run ONNX Runtime's quantization tooling: %w", err)
	}
	fmt.Fprintf(log, "detctl optimize: creating the Python environment %s (pinned onnxruntime, onnx; once)\n", dir)
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("creating the Python environment: %w", err)
	}
	tmp, err := os.MkdirTemp(cache, filepath.Base(dir)+".tmp-")
	if err != nil {
		return "", fmt.Errorf("creating the Python environment: %w", err)
	}
	defer os.RemoveAll(tmp) // gone once renamed; removed when anything failed
	req := filepath.Join(tmp, "requirements.txt")
	steps := [][]string{{python, "-m", "venv", tmp}, {filepath.Join(tmp, "bin", "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", req}}
	for i, s := range steps {
		if i == 1 {
			if err := os.WriteFile(req, optimizeRequirements, 0o644); err != nil {
				return "", err
			}
		}
		if b, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("%s: %v\n%s", strings.Join(s, " "), err, tail(string(b), 2000))
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "ready"), nil, 0o644); err != nil {
		return "", err
	}
	err = os.Rename(tmp, dir)
	if err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "ready")); serr == nil {
			return py, nil // made meanwhile by another detctl
		}
		// A half-made environment of an older detctl, which made it in place: never one of
		// these, which all hold their ready file when they appear.
		if err = os.RemoveAll(dir); err == nil {
			err = os.Rename(tmp, dir)
		}
	}
	if err != nil {
		return "", fmt.Errorf("moving the Python environment into place: %w", err)
	}
	return py, nil
}

// augmentFrames makes n JPEG frames from the sources: each a random crop (60–100 % of each
// side), mirrored half the time, scaled by 0.5–1.5, drawn from a generator seeded with seed.
func augmentFrames(src []frame, n int, seed uint64) ([]frame, error) {
	var imgs []image.Image
	for _, f := range src {
		m, _, err := image.Decode(bytes.NewReader(f.data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		imgs = append(imgs, m)
	}
	if len(imgs) == 0 {
		return nil, errors.New("no images to augment")
	}
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([]frame, 0, n)
	for i := 0; i < n; i++ {
		m := imgs[r.IntN(len(imgs))]
		b := m.Bounds()
		cw, ch := int(float64(b.Dx())*(0.6+0.4*r.Float64())), int(float64(b.Dy())*(0.6+0.4*r.Float64()))
		x0, y0 := b.Min.X+r.IntN(b.Dx()-cw+1), b.Min.Y+r.IntN(b.Dy()-ch+1)
		s := 0.5 + r.Float64()
		dw, dh := max(16, int(float64(cw)*s)), max(16, int(float64(ch)*s))
		dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
		xdraw.ApproxBiLinear.Scale(dst, dst.Bounds(), m, image.Rect(x0, y0, x0+cw, y0+ch), draw.Src, nil)
		if r.IntN(2) == 1 {
			for y := 0; y < dh; y++ {
				row := dst.Pix[y*dst.Stride : y*dst.Stride+4*dw]
				for a, z := 0, dw-1; a < z; a, z = a+1, z-1 {
					for k := 0; k < 4; k++ {
						row[4*a+k], row[4*z+k] = row[4*z+k], row[4*a+k]
					}
				}
			}
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 90}); err != nil {
			return nil, err
		}
		out = append(out, frame{name: fmt.Sprintf("augmented-%d-%d", seed, i), data: buf.Bytes()})
	}
	return out, nil
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
