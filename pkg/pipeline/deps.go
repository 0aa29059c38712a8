package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/telemetry"
)

// ObjectStore is what a stage's runtime needs from object storage: its buckets ensured, a
// readiness ping, and the values of oversized dead letters kept. *objstore.Store implements it.
type ObjectStore interface {
	EnsureBucket(ctx context.Context, bucket string) error
	Ping(ctx context.Context, bucket string) error
	Put(ctx context.Context, bucket, key string, data []byte, contentType string) error
}

// Producer writes messages to one topic.
//
// Lifecycle: WriteMessages returns once the messages are acknowledged (acks=all for the Kafka
// one) or failed; Close flushes and releases it and is called once, by whoever opened it.
type Producer interface {
	Topic() string
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

// KafkaProducer adapts a kafka-go writer bound to a topic (nil for nil).
func KafkaProducer(w *kafka.Writer) Producer {
	if w == nil {
		return nil
	}
	return kafkaProducer{w}
}

type kafkaProducer struct{ *kafka.Writer }

func (p kafkaProducer) Topic() string { return p.Writer.Topic }

// Deps are what a stage uses besides its Config: telemetry, producers and a clock. Every nil
// field is built by WithDefaults — the production path; tests and the all-in-one mode set them.
type Deps struct {
	// Telemetry: the service's own tracer and meter providers and logger. Default: Discard.
	Telemetry *telemetry.Telemetry
	// Producer opens a producer for topic. Default: acks=all Kafka writers from Config.Kafka.
	Producer func(topic string) (Producer, error)
	// Now is the clock of event times (capture, detection, batch age). Default: time.Now.
	Now func() time.Time
}

// WithDefaults fills the nil fields of d; producers write to c.Kafka.
func (d Deps) WithDefaults(c Config) Deps {
	if d.Telemetry == nil {
		d.Telemetry = telemetry.Discard()
	}
	if d.Producer == nil {
		k := c.Kafka
		d.Producer = func(topic string) (Producer, error) {
			w, err := k.Writer(topic)
			if err != nil {
				return nil, err
			}
			return KafkaProducer(w), nil
		}
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// NewObjectStore is the object storage client of c, its spans from tel's tracer provider.
func NewObjectStore(c Config, tel *telemetry.Telemetry) (*objstore.Store, error) {
	return objstore.New(c.Store, objstore.WithTracerProvider(tel.TracerProvider))
}

// StoreOr returns s, or when s is nil the object storage client of c (*objstore.Store, which
// implements every service's store interface S).
func StoreOr[S comparable](s S, c Config, tel *telemetry.Telemetry) (S, error) {
	var zero S
	if s != zero {
		return s, nil
	}
	st, err := NewObjectStore(c, tel)
	if err != nil {
		return zero, err
	}
	v, ok := any(st).(S)
	if !ok {
		return zero, fmt.Errorf("pipeline: *objstore.Store does not implement %T", zero)
	}
	return v, nil
}
