package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/kafkax"
	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/pkg/telemetry"
)

// Runtime is what every stage's main sets up the same way: Kafka and object storage clients
// from the environment, the dead-letter writer, the Stage, readiness probes and the HTTP server.
//
// Lifecycle: Start; then Writer and Consume as the stage needs; Wait returns when every consumer
// has drained after ctx ended; Close shuts the server and writers.
type Runtime struct {
	Kafka  kafkax.Config
	Topics kafkax.Topics
	Store  *objstore.Store
	Health *service.Health
	Stage  *Stage
	Server *service.Server
	Tel    *telemetry.Telemetry

	writers []*kafka.Writer
	wg      sync.WaitGroup
	errMu   sync.Mutex
	errs    []error
}

// Start reads the Kafka and object storage configuration (validate reports every problem at
// once, with extra), creates the clients and starts the HTTP server on addr. buckets are
// created if missing, retrying while object storage is unreachable.
func Start(ctx context.Context, name string, env envconf.Env, tel *telemetry.Telemetry, addr string, extra error, buckets ...string) (*Runtime, error) {
	kc, oc := kafkax.FromEnv(env), objstore.FromEnv(env)
	if err := errors.Join(extra, kc.Validate(), oc.Validate(), env.Err()); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	rt := &Runtime{Kafka: kc, Topics: kc.Topics(), Health: service.NewHealth("kafka", "minio"), Tel: tel}
	var err error
	if rt.Store, err = objstore.New(oc); err != nil {
		return nil, err
	}
	dlq, err := rt.Writer(rt.Topics.DLQ)
	if err != nil {
		return nil, err
	}
	if rt.Stage, err = New(name, tel, rt.Health, dlq); err != nil {
		return nil, err
	}
	client, err := kc.Client()
	if err != nil {
		return nil, err
	}
	rt.Health.Probe("kafka-metadata", func(ctx context.Context) error {
		_, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{rt.Topics.DLQ}})
		return err
	})
	rt.Health.Probe("minio-ping", rt.Store.Ping)
	if rt.Server, err = service.Listen(addr, rt.Health, tel.Metrics); err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	tel.Logger.Info("listening", "addr", rt.Server.Addr())
	for _, b := range buckets {
		if err := rt.Stage.Retry(ctx, "minio", func() error { return rt.Store.EnsureBucket(ctx, b) }, func(error) bool { return false }); err != nil {
			rt.Close()
			return nil, err
		}
	}
	rt.Health.Set("minio", nil)
	rt.Health.Set("kafka", nil)
	return rt, nil
}

// Writer returns an acks=all writer for topic, closed by Close.
func (rt *Runtime) Writer(topic string) (*kafka.Writer, error) {
	w, err := rt.Kafka.Writer(topic)
	if err != nil {
		return nil, err
	}
	rt.writers = append(rt.writers, w)
	return w, nil
}

// Consume runs h on topic in group until ctx ends, in the background; Wait waits for it.
func (rt *Runtime) Consume(ctx context.Context, group, topic string, concurrency int, h func(context.Context, kafka.Message) error) error {
	c, err := kafkax.NewConsumer(rt.Kafka, kafkax.ConsumerConfig{
		Group: group, Topic: topic, Concurrency: concurrency, Logger: rt.Tel.Logger,
	})
	if err != nil {
		return err
	}
	_, err = rt.Tel.Meter.Int64ObservableGauge("streamdet_consumer_lag", metric.WithDescription("messages behind the end of the topic"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(c.Lag(), metric.WithAttributes(attribute.String("topic", topic), attribute.String("group", group)))
			return nil
		}))
	if err != nil {
		return err
	}
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		rt.Tel.Logger.Info("consuming", "topic", topic, "group", group, "concurrency", concurrency)
		if err := c.Run(ctx, rt.Stage.Handle(h)); err != nil {
			rt.errMu.Lock()
			rt.errs = append(rt.errs, err)
			rt.errMu.Unlock()
		}
	}()
	return nil
}

// Wait blocks until every consumer has stopped (ctx ended and in-flight messages drained).
func (rt *Runtime) Wait() error {
	rt.wg.Wait()
	rt.errMu.Lock()
	defer rt.errMu.Unlock()
	return errors.Join(rt.errs...)
}

// Close stops the HTTP server and closes the writers (flushing what they hold).
func (rt *Runtime) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if rt.Server != nil {
		errs = append(errs, rt.Server.Shutdown(ctx))
	}
	for _, w := range rt.writers {
		errs = append(errs, w.Close())
	}
	return errors.Join(errs...)
}
