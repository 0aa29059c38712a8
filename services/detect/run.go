package detect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/streamdet/streamdet/pkg/kafkax"
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/pkg/routing"
	"github.com/streamdet/streamdet/services/detect/engine"
)

// Run is the service: it runs with cfg (validated first) and returns when ctx ends (SIGTERM)
// and the work in flight has drained, or earlier with an error. cmd/detect runs it as a process;
// detctl dev runs it in-process against embedded servers.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	deps.Deps = deps.Deps.WithDefaults(cfg.Config)
	tel := deps.Telemetry
	var err error
	if deps.Store, err = pipeline.StoreOr(deps.Store, cfg.Config, deps.Telemetry); err != nil {
		return err
	}
	rt, err := pipeline.Start(ctx, pipeline.Options{Name: "detect", Config: cfg.Config, Store: deps.Store, Deps: deps.Deps})
	if err != nil {
		return err
	}
	defer rt.Close()
	rt.Health.Set("model", errors.New("loading"))
	detections, err := rt.Writer(rt.Topics.Detections)
	if err != nil {
		return err
	}
	var models Resolver
	var recorder StatsRecorder
	var shadow pipeline.Producer // only routing has shadow versions
	if cfg.Routed() {
		if shadow, err = rt.Writer(rt.Topics.Shadow); err != nil {
			return err
		}
		routes := deps.Routes
		if routes == nil {
			store, err := routing.NewStore(cfg.Redis)
			if err != nil {
				return err
			}
			defer store.Close()
			routes = store
		}
		reg, err := registry.New(ctx, deps.Store, cfg.ModelsBucket)
		if err != nil {
			return err
		}
		m := NewManager(ManagerConfig{
			// Served only if the digest matches the one recorded in Redis at push time.
			Name: cfg.ModelName, Registry: reg.WithLedger(routes), Routes: routes, Resync: cfg.RouteResync, Now: deps.Now,
			Engine: cfg.Engine, UnloadGrace: cfg.UnloadGrace, Logger: tel.Logger,
			// Redis unreachable: keep serving the last route; degraded, not unready.
			OnHealth: func(err error) { rt.Health.Degrade("routes", err) },
		})
		mctx, stopManager := context.WithCancel(context.WithoutCancel(ctx))
		managed := make(chan struct{})
		go func() {
			defer close(managed)
			m.Run(mctx)
		}()
		defer func() { stopManager(); <-managed }() // engines closed before Run returns
		models, recorder = m, routes
		rt.Health.Set("model", nil) // readiness of a version is per frame: frames wait for one
	} else {
		model, err := LoadModel(ctx, cfg, deps.Store)
		if err != nil {
			return fmt.Errorf("load model: %w", err)
		}
		if cfg.NamesPath != "" {
			b, err := os.ReadFile(cfg.NamesPath)
			if err != nil {
				return fmt.Errorf("class names: %w", err)
			}
			cfg.Engine.Names = engine.ReadNames(b)
		}
		eng, err := engine.New(model, cfg.Engine)
		if err != nil {
			return fmt.Errorf("model %s: %w", cfg.ModelName, err)
		}
		defer eng.Close()
		if err := eng.Warm(ctx); err != nil {
			return err
		}
		info := eng.Info()
		logFallback(tel.Logger, cfg.Engine.Provider.Name, info)
		tel.Logger.Info("model loaded", "name", cfg.ModelName, "version", cfg.ModelVersion, "format", info.Format,
			"input", fmt.Sprintf("%dx%d", info.InputWidth, info.InputHeight), "sha256", info.SHA256, "onnxruntime", engine.RuntimeVersion(), "provider", info.Provider)
		models = Static{Served: Served{Eng: eng, Model: ModelOf(cfg.ModelName, cfg.ModelVersion, eng), Arm: routing.ArmPrimary}}
		rt.Health.Set("model", nil)
	}
	d, err := New(Options{Models: models, Stage: rt.Stage, Store: deps.Store, Detections: detections, Shadow: shadow,
		MaxBytes: cfg.Engine.Limits.MaxBytes, FramesBucket: cfg.FramesBucket, Recorder: recorder, Drift: cfg.Drift})
	if err != nil {
		return err
	}
	sctx, stopStats := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStats()
	go d.RunStats(sctx)
	if _, err := rt.Consume(ctx, kafkax.ConsumerConfig{Group: cfg.Group, Topic: rt.Topics.Frames, Concurrency: cfg.Concurrency}, d.Handle); err != nil {
		return err
	}
	return rt.Wait()
}

// logFallback warns when an engine runs on the CPU instead of the execution provider asked for
// (only with STREAMDET_ENGINE_PROVIDER_FALLBACK=cpu; otherwise the engine refused to start).
func logFallback(log *slog.Logger, asked engine.Provider, info engine.Info) {
	if info.Fallback != "" {
		log.Warn("execution provider unavailable: running on the CPU as STREAMDET_ENGINE_PROVIDER_FALLBACK=cpu allows",
			"provider", asked, "reason", info.Fallback)
	}
}
