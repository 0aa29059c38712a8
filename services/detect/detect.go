// Package detect is streamdet's detection stage: it consumes frame references, fetches each
// frame from object storage, runs the ONNX detector (package engine) and publishes the
// detections, with the model's name, version and digest and the route arm that served the
// frame. A frame that cannot be served for good (no such object, corrupt image, a reference
// that breaks the schema) goes to the dead-letter topic with its reason.
package detect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/drift"
	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/imageinfo"
	"github.com/streamdet/streamdet/pkg/kafkax"
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/pkg/routing"
	"github.com/streamdet/streamdet/services/detect/engine"
)

// Config is detect's configuration: DefaultConfig, or ConfigFromEnv; Validate names every bad
// value and its limit.
type Config struct {
	// Config is what every stage shares: Kafka, object storage, the listener (health and
	// metrics only: STREAMDET_DETECT_ADDR, default :8082), the drain timeout.
	pipeline.Config
	// Redis is where routes live, when serving the registry by route (STREAMDET_REDIS_*).
	Redis routing.RedisConfig
	// FramesBucket is the only bucket frame references may name: STREAMDET_FRAMES_BUCKET,
	// default frames.
	FramesBucket string
	// Group: STREAMDET_DETECT_GROUP, default streamdet-detect.
	Group string
	// Concurrency is frames in flight: STREAMDET_DETECT_CONCURRENCY, default 2 × sessions.
	Concurrency int
	// ProviderFallback is STREAMDET_ENGINE_PROVIDER_FALLBACK: "cpu" runs on the CPU (logged)
	// when the execution provider asked for (STREAMDET_ENGINE_PROVIDER) cannot be used; default
	// "": refuse to start. It sets Engine.Provider.FallbackCPU.
	ProviderFallback string
	// ModelPath (a file) or ModelURI (s3://bucket/key in the object store): STREAMDET_MODEL_PATH,
	// STREAMDET_MODEL_URI. Without either, detect serves the versions of STREAMDET_MODEL_NAME
	// from the registry as its route in Redis says (STREAMDET_REDIS_*).
	ModelPath, ModelURI string
	// ModelsBucket is the registry: STREAMDET_MODELS_BUCKET, default models.
	ModelsBucket string
	// RouteResync bounds how stale a route can be if a change notification is missed:
	// STREAMDET_ROUTE_RESYNC, default 1s.
	RouteResync time.Duration
	// UnloadGrace is how long a version no route needs stays loaded: STREAMDET_UNLOAD_GRACE, default 30s.
	UnloadGrace time.Duration
	// ModelName and ModelVersion label the detections: STREAMDET_MODEL_NAME (default: the file
	// name without extension), STREAMDET_MODEL_VERSION (default 1).
	ModelName, ModelVersion string
	// NamesPath: STREAMDET_MODEL_NAMES_PATH, a class-names file (default: the model's metadata).
	NamesPath string
	// Drift: STREAMDET_DRIFT_REFERENCE_FRAMES (200: the first frames a version serves to a
	// stream make its reference), STREAMDET_DRIFT_WINDOW_FRAMES (100: each later window of frames
	// compared with it), STREAMDET_DRIFT_MAX_STREAMS (10,000 per process).
	Drift drift.Config
	// Engine: STREAMDET_MODEL_FORMAT (auto), STREAMDET_ENGINE_SESSIONS (cores),
	// STREAMDET_ENGINE_THREADS (1), STREAMDET_CONF (0.25), STREAMDET_IOU (0.45),
	// STREAMDET_MAX_FRAME_BYTES (8 MiB), STREAMDET_MAX_FRAME_PIXELS (50,000,000).
	Engine engine.Config
}

// DefaultConfig is the configuration with every default (the required endpoints and
// credentials left empty).
func DefaultConfig() Config { return fromEnv(envconf.Map(nil)) }

// ConfigFromEnv reads the Config from the environment and validates it.
func ConfigFromEnv(env envconf.Env) (Config, error) {
	c := fromEnv(env)
	return c, errors.Join(env.Err(), c.Validate())
}

func fromEnv(env envconf.Env) Config {
	c := Config{
		Config:       pipeline.ConfigFromEnv(env, "detect", DefaultAddr, false),
		Redis:        routing.RedisFromEnv(env),
		FramesBucket: env.String("STREAMDET_FRAMES_BUCKET", "frames"),
		Group:        env.String("STREAMDET_DETECT_GROUP", "streamdet-detect"),
		ModelPath:    env.String("STREAMDET_MODEL_PATH", ""),
		ModelURI:     env.String("STREAMDET_MODEL_URI", ""),
		ModelName:    env.String("STREAMDET_MODEL_NAME", ""),
		ModelVersion: env.String("STREAMDET_MODEL_VERSION", "1"),
		NamesPath:    env.String("STREAMDET_MODEL_NAMES_PATH", ""),
		ModelsBucket: env.String("STREAMDET_MODELS_BUCKET", "models"),
		RouteResync:  env.Duration("STREAMDET_ROUTE_RESYNC", time.Second),
		UnloadGrace:  env.Duration("STREAMDET_UNLOAD_GRACE", 30*time.Second),
		Engine:       EngineFromEnv(env),
		Drift: drift.Config{ReferenceFrames: env.Int("STREAMDET_DRIFT_REFERENCE_FRAMES", 200), WindowFrames: env.Int("STREAMDET_DRIFT_WINDOW_FRAMES", 100),
			MaxStreams: env.Int("STREAMDET_DRIFT_MAX_STREAMS", 10_000)},
	}
	c.Concurrency = env.Int("STREAMDET_DETECT_CONCURRENCY", 2*max(1, c.Engine.Sessions))
	c.ProviderFallback = env.String("STREAMDET_ENGINE_PROVIDER_FALLBACK", "")
	if c.ModelName == "" && !c.Routed() {
		c.ModelName = strings.TrimSuffix(filepath.Base(c.ModelPath+c.ModelURI), ".onnx")
	}
	return c
}

// EngineFromEnv reads the engine's configuration: STREAMDET_MODEL_FORMAT (auto),
// STREAMDET_ENGINE_SESSIONS (cores ÷ threads), STREAMDET_ENGINE_THREADS (1), STREAMDET_CONF
// (0.25), STREAMDET_IOU (0.45), STREAMDET_MAX_FRAME_BYTES (8 MiB), STREAMDET_MAX_FRAME_PIXELS
// (50,000,000), the execution provider (STREAMDET_ENGINE_PROVIDER, _DEVICE_ID, _TRT_FP16,
// _TRT_CACHE_DIR, _OPENVINO_DEVICE, _PROVIDER_FALLBACK). Every service that runs the engine
// (detect, the edge runtime) reads it the same way; engine.Config.Validate checks it.
func EngineFromEnv(env envconf.Env) engine.Config {
	raw := env.String("STREAMDET_MODEL_FORMAT", "auto")
	format, err := engine.ParseFormat(raw)
	if err != nil {
		format = engine.Format(raw) // Validate reports it
	}
	c := engine.Config{
		Format: format,
		// Sessions default to cores ÷ threads (the engine's own default): THREADS=2 alone
		// does not over-subscribe the CPU.
		Sessions:       env.Int("STREAMDET_ENGINE_SESSIONS", 0),
		IntraOpThreads: env.Int("STREAMDET_ENGINE_THREADS", 1),
		Conf:           float32(env.Float("STREAMDET_CONF", 0.25)),
		Provider: engine.ProviderConfig{
			Name:             engine.Provider(strings.ToLower(env.String("STREAMDET_ENGINE_PROVIDER", "cpu"))),
			DeviceID:         env.Int("STREAMDET_ENGINE_DEVICE_ID", 0),
			TensorRTFP16:     env.Bool("STREAMDET_ENGINE_TRT_FP16", false),
			TensorRTCacheDir: env.String("STREAMDET_ENGINE_TRT_CACHE_DIR", ""),
			OpenVINODevice:   env.String("STREAMDET_ENGINE_OPENVINO_DEVICE", "CPU"),
			FallbackCPU:      env.String("STREAMDET_ENGINE_PROVIDER_FALLBACK", "") == "cpu",
		},
		IoU: float32(env.Float("STREAMDET_IOU", 0.45)),
		Limits: imageinfo.Limits{
			MaxBytes:  env.Int("STREAMDET_MAX_FRAME_BYTES", 8<<20),
			MaxPixels: env.Int("STREAMDET_MAX_FRAME_PIXELS", 50_000_000),
		},
	}
	if c.Sessions == 0 {
		c.Sessions = max(1, runtime.GOMAXPROCS(0)/max(1, c.IntraOpThreads))
	}
	return c
}

// Validate checks every value, naming each bad one and its limit.
func (c Config) Validate() error {
	errs := []error{c.Config.Validate("detect", false), c.Engine.Validate(), c.Engine.Limits.Validate(), contract.CheckID("STREAMDET_DETECT_GROUP", c.Group)}
	if c.Routed() {
		errs = append(errs, c.Redis.Validate())
	}
	if c.ModelPath != "" && c.ModelURI != "" {
		errs = append(errs, errors.New("set at most one of STREAMDET_MODEL_PATH and STREAMDET_MODEL_URI"))
	}
	if c.Routed() && c.ModelName == "" {
		errs = append(errs, errors.New("STREAMDET_MODEL_NAME is required to serve from the registry (or set STREAMDET_MODEL_PATH)"))
	}
	if c.RouteResync < 100*time.Millisecond || c.RouteResync > time.Minute {
		errs = append(errs, fmt.Errorf("STREAMDET_ROUTE_RESYNC %s: must be in [100ms, 1m]", c.RouteResync))
	}
	if c.ModelURI != "" && !strings.HasPrefix(c.ModelURI, "s3://") {
		errs = append(errs, fmt.Errorf("STREAMDET_MODEL_URI %q: want s3://bucket/key", c.ModelURI))
	}
	errs = append(errs, CheckProviderFallback(c.ProviderFallback))
	if c.Drift.ReferenceFrames < 10 || c.Drift.ReferenceFrames > 100_000 || c.Drift.WindowFrames < 10 || c.Drift.WindowFrames > 100_000 || c.Drift.MaxStreams < 1 || c.Drift.MaxStreams > 1_000_000 {
		errs = append(errs, fmt.Errorf("STREAMDET_DRIFT_REFERENCE_FRAMES %d, _WINDOW_FRAMES %d: each in [10, 100000]; STREAMDET_DRIFT_MAX_STREAMS %d in [1, 1000000]",
			c.Drift.ReferenceFrames, c.Drift.WindowFrames, c.Drift.MaxStreams))
	}
	if c.Concurrency < 1 || c.Concurrency > 1024 {
		errs = append(errs, fmt.Errorf("STREAMDET_DETECT_CONCURRENCY %d: must be in [1, 1024]", c.Concurrency))
	}
	if c.ModelName != "" {
		errs = append(errs, contract.CheckID("STREAMDET_MODEL_NAME", c.ModelName))
	}
	errs = append(errs, contract.CheckID("STREAMDET_MODEL_VERSION", c.ModelVersion))
	return errors.Join(errs...)
}

// CheckProviderFallback checks STREAMDET_ENGINE_PROVIDER_FALLBACK: "cpu" or nothing.
func CheckProviderFallback(v string) error {
	if v != "" && v != "cpu" {
		return fmt.Errorf("STREAMDET_ENGINE_PROVIDER_FALLBACK %q: want cpu or nothing", v)
	}
	return nil
}

// Routed reports whether detect serves registry versions by route (no fixed model given).
func (c Config) Routed() bool { return c.ModelPath == "" && c.ModelURI == "" }

// LoadModel reads the model bytes from the file or the object store.
func LoadModel(ctx context.Context, c Config, store Store) ([]byte, error) {
	if c.ModelPath != "" {
		return os.ReadFile(c.ModelPath)
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(c.ModelURI, "s3://"), "/")
	return store.Get(ctx, bucket, key, 2<<30)
}

// FrameStore is what the Detector needs from object storage: frames read.
type FrameStore interface {
	Get(ctx context.Context, bucket, key string, max int64) ([]byte, error)
}

// Store is what the detect service needs from object storage: frames and models read, the
// registry's bucket (registry.Store), and the runtime's buckets and readiness ping.
// *objstore.Store implements it.
type Store interface {
	pipeline.ObjectStore
	registry.Store
}

// Routes is what the routed detect service needs from Redis (a *routing.Store): the model's
// route watched, version states and per-frame statistics recorded, and the digests recorded at
// push (registry.Ledger) to check fetched models against.
type Routes interface {
	Watch(ctx context.Context, model string, resync time.Duration, apply func(*routing.Route), health func(error))
	SetStatus(ctx context.Context, model, version string, st routing.Status) error
	StatsRecorder
	registry.Ledger
}

// Deps are what the service uses besides its Config (see pipeline.Deps). A nil Store is the
// object storage client of Config.Store; nil Routes are Redis at Config.Redis (routed mode).
type Deps struct {
	pipeline.Deps
	Store  Store
	Routes Routes
}

// StatsRecorder receives each frame's figures for `detctl route stats` (a routing.Store in
// routing mode). It must not block: the Detector hands it samples through a buffer.
type StatsRecorder interface {
	Record(ctx context.Context, model string, s routing.Sample, a *routing.Agreement) error
}

// DriftRecorder keeps drift values for `detctl drift` and the drift references every replica
// compares with (a routing.Store); optional on a StatsRecorder.
type DriftRecorder interface {
	RecordDrift(ctx context.Context, model string, vs []drift.Value) error
	// DriftReference reads a stored reference (nil when none is).
	DriftReference(ctx context.Context, k drift.Key) (*drift.Reference, error)
	// SaveDriftReference keeps r unless one is kept already, and returns the one kept.
	SaveDriftReference(ctx context.Context, r drift.Reference) (drift.Reference, error)
}

// Detector serves frames with the engines a Resolver picks.
type Detector struct {
	models       Resolver
	stage        *pipeline.Stage
	store        FrameStore
	detections   pipeline.Producer
	shadow       pipeline.Producer
	maxBytes     int64
	framesBucket string
	stats        chan statSample
	recorder     StatsRecorder
	drift        *drift.Tracker

	frames     metric.Int64Counter
	latency    metric.Float64Histogram
	perFrame   metric.Float64Histogram
	scores     metric.Float64Histogram
	agreement  metric.Float64Histogram
	errorCount metric.Int64Counter
}

type statSample struct {
	model string
	s     routing.Sample
	a     *routing.Agreement
	drift drift.Result // drift work instead of a sample
}

// Options are what a Detector works with.
type Options struct {
	Models     Resolver
	Stage      *pipeline.Stage
	Store      FrameStore
	Detections pipeline.Producer
	// Shadow publishes shadow results; nil when no shadow is ever routed.
	Shadow pipeline.Producer
	// MaxBytes bounds a frame fetched; FramesBucket is the only bucket references may name.
	MaxBytes     int
	FramesBucket string
	// Recorder receives per-frame statistics; may be nil.
	Recorder StatsRecorder
	// Drift bounds the drift tracker (zero: its defaults).
	Drift drift.Config
}

// New creates a Detector.
func New(o Options) (*Detector, error) {
	d := &Detector{models: o.Models, stage: o.Stage, store: o.Store, detections: o.Detections, shadow: o.Shadow,
		maxBytes: int64(o.MaxBytes), framesBucket: o.FramesBucket, recorder: o.Recorder, stats: make(chan statSample, 4096),
		drift: drift.NewTracker(o.Drift)}
	m := o.Stage.Tel.Meter
	var errs []error
	var err error
	d.frames, err = m.Int64Counter("streamdet_model_frames", metric.WithDescription("frames served, by model version and arm"))
	errs = append(errs, err)
	d.errorCount, err = m.Int64Counter("streamdet_model_errors", metric.WithDescription("frames a model version failed on, by version and arm"))
	errs = append(errs, err)
	d.latency, err = m.Float64Histogram("streamdet_model_latency_seconds", metric.WithDescription("decode to postprocess time, by model version and arm"),
		metric.WithExplicitBucketBoundaries(.005, .01, .02, .03, .05, .075, .1, .15, .2, .3, .5, 1, 2))
	errs = append(errs, err)
	d.perFrame, err = m.Float64Histogram("streamdet_model_detections_per_frame", metric.WithDescription("detections per frame, by model version and arm"),
		metric.WithExplicitBucketBoundaries(0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 100))
	errs = append(errs, err)
	d.scores, err = m.Float64Histogram("streamdet_model_detection_score", metric.WithDescription("detection scores, by model version and arm"),
		metric.WithExplicitBucketBoundaries(.25, .3, .4, .5, .6, .7, .8, .9, .95))
	errs = append(errs, err)
	d.agreement, err = m.Float64Histogram("streamdet_shadow_agreement", metric.WithDescription("share of primary boxes the shadow also found (IoU ≥ 0.5, same class), per frame"),
		metric.WithExplicitBucketBoundaries(.1, .2, .3, .4, .5, .6, .7, .8, .9, .95, 1))
	errs = append(errs, err)
	gauge, err := m.Float64ObservableGauge("streamdet_drift", metric.WithDescription("population stability index of each feature's last window of frames against the version's drift reference (its first frames after promotion), by model, version, stream (* for all) and feature"))
	errs = append(errs, err)
	if err == nil {
		_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			for _, v := range d.drift.Latest() {
				o.ObserveFloat64(gauge, v.PSI, metric.WithAttributes(attribute.String("model", v.Model), attribute.String("version", v.Version),
					attribute.String("stream", v.Stream), attribute.String("feature", v.Feature)))
			}
			return nil
		}, gauge)
		errs = append(errs, err)
	}
	return d, errors.Join(errs...)
}

// driftWork records closed drift windows, loads the stored references new series want and
// keeps the references captured here (adopting the one kept, should another replica's be).
func (d *Detector) driftWork(ctx context.Context, dr DriftRecorder, w drift.Result) {
	if len(w.Values) > 0 {
		dr.RecordDrift(ctx, w.Values[0].Model, w.Values)
	}
	for _, k := range w.Wanted {
		ref, err := dr.DriftReference(ctx, k)
		if err != nil {
			d.stage.Tel.Logger.Warn("drift reference unreadable: capturing one", "model", k.Model, "version", k.Version, "stream", k.Stream, "err", err)
		} else if ref != nil {
			d.drift.Adopt(*ref)
		}
	}
	for _, r := range w.Captured {
		kept, err := dr.SaveDriftReference(ctx, r)
		if err != nil {
			d.stage.Tel.Logger.Warn("drift reference not kept", "model", r.Model, "version", r.Version, "stream", r.Stream, "err", err)
			continue
		}
		if !kept.At.Equal(r.At) || kept.Frames != r.Frames {
			d.drift.Adopt(kept)
		}
	}
}

// RunStats forwards samples to the recorder until ctx ends; samples are dropped, never waited
// for, while the recorder (Redis) is unreachable.
func (d *Detector) RunStats(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-d.stats:
			if d.recorder == nil {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			if s.model == "" {
				if dr, ok := d.recorder.(DriftRecorder); ok {
					d.driftWork(rctx, dr, s.drift)
				}
			} else {
				d.recorder.Record(rctx, s.model, s.s, s.a)
			}
			cancel()
		}
	}
}

func (d *Detector) record(s statSample) {
	select {
	case d.stats <- s:
	default:
	}
}

// Handle is the handler of the frames topic.
func (d *Detector) Handle(ctx context.Context, m kafka.Message) error {
	if t, ok := kafkax.Header(m.Headers, contract.HeaderType); ok && t != contract.TypeFrameRef {
		return pipeline.Rejectf(contract.ReasonUnknownSchema, "ce_type %q on the frames topic, want %s", t, contract.TypeFrameRef)
	}
	var ref contract.FrameRef
	if err := json.Unmarshal(m.Value, &ref); err != nil {
		return pipeline.Rejectf(contract.ReasonSchemaViolation, "frame reference: %v", err)
	}
	if err := contract.ValidateFrameRef(ref, d.framesBucket); err != nil {
		return err // classified: invalid_identifier, schema_violation or forbidden
	}
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.String("streamdet.frame_id", ref.FrameID), attribute.String("streamdet.stream_id", ref.StreamID))

	t0 := time.Now()
	var data []byte
	err := d.stage.Retry(ctx, "minio", func() error {
		var gerr error
		data, gerr = d.store.Get(ctx, ref.Bucket, ref.Key, d.maxBytes)
		return gerr
	}, nil)
	if err != nil {
		return err // permanent ones (missing, too large, forbidden) are dead-lettered
	}
	fetchTime := time.Since(t0)
	d.stage.Step(ctx, "fetch", fetchTime)
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != ref.SHA256 {
		return pipeline.Rejectf(contract.ReasonCorruptImage, "object %s/%s does not match the reference's sha256", ref.Bucket, ref.Key)
	}

	// Pick the version and run it; "nothing routable yet" and "unloaded under us" are transient
	// (the frame waits, uncommitted), anything else about the frame is permanent.
	var primary Served
	var shadow *Served
	var res engine.Result
	err = d.stage.Retry(ctx, "model", func() error {
		var rerr error
		if primary, shadow, rerr = d.models.Resolve(ref.StreamID, ref.FrameID); rerr != nil {
			return rerr
		}
		res, rerr = d.run(ctx, primary, data)
		return rerr
	}, func(err error) bool { return !errors.Is(err, ErrNotRoutable) && !errors.Is(err, engine.ErrClosed) })
	if err != nil {
		if reason, ok := pipeline.RejectReason(err); ok {
			return &pipeline.Reject{Reason: reason, Err: err}
		}
		if ctx.Err() != nil {
			return err
		}
		return &pipeline.Reject{Reason: contract.ReasonInference, Err: err}
	}
	out := d.message(ctx, ref, primary, res, fetchTime)
	var agr *routing.Agreement
	var shadowOut *contract.Detections
	if shadow != nil {
		if sres, serr := d.run(ctx, *shadow, data); serr == nil {
			so := d.message(ctx, ref, *shadow, sres, fetchTime)
			shadowOut = &so
			// The candidate is compared with the reference: a shadow with the served version, or
			// the served canary with the primary run beside it.
			candidate := *shadow
			agr = Agree(shadow.Model.Version, res.Detections, sres.Detections)
			agr.Reference, agr.Arm = primary.Model.Version, routing.ArmShadow
			if shadow.Arm == routing.ArmReference {
				candidate = primary
				agr = Agree(primary.Model.Version, sres.Detections, res.Detections)
				agr.Reference, agr.Arm = shadow.Model.Version, primary.Arm
			}
			if agr.PrimaryBoxes > 0 {
				d.agreement.Record(ctx, float64(agr.PrimaryMatched)/float64(agr.PrimaryBoxes), d.attrs(candidate))
			}
		} else {
			d.stage.Tel.Logger.WarnContext(ctx, "shadow inference failed", "version", shadow.Model.Version, "err", serr)
		}
	}
	if err := d.publish(ctx, d.detections, out); err != nil {
		return err
	}
	if shadowOut != nil && d.shadow != nil {
		if err := d.publish(ctx, d.shadow, *shadowOut); err != nil {
			return err
		}
	}
	d.record(statSample{model: primary.Model.Name, s: sample(primary, res), a: agr})
	baseline := primary.DriftBaseline
	if baseline == "" {
		baseline = "0"
	}
	dr := d.drift.Observe(primary.Model.Name, primary.Model.Version, baseline, ref.StreamID,
		drift.Frame{Width: res.Width, Height: res.Height, Brightness: res.Brightness, Detections: res.Detections})
	if dr.Values != nil || dr.Wanted != nil || dr.Captured != nil {
		d.record(statSample{drift: dr})
	}
	return nil
}

func (d *Detector) attrs(s Served) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("model", s.Model.Name), attribute.String("version", s.Model.Version), attribute.String("arm", s.Arm))
}

// run detects on one engine and records the version's metrics.
func (d *Detector) run(ctx context.Context, s Served, data []byte) (engine.Result, error) {
	start := time.Now()
	res, err := s.Eng.Detect(ctx, data)
	if err != nil {
		if !errors.Is(err, engine.ErrClosed) {
			d.errorCount.Add(ctx, 1, d.attrs(s))
			d.record(statSample{model: s.Model.Name, s: routing.Sample{Version: s.Model.Version, Arm: s.Arm, Error: true}})
		}
		return res, err
	}
	d.traceStages(ctx, start, s, res.Timing)
	a := d.attrs(s)
	d.frames.Add(ctx, 1, a)
	d.latency.Record(ctx, res.Timing.TotalMS/1000, a)
	d.perFrame.Record(ctx, float64(len(res.Detections)), a)
	for _, o := range res.Detections {
		d.scores.Record(ctx, float64(o.Score), a)
	}
	return res, nil
}

func sample(s Served, res engine.Result) routing.Sample {
	smp := routing.Sample{Version: s.Model.Version, Arm: s.Arm, LatencyMS: res.Timing.TotalMS, Detections: len(res.Detections)}
	for _, o := range res.Detections {
		smp.ScoreSum += float64(o.Score)
	}
	return smp
}

func (d *Detector) message(ctx context.Context, ref contract.FrameRef, s Served, res engine.Result, fetch time.Duration) contract.Detections {
	out := contract.Detections{
		FrameID: ref.FrameID, StreamID: ref.StreamID, CaptureTime: ref.CaptureTime, Frame: ref,
		Width: res.Width, Height: res.Height, Model: s.Model, Route: contract.RouteArm{Arm: s.Arm},
		Detections: res.Detections,
		TimingMS: map[string]float64{
			"fetch": float64(fetch.Microseconds()) / 1000, "decode": res.Timing.DecodeMS, "preprocess": res.Timing.PreprocessMS,
			"infer": res.Timing.InferMS, "postprocess": res.Timing.PostprocessMS,
		},
		TraceID: trace.SpanFromContext(ctx).SpanContext().TraceID().String(), DetectedAt: d.stage.Now().UTC(),
	}
	if out.Detections == nil {
		out.Detections = []contract.Detection{}
	}
	return out
}

func (d *Detector) publish(ctx context.Context, w pipeline.Producer, out contract.Detections) error {
	body, _ := json.Marshal(out)
	return d.stage.Publish(ctx, w, pipeline.Event{
		Key: out.StreamID, ID: out.FrameID + "/" + out.Model.Name + "/" + out.Model.Version, Type: contract.TypeDetections,
		Subject: out.StreamID, Time: out.DetectedAt, Value: body,
	})
}

// Agree compares a candidate's boxes (shadow) with a reference's (primary) on the same frame: a
// box is matched when the other side has one of the same class at IoU ≥ 0.5. version is the
// candidate's; the caller sets Reference and Arm.
func Agree(version string, primary, shadow []contract.Detection) *routing.Agreement {
	a := &routing.Agreement{Version: version, PrimaryBoxes: len(primary), ShadowBoxes: len(shadow)}
	for _, p := range primary {
		if contract.Matches(p, shadow, 0.5) {
			a.PrimaryMatched++
		}
	}
	for _, s := range shadow {
		if contract.Matches(s, primary, 0.5) {
			a.ShadowMatched++
		}
	}
	return a
}

// traceStages records the engine's stages as child spans from its measured timings, so the
// engine itself stays free of telemetry.
func (d *Detector) traceStages(ctx context.Context, start time.Time, s Served, t engine.Timing) {
	at := start
	for _, st := range []struct {
		name, step string // span name; step label (as in timing_ms and the step metric's description)
		ms         float64
	}{{"decode", "decode", t.DecodeMS}, {"preprocess", "preprocess", t.PreprocessMS}, {"inference", "infer", t.InferMS}, {"postprocess", "postprocess", t.PostprocessMS}} {
		dur := time.Duration(st.ms * float64(time.Millisecond))
		_, span := d.stage.Tel.Tracer.Start(ctx, st.name, trace.WithTimestamp(at),
			trace.WithAttributes(attribute.String("streamdet.model.version", s.Model.Version), attribute.String("streamdet.route.arm", s.Arm)))
		span.End(trace.WithTimestamp(at.Add(dur)))
		d.stage.Step(ctx, st.step, dur)
		at = at.Add(dur)
	}
}

// ModelOf labels an engine's model.
func ModelOf(name, version string, eng *engine.Engine) contract.Model {
	return contract.Model{Name: name, Version: version, Digest: "sha256:" + eng.Info().SHA256}
}

// DefaultAddr is the data listener's default address (STREAMDET_DETECT_ADDR).
const DefaultAddr = ":8082"
