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
// has drained after ctx ended; Close shuts the server and writers. From the moment ctx ends,
// everything — draining, the stage's last writes, Close — is bounded by DrainTimeout: Work, the
// context of that work, ends DrainTimeout after ctx does.
type Runtime struct {
	Kafka  kafkax.Config
	Topics kafkax.Topics
	Store  ObjectStore
	Health *service.Health
	Stage  *Stage
	Server *service.Server
	Tel    *telemetry.Telemetry
	// Work outlives the service's context by DrainTimeout: handlers and final flushes use it.
	Work         context.Context
	DrainTimeout time.Duration

	stopWork context.CancelFunc
	producer func(string) (Producer, error)
	writers  []Producer
	wg       sync.WaitGroup
	errMu    sync.Mutex
	errs     []error
}

// Config is what every stage shares: how it reaches Kafka and object storage, its listeners,
// and its shutdown bound. DefaultConfig and ConfigFromEnv make one; Validate names every bad value.
type Config struct {
	Kafka  kafkax.Config
	Store  objstore.Config
	Server service.ServerConfig
	// DrainTimeout bounds everything after SIGTERM: STREAMDET_DRAIN_TIMEOUT, default 20s, [1s, 10m].
	DrainTimeout time.Duration
	// DeadLetterBucket keeps the values of dead letters too large for the topic:
	// STREAMDET_DEADLETTER_BUCKET, default deadletters.
	DeadLetterBucket string
	// CPUPolicy is the scheduling policy of the service's process, set by its main
	// (service.CPUPolicy): STREAMDET_CPU_POLICY, default DefaultCPUPolicy(name).
	CPUPolicy service.CPUPolicy
}

// DefaultCPUPolicy is service name's default scheduling policy: batch for ingest and sink, which
// mostly wait on the network and so should not preempt the inference on a shared core; normal
// for detect.
func DefaultCPUPolicy(name string) service.CPUPolicy {
	if name == "ingest" || name == "sink" {
		return service.CPUBatch
	}
	return service.CPUNormal
}

// ConfigFromEnv reads the shared configuration of service name (ingest, detect, sink), whose
// data listener defaults to defAddr and serves data when servesData (then with authentication).
// Malformed values are recorded in env (env.Err()).
func ConfigFromEnv(env envconf.Env, name, defAddr string, servesData bool) Config {
	return Config{
		Kafka: kafkax.FromEnv(env), Store: objstore.FromEnv(env), Server: service.ServerFromEnv(env, name, defAddr, servesData),
		DrainTimeout:     env.Duration("STREAMDET_DRAIN_TIMEOUT", 20*time.Second),
		DeadLetterBucket: env.String("STREAMDET_DEADLETTER_BUCKET", "deadletters"),
		CPUPolicy:        service.CPUPolicy(env.String("STREAMDET_CPU_POLICY", string(DefaultCPUPolicy(name)))),
	}
}

// Validate checks the shared configuration of service name; servesData says whether its data
// listener serves data (and so needs authentication).
func (c Config) Validate(name string, servesData bool) error {
	errs := []error{c.Kafka.Validate(), c.Store.Validate(), c.Server.Validate(name, servesData), c.CPUPolicy.Validate()}
	if c.DrainTimeout < time.Second || c.DrainTimeout > 10*time.Minute {
		errs = append(errs, fmt.Errorf("STREAMDET_DRAIN_TIMEOUT %s: must be in [1s, 10m]", c.DrainTimeout))
	}
	return errors.Join(errs...)
}

// Options are what a stage tells Start.
type Options struct {
	Name       string // ingest, detect, sink
	Config     Config // validated by the stage
	ServesData bool   // whether the data listener serves data (and so needs auth)
	Buckets    []string
	// Store is the stage's object storage (see NewObjectStore); required.
	Store ObjectStore
	// Deps, with their defaults filled (Deps.WithDefaults).
	Deps Deps
}

// Start creates the clients of o.Config and starts the HTTP server. Buckets are created if
// missing, retrying while object storage is unreachable. On any error, what was opened is closed.
func Start(ctx context.Context, o Options) (*Runtime, error) {
	o.Deps = o.Deps.WithDefaults(o.Config)
	tel := o.Deps.Telemetry
	if o.Store == nil {
		return nil, errors.New("pipeline: Options.Store is required")
	}
	kc, drain, dlBucket := o.Config.Kafka, o.Config.DrainTimeout, o.Config.DeadLetterBucket
	srv := o.Config.Server
	if !o.ServesData {
		srv.Auth = service.AuthNone // health and metrics only: nothing to authenticate
	}
	auth, err := srv.Authenticator()
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	rt := &Runtime{Kafka: kc, Topics: kc.Topics(), Health: service.NewHealth("kafka", "minio"), Tel: tel, DrainTimeout: drain,
		Store: o.Store, producer: o.Deps.Producer}
	rt.Work, rt.stopWork = context.WithCancel(context.WithoutCancel(ctx))
	started := false
	defer func() {
		if !started {
			rt.Close() // every error path releases what was opened (writers, listeners)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
		case <-rt.Work.Done():
			return
		}
		select {
		case <-time.After(drain):
			rt.stopWork()
		case <-rt.Work.Done():
		}
	}()
	dlq, err := rt.Writer(rt.Topics.DLQ)
	if err != nil {
		return nil, err
	}
	if rt.Stage, err = New(o.Name, tel, rt.Health, dlq); err != nil {
		return nil, err
	}
	rt.Stage.Now = o.Deps.Now
	rt.Stage.Store, rt.Stage.DeadLetterBucket, rt.Stage.MaxMessageBytes = rt.Store, dlBucket, kc.MaxMessageBytes
	client, err := kc.Client()
	if err != nil {
		return nil, err
	}
	rt.Health.Probe("kafka-metadata", func(ctx context.Context) error {
		_, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{rt.Topics.DLQ}})
		return err
	})
	rt.Health.Probe("minio-ping", func(ctx context.Context) error { return rt.Store.Ping(ctx, dlBucket) })
	if rt.Server, err = service.Listen(srv, auth, rt.Health, tel.Metrics); err != nil {
		return nil, err
	}
	tel.Logger.Info("listening", "addr", rt.Server.Addr(), "admin", rt.Server.AdminAddr(), "auth", srv.Auth)
	for _, b := range append(o.Buckets, dlBucket) {
		if err := rt.Stage.Retry(ctx, "minio", func() error { return rt.Store.EnsureBucket(ctx, b) }, nil); err != nil {
			return nil, err
		}
	}
	rt.Health.Set("minio", nil)
	rt.Health.Set("kafka", nil)
	started = true
	return rt, nil
}

// Writer returns a producer for topic (Deps.Producer), closed by Close.
func (rt *Runtime) Writer(topic string) (Producer, error) {
	w, err := rt.producer(topic)
	if err != nil {
		return nil, err
	}
	rt.writers = append(rt.writers, w)
	return w, nil
}

// Consume runs h on cc.Topic in cc.Group until ctx ends, in the background (wrapped by the
// Stage's Handle); Wait waits for it. The drain timeout and logger are the Runtime's.
func (rt *Runtime) Consume(ctx context.Context, cc kafkax.ConsumerConfig, h func(context.Context, kafka.Message) error) (*kafkax.Consumer, error) {
	cc.Logger, cc.DrainTimeout = rt.Tel.Logger, rt.DrainTimeout
	// While fetching fails (a broker or the group coordinator lost) the service is not ready;
	// the consumer retries and gives up only after its FetchRetryTimeout.
	component := "consume " + cc.Topic
	cc.OnFetchError = func(err error) { rt.Health.Set(component, err) }
	c, err := kafkax.NewConsumer(rt.Kafka, cc)
	if err != nil {
		return nil, err
	}
	topic, group := cc.Topic, cc.Group
	_, err = rt.Tel.Meter.Int64ObservableGauge("streamdet_consumer_lag", metric.WithDescription("messages behind the end of the topic"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(c.Lag(), metric.WithAttributes(attribute.String("topic", topic), attribute.String("group", group)))
			return nil
		}))
	if err != nil {
		return nil, err
	}
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		rt.Tel.Logger.Info("consuming", "topic", topic, "group", group, "concurrency", cc.Concurrency)
		if err := c.Run(ctx, rt.Stage.Handle(h)); err != nil {
			rt.errMu.Lock()
			rt.errs = append(rt.errs, err)
			rt.errMu.Unlock()
		}
	}()
	return c, nil
}

// Wait blocks until every consumer has stopped (ctx ended and in-flight messages drained).
func (rt *Runtime) Wait() error {
	rt.wg.Wait()
	rt.errMu.Lock()
	defer rt.errMu.Unlock()
	return errors.Join(rt.errs...)
}

// Close stops the HTTP server and closes the writers (flushing what they hold), within what is
// left of the drain timeout.
func (rt *Runtime) Close() error {
	defer rt.stopWork()
	ctx, cancel := context.WithTimeout(context.Background(), rt.DrainTimeout)
	defer cancel()
	defer context.AfterFunc(rt.Work, cancel)()
	var errs []error
	if rt.Server != nil {
		errs = append(errs, rt.Server.Shutdown(ctx))
	}
	for _, w := range rt.writers {
		errs = append(errs, w.Close())
	}
	return errors.Join(errs...)
}
