package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamdet/streamdet/pkg/kafkax"
	"github.com/streamdet/streamdet/pkg/pipeline"
)

// Run is the service: it runs with cfg (validated first) and deps and returns when ctx ends (SIGTERM)
// and the work in flight has drained, or earlier with an error. cmd/ingest runs it as a
// process; detctl dev runs it in-process against embedded servers.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	deps.Deps = deps.Deps.WithDefaults(cfg.Config)
	var err error
	if deps.Store, err = pipeline.StoreOr(deps.Store, cfg.Config, deps.Telemetry); err != nil {
		return err
	}
	rt, err := pipeline.Start(ctx, pipeline.Options{
		Name: "ingest", Config: cfg.Config, ServesData: true, Buckets: []string{cfg.Bucket}, Store: deps.Store, Deps: deps.Deps,
	})
	if err != nil {
		return err
	}
	defer rt.Close()
	frames, err := rt.Writer(rt.Topics.Frames)
	if err != nil {
		return err
	}
	in := New(cfg, rt.Stage, deps.Store, frames)
	rt.Server.Handle("POST /v1/frames", in)
	_, err = rt.Consume(ctx, kafkax.ConsumerConfig{Group: cfg.Group, Topic: rt.Topics.Raw, Concurrency: cfg.Concurrency}, in.HandleRaw)
	if err == nil && cfg.Events {
		_, err = rt.Consume(ctx, kafkax.ConsumerConfig{Group: cfg.Group + "-events", Topic: rt.Topics.Events, Concurrency: cfg.Concurrency}, in.HandleEvent)
	}
	return errors.Join(err, rt.Wait())
}
