package sink

import (
	"context"
	"fmt"

	"github.com/streamdet/streamdet/pkg/kafkax"
	"github.com/streamdet/streamdet/pkg/pipeline"
)

// Run is the service: it runs with cfg (validated first) and returns when ctx ends (SIGTERM)
// and the work in flight has drained, or earlier with an error. cmd/sink runs it as a process;
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
	buckets := []string{cfg.Bucket}
	if cfg.Annotate && cfg.AnnotatedBucket != "" {
		buckets = append(buckets, cfg.AnnotatedBucket)
	}
	rt, err := pipeline.Start(ctx, pipeline.Options{
		Name: "sink", Config: cfg.Config, ServesData: cfg.Annotate, Buckets: buckets, Store: deps.Store, Deps: deps.Deps,
	})
	if err != nil {
		return err
	}
	defer rt.Close()
	var view *View
	if cfg.Annotate {
		view = NewView(ViewConfig{Store: deps.Store, Now: deps.Now, FramesBucket: cfg.FramesBucket, Bucket: cfg.AnnotatedBucket, TraceURL: cfg.TraceURL})
		vctx, stopView := context.WithCancel(context.WithoutCancel(ctx))
		defer stopView()
		go view.Run(vctx)
		rt.Server.Handle("/", view.Handler())
		tel.Logger.Info("live view", "url", "http://"+rt.Server.Addr()+"/")
	}
	s := New(Options{Work: rt.Work, Config: cfg, Stage: rt.Stage, Store: deps.Store, Topic: rt.Topics.Detections, View: view})
	sctx, stopSink := context.WithCancel(context.WithoutCancel(ctx))
	sinkDone := make(chan struct{})
	go func() {
		defer close(sinkDone)
		s.Run(sctx)
	}()
	stop := func() {
		stopSink()
		<-sinkDone
	}
	// Concurrency = batch size: the rows of a batch wait together for their flush.
	c, err := rt.Consume(ctx, kafkax.ConsumerConfig{
		Group: cfg.Group, Topic: rt.Topics.Detections, Concurrency: cfg.BatchRows, OnAssign: s.Assigned,
	}, s.Handle)
	if err != nil {
		stop()
		return err
	}
	s.TrackCommitted(c.Committed)
	err = rt.Wait()
	stop() // the consumer has stopped: write what is left
	return err
}
