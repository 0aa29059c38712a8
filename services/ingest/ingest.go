// Package ingest is streamdet's entry stage: it takes encoded frames from Kafka (raw image
// bytes on the raw-frames topic), from HTTP uploads and from object-storage bucket
// notifications, checks each is a JPEG or PNG within the byte and pixel limits from its header
// alone, stores the bytes in object storage under a content-addressed key and publishes a frame
// reference (claim check) on the frames topic. A refused frame goes to the dead-letter topic (or,
// over HTTP, back to the caller) with its reason.
package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/imageinfo"
	"github.com/streamdet/streamdet/pkg/kafkax"
	"github.com/streamdet/streamdet/pkg/pipeline"
)

// Config is ingest's configuration: DefaultConfig, or ConfigFromEnv; Validate names every bad
// value and its limit.
type Config struct {
	// Config is what every stage shares: Kafka, object storage, the listeners (Server serves
	// POST /v1/frames, authenticated: STREAMDET_INGEST_ADDR (default :8081),
	// STREAMDET_INGEST_AUTH, STREAMDET_INGEST_TOKENS_FILE, ...), the drain timeout.
	pipeline.Config
	// Group is the consumer group. STREAMDET_INGEST_GROUP, default streamdet-ingest.
	Group string
	// Bucket holds frames. STREAMDET_FRAMES_BUCKET, default frames.
	Bucket string
	// Concurrency is frames in flight per instance. STREAMDET_INGEST_CONCURRENCY, default 8.
	Concurrency int
	// Limits: STREAMDET_MAX_FRAME_BYTES (default 8 MiB), STREAMDET_MAX_FRAME_PIXELS (default 50,000,000).
	Limits imageinfo.Limits
	// Events enables the bucket-notification consumer. STREAMDET_INGEST_EVENTS, default true.
	Events bool
	// EventBuckets are the buckets whose notifications ingest acts on (comma-separated):
	// STREAMDET_INGEST_EVENT_BUCKETS, default none. A notification naming any other bucket is
	// dead-lettered as forbidden, so a message cannot make ingest read an arbitrary object.
	EventBuckets []string
}

// DefaultConfig is the configuration with every default (the required Kafka and object
// storage endpoints and credentials left empty).
func DefaultConfig() Config { return fromEnv(envconf.Map(nil)) }

// ConfigFromEnv reads the Config from the environment and validates it.
func ConfigFromEnv(env envconf.Env) (Config, error) {
	c := fromEnv(env)
	return c, errors.Join(env.Err(), c.Validate())
}

func fromEnv(env envconf.Env) Config {
	return Config{
		Config:      pipeline.ConfigFromEnv(env, "ingest", DefaultAddr, true),
		Group:       env.String("STREAMDET_INGEST_GROUP", "streamdet-ingest"),
		Bucket:      env.String("STREAMDET_FRAMES_BUCKET", "frames"),
		Concurrency: env.Int("STREAMDET_INGEST_CONCURRENCY", 8),
		Limits: imageinfo.Limits{
			MaxBytes:  env.Int("STREAMDET_MAX_FRAME_BYTES", 8<<20),
			MaxPixels: env.Int("STREAMDET_MAX_FRAME_PIXELS", 50_000_000),
		},
		Events:       env.Bool("STREAMDET_INGEST_EVENTS", true),
		EventBuckets: env.List("STREAMDET_INGEST_EVENT_BUCKETS", nil),
	}
}

// Validate checks every value, naming each bad one and its limit.
func (c Config) Validate() error {
	errs := []error{c.Config.Validate("ingest", true), c.Limits.Validate(), contract.CheckID("STREAMDET_INGEST_GROUP", c.Group)}
	if c.Concurrency < 1 || c.Concurrency > 1024 {
		errs = append(errs, fmt.Errorf("STREAMDET_INGEST_CONCURRENCY %d: must be in [1, 1024]", c.Concurrency))
	}
	for _, b := range c.EventBuckets {
		if b == c.Bucket {
			errs = append(errs, fmt.Errorf("STREAMDET_INGEST_EVENT_BUCKETS: %s is the frames bucket (ingest would ingest its own output)", b))
		}
	}
	return errors.Join(errs...)
}

// Frame is one incoming frame, whatever its source.
type Frame struct {
	Data        []byte
	StreamID    string
	FrameID     string
	CaptureTime time.Time
	Sequence    int64
}

// Ingester stores frames and publishes their references.
type Ingester struct {
	cfg    Config
	stage  *pipeline.Stage
	store  Store
	frames pipeline.Producer
}

// Store is what ingest needs from object storage: frames written (and their buckets ensured,
// the runtime's readiness ping), and uploaded objects read back for bucket notifications.
// *objstore.Store implements it.
type Store interface {
	pipeline.ObjectStore
	Get(ctx context.Context, bucket, key string, max int64) ([]byte, error)
}

// Deps are what the service uses besides its Config (see pipeline.Deps); a nil Store is the
// object storage client of Config.Store.
type Deps struct {
	pipeline.Deps
	Store Store
}

// New creates an Ingester publishing references with frames (a producer for the frames topic).
func New(cfg Config, stage *pipeline.Stage, store Store, frames pipeline.Producer) *Ingester {
	return &Ingester{cfg: cfg, stage: stage, store: store, frames: frames}
}

// Ingest validates, stores and publishes one frame. A permanent refusal is a *pipeline.Reject;
// anything else is retried inside until ctx ends.
func (in *Ingester) Ingest(ctx context.Context, f Frame) (contract.FrameRef, error) {
	span := trace.SpanFromContext(ctx)
	if err := contract.CheckIDs("stream id", f.StreamID, "frame id", f.FrameID); err != nil {
		return contract.FrameRef{}, &pipeline.Reject{Reason: contract.ReasonInvalidID, Err: err}
	}
	cfg, err := imageinfo.DecodeConfig(f.Data, in.cfg.Limits)
	if err != nil {
		reason, _ := pipeline.RejectReason(err)
		return contract.FrameRef{}, &pipeline.Reject{Reason: reason, Err: err}
	}
	sum := sha256.Sum256(f.Data)
	digest := hex.EncodeToString(sum[:])
	ref := contract.FrameRef{
		FrameID: f.FrameID, StreamID: f.StreamID, CaptureTime: f.CaptureTime.UTC(), Sequence: f.Sequence,
		Bucket: in.cfg.Bucket, Key: contract.FrameKey(digest, cfg.Format.Ext()),
		ContentType: cfg.Format.ContentType(), Width: cfg.Width, Height: cfg.Height,
		Size: int64(len(f.Data)), SHA256: digest,
	}
	span.SetAttributes(attribute.String("streamdet.frame_id", ref.FrameID), attribute.String("streamdet.stream_id", ref.StreamID))
	t0 := time.Now()
	// Content-addressed: storing the same bytes twice writes the same object.
	if err := in.stage.Retry(ctx, "minio", func() error {
		return in.store.Put(ctx, ref.Bucket, ref.Key, f.Data, ref.ContentType)
	}, nil); err != nil {
		return contract.FrameRef{}, err
	}
	in.stage.Step(ctx, "put", time.Since(t0))
	body, _ := json.Marshal(ref)
	err = in.stage.Publish(ctx, in.frames, pipeline.Event{
		Key: ref.StreamID, ID: ref.FrameID, Type: contract.TypeFrameRef, Subject: ref.StreamID, Time: ref.CaptureTime, Value: body,
	})
	return ref, err
}

// HandleRaw is the handler of the raw-frames topic: the value is the image, the key the stream
// id, and every CloudEvents header optional.
func (in *Ingester) HandleRaw(ctx context.Context, m kafka.Message) error {
	f := Frame{Data: m.Value, StreamID: string(m.Key), CaptureTime: m.Time, Sequence: m.Offset}
	if v, ok := kafkax.Header(m.Headers, contract.HeaderSubject); ok && v != "" {
		f.StreamID = v
	}
	if f.StreamID == "" {
		f.StreamID = "default"
	}
	if v, ok := kafkax.Header(m.Headers, contract.HeaderID); ok && v != "" {
		f.FrameID = v
	} else {
		f.FrameID = contract.DerivedFrameID(m.Topic, m.Partition, m.Offset)
	}
	if v, ok := kafkax.Header(m.Headers, contract.HeaderTime); ok {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			f.CaptureTime = t
		}
	}
	if v, ok := kafkax.Header(m.Headers, contract.HeaderSequence); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			f.Sequence = n
		}
	}
	_, err := in.Ingest(ctx, f) // checks the ids
	return err
}

// DefaultAddr is the data listener's default address (STREAMDET_INGEST_ADDR).
const DefaultAddr = ":8081"
