package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/services/detect/imaging"
)

// Config is what a user sets for an engine. The zero value of every field takes the documented
// default; Validate names the field and the limit it breaks.
type Config struct {
	// Format is the detector family. Default auto: read it from the model's metadata.
	Format Format
	// Names are the class names, index = class id. Default: the model's metadata, else none
	// (labels are then empty and only class ids are reported).
	Names []string
	// InputWidth and InputHeight are used when the model's input size is dynamic. Default: the
	// metadata's imgsz, else 640×640.
	InputWidth, InputHeight int
	// Conf is the score threshold, in (0, 1). Default 0.25.
	Conf float32
	// IoU is the NMS overlap threshold, in (0, 1]. Default 0.45.
	IoU float32
	// ClassAgnostic makes NMS suppress across classes. Default false (class-aware).
	ClassAgnostic bool
	// MaxDetections caps the detections per frame. Default 300.
	MaxDetections int
	// Sessions is the number of ONNX Runtime sessions, i.e. frames in inference at once.
	// Default max(1, GOMAXPROCS / IntraOpThreads).
	Sessions int
	// IntraOpThreads is each session's intra-op thread count. Default 1.
	IntraOpThreads int
	// Spinning lets ONNX Runtime's threads spin while idle. Default false.
	Spinning bool
	// MaxBatch is the most frames DetectBatch puts in one inference when the model's batch
	// dimension is dynamic. Default 8.
	MaxBatch int
	// FullDecode turns off DCT-domain downscaling of large JPEGs. Default false: a JPEG at least
	// twice the model input's size is decoded at the smallest libjpeg-turbo scale that still
	// covers the letterboxed size, which is several times faster. The DCT filter averages where
	// a full-size bilinear resize aliases, so scores of borderline objects can move (see
	// docs/benchmarks.md); set FullDecode to reproduce an OpenCV full-size pipeline exactly.
	FullDecode bool
	// Provider is the execution provider and its settings. Default: the CPU.
	Provider ProviderConfig
	// Limits bound the frames accepted. Default imaging.DefaultLimits.
	Limits imaging.Limits
	// LibraryPath is the ONNX Runtime shared library. Default DefaultLibraryPath().
	LibraryPath string
}

func (c Config) withDefaults() Config {
	if c.Format == "" {
		c.Format = FormatAuto
	}
	if c.Conf == 0 {
		c.Conf = 0.25
	}
	if c.IoU == 0 {
		c.IoU = 0.45
	}
	if c.MaxDetections == 0 {
		c.MaxDetections = 300
	}
	if c.IntraOpThreads == 0 {
		c.IntraOpThreads = 1
	}
	if c.Sessions == 0 {
		c.Sessions = max(1, runtime.GOMAXPROCS(0)/c.IntraOpThreads)
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 8
	}
	if c.LibraryPath == "" {
		c.LibraryPath = DefaultLibraryPath()
	}
	c.Provider = c.Provider.withDefaults()
	return c
}

// Validate checks every field against its limits.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if _, err := ParseFormat(string(c.Format)); err != nil {
		errs = append(errs, err)
	}
	if !(c.Conf > 0 && c.Conf < 1) {
		errs = append(errs, fmt.Errorf("conf %v: must be in (0, 1)", c.Conf))
	}
	if !(c.IoU > 0 && c.IoU <= 1) {
		errs = append(errs, fmt.Errorf("iou %v: must be in (0, 1]", c.IoU))
	}
	if c.MaxDetections < 1 || c.MaxDetections > 10000 {
		errs = append(errs, fmt.Errorf("max detections %d: must be in [1, 10000]", c.MaxDetections))
	}
	if c.Sessions < 1 || c.Sessions > 64 {
		errs = append(errs, fmt.Errorf("sessions %d: must be in [1, 64]", c.Sessions))
	}
	if c.IntraOpThreads < 1 || c.IntraOpThreads > 256 {
		errs = append(errs, fmt.Errorf("intra-op threads %d: must be in [1, 256]", c.IntraOpThreads))
	}
	if c.MaxBatch < 1 || c.MaxBatch > 256 {
		errs = append(errs, fmt.Errorf("max batch %d: must be in [1, 256]", c.MaxBatch))
	}
	if c.InputWidth < 0 || c.InputHeight < 0 || c.InputWidth%32 != 0 || c.InputHeight%32 != 0 {
		errs = append(errs, fmt.Errorf("input size %d×%d: must be positive multiples of 32", c.InputWidth, c.InputHeight))
	}
	errs = append(errs, c.Provider.Validate())
	return errors.Join(errs...)
}

// Info describes the loaded model.
type Info struct {
	Format       Format
	InputWidth   int
	InputHeight  int
	Names        []string
	SHA256       string // of the model bytes
	DynamicBatch bool
	InputName    string
	OutputName   string
	OutputShape  []int64 // as declared; -1 for dynamic dimensions
	// Provider is the execution provider the sessions run on; Fallback, when not empty, says
	// why that is the CPU rather than the provider asked for (Config.Provider.FallbackCPU).
	Provider Provider
	Fallback string
}

// Timing is where one frame's time went, in milliseconds. For a frame of a batch, Infer is the
// batch's inference time divided by the batch size.
type Timing struct {
	DecodeMS      float64 `json:"decode"`
	PreprocessMS  float64 `json:"preprocess"`
	InferMS       float64 `json:"infer"`
	PostprocessMS float64 `json:"postprocess"`
	TotalMS       float64 `json:"total"`
}

// Result is one frame's detections.
type Result struct {
	Width, Height int // of the original frame
	Format        imaging.Format
	// Brightness is the decoded frame's mean luma, 0–255 (imaging.RGB.Brightness).
	Brightness float64
	Detections []contract.Detection
	Timing     Timing
}

// Engine runs one model. It is safe for concurrent use; Close it to free the sessions.
type Engine struct {
	cfg    Config
	info   Info
	decode decoder
	fam    family
	pool   chan *worker
	all    []*worker
	mu     sync.RWMutex // guards closed against Close racing with Detect
	closed bool
}

// worker is one session with everything a frame needs, reused from frame to frame.
type worker struct {
	sess   *ort.DynamicAdvancedSession
	input  map[int]*ort.Tensor[float32] // by batch size
	output *ort.Tensor[float32]         // preallocated when the output shape is static
	dec    imaging.Decoder
	pre    preprocessor
	cands  []candidate
}

// New loads an ONNX model from its bytes and creates the session pool.
func New(model []byte, cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("engine config: %w", err)
	}
	cfg = cfg.withDefaults()
	if len(model) == 0 {
		return nil, fmt.Errorf("%w: empty model", ErrModel)
	}
	if err := initRuntime(cfg.LibraryPath); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(model)
	info, dec, err := inspect(model, cfg)
	if err != nil {
		return nil, err
	}
	info.SHA256 = hex.EncodeToString(sum[:])
	e := &Engine{cfg: cfg, info: info, decode: dec, fam: info.Format.family(), pool: make(chan *worker, cfg.Sessions)}
	e.info.Provider = cfg.Provider.Name
	err = e.startSessions(model, cfg)
	if err != nil && cfg.Provider.Name != ProviderCPU && cfg.Provider.FallbackCPU {
		// Asked for: run on the CPU, and say so (the caller logs Info.Fallback).
		cpu := cfg
		cpu.Provider.Name = ProviderCPU
		e.info.Provider, e.info.Fallback = ProviderCPU, err.Error()
		err = e.startSessions(model, cpu)
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

// startSessions creates cfg.Sessions sessions with cfg's options; on an error it closes those
// it created and leaves the pool empty.
func (e *Engine) startSessions(model []byte, cfg Config) error {
	opts, err := sessionOptions(cfg)
	if err != nil {
		return err
	}
	defer opts.Destroy()
	for i := 0; i < cfg.Sessions; i++ {
		w, err := e.newWorker(model, opts)
		if err != nil {
			for _, w := range e.all {
				<-e.pool
				w.close()
			}
			e.all = nil
			if cfg.Provider.Name != ProviderCPU {
				return fmt.Errorf("%w: %s: %w", ErrProvider, cfg.Provider.Name, err) // and still ErrModel when it is one
			}
			return err
		}
		e.all = append(e.all, w)
		e.pool <- w
	}
	return nil
}

func sessionOptions(cfg Config) (*ort.SessionOptions, error) {
	o, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("engine: session options: %w", err)
	}
	spin := "0"
	if cfg.Spinning {
		spin = "1"
	}
	for _, step := range []func() error{
		func() error { return o.SetIntraOpNumThreads(cfg.IntraOpThreads) },
		func() error { return o.SetInterOpNumThreads(1) },
		func() error { return o.AddSessionConfigEntry("session.intra_op.allow_spinning", spin) },
		func() error { return o.AddSessionConfigEntry("session.inter_op.allow_spinning", spin) },
		func() error { return appendProvider(o, cfg.Provider, cfg.LibraryPath) },
	} {
		if err := step(); err != nil {
			o.Destroy()
			if errors.Is(err, ErrProvider) {
				return nil, err
			}
			return nil, fmt.Errorf("engine: session options: %w", err)
		}
	}
	return o, nil
}

func (e *Engine) newWorker(model []byte, opts *ort.SessionOptions) (*worker, error) {
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{e.info.InputName}, []string{e.info.OutputName}, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: create session: %v", ErrModel, err)
	}
	w := &worker{sess: s, input: map[int]*ort.Tensor[float32]{}, dec: imaging.Decoder{Limits: e.cfg.Limits}}
	w.pre.bands = max(1, runtime.GOMAXPROCS(0)/max(1, e.cfg.Sessions))
	if _, err := w.inputFor(1, e.info); err != nil {
		w.close()
		return nil, err
	}
	if shape := e.staticOutput(1); shape != nil {
		if w.output, err = ort.NewEmptyTensor[float32](shape); err != nil {
			w.close()
			return nil, fmt.Errorf("engine: output tensor: %w", err)
		}
	}
	return w, nil
}

// staticOutput is the output shape for a batch of n, or nil when a dimension is dynamic.
func (e *Engine) staticOutput(n int) ort.Shape {
	shape := make(ort.Shape, len(e.info.OutputShape))
	for i, d := range e.info.OutputShape {
		if i == 0 && e.info.DynamicBatch {
			d = int64(n)
		}
		if d <= 0 {
			return nil
		}
		shape[i] = d
	}
	return shape
}

func (w *worker) inputFor(n int, info Info) (*ort.Tensor[float32], error) {
	if t, ok := w.input[n]; ok {
		return t, nil
	}
	t, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), 3, int64(info.InputHeight), int64(info.InputWidth)))
	if err != nil {
		return nil, fmt.Errorf("engine: input tensor: %w", err)
	}
	w.input[n] = t
	return t, nil
}

func (w *worker) close() {
	for _, t := range w.input {
		t.Destroy()
	}
	if w.output != nil {
		w.output.Destroy()
	}
	if w.sess != nil {
		w.sess.Destroy()
	}
	w.dec.Close()
}

// Info describes the loaded model.
func (e *Engine) Info() Info { return e.info }

// Close destroys the sessions once every frame in flight has finished.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	for range e.all {
		w := <-e.pool
		w.close()
	}
	return nil
}

func (e *Engine) acquire(ctx context.Context) (*worker, error) {
	e.mu.RLock()
	closed := e.closed
	e.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	select {
	case w := <-e.pool:
		return w, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Detect decodes one encoded frame (JPEG or PNG) and returns its detections. Bad frames return
// an error wrapping one of the imaging sentinels; Detect never panics on input bytes.
func (e *Engine) Detect(ctx context.Context, frame []byte) (Result, error) {
	w, err := e.acquire(ctx)
	if err != nil {
		return Result{}, err
	}
	defer func() { e.pool <- w }()
	return e.detectOne(w, frame)
}

func (e *Engine) detectOne(w *worker, frame []byte) (Result, error) {
	t0 := time.Now()
	in := w.input[1]
	pr, err := e.prepare(w, frame, in.GetData())
	if err != nil {
		return Result{}, err
	}
	t2 := time.Now()
	out, dims, release, err := e.infer(w, in, 1)
	if err != nil {
		return Result{}, err
	}
	defer release()
	t3 := time.Now()
	res := e.post(w, pr, out, dims)
	t4 := time.Now()
	res.Timing = Timing{
		DecodeMS: ms(pr.decoded.Sub(t0)), PreprocessMS: ms(t2.Sub(pr.decoded)),
		InferMS: ms(t3.Sub(t2)), PostprocessMS: ms(t4.Sub(t3)), TotalMS: ms(t4.Sub(t0)),
	}
	return res, nil
}

// Input returns the input tensor the engine makes from a frame — decoded, letterboxed, in the
// model's channel order, scaling and NCHW layout — and its shape [1, 3, height, width]: what a
// calibration tool must see to quantize the model for the frames it will serve.
func (e *Engine) Input(ctx context.Context, frame []byte) ([]float32, []int64, error) {
	w, err := e.acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer func() { e.pool <- w }()
	dst := make([]float32, 3*e.info.InputWidth*e.info.InputHeight)
	if _, err := e.prepare(w, frame, dst); err != nil {
		return nil, nil, err
	}
	return dst, []int64{1, 3, int64(e.info.InputHeight), int64(e.info.InputWidth)}, nil
}

// prepared is a frame decoded and letterboxed into the input tensor.
type prepared struct {
	cfg     imaging.Config
	decW    int // decoded width (smaller than cfg.Width when DCT-scaled)
	lb      letterbox
	decoded time.Time
	bright  float64
}

func (e *Engine) prepare(w *worker, frame []byte, dst []float32) (prepared, error) {
	inW, inH := e.info.InputWidth, e.info.InputHeight
	boxW, boxH := inW, inH
	if e.cfg.FullDecode {
		boxW, boxH = 0, 0
	}
	img, cfg, err := w.dec.Decode(frame, boxW, boxH)
	if err != nil {
		return prepared{}, err
	}
	decoded := time.Now()
	lb := geometry(e.fam, cfg.Width, cfg.Height, inW, inH)
	w.pre.run(e.fam, img, lb, inW, inH, dst)
	return prepared{cfg: cfg, decW: img.Width, lb: lb, decoded: decoded, bright: img.Brightness()}, nil
}

// infer runs the session on the first n images of in and returns the output data, its shape
// and a release func for ORT-allocated outputs.
func (e *Engine) infer(w *worker, in *ort.Tensor[float32], n int) ([]float32, []int64, func(), error) {
	if w.output != nil && n == 1 {
		if err := w.sess.Run([]ort.Value{in}, []ort.Value{w.output}); err != nil {
			return nil, nil, nil, fmt.Errorf("engine: inference: %w", err)
		}
		return w.output.GetData(), w.output.GetShape(), func() {}, nil
	}
	outs := []ort.Value{nil}
	if err := w.sess.Run([]ort.Value{in}, outs); err != nil {
		return nil, nil, nil, fmt.Errorf("engine: inference: %w", err)
	}
	t, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		outs[0].Destroy()
		return nil, nil, nil, fmt.Errorf("%w: output %q is not a float32 tensor", ErrModel, e.info.OutputName)
	}
	return t.GetData(), t.GetShape(), func() { t.Destroy() }, nil
}

// post decodes image i's slice of the output.
func (e *Engine) post(w *worker, pr prepared, out []float32, dims []int64) Result {
	w.cands = e.decode(out, dims[1:], e.cfg.Conf, w.cands[:0])
	if e.info.Format != FormatEnd2End {
		w.cands = nms(w.cands, e.cfg.IoU, e.cfg.ClassAgnostic, e.cfg.MaxDetections)
	} else if len(w.cands) > e.cfg.MaxDetections {
		w.cands = w.cands[:e.cfg.MaxDetections]
	}
	return Result{
		Width: pr.cfg.Width, Height: pr.cfg.Height, Format: pr.cfg.Format, Brightness: pr.bright,
		Detections: finish(w.cands, pr.lb, pr.cfg.Width, pr.cfg.Height, e.info.Names),
	}
}

// DetectBatch runs several frames. With a dynamic batch dimension, up to Config.MaxBatch frames
// share one inference; otherwise the frames run one by one. Results and errors are per frame.
func (e *Engine) DetectBatch(ctx context.Context, frames [][]byte) ([]Result, []error) {
	results, errs := make([]Result, len(frames)), make([]error, len(frames))
	if !e.info.DynamicBatch {
		for i, f := range frames {
			results[i], errs[i] = e.Detect(ctx, f)
		}
		return results, errs
	}
	w, err := e.acquire(ctx)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return results, errs
	}
	defer func() { e.pool <- w }()
	for start := 0; start < len(frames); start += e.cfg.MaxBatch {
		end := min(start+e.cfg.MaxBatch, len(frames))
		e.batch(w, frames[start:end], results[start:end], errs[start:end])
	}
	return results, errs
}

func (e *Engine) batch(w *worker, frames [][]byte, results []Result, errs []error) {
	t0 := time.Now()
	plane := 3 * e.info.InputWidth * e.info.InputHeight
	// Prepare every frame first; the good ones are packed to the front of the batch.
	type slot struct {
		idx int
		pr  prepared
		pre float64
	}
	var slots []slot
	scratch, err := w.inputFor(len(frames), e.info)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return
	}
	for i, f := range frames {
		ts := time.Now()
		pr, err := e.prepare(w, f, scratch.GetData()[len(slots)*plane:(len(slots)+1)*plane])
		if err != nil {
			errs[i] = err
			continue
		}
		slots = append(slots, slot{i, pr, ms(time.Since(pr.decoded))})
		results[i].Timing.DecodeMS = ms(pr.decoded.Sub(ts))
	}
	if len(slots) == 0 {
		return
	}
	in, err := w.inputFor(len(slots), e.info)
	if err == nil && in != scratch {
		copy(in.GetData(), scratch.GetData()[:len(slots)*plane])
	}
	if err != nil {
		for _, s := range slots {
			errs[s.idx] = err
		}
		return
	}
	ti := time.Now()
	out, dims, release, err := e.infer(w, in, len(slots))
	if err != nil {
		for _, s := range slots {
			errs[s.idx] = err
		}
		return
	}
	defer release()
	inferMS := ms(time.Since(ti)) / float64(len(slots))
	per := int(dims[1])
	for _, d := range dims[2:] {
		per *= int(d)
	}
	for k, s := range slots {
		tp := time.Now()
		r := e.post(w, s.pr, out[k*per:(k+1)*per], dims)
		r.Timing = Timing{DecodeMS: results[s.idx].Timing.DecodeMS, PreprocessMS: s.pre, InferMS: inferMS, PostprocessMS: ms(time.Since(tp))}
		r.Timing.TotalMS = ms(time.Since(t0)) / float64(len(slots))
		results[s.idx] = r
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// inspect reads the model's inputs, outputs and metadata, resolves the format and checks that
// the output fits it.
func inspect(model []byte, cfg Config) (Info, decoder, error) {
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		return Info{}, nil, fmt.Errorf("%w: cannot load: %v", ErrModel, err)
	}
	if len(ins) != 1 {
		return Info{}, nil, fmt.Errorf("%w: %d inputs, want one image input", ErrModel, len(ins))
	}
	if len(outs) < 1 {
		return Info{}, nil, fmt.Errorf("%w: no outputs", ErrModel)
	}
	in, out := ins[0], outs[0]
	if in.DataType != ort.TensorElementDataTypeFloat || len(in.Dimensions) != 4 || in.Dimensions[1] != 3 {
		return Info{}, nil, fmt.Errorf("%w: input %q is %s %v, want float32 [N,3,H,W]", ErrModel, in.Name, in.DataType, in.Dimensions)
	}
	if out.DataType != ort.TensorElementDataTypeFloat || len(out.Dimensions) != 3 {
		return Info{}, nil, fmt.Errorf("%w: output %q is %s %v, want a float32 tensor of rank 3", ErrModel, out.Name, out.DataType, out.Dimensions)
	}
	md, err := readMetadata(model)
	if err != nil {
		return Info{}, nil, fmt.Errorf("%w: %v", ErrModel, err)
	}
	info := Info{
		InputName: in.Name, OutputName: out.Name, OutputShape: []int64(out.Dimensions.Clone()),
		DynamicBatch: in.Dimensions[0] <= 0,
		InputHeight:  int(in.Dimensions[2]), InputWidth: int(in.Dimensions[3]),
	}
	if info.InputWidth <= 0 || info.InputHeight <= 0 {
		switch {
		case cfg.InputWidth > 0 && cfg.InputHeight > 0:
			info.InputWidth, info.InputHeight = cfg.InputWidth, cfg.InputHeight
		case md.imgsz[0] > 0:
			info.InputHeight, info.InputWidth = md.imgsz[0], md.imgsz[1]
		default:
			info.InputWidth, info.InputHeight = 640, 640
		}
	}
	info.Names = cfg.Names
	if len(info.Names) == 0 {
		info.Names = md.names
	}
	info.Format = cfg.Format
	if info.Format == FormatAuto {
		if info.Format, err = detectFormat(md, out.Dimensions); err != nil {
			return Info{}, nil, err
		}
	}
	dec, err := fit(info)
	if err != nil {
		return Info{}, nil, err
	}
	return info, dec, nil
}

func readMetadata(model []byte) (metadata, error) {
	m, err := ort.GetModelMetadataWithONNXData(model)
	if err != nil {
		return metadata{}, fmt.Errorf("metadata: %w", err)
	}
	defer m.Destroy()
	keys, err := m.GetCustomMetadataMapKeys()
	if err != nil {
		return metadata{}, fmt.Errorf("metadata: %w", err)
	}
	kv := map[string]string{}
	for _, k := range keys {
		if v, ok, err := m.LookupCustomMetadataMap(k); err == nil && ok {
			kv[k] = v
		}
	}
	return parseMetadata(kv)
}

// detectFormat reads the family from Ultralytics/YOLOv5 metadata; without any, it refuses.
func detectFormat(md metadata, out ort.Shape) (Format, error) {
	switch {
	case md.task != "" && md.task != "detect":
		return "", fmt.Errorf("%w: the model's metadata says task=%q; only detection models are supported", ErrUnknownFormat, md.task)
	case md.task == "detect" && (md.end2end || out[2] == 6 && out[1] > 6):
		return FormatEnd2End, nil
	case md.task == "detect":
		return FormatYOLOv8, nil
	case len(md.names) > 0 && md.stride > 0:
		return FormatYOLOv5, nil
	}
	return "", fmt.Errorf("%w: the model's metadata does not say its format; set it explicitly (formats: %s)", ErrUnknownFormat, formatList())
}

// fit checks that the output shape fits the format and returns its decoder.
func fit(info Info) (decoder, error) {
	d := info.OutputShape
	bad := func(want string) error {
		return fmt.Errorf("%w: output %q has shape %v, which does not fit %s (want %s)", ErrModel, info.OutputName, d, info.Format, want)
	}
	classes := func(n int64) error {
		if len(info.Names) > 0 && n != int64(len(info.Names)) {
			return fmt.Errorf("%w: output has %d classes but %d names were given", ErrModel, n, len(info.Names))
		}
		return nil
	}
	switch info.Format {
	case FormatYOLOX:
		cells := int64(0)
		for _, s := range []int{8, 16, 32} {
			cells += int64(info.InputHeight/s) * int64(info.InputWidth/s)
		}
		if d[1] != cells || d[2] < 6 {
			return nil, bad(fmt.Sprintf("[1, %d, 5+classes] for a %d×%d input", cells, info.InputWidth, info.InputHeight))
		}
		return decodeYOLOX(info.InputWidth, info.InputHeight), classes(d[2] - 5)
	case FormatYOLOv8:
		if d[1] < 5 || d[2] <= 0 || d[2] < d[1] {
			return nil, bad("[1, 4+classes, anchors]")
		}
		return decodeYOLOv8, classes(d[1] - 4)
	case FormatYOLOv5:
		if d[2] < 6 || (d[1] > 0 && d[1] < d[2]) {
			return nil, bad("[1, anchors, 5+classes]")
		}
		return decodeYOLOv5, classes(d[2] - 5)
	case FormatEnd2End:
		if d[2] != 6 {
			return nil, bad("[1, K, 6] = x1, y1, x2, y2, score, class")
		}
		return decodeEnd2End, nil
	}
	return nil, fmt.Errorf("%w: %q (formats: %s)", ErrUnknownFormat, info.Format, formatList())
}

// InferOnly runs one inference of a session on its (zeroed or last) input tensor, without
// decode, preprocessing or postprocessing: bare ONNX Runtime with the engine's session options,
// the baseline detctl bench compares the pipeline with. It returns the inference time.
func (e *Engine) InferOnly(ctx context.Context) (time.Duration, error) {
	w, err := e.acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { e.pool <- w }()
	in, err := w.inputFor(1, e.info)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	_, _, release, err := e.infer(w, in, 1)
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	release()
	return d, nil
}

// Sessions is the number of sessions the engine runs (Config.Sessions after defaults).
func (e *Engine) Sessions() int { return e.cfg.Sessions }
