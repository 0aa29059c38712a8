package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/objstore"
)

// MemStore is object storage in memory for unit tests: the methods of *objstore.Store that the
// services' narrow store interfaces name, with its errors (objstore.ErrNotFound, ErrTooLarge,
// ErrExists). Buckets must be ensured before use, as on S3.
type MemStore struct {
	mu      sync.Mutex
	objects map[string]map[string][]byte // bucket → key → bytes
	// Fail, when set, is returned by every call (an unreachable store).
	Fail error
}

// NewMemStore returns a MemStore with buckets.
func NewMemStore(buckets ...string) *MemStore {
	s := &MemStore{objects: map[string]map[string][]byte{}}
	for _, b := range buckets {
		s.objects[b] = map[string][]byte{}
	}
	return s
}

func (s *MemStore) bucket(b string) (map[string][]byte, error) {
	if s.Fail != nil {
		return nil, s.Fail
	}
	m, ok := s.objects[b]
	if !ok {
		return nil, fmt.Errorf("%w: no bucket %s", objstore.ErrNotFound, b)
	}
	return m, nil
}

// EnsureBucket creates bucket unless it exists.
func (s *MemStore) EnsureBucket(_ context.Context, bucket string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Fail != nil {
		return s.Fail
	}
	if s.objects[bucket] == nil {
		s.objects[bucket] = map[string][]byte{}
	}
	return nil
}

// Ping fails only when Fail is set.
func (s *MemStore) Ping(context.Context, string) error { return s.Fail }

// Put writes a copy of data.
func (s *MemStore) Put(_ context.Context, bucket, key string, data []byte, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.bucket(bucket)
	if err != nil {
		return err
	}
	m[key] = append([]byte(nil), data...)
	return nil
}

// Create writes data unless key exists.
func (s *MemStore) Create(ctx context.Context, bucket, key string, data []byte, ct string) error {
	s.mu.Lock()
	m, err := s.bucket(bucket)
	_, exists := m[key]
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if exists {
		return fmt.Errorf("%w: %s/%s", objstore.ErrExists, bucket, key)
	}
	return s.Put(ctx, bucket, key, data, ct)
}

// Get returns a copy of an object of at most max bytes.
func (s *MemStore) Get(_ context.Context, bucket, key string, max int64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.bucket(bucket)
	if err != nil {
		return nil, err
	}
	b, ok := m[key]
	if !ok {
		return nil, fmt.Errorf("%w: %s/%s", objstore.ErrNotFound, bucket, key)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: %s/%s is %d bytes, limit %d", objstore.ErrTooLarge, bucket, key, len(b), max)
	}
	return append([]byte(nil), b...), nil
}

// List returns the keys under prefix in lexical order.
func (s *MemStore) List(_ context.Context, bucket, prefix string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.bucket(bucket)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// Remove deletes an object.
func (s *MemStore) Remove(_ context.Context, bucket, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.bucket(bucket)
	if err != nil {
		return err
	}
	delete(m, key)
	return nil
}

// MemTopics records what producers write, per topic, for unit tests. Open matches
// pipeline.Deps.Producer once wrapped: func(t string) (pipeline.Producer, error) { return m.Open(t), nil }.
type MemTopics struct {
	mu     sync.Mutex
	topics map[string][]kafka.Message
	// Fail, when set, is returned by every write (an unreachable broker).
	Fail error
}

// NewMemTopics returns an empty MemTopics.
func NewMemTopics() *MemTopics { return &MemTopics{topics: map[string][]kafka.Message{}} }

// MemProducer writes to one topic of a MemTopics.
type MemProducer struct {
	m     *MemTopics
	topic string
}

// Open returns a producer for topic.
func (m *MemTopics) Open(topic string) *MemProducer { return &MemProducer{m: m, topic: topic} }

// Messages returns what was written to topic so far.
func (m *MemTopics) Messages(topic string) []kafka.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]kafka.Message(nil), m.topics[topic]...)
}

// Topic is the producer's topic.
func (p *MemProducer) Topic() string { return p.topic }

// WriteMessages records msgs (with their topic set).
func (p *MemProducer) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	if p.m.Fail != nil {
		return p.m.Fail
	}
	for _, m := range msgs {
		m.Topic = p.topic
		p.m.topics[p.topic] = append(p.m.topics[p.topic], m)
	}
	return nil
}

// Close does nothing.
func (p *MemProducer) Close() error { return nil }

// RunService runs run (a service's Run) in the background and waits until http://addr/readyz
// answers 200. The returned stop cancels run's context and fails the test unless run returns
// nil or context.Canceled within limit (its drain timeout and some); the test's cleanup stops
// it too.
func RunService(t testing.TB, addr string, limit time.Duration, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-ran:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(limit):
				t.Errorf("Run did not return within %s of its context ending", limit)
			}
		})
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-ran:
			t.Fatalf("Run returned before it was ready: %v", err)
		default:
		}
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready at %s after 60s", addr)
		}
	}
}
