// Command sink runs streamdet's sink service; see package sink and the README for its
// configuration (environment variables).
package main

import (
	"context"
	"os"

	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/pkg/telemetry"
	"github.com/streamdet/streamdet/services/sink"
)

func main() { os.Exit(service.Main("sink", run)) }

func run(ctx context.Context, env envconf.Env, tel *telemetry.Telemetry) error {
	cfg, cerr := sink.ConfigFromEnv(env)
	rt, err := pipeline.Start(ctx, "sink", env, tel, cfg.HTTPAddr, cerr, cfg.Bucket)
	if err != nil {
		return err
	}
	defer rt.Close()
	s := sink.New(cfg, rt.Stage, rt.Store)
	go s.Run()
	// Concurrency = batch size: the rows of a batch wait together for their flush.
	if err := rt.Consume(ctx, cfg.Group, rt.Topics.Detections, cfg.BatchRows, s.Handle); err != nil {
		return err
	}
	err = rt.Wait()
	s.Close()
	return err
}
