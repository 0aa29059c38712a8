// Command ingest runs streamdet's ingest service; see package ingest and the README for its
// configuration (environment variables).
package main

import (
	"context"
	"errors"
	"os"

	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/pkg/telemetry"
	"github.com/streamdet/streamdet/services/ingest"
)

func main() { os.Exit(service.Main("ingest", run)) }

func run(ctx context.Context, env envconf.Env, tel *telemetry.Telemetry) error {
	cfg, cerr := ingest.ConfigFromEnv(env)
	rt, err := pipeline.Start(ctx, "ingest", env, tel, cfg.HTTPAddr, cerr, cfg.Bucket)
	if err != nil {
		return err
	}
	defer rt.Close()
	frames, err := rt.Writer(rt.Topics.Frames)
	if err != nil {
		return err
	}
	in := ingest.New(cfg, rt.Stage, rt.Store, frames)
	rt.Server.Handle("POST /v1/frames", in)
	err = rt.Consume(ctx, cfg.Group, rt.Topics.Raw, cfg.Concurrency, in.HandleRaw)
	if err == nil && cfg.Events {
		err = rt.Consume(ctx, cfg.Group+"-events", rt.Topics.Events, cfg.Concurrency, in.HandleEvent)
	}
	return errors.Join(err, rt.Wait())
}
