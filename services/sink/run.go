package sink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

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
	if err := followDevices(ctx, cfg, rt); err != nil {
		stop()
		return err
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

// followDevices consumes the devices topic into a Fleet whose gauges the alert on offline edge
// devices reads (cfg.Devices: auto follows it only when the topic exists).
func followDevices(ctx context.Context, cfg Config, rt *pipeline.Runtime) error {
	if cfg.Devices == "false" {
		return nil
	}
	topic := rt.Topics.Devices
	if cfg.Devices == "auto" {
		ok, err := topicExists(ctx, rt.Kafka, topic)
		if err != nil {
			return fmt.Errorf("devices topic %s: %w", topic, err)
		}
		if !ok {
			rt.Tel.Logger.Info("not following edge devices: no devices topic (STREAMDET_SINK_DEVICES=auto)", "topic", topic)
			return nil
		}
	}
	f := NewFleet(cfg.MaxDevices, nil)
	if err := f.Register(rt.Tel.Meter); err != nil {
		return err
	}
	_, err := rt.Consume(ctx, kafkax.ConsumerConfig{Group: cfg.Group + "-devices", Topic: topic, Concurrency: 1}, f.Handle)
	return err
}

// topicExists asks the cluster whether topic exists and may be read (transient failures
// retried for 30 s).
func topicExists(ctx context.Context, kc kafkax.Config, topic string) (bool, error) {
	client, err := kc.Client()
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err == nil && len(md.Topics) == 1 {
			switch terr := md.Topics[0].Error; {
			case terr == nil:
				return true, nil
			case errors.Is(terr, kafka.UnknownTopicOrPartition), errors.Is(terr, kafka.TopicAuthorizationFailed):
				return false, nil // absent, or not this service's to read
			default:
				err = terr
			}
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("metadata: %w", errors.Join(err, ctx.Err()))
		case <-time.After(time.Second):
		}
	}
}
