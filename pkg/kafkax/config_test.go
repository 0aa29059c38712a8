package kafkax

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/envconf"
)

func TestConfigLinger(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		linger  time.Duration
		timeout time.Duration // the writer's kafka-go BatchTimeout
		err     string
	}{
		{env: nil, linger: 0, timeout: time.Nanosecond},
		{env: map[string]string{"STREAMDET_KAFKA_LINGER": "5ms"}, linger: 5 * time.Millisecond, timeout: 5 * time.Millisecond},
		{env: map[string]string{"STREAMDET_KAFKA_LINGER": "2s"}, linger: 2 * time.Second, err: "STREAMDET_KAFKA_LINGER 2s: must be in [0, 1s]"},
	} {
		env := tc.env
		if env == nil {
			env = map[string]string{}
		}
		env["STREAMDET_KAFKA_BROKERS"] = "127.0.0.1:9092"
		e := envconf.Map(env)
		c := FromEnv(e)
		if e.Err() != nil {
			t.Fatalf("%v: %v", tc.env, e.Err())
		}
		if c.Linger != tc.linger {
			t.Errorf("%v: linger %v, want %v", tc.env, c.Linger, tc.linger)
		}
		err := c.Validate()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: Validate() = %v, want %q", tc.env, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: Validate() = %v", tc.env, err)
		}
		w, err := c.Writer("t")
		if err != nil {
			t.Fatal(err)
		}
		if w.BatchTimeout != tc.timeout {
			t.Errorf("%v: BatchTimeout %v, want %v", tc.env, w.BatchTimeout, tc.timeout)
		}
	}
	e := envconf.Map(map[string]string{"STREAMDET_KAFKA_LINGER": "-1ms"})
	FromEnv(e)
	if e.Err() == nil || !strings.Contains(e.Err().Error(), "STREAMDET_KAFKA_LINGER") {
		t.Errorf("negative linger: %v", e.Err())
	}
}

func TestConfigCommitInterval(t *testing.T) {
	for _, tc := range []struct {
		env      string // STREAMDET_KAFKA_COMMIT_INTERVAL; "" unset
		interval time.Duration
		err      string
	}{
		{env: "", interval: 200 * time.Millisecond},
		{env: "0", interval: 0},
		{env: "250ms", interval: 250 * time.Millisecond},
		{env: "2m", interval: 2 * time.Minute, err: "STREAMDET_KAFKA_COMMIT_INTERVAL 2m0s: must be in [0, 1m0s]"},
	} {
		env := map[string]string{"STREAMDET_KAFKA_BROKERS": "127.0.0.1:9092"}
		if tc.env != "" {
			env["STREAMDET_KAFKA_COMMIT_INTERVAL"] = tc.env
		}
		c := FromEnv(envconf.Map(env))
		if c.CommitInterval != tc.interval {
			t.Errorf("%q: interval %v, want %v", tc.env, c.CommitInterval, tc.interval)
		}
		err := c.Validate()
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: Validate() = %v, want %q", tc.env, err, tc.err)
		}
		if _, err := NewConsumer(c, ConsumerConfig{Group: "g", Topic: "t"}); (tc.err == "") != (err == nil) {
			t.Errorf("%q: NewConsumer: %v, want error %v", tc.env, err, tc.err != "")
		}
	}
}

// TestWriterWithoutLinger: with no linger, what one WriteMessages call gives a partition leaves
// as one produce request, and the next call does not wait for company (one request each).
func TestWriterWithoutLinger(t *testing.T) {
	b := fakeBackend(t)
	topic, _ := b.topic(t, 1)
	cfg := Config{Brokers: b.brokers, MaxMessageBytes: 1 << 20}
	w, err := cfg.Writer(topic)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var msgs []kafka.Message
	for i := range 50 {
		msgs = append(msgs, kafka.Message{Key: []byte("k"), Value: []byte(fmt.Sprint(i))})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.Writes != 1 || s.Messages != 50 {
		t.Fatalf("one call of 50 messages: %d produce requests, %d messages; want 1 and 50", s.Writes, s.Messages)
	}
	for i := range 3 {
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if s := w.Stats(); s.Writes != 3 || s.Messages != 3 {
		t.Fatalf("three calls of one message: %d produce requests, %d messages; want 3 and 3", s.Writes, s.Messages)
	}
}
