// Package sink is streamdet's last stage: it makes detections durable where analytics tools read
// them directly — newline-delimited JSON objects in object storage, partitioned by date and
// stream (dt=2026-11-27/stream=cam-1/…) — flushing by size or time. A message is acknowledged
// (its offset committed) only once the file holding it is written, and a row is written once
// per (frame id, model, version): a redelivered batch rewrites the same object, and a duplicate
// detections message from upstream is dropped.
package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/pipeline"
)

// Config is the sink's own configuration.
type Config struct {
	// HTTPAddr: STREAMDET_SINK_ADDR, default :8083.
	HTTPAddr string
	// Group: STREAMDET_SINK_GROUP, default streamdet-sink.
	Group string
	// Bucket: STREAMDET_DETECTIONS_BUCKET, default detections.
	Bucket string
	// BatchRows flushes when a batch holds this many rows: STREAMDET_SINK_BATCH_ROWS, default 256.
	BatchRows int
	// FlushInterval flushes a non-empty batch this long after its first row:
	// STREAMDET_SINK_FLUSH_INTERVAL, default 2s.
	FlushInterval time.Duration
	// DedupeKeys is how many recent (frame, model, version) keys are remembered:
	// STREAMDET_SINK_DEDUPE_KEYS, default 200000.
	DedupeKeys int
	// Annotate renders annotated frames for the live view and, when AnnotatedBucket is set, to
	// object storage: STREAMDET_SINK_ANNOTATE (default false), STREAMDET_ANNOTATED_BUCKET
	// (default annotated; "none" keeps them in memory only).
	Annotate        bool
	AnnotatedBucket string
	// TraceURL links the live view to traces: STREAMDET_TRACE_URL, e.g.
	// http://jaeger:16686/trace/{trace_id}.
	TraceURL string
}

// ConfigFromEnv reads and validates the Config.
func ConfigFromEnv(env envconf.Env) (Config, error) {
	c := Config{
		HTTPAddr:        env.String("STREAMDET_SINK_ADDR", ":8083"),
		Group:           env.String("STREAMDET_SINK_GROUP", "streamdet-sink"),
		Bucket:          env.String("STREAMDET_DETECTIONS_BUCKET", "detections"),
		BatchRows:       env.Int("STREAMDET_SINK_BATCH_ROWS", 256),
		FlushInterval:   env.Duration("STREAMDET_SINK_FLUSH_INTERVAL", 2*time.Second),
		DedupeKeys:      env.Int("STREAMDET_SINK_DEDUPE_KEYS", 200000),
		Annotate:        env.Bool("STREAMDET_SINK_ANNOTATE", false),
		AnnotatedBucket: env.String("STREAMDET_ANNOTATED_BUCKET", "annotated"),
		TraceURL:        env.String("STREAMDET_TRACE_URL", ""),
	}
	if c.AnnotatedBucket == "none" {
		c.AnnotatedBucket = ""
	}
	errs := []error{env.Err()}
	if c.BatchRows < 1 || c.BatchRows > 100000 {
		errs = append(errs, fmt.Errorf("STREAMDET_SINK_BATCH_ROWS %d: must be in [1, 100000]", c.BatchRows))
	}
	if c.FlushInterval < 10*time.Millisecond || c.FlushInterval > time.Hour {
		errs = append(errs, fmt.Errorf("STREAMDET_SINK_FLUSH_INTERVAL %s: must be in [10ms, 1h]", c.FlushInterval))
	}
	if c.DedupeKeys < 1000 {
		errs = append(errs, fmt.Errorf("STREAMDET_SINK_DEDUPE_KEYS %d: must be at least 1000", c.DedupeKeys))
	}
	return c, errors.Join(errs...)
}

type row struct {
	key       string
	det       contract.Detections
	raw       []byte
	partition int
	offset    int64
	done      chan error
}

// Sink batches rows and writes them.
type Sink struct {
	cfg   Config
	view  *View // nil unless annotating
	stage *pipeline.Stage
	store *objstore.Store
	now   func() time.Time

	mu    sync.Mutex
	batch []*row
	first time.Time // when the batch's first row arrived
	kick  chan struct{}
	seen  *fifoSet
	stop  chan struct{}
	done  chan struct{}
}

// New creates a Sink; call Run in the background and Close after the consumer has stopped.
func New(cfg Config, stage *pipeline.Stage, store *objstore.Store) *Sink {
	return &Sink{
		cfg: cfg, stage: stage, store: store, now: time.Now, kick: make(chan struct{}, 1),
		seen: newFIFOSet(cfg.DedupeKeys), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// Handle is the handler of the detections topic: it returns once the row is durably written.
func (s *Sink) Handle(ctx context.Context, m kafka.Message) error {
	var det contract.Detections
	if err := json.Unmarshal(m.Value, &det); err != nil {
		return pipeline.Rejectf(contract.ReasonSchemaViolation, "detections: %v", err)
	}
	if det.FrameID == "" || det.StreamID == "" || det.Model.Name == "" || det.Model.Version == "" {
		return pipeline.Rejectf(contract.ReasonSchemaViolation, "detections without frame_id, stream_id or model name/version")
	}
	if s.view != nil {
		s.view.Offer(det)
	}
	_, span := s.stage.Tel.Tracer.Start(ctx, "sink write", trace.WithAttributes(
		attribute.String("streamdet.frame_id", det.FrameID), attribute.String("streamdet.stream_id", det.StreamID)))
	defer span.End()
	r := &row{key: det.FrameID + "\x00" + det.Model.Name + "\x00" + det.Model.Version, det: det, raw: m.Value,
		partition: m.Partition, offset: m.Offset, done: make(chan error, 1)}
	s.mu.Lock()
	if len(s.batch) == 0 {
		s.first = s.now()
	}
	s.batch = append(s.batch, r)
	full := len(s.batch) >= s.cfg.BatchRows
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run flushes batches by size or age until Close.
func (s *Sink) Run() {
	defer close(s.done)
	tick := time.NewTicker(max(s.cfg.FlushInterval/4, 5*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			s.flush(true)
			return
		case <-s.kick:
			s.flush(true)
		case <-tick.C:
			s.flush(false)
		}
	}
}

// Close flushes what is left and stops Run.
func (s *Sink) Close() {
	close(s.stop)
	<-s.done
}

func (s *Sink) flush(force bool) {
	s.mu.Lock()
	if len(s.batch) == 0 || !force && s.now().Sub(s.first) < s.cfg.FlushInterval && len(s.batch) < s.cfg.BatchRows {
		s.mu.Unlock()
		return
	}
	batch := s.batch
	s.batch = nil
	s.mu.Unlock()
	err := s.write(batch)
	for _, r := range batch {
		r.done <- err
	}
}

// objectKey is where a group of rows goes: date and stream partitions, named after the first
// Kafka position in the group, so a batch delivered again after a crash rewrites its object.
func objectKey(date, stream string, partition int, offset int64) string {
	return fmt.Sprintf("dt=%s/stream=%s/p%03d-%012d.ndjson", date, stream, partition, offset)
}

func (s *Sink) write(batch []*row) error {
	ctx := context.Background()
	type group struct {
		rows         []*row
		part         int
		first        int64
		date, stream string
	}
	groups := map[string]*group{}
	inBatch := map[string]bool{}
	var fresh []*row
	for _, r := range batch {
		if s.seen.has(r.key) || inBatch[r.key] {
			continue // written before: a duplicate from upstream
		}
		inBatch[r.key] = true
		fresh = append(fresh, r)
		date := r.det.CaptureTime.UTC().Format("2006-01-02")
		gk := date + "/" + r.det.StreamID
		g := groups[gk]
		if g == nil {
			g = &group{part: r.partition, first: r.offset, date: date, stream: r.det.StreamID}
			groups[gk] = g
		}
		if r.partition < g.part || r.partition == g.part && r.offset < g.first {
			g.part, g.first = r.partition, r.offset
		}
		g.rows = append(g.rows, r)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := groups[k]
		sort.Slice(g.rows, func(i, j int) bool {
			a, b := g.rows[i], g.rows[j]
			return a.partition < b.partition || a.partition == b.partition && a.offset < b.offset
		})
		var buf bytes.Buffer
		for _, r := range g.rows {
			buf.Write(bytes.TrimSpace(r.raw))
			buf.WriteByte('\n')
		}
		key := objectKey(g.date, g.stream, g.part, g.first)
		t0 := time.Now()
		if err := s.stage.Retry(ctx, "minio", func() error {
			return s.store.Put(ctx, s.cfg.Bucket, key, buf.Bytes(), "application/x-ndjson")
		}, func(error) bool { return false }); err != nil {
			return err
		}
		s.stage.Step(ctx, "write", time.Since(t0))
	}
	for _, r := range fresh {
		s.seen.add(r.key)
	}
	s.stage.Out.Add(ctx, int64(len(fresh)))
	return nil
}

// fifoSet remembers the last n keys.
type fifoSet struct {
	keys map[string]struct{}
	ring []string
	next int
}

func newFIFOSet(n int) *fifoSet {
	return &fifoSet{keys: make(map[string]struct{}, n), ring: make([]string, n)}
}

func (f *fifoSet) has(k string) bool { _, ok := f.keys[k]; return ok }

func (f *fifoSet) add(k string) {
	if f.has(k) {
		return
	}
	if old := f.ring[f.next]; old != "" {
		delete(f.keys, old)
	}
	f.ring[f.next] = k
	f.keys[k] = struct{}{}
	f.next = (f.next + 1) % len(f.ring)
}
