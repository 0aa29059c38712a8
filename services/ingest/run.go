package ingest

import (
	"context"
	"errors"

	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/telemetry"
)

// Run is the service: it starts from the environment and returns when ctx ends (SIGTERM) and
// the work in flight has drained, or earlier with an error. cmd/ingest runs it as a process;
// detctl dev runs it in-process against embedded servers.
func Run(ctx context.Context, env envconf.Env, tel *telemetry.Telemetry) error {
	cfg, cerr := ConfigFromEnv(env)
	rt, err := pipeline.Start(ctx, "ingest", env, tel, cfg.HTTPAddr, cerr, cfg.Bucket)
	if err != nil {
		return err
	}
	defer rt.Close()
	frames, err := rt.Writer(rt.Topics.Frames)
	if err != nil {
		return err
	}
	in := New(cfg, rt.Stage, rt.Store, frames)
	rt.Server.Handle("POST /v1/frames", in)
	err = rt.Consume(ctx, cfg.Group, rt.Topics.Raw, cfg.Concurrency, in.HandleRaw)
	if err == nil && cfg.Events {
		err = rt.Consume(ctx, cfg.Group+"-events", rt.Topics.Events, cfg.Concurrency, in.HandleEvent)
	}
	return errors.Join(err, rt.Wait())
}
