package edge

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/kafkax"
	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/routing"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/services/detect"
	"github.com/streamdet/streamdet/services/detect/engine"
)

// DefaultAddr is the edge runtime's listener (health, metrics and /status): STREAMDET_EDGE_ADDR.
const DefaultAddr = ":8084"

// Camera is one video source the device reads.
type Camera struct {
	// ID names the camera on this device; its stream id is "<device>.<id>".
	ID string
	// Source is a video file, an rtsp:// or http(s):// stream, or a V4L2 device (/dev/videoN).
	Source string
}

// Config is the edge runtime's configuration: DefaultConfig, or ConfigFromEnv; Validate names
// every bad value and its limit.
type Config struct {
	// Kafka is the uplink (STREAMDET_KAFKA_*): detections and heartbeats go to its
	// <prefix>.detections and <prefix>.devices topics.
	Kafka kafkax.Config
	// Store is the central object storage (STREAMDET_MINIO_*): the registry's models are read from
	// it (read-only credentials suffice).
	Store objstore.Config
	// Redis is where routes live (STREAMDET_REDIS_*), when following the group's route.
	Redis routing.RedisConfig
	// Server: health, metrics and /status on STREAMDET_EDGE_ADDR (default :8084).
	Server service.ServerConfig

	// DeviceID identifies the box (STREAMDET_EDGE_DEVICE_ID, default the host name); Group is
	// its fleet group (STREAMDET_EDGE_GROUP, default "default"): it is the key the model's route
	// places, so a route pins or weights whole groups.
	DeviceID, Group string
	// Cameras: STREAMDET_EDGE_CAMERAS, "id=source,id=source" (a source may not contain a comma).
	Cameras []Camera
	// FPS caps each camera's frame rate (STREAMDET_EDGE_FPS, default 5, (0, 120]); frames the
	// model cannot keep up with are skipped, the newest always wins.
	FPS float64
	// Loop replays video files when they end (STREAMDET_EDGE_LOOP, default false); streams and
	// devices are always reconnected.
	Loop bool
	// DataDir holds the queue and the model cache (STREAMDET_EDGE_DATA_DIR, default
	// /var/lib/streamdet-edge).
	DataDir string
	// QueueMaxBytes bounds the store-and-forward queue (STREAMDET_EDGE_QUEUE_MAX_BYTES, default
	// 256 MiB, at least 64 KiB); DropPolicy (STREAMDET_EDGE_QUEUE_DROP: oldest, the default, or
	// newest) says what a full queue gives up.
	QueueMaxBytes int64
	DropPolicy    DropPolicy
	// Heartbeat is how often the device reports itself (STREAMDET_EDGE_HEARTBEAT, default 10s).
	Heartbeat time.Duration
	// ModelPath serves one model file (STREAMDET_MODEL_PATH) instead of following the route of
	// ModelName (STREAMDET_MODEL_NAME) from the registry (STREAMDET_MODELS_BUCKET, default models).
	ModelPath, ModelName, ModelVersion, ModelsBucket string
	// NamesPath is a class-names file for the model file (STREAMDET_MODEL_NAMES_PATH; default the
	// model's metadata). Registry versions carry their names in their manifests.
	NamesPath string
	// RouteResync bounds how stale the route can get (STREAMDET_ROUTE_RESYNC, default 1s).
	RouteResync time.Duration
	// ProviderFallback: STREAMDET_ENGINE_PROVIDER_FALLBACK, as detect.
	ProviderFallback string
	// Engine: as detect (detect.EngineFromEnv).
	Engine engine.Config
	// DrainTimeout bounds shutdown (STREAMDET_DRAIN_TIMEOUT, default 10s).
	DrainTimeout time.Duration

	// SnapshotRules is a JSON file of event snapshot rules (STREAMDET_EDGE_SNAPSHOT_RULES; see
	// SnapshotRule); without it no frame leaves the device. Snapshots go to FramesBucket
	// (STREAMDET_FRAMES_BUCKET, default frames; content-addressed, as ingest stores frames) and
	// their annotated copies to AnnotatedBucket (STREAMDET_ANNOTATED_BUCKET, default annotated),
	// through a queue on disk bounded by SnapshotMaxBytes (STREAMDET_EDGE_SNAPSHOT_MAX_BYTES,
	// default 1 GiB, at least 1 MiB; the oldest are dropped).
	SnapshotRules                 string
	FramesBucket, AnnotatedBucket string
	SnapshotMaxBytes              int64
}

// DefaultConfig is the configuration with every default.
func DefaultConfig() Config { return fromEnv(envconf.Map(nil)) }

// ConfigFromEnv reads the Config from the environment and validates it.
func ConfigFromEnv(env envconf.Env) (Config, error) {
	c := fromEnv(env)
	return c, errors.Join(env.Err(), c.Validate())
}

func fromEnv(env envconf.Env) Config {
	host, _ := os.Hostname()
	c := Config{
		Kafka: kafkax.FromEnv(env), Store: objstore.FromEnv(env), Redis: routing.RedisFromEnv(env),
		Server:           service.ServerFromEnv(env, "edge", DefaultAddr, false),
		DeviceID:         env.String("STREAMDET_EDGE_DEVICE_ID", host),
		Group:            env.String("STREAMDET_EDGE_GROUP", "default"),
		FPS:              env.Float("STREAMDET_EDGE_FPS", 5),
		Loop:             env.Bool("STREAMDET_EDGE_LOOP", false),
		DataDir:          env.String("STREAMDET_EDGE_DATA_DIR", "/var/lib/streamdet-edge"),
		QueueMaxBytes:    int64(env.Int("STREAMDET_EDGE_QUEUE_MAX_BYTES", 256<<20)),
		DropPolicy:       DropPolicy(env.String("STREAMDET_EDGE_QUEUE_DROP", string(DropOldest))),
		Heartbeat:        env.Duration("STREAMDET_EDGE_HEARTBEAT", 10*time.Second),
		ModelPath:        env.String("STREAMDET_MODEL_PATH", ""),
		ModelName:        env.String("STREAMDET_MODEL_NAME", ""),
		ModelVersion:     env.String("STREAMDET_MODEL_VERSION", "1"),
		ModelsBucket:     env.String("STREAMDET_MODELS_BUCKET", "models"),
		NamesPath:        env.String("STREAMDET_MODEL_NAMES_PATH", ""),
		RouteResync:      env.Duration("STREAMDET_ROUTE_RESYNC", time.Second),
		ProviderFallback: env.String("STREAMDET_ENGINE_PROVIDER_FALLBACK", ""),
		Engine:           detect.EngineFromEnv(env),
		DrainTimeout:     env.Duration("STREAMDET_DRAIN_TIMEOUT", 10*time.Second),
		SnapshotRules:    env.String("STREAMDET_EDGE_SNAPSHOT_RULES", ""),
		FramesBucket:     env.String("STREAMDET_FRAMES_BUCKET", "frames"),
		AnnotatedBucket:  env.String("STREAMDET_ANNOTATED_BUCKET", "annotated"),
		SnapshotMaxBytes: int64(env.Int("STREAMDET_EDGE_SNAPSHOT_MAX_BYTES", 1<<30)),
	}
	for _, item := range env.List("STREAMDET_EDGE_CAMERAS", nil) {
		id, src, _ := strings.Cut(item, "=")
		c.Cameras = append(c.Cameras, Camera{ID: strings.TrimSpace(id), Source: strings.TrimSpace(src)})
	}
	if c.ModelName == "" && c.ModelPath != "" {
		c.ModelName = strings.TrimSuffix(filepath.Base(c.ModelPath), ".onnx")
	}
	return c
}

// Routed reports whether the device follows its group's route (no model file given).
func (c Config) Routed() bool { return c.ModelPath == "" }

// StreamID is the stream id of a camera: "<device>.<camera>".
func (c Config) StreamID(cam Camera) string { return c.DeviceID + "." + cam.ID }

// Validate checks every value, naming each bad one and its limit.
func (c Config) Validate() error {
	errs := []error{c.Kafka.Validate(), c.Server.Validate("edge", false), c.Engine.Validate(), c.Engine.Limits.Validate(),
		contract.CheckID("STREAMDET_EDGE_DEVICE_ID", c.DeviceID), contract.CheckID("STREAMDET_EDGE_GROUP", c.Group),
		detect.CheckProviderFallback(c.ProviderFallback), contract.CheckID("STREAMDET_MODEL_VERSION", c.ModelVersion)}
	if c.Routed() || c.SnapshotRules != "" {
		errs = append(errs, c.Store.Validate())
	}
	if c.SnapshotRules != "" && c.SnapshotMaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("STREAMDET_EDGE_SNAPSHOT_MAX_BYTES %d: must be at least 1048576", c.SnapshotMaxBytes))
	}
	if c.Routed() {
		errs = append(errs, c.Redis.Validate())
		if c.ModelName == "" {
			errs = append(errs, errors.New("STREAMDET_MODEL_NAME is required to follow the registry (or set STREAMDET_MODEL_PATH)"))
		}
	}
	if c.ModelName != "" {
		errs = append(errs, contract.CheckID("STREAMDET_MODEL_NAME", c.ModelName))
	}
	if len(c.Cameras) == 0 || len(c.Cameras) > 64 {
		errs = append(errs, fmt.Errorf("STREAMDET_EDGE_CAMERAS: %d cameras, want 1 to 64 (id=source,…)", len(c.Cameras)))
	}
	seen := map[string]bool{}
	for _, cam := range c.Cameras {
		if err := contract.CheckID("STREAMDET_EDGE_CAMERAS: camera id", cam.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := contract.CheckID("stream id of camera "+cam.ID, c.StreamID(cam)); err != nil {
			errs = append(errs, err)
		}
		if seen[cam.ID] {
			errs = append(errs, fmt.Errorf("STREAMDET_EDGE_CAMERAS: camera %s twice", cam.ID))
		}
		seen[cam.ID] = true
		if cam.Source == "" {
			errs = append(errs, fmt.Errorf("STREAMDET_EDGE_CAMERAS: camera %s has no source", cam.ID))
		}
	}
	if c.FPS <= 0 || c.FPS > 120 {
		errs = append(errs, fmt.Errorf("STREAMDET_EDGE_FPS %g: must be in (0, 120]", c.FPS))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("STREAMDET_EDGE_DATA_DIR is required"))
	}
	if c.QueueMaxBytes < 64<<10 {
		errs = append(errs, fmt.Errorf("STREAMDET_EDGE_QUEUE_MAX_BYTES %d: must be at least 65536", c.QueueMaxBytes))
	}
	if c.DropPolicy != DropOldest && c.DropPolicy != DropNewest {
		errs = append(errs, fmt.Errorf("STREAMDET_EDGE_QUEUE_DROP %q: want oldest or newest", c.DropPolicy))
	}
	if c.Heartbeat < time.Second || c.Heartbeat > time.Hour {
		errs = append(errs, fmt.Errorf("STREAMDET_EDGE_HEARTBEAT %s: must be in [1s, 1h]", c.Heartbeat))
	}
	if c.RouteResync < 100*time.Millisecond || c.RouteResync > time.Minute {
		errs = append(errs, fmt.Errorf("STREAMDET_ROUTE_RESYNC %s: must be in [100ms, 1m]", c.RouteResync))
	}
	if c.DrainTimeout < time.Second || c.DrainTimeout > 10*time.Minute {
		errs = append(errs, fmt.Errorf("STREAMDET_DRAIN_TIMEOUT %s: must be in [1s, 10m]", c.DrainTimeout))
	}
	return errors.Join(errs...)
}
