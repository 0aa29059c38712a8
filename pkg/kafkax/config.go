// Package kafkax is streamdet's Kafka layer over segmentio/kafka-go: configuration from the
// environment (brokers, TLS, SASL), topic names, writers that wait for every in-sync replica, a
// consumer that runs a handler on several messages at once yet commits each partition's offsets
// strictly in order and only after the handler has finished with them, and W3C trace-context
// propagation through message headers.
package kafkax

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/tlsconf"
)

// Config is how a service reaches Kafka. FromEnv reads it; Validate names what is wrong.
type Config struct {
	// Brokers are the bootstrap brokers. STREAMDET_KAFKA_BROKERS, comma-separated. Required.
	Brokers []string
	// TopicPrefix prefixes every topic name. STREAMDET_TOPIC_PREFIX, default "streamdet".
	TopicPrefix string
	// EventsTopic overrides <prefix>.frames.events, where object storage publishes bucket
	// notifications. STREAMDET_EVENTS_TOPIC.
	EventsTopic string
	// TLS: STREAMDET_KAFKA_TLS=true, STREAMDET_KAFKA_TLS_CA_FILE, _CERT_FILE, _KEY_FILE (see tlsconf).
	TLS tlsconf.Config
	// SASLInsecure allows SASL credentials over a connection without TLS:
	// STREAMDET_KAFKA_SASL_INSECURE=true. Refused otherwise, so that a password never crosses
	// the network in the clear by accident.
	SASLInsecure bool
	// SASLMechanism is "", "plain", "scram-sha-256" or "scram-sha-512". STREAMDET_KAFKA_SASL_MECHANISM.
	SASLMechanism string
	// SASLUser and SASLPassword: STREAMDET_KAFKA_SASL_USERNAME and STREAMDET_KAFKA_SASL_PASSWORD
	// (or STREAMDET_KAFKA_SASL_PASSWORD_FILE). Never logged.
	SASLUser, SASLPassword string
	// MaxMessageBytes is the largest message produced or accepted. STREAMDET_KAFKA_MAX_MESSAGE_BYTES,
	// default 10 MiB (the local broker's message.max.bytes).
	MaxMessageBytes int
	// Linger is how long a writer waits for more messages to the same partition before it sends
	// a batch. STREAMDET_KAFKA_LINGER, default 0: a WriteMessages call is sent at once, as one
	// batch per partition. kafka-go batches per partition, and a pipeline's writers send one
	// message per frame to partitions keyed by stream, so a linger adds its whole length to
	// every frame's latency and rarely finds a second message to batch with.
	Linger time.Duration
	// CommitInterval is the least time between two offset commits of a consumer.
	// STREAMDET_KAFKA_COMMIT_INTERVAL, default 200ms (FromEnv); 0 commits each message as it is
	// handled, before its place in the window is given back. A message handled after a quiet
	// spell is committed at once; those handled while a commit is due wait for it, so a crash
	// redelivers at most an interval's worth (duplicates, which idempotent keys absorb). So does
	// a rebalance: kafka-go's Reader tells nobody that partitions are being revoked, so what is
	// due cannot be committed first (Java's consumer and franz-go do, and default to 5 s); hence
	// an interval short enough that a scale-up or -down redoes little, and long enough that a
	// consumer sends a handful of commits a second whatever its message rate.
	CommitInterval time.Duration
}

// FromEnv reads the Config from the environment.
func FromEnv(env envconf.Env) Config {
	return Config{
		Brokers:         env.List("STREAMDET_KAFKA_BROKERS", nil),
		TopicPrefix:     env.String("STREAMDET_TOPIC_PREFIX", "streamdet"),
		EventsTopic:     env.String("STREAMDET_EVENTS_TOPIC", ""),
		TLS:             tlsconf.FromEnv(env, "STREAMDET_KAFKA"),
		SASLInsecure:    env.Bool("STREAMDET_KAFKA_SASL_INSECURE", false),
		SASLMechanism:   strings.ToLower(env.String("STREAMDET_KAFKA_SASL_MECHANISM", "")),
		SASLUser:        env.String("STREAMDET_KAFKA_SASL_USERNAME", ""),
		SASLPassword:    env.Secret("STREAMDET_KAFKA_SASL_PASSWORD"),
		MaxMessageBytes: env.Int("STREAMDET_KAFKA_MAX_MESSAGE_BYTES", 10<<20),
		Linger:          env.Duration("STREAMDET_KAFKA_LINGER", 0),
		CommitInterval:  env.Duration("STREAMDET_KAFKA_COMMIT_INTERVAL", 200*time.Millisecond),
	}
}

// Validate checks the Config.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("STREAMDET_KAFKA_BROKERS: at least one broker is required"))
	}
	switch c.SASLMechanism {
	case "", "plain", "scram-sha-256", "scram-sha-512":
	default:
		errs = append(errs, fmt.Errorf("STREAMDET_KAFKA_SASL_MECHANISM %q: want plain, scram-sha-256 or scram-sha-512", c.SASLMechanism))
	}
	if c.SASLMechanism != "" && (c.SASLUser == "" || c.SASLPassword == "") {
		errs = append(errs, errors.New("SASL needs STREAMDET_KAFKA_SASL_USERNAME and STREAMDET_KAFKA_SASL_PASSWORD(_FILE)"))
	}
	if c.SASLMechanism != "" && !c.TLS.Enabled && !c.SASLInsecure {
		errs = append(errs, errors.New("STREAMDET_KAFKA_SASL_MECHANISM without STREAMDET_KAFKA_TLS=true: refused (set STREAMDET_KAFKA_SASL_INSECURE=true to send credentials in the clear)"))
	}
	errs = append(errs, c.TLS.Validate())
	if c.MaxMessageBytes < 1<<10 || c.MaxMessageBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("STREAMDET_KAFKA_MAX_MESSAGE_BYTES %d: must be in [1 KiB, 1 GiB]", c.MaxMessageBytes))
	}
	if c.Linger < 0 || c.Linger > maxLinger {
		errs = append(errs, fmt.Errorf("STREAMDET_KAFKA_LINGER %v: must be in [0, %v]", c.Linger, maxLinger))
	}
	errs = append(errs, c.validateCommitInterval())
	return errors.Join(errs...)
}

func (c Config) validateCommitInterval() error {
	if c.CommitInterval < 0 || c.CommitInterval > maxCommitInterval {
		return fmt.Errorf("STREAMDET_KAFKA_COMMIT_INTERVAL %v: must be in [0, %v]", c.CommitInterval, maxCommitInterval)
	}
	return nil
}

// maxCommitInterval bounds Config.CommitInterval: what a crash may redeliver.
const maxCommitInterval = time.Minute

// maxLinger bounds Config.Linger: a writer's batch timer, not a place to park messages.
const maxLinger = time.Second

// batchTimeout is the kafka-go BatchTimeout for Config.Linger. kafka-go reads 0 as its default
// of one second, so no linger is the shortest timer: the batch holds what the WriteMessages call
// that opened it added (the partition's lock is held while it adds them) and leaves at once.
func (c Config) batchTimeout() time.Duration {
	if c.Linger <= 0 {
		return time.Nanosecond
	}
	return c.Linger
}

// Topics are the project's topic names under a prefix.
type Topics struct {
	Raw, Frames, Detections, Shadow, DLQ, Events string
	// Devices carries edge devices' heartbeats (contract.DeviceStatus), keyed by device id.
	Devices string
	// Rollouts carries progressive rollouts' events (routing.RolloutEvent), keyed by model.
	Rollouts string
}

// Topics returns the topic names for the Config's prefix.
func (c Config) Topics() Topics {
	p := c.TopicPrefix
	if p == "" {
		p = "streamdet"
	}
	t := Topics{
		Raw: p + ".frames.raw", Frames: p + ".frames", Detections: p + ".detections",
		Shadow: p + ".detections.shadow", DLQ: p + ".dlq", Events: p + ".frames.events",
		Devices: p + ".devices", Rollouts: p + ".rollouts",
	}
	if c.EventsTopic != "" {
		t.Events = c.EventsTopic
	}
	return t
}

func (c Config) saslMechanism() (sasl.Mechanism, error) {
	switch c.SASLMechanism {
	case "":
		return nil, nil
	case "plain":
		return plain.Mechanism{Username: c.SASLUser, Password: c.SASLPassword}, nil
	case "scram-sha-256":
		return scram.Mechanism(scram.SHA256, c.SASLUser, c.SASLPassword)
	default:
		return scram.Mechanism(scram.SHA512, c.SASLUser, c.SASLPassword)
	}
}

// security is the Config's TLS configuration and SASL mechanism (either may be nil).
func (c Config) security() (*tls.Config, sasl.Mechanism, error) {
	t, err := c.TLS.Client()
	if err != nil {
		return nil, nil, err
	}
	m, err := c.saslMechanism()
	if err != nil {
		return nil, nil, fmt.Errorf("kafka SASL: %w", err)
	}
	return t, m, nil
}

// Dialer is a kafka-go dialer with the Config's TLS and SASL.
func (c Config) Dialer() (*kafka.Dialer, error) {
	t, m, err := c.security()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: t, SASLMechanism: m}, nil
}

// Transport is a kafka-go transport with the Config's TLS and SASL, for writers and clients.
func (c Config) Transport() (*kafka.Transport, error) {
	t, m, err := c.security()
	if err != nil {
		return nil, err
	}
	return &kafka.Transport{TLS: t, SASL: m, DialTimeout: 10 * time.Second}, nil
}

// Writer returns a writer for topic that hashes keys to partitions and waits for every in-sync
// replica (acks=all) before WriteMessages returns: a message it acknowledged is durable.
func (c Config) Writer(topic string) (*kafka.Writer, error) {
	tr, err := c.Transport()
	if err != nil {
		return nil, err
	}
	return &kafka.Writer{
		Addr: kafka.TCP(c.Brokers...), Topic: topic, Transport: tr,
		Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: c.batchTimeout(), BatchBytes: int64(c.MaxMessageBytes),
		MaxAttempts: 3, WriteBackoffMin: 50 * time.Millisecond, WriteBackoffMax: time.Second,
	}, nil
}

// Client returns a kafka-go client for admin and metadata requests.
func (c Config) Client() (*kafka.Client, error) {
	tr, err := c.Transport()
	if err != nil {
		return nil, err
	}
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Transport: tr, Timeout: 10 * time.Second}, nil
}
