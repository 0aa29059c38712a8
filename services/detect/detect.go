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
	"go.opentelemetry.io/otel/trace"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/imageinfo"
	"github.com/streamdet/streamdet/pkg/kafkax"
	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/services/detect/engine"
)

// Config is detect's own configuration.
type Config struct {
	// HTTPAddr: STREAMDET_DETECT_ADDR, default :8082.
	HTTPAddr string
	// Group: STREAMDET_DETECT_GROUP, default streamdet-detect.
	Group string
	// Concurrency is frames in flight: STREAMDET_DETECT_CONCURRENCY, default 2 × sessions.
	Concurrency int
	// ModelPath (a file) or ModelURI (s3://bucket/key in the object store): STREAMDET_MODEL_PATH,
	// STREAMDET_MODEL_URI. One is required.
	ModelPath, ModelURI string
	// ModelName and ModelVersion label the detections: STREAMDET_MODEL_NAME (default: the file
	// name without extension), STREAMDET_MODEL_VERSION (default 1).
	ModelName, ModelVersion string
	// NamesPath: STREAMDET_MODEL_NAMES_PATH, a class-names file (default: the model's metadata).
	NamesPath string
	// Engine: STREAMDET_MODEL_FORMAT (auto), STREAMDET_ENGINE_SESSIONS (cores),
	// STREAMDET_ENGINE_THREADS (1), STREAMDET_CONF (0.25), STREAMDET_IOU (0.45),
	// STREAMDET_MAX_FRAME_BYTES (8 MiB), STREAMDET_MAX_FRAME_PIXELS (50,000,000).
	Engine engine.Config
}

// ConfigFromEnv reads and validates the Config.
func ConfigFromEnv(env envconf.Env) (Config, error) {
	format, ferr := engine.ParseFormat(env.String("STREAMDET_MODEL_FORMAT", "auto"))
	c := Config{
		HTTPAddr:     env.String("STREAMDET_DETECT_ADDR", ":8082"),
		Group:        env.String("STREAMDET_DETECT_GROUP", "streamdet-detect"),
		ModelPath:    env.String("STREAMDET_MODEL_PATH", ""),
		ModelURI:     env.String("STREAMDET_MODEL_URI", ""),
		ModelName:    env.String("STREAMDET_MODEL_NAME", ""),
		ModelVersion: env.String("STREAMDET_MODEL_VERSION", "1"),
		NamesPath:    env.String("STREAMDET_MODEL_NAMES_PATH", ""),
		Engine: engine.Config{
			Format:         format,
			Sessions:       env.Int("STREAMDET_ENGINE_SESSIONS", runtime.GOMAXPROCS(0)),
			IntraOpThreads: env.Int("STREAMDET_ENGINE_THREADS", 1),
			Conf:           float32(env.Float("STREAMDET_CONF", 0.25)),
			IoU:            float32(env.Float("STREAMDET_IOU", 0.45)),
			Limits: imageinfo.Limits{
				MaxBytes:  env.Int("STREAMDET_MAX_FRAME_BYTES", 8<<20),
				MaxPixels: env.Int("STREAMDET_MAX_FRAME_PIXELS", 50_000_000),
			},
		},
	}
	c.Concurrency = env.Int("STREAMDET_DETECT_CONCURRENCY", 2*max(1, c.Engine.Sessions))
	errs := []error{ferr, env.Err(), c.Engine.Validate()}
	if (c.ModelPath == "") == (c.ModelURI == "") {
		errs = append(errs, errors.New("set exactly one of STREAMDET_MODEL_PATH and STREAMDET_MODEL_URI"))
	}
	if c.ModelURI != "" && !strings.HasPrefix(c.ModelURI, "s3://") {
		errs = append(errs, fmt.Errorf("STREAMDET_MODEL_URI %q: want s3://bucket/key", c.ModelURI))
	}
	if c.Concurrency < 1 || c.Concurrency > 1024 {
		errs = append(errs, fmt.Errorf("STREAMDET_DETECT_CONCURRENCY %d: must be in [1, 1024]", c.Concurrency))
	}
	if c.ModelName == "" {
		c.ModelName = strings.TrimSuffix(filepath.Base(c.ModelPath+c.ModelURI), ".onnx")
	}
	return c, errors.Join(errs...)
}

// LoadModel reads the model bytes from the file or the object store.
func LoadModel(ctx context.Context, c Config, store *objstore.Store) ([]byte, error) {
	if c.ModelPath != "" {
		return os.ReadFile(c.ModelPath)
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(c.ModelURI, "s3://"), "/")
	return store.Get(ctx, bucket, key, 2<<30)
}

// Detector serves frames with one engine.
type Detector struct {
	eng        *engine.Engine
	model      contract.Model
	stage      *pipeline.Stage
	store      *objstore.Store
	detections *kafka.Writer
	maxBytes   int64
}

// New creates a Detector publishing with detections (a writer for the detections topic).
func New(eng *engine.Engine, model contract.Model, stage *pipeline.Stage, store *objstore.Store, detections *kafka.Writer, maxBytes int) *Detector {
	return &Detector{eng: eng, model: model, stage: stage, store: store, detections: detections, maxBytes: int64(maxBytes)}
}

// ModelOf labels an engine's model.
func ModelOf(name, version string, eng *engine.Engine) contract.Model {
	return contract.Model{Name: name, Version: version, Digest: "sha256:" + eng.Info().SHA256}
}

func validateRef(r contract.FrameRef) error {
	var missing []string
	for name, empty := range map[string]bool{
		"frame_id": r.FrameID == "", "stream_id": r.StreamID == "", "bucket": r.Bucket == "", "key": r.Key == "",
		"sha256": len(r.SHA256) != 64, "content_type": r.ContentType == "", "width": r.Width <= 0, "height": r.Height <= 0,
	} {
		if empty {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("frame reference without a valid %s", strings.Join(missing, ", "))
	}
	return nil
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
	if err := validateRef(ref); err != nil {
		return &pipeline.Reject{Reason: contract.ReasonSchemaViolation, Err: err}
	}
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.String("streamdet.frame_id", ref.FrameID), attribute.String("streamdet.stream_id", ref.StreamID))

	t0 := time.Now()
	var data []byte
	err := d.stage.Retry(ctx, "minio", func() error {
		var gerr error
		data, gerr = d.store.Get(ctx, ref.Bucket, ref.Key, d.maxBytes)
		return gerr
	}, func(err error) bool { return errors.Is(err, objstore.ErrNotFound) })
	if err != nil {
		if reason, ok := pipeline.ImageReason(err); ok {
			return &pipeline.Reject{Reason: reason, Err: err}
		}
		return err
	}
	fetchTime := time.Since(t0)
	d.stage.Step(ctx, "fetch", fetchTime)
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != ref.SHA256 {
		return pipeline.Rejectf(contract.ReasonCorruptImage, "object %s/%s does not match the reference's sha256", ref.Bucket, ref.Key)
	}

	start := time.Now()
	res, err := d.eng.Detect(ctx, data)
	if err != nil {
		if reason, ok := pipeline.ImageReason(err); ok {
			return &pipeline.Reject{Reason: reason, Err: err}
		}
		if ctx.Err() != nil {
			return err
		}
		return &pipeline.Reject{Reason: contract.ReasonInference, Err: err}
	}
	d.traceStages(ctx, start, res.Timing)

	out := contract.Detections{
		FrameID: ref.FrameID, StreamID: ref.StreamID, CaptureTime: ref.CaptureTime, Frame: ref,
		Width: res.Width, Height: res.Height, Model: d.model, Route: contract.Route{Arm: "primary"},
		Detections: res.Detections,
		TimingMS: map[string]float64{
			"fetch": float64(fetchTime.Microseconds()) / 1000, "decode": res.Timing.DecodeMS, "preprocess": res.Timing.PreprocessMS,
			"infer": res.Timing.InferMS, "postprocess": res.Timing.PostprocessMS,
		},
		TraceID: span.SpanContext().TraceID().String(), DetectedAt: time.Now().UTC(),
	}
	if out.Detections == nil {
		out.Detections = []contract.Detection{}
	}
	body, _ := json.Marshal(out)
	return d.stage.Publish(ctx, d.detections, pipeline.Event{
		Key: ref.StreamID, ID: ref.FrameID + "/" + d.model.Name + "/" + d.model.Version, Type: contract.TypeDetections,
		Subject: ref.StreamID, Time: out.DetectedAt, Value: body,
	})
}

// traceStages records the engine's stages as child spans from its measured timings, so the
// engine itself stays free of telemetry.
func (d *Detector) traceStages(ctx context.Context, start time.Time, t engine.Timing) {
	at := start
	for _, s := range []struct {
		name string
		ms   float64
	}{{"decode", t.DecodeMS}, {"preprocess", t.PreprocessMS}, {"inference", t.InferMS}, {"postprocess", t.PostprocessMS}} {
		dur := time.Duration(s.ms * float64(time.Millisecond))
		_, span := d.stage.Tel.Tracer.Start(ctx, s.name, trace.WithTimestamp(at))
		span.End(trace.WithTimestamp(at.Add(dur)))
		d.stage.Step(ctx, s.name, dur)
		at = at.Add(dur)
	}
}
