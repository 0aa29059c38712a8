package sink

import (
	"context"
	"fmt"

	"github.com/streamdet/streamdet/pkg/kafkax"
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/telemetry"
)

// Run is the service: it runs with cfg (validated first) and returns when ctx ends (SIGTERM)
// and the work in flight has drained, or earlier with an error. cmd/sink runs it as a process;
// detctl dev runs it in-process against embedded servers.
func Run(ctx context.Context, cfg Config, tel *telemetry.Telemetry) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	buckets := []string{cfg.Bucket}
	if cfg.Annotate && cfg.AnnotatedBucket != "" {
		buckets = append(buckets, cfg.AnnotatedBucket)
	}
	rt, err := pipeline.Start(ctx, tel, pipeline.Options{
		Name: "sink", Config: cfg.Config, ServesData: cfg.Annotate, Buckets: buckets,
	})
	if err != nil {
		return err
	}
	defer rt.Close()
	var view *View
	if cfg.Annotate {
		view = NewView(ViewConfig{Store: rt.Store, FramesBucket: cfg.FramesBucket, Bucket: cfg.AnnotatedBucket, TraceURL: cfg.TraceURL})
		vctx, stopView := context.WithCancel(context.WithoutCancel(ctx))
		defer stopView()
		go view.Run(vctx)
		rt.Server.Handle("/", view.Handler())
		tel.Logger.Info("live view", "url", "http://"+rt.Server.Addr()+"/")
	}
	s := New(rt.Work, cfg, rt.Stage, rt.Store, rt.Topics.Detections, view)
	go s.Run()
	// Concurrency = batch size: the rows of a batch wait together for their flush.
	c, err := rt.Consume(ctx, kafkax.ConsumerConfig{
		Group: cfg.Group, Topic: rt.Topics.Detections, Concurrency: cfg.BatchRows, OnAssign: s.Assigned,
	}, s.Handle)
	if err != nil {
		return err
	}
	s.flushMu.Lock()
	s.committed = c.Committed
	s.flushMu.Unlock()
	err = rt.Wait()
	s.Close()
	return err
}
