package sink

import (
	"context"

	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/telemetry"
)

// Run is the service: it starts from the environment and returns when ctx ends (SIGTERM) and
// the work in flight has drained, or earlier with an error. cmd/sink runs it as a process;
// detctl dev runs it in-process against embedded servers.
func Run(ctx context.Context, env envconf.Env, tel *telemetry.Telemetry) error {
	cfg, cerr := ConfigFromEnv(env)
	buckets := []string{cfg.Bucket}
	if cfg.Annotate && cfg.AnnotatedBucket != "" {
		buckets = append(buckets, cfg.AnnotatedBucket)
	}
	rt, err := pipeline.Start(ctx, "sink", env, tel, cfg.HTTPAddr, cerr, buckets...)
	if err != nil {
		return err
	}
	defer rt.Close()
	s := New(cfg, rt.Stage, rt.Store)
	go s.Run()
	if cfg.Annotate {
		s.view = NewView(rt.Store, cfg.AnnotatedBucket, cfg.TraceURL)
		vctx, stopView := context.WithCancel(context.WithoutCancel(ctx))
		defer stopView()
		go s.view.Run(vctx)
		rt.Server.Handle("/", s.view.Handler())
		tel.Logger.Info("live view", "url", "http://"+rt.Server.Addr()+"/")
	}
	// Concurrency = batch size: the rows of a batch wait together for their flush.
	if err := rt.Consume(ctx, cfg.Group, rt.Topics.Detections, cfg.BatchRows, s.Handle); err != nil {
		return err
	}
	err = rt.Wait()
	s.Close()
	return err
}
