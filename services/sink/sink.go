// Package sink is streamdet's last stage: it makes detections durable where analytics tools read
// them directly — newline-delimited JSON objects in object storage, partitioned by date and
// stream (dt=2026-11-27/stream=cam-1/p003-….ndjson) — flushing by size or time. A message is
// acknowledged (its offset committed) only once the file holding it is written, and the files
// hold each (stream, frame, model, version) exactly once, after any crash: a write-ahead journal
// per Kafka partition lets a restarted sink undo what it wrote past the committed offset before
// writing it again (see journal.go), and a duplicate detections message from upstream is dropped
// by a de-duplication set seeded from the journal.
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
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/service"
)

// Config is the sink's configuration: DefaultConfig, or ConfigFromEnv; Validate names every
// bad value and its limit.
type Config struct {
	// Config is what every stage shares: Kafka, object storage, the listeners (Server serves the
	// live view, authenticated: STREAMDET_SINK_ADDR (default :8083), STREAMDET_SINK_AUTH,
	// STREAMDET_SINK_TOKENS_FILE, ...), the drain timeout.
	pipeline.Config
	// FramesBucket is the only bucket the annotator reads frames from: STREAMDET_FRAMES_BUCKET,
	// default frames.
	FramesBucket string
	// Group: STREAMDET_SINK_GROUP, default streamdet-sink.
	Group string
	// Bucket: STREAMDET_DETECTIONS_BUCKET, default detections.
	Bucket string
	// BatchRows flushes when a batch holds this many rows: STREAMDET_SINK_BATCH_ROWS, default 256.
	BatchRows int
	// FlushInterval flushes a non-empty batch this long after its first row:
	// STREAMDET_SINK_FLUSH_INTERVAL, default 2s.
	FlushInterval time.Duration
	// DedupeKeys is how many recent (stream, frame, model, version) keys are remembered:
	// STREAMDET_SINK_DEDUPE_KEYS, default 200000.
	DedupeKeys int
	// JournalBatches is how many journal entries (batches) each partition keeps once committed;
	// their keys seed the de-duplication set at start: STREAMDET_SINK_JOURNAL_BATCHES, default 64.
	JournalBatches int
	// Annotate renders annotated frames for the live view and, when AnnotatedBucket is set, to
	// object storage: STREAMDET_SINK_ANNOTATE (default false), STREAMDET_ANNOTATED_BUCKET
	// (default annotated; "none" keeps them in memory only).
	Annotate        bool
	AnnotatedBucket string
	// TraceURL links the live view to traces: STREAMDET_TRACE_URL, e.g.
	// http://jaeger:16686/trace/{trace_id}.
	TraceURL string
	// Devices follows the edge devices' heartbeats (the devices topic) and exports when each was
	// last seen, for the device-offline alert: STREAMDET_SINK_DEVICES, auto (default: when the
	// topic exists at start), true (required) or false. Consumer group <Group>-devices.
	Devices string
	// MaxDevices bounds the devices followed: STREAMDET_SINK_MAX_DEVICES, default 10000.
	MaxDevices int
}

// DefaultConfig is the configuration with every default (the required endpoints and
// credentials left empty).
func DefaultConfig() Config { return fromEnv(envconf.Map(nil)) }

// ConfigFromEnv reads the Config from the environment and validates it.
func ConfigFromEnv(env envconf.Env) (Config, error) {
	c := fromEnv(env)
	return c, errors.Join(env.Err(), c.Validate())
}

func fromEnv(env envconf.Env) Config {
	c := Config{
		Config:          pipeline.ConfigFromEnv(env, "sink", DefaultAddr, true),
		FramesBucket:    env.String("STREAMDET_FRAMES_BUCKET", "frames"),
		JournalBatches:  env.Int("STREAMDET_SINK_JOURNAL_BATCHES", 64),
		Group:           env.String("STREAMDET_SINK_GROUP", "streamdet-sink"),
		Bucket:          env.String("STREAMDET_DETECTIONS_BUCKET", "detections"),
		BatchRows:       env.Int("STREAMDET_SINK_BATCH_ROWS", 256),
		FlushInterval:   env.Duration("STREAMDET_SINK_FLUSH_INTERVAL", 2*time.Second),
		DedupeKeys:      env.Int("STREAMDET_SINK_DEDUPE_KEYS", 200000),
		Annotate:        env.Bool("STREAMDET_SINK_ANNOTATE", false),
		AnnotatedBucket: env.String("STREAMDET_ANNOTATED_BUCKET", "annotated"),
		TraceURL:        env.String("STREAMDET_TRACE_URL", ""),
		Devices:         env.String("STREAMDET_SINK_DEVICES", "auto"),
		MaxDevices:      env.Int("STREAMDET_SINK_MAX_DEVICES", 10_000),
	}
	if c.AnnotatedBucket == "none" {
		c.AnnotatedBucket = ""
	}
	return c
}

// Validate checks every value, naming each bad one and its limit.
func (c Config) Validate() error {
	errs := []error{c.Config.Validate("sink", c.Annotate)}
	if c.BatchRows < 1 || c.BatchRows > 100000 {
		errs = append(errs, fmt.Errorf("STREAMDET_SINK_BATCH_ROWS %d: must be in [1, 100000]", c.BatchRows))
	}
	if c.FlushInterval < 10*time.Millisecond || c.FlushInterval > time.Hour {
		errs = append(errs, fmt.Errorf("STREAMDET_SINK_FLUSH_INTERVAL %s: must be in [10ms, 1h]", c.FlushInterval))
	}
	if c.DedupeKeys < 1000 || c.DedupeKeys > 10_000_000 {
		errs = append(errs, fmt.Errorf("STREAMDET_SINK_DEDUPE_KEYS %d: must be in [1000, 10000000]", c.DedupeKeys))
	}
	if c.JournalBatches < 1 || c.JournalBatches > 100_000 {
		errs = append(errs, fmt.Errorf("STREAMDET_SINK_JOURNAL_BATCHES %d: must be in [1, 100000]", c.JournalBatches))
	}
	if c.Devices != "auto" && c.Devices != "true" && c.Devices != "false" {
		errs = append(errs, fmt.Errorf("STREAMDET_SINK_DEVICES %q: must be auto, true or false", c.Devices))
	}
	if c.MaxDevices < 1 || c.MaxDevices > 1_000_000 {
		errs = append(errs, fmt.Errorf("STREAMDET_SINK_MAX_DEVICES %d: must be in [1, 1000000]", c.MaxDevices))
	}
	// The group names a journal prefix: one identifier, never a path.
	errs = append(errs, contract.CheckID("STREAMDET_SINK_GROUP", c.Group))
	return errors.Join(errs...)
}

type row struct {
	key       string
	det       contract.Detections
	raw       []byte
	partition int
	offset    int64
	done      chan error
}

// maxObjectBytes bounds an object the sink reads back (a batch of rows).
const maxObjectBytes = 1 << 30

// Sink batches rows and writes them.
type Sink struct {
	cfg     Config
	view    *View // nil unless annotating
	stage   *pipeline.Stage
	store   Store
	journal *journal
	now     func() time.Time
	// work bounds every write: it ends a drain timeout after the service's context.
	work context.Context
	// committed reports the consumer's committed offset of a partition (for journal trimming).
	committed func(partition int) (int64, bool)

	mu    sync.Mutex
	batch []*row
	first time.Time // when the batch's first row arrived
	kick  chan struct{}

	flushMu sync.Mutex // one flush or recovery at a time; guards seen and journal
	seen    *fifoSet
}

// Store is what the sink needs from object storage: batches and journal entries written, read
// back, listed and removed (crash recovery), frames read (annotation), buckets ensured and the
// readiness ping. *objstore.Store implements it.
type Store interface {
	pipeline.ObjectStore
	Get(ctx context.Context, bucket, key string, max int64) ([]byte, error)
	List(ctx context.Context, bucket, prefix string) ([]string, error)
	Remove(ctx context.Context, bucket, key string) error
}

// Deps are what the service uses besides its Config (see pipeline.Deps); a nil Store is the
// object storage client of Config.Store.
type Deps struct {
	pipeline.Deps
	Store Store
}

// Options are what New needs.
type Options struct {
	// Work bounds every write, the last flush included: it ends a drain timeout after the
	// service's context (pipeline.Runtime.Work).
	Work   context.Context
	Config Config
	Stage  *pipeline.Stage
	Store  Store
	// Topic is the consumed topic; journal entries live under Config.Group/Topic.
	Topic string
	// View, when not nil, is offered every row (annotation).
	View *View
}

// New creates a Sink writing to o.Config.Bucket.
//
// Lifecycle (service.Runner): Run flushes batches until its ctx ends — cancel it after the
// consumer has stopped — then writes what is left within Work and returns. Handle and Assigned
// are called by the consumer while Run runs.
func New(o Options) *Sink {
	cfg := o.Config
	now := time.Now
	if o.Stage.Now != nil {
		now = o.Stage.Now
	}
	return &Sink{
		cfg: cfg, stage: o.Stage, store: o.Store, journal: newJournal(o.Store, cfg.Bucket, cfg.Group, o.Topic), view: o.View,
		now: now, work: o.Work, kick: make(chan struct{}, 1), committed: func(int) (int64, bool) { return 0, false },
		seen: newFIFOSet(cfg.DedupeKeys),
	}
}

// TrackCommitted gives the sink the consumer's committed offsets (journal entries wholly below
// them are trimmed). Call it before the first row is handled.
func (s *Sink) TrackCommitted(committed func(partition int) (int64, bool)) {
	s.flushMu.Lock()
	s.committed = committed
	s.flushMu.Unlock()
}

// Assigned is the consumer's OnAssign hook: before any row of partition p is handled from offset
// on, it undoes what the journal says was written at or after offset, and seeds the
// de-duplication set with what stays written. Transient failures are retried until the work
// context ends.
func (s *Sink) Assigned(ctx context.Context, p int, offset int64) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	var kept, undone []string
	err := s.stage.Retry(ctx, "minio", func() error {
		var err error
		kept, undone, err = s.journal.recover(ctx, p, offset)
		return err
	}, nil)
	if err != nil {
		return fmt.Errorf("recover partition %d from the journal: %w", p, err)
	}
	for _, k := range undone {
		s.seen.remove(k)
	}
	for _, k := range kept {
		s.seen.add(k)
	}
	s.stage.Tel.Logger.Info("partition assigned", "partition", p, "offset", offset, "rows_kept", len(kept), "rows_undone", len(undone))
	return nil
}

// Handle is the handler of the detections topic: it returns once the row is durably written.
func (s *Sink) Handle(ctx context.Context, m kafka.Message) error {
	var det contract.Detections
	if err := json.Unmarshal(m.Value, &det); err != nil {
		return pipeline.Rejectf(contract.ReasonSchemaViolation, "detections: %v", err)
	}
	if err := contract.CheckIDs("stream id", det.StreamID, "frame id", det.FrameID, "model name", det.Model.Name, "model version", det.Model.Version); err != nil {
		return &pipeline.Reject{Reason: contract.ReasonInvalidID, Err: err}
	}
	if s.view != nil {
		s.view.Offer(det)
	}
	_, span := s.stage.Tel.Tracer.Start(ctx, "sink write", trace.WithAttributes(
		attribute.String("streamdet.frame_id", det.FrameID), attribute.String("streamdet.stream_id", det.StreamID)))
	defer span.End()
	r := &row{key: dedupeKey(det), det: det, raw: m.Value, partition: m.Partition, offset: m.Offset, done: make(chan error, 1)}
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

// Run flushes batches by size or age until ctx ends, then what is left (within Work).
func (s *Sink) Run(ctx context.Context) error {
	tick := time.NewTicker(max(s.cfg.FlushInterval/4, 5*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flush(true)
			return nil
		case <-s.kick:
			s.flush(true)
		case <-tick.C:
			s.flush(false)
		}
	}
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
	s.flushMu.Lock()
	errs := s.write(batch)
	s.flushMu.Unlock()
	for _, r := range batch {
		r.done <- errs[r]
	}
}

// objectKey is where a group of rows goes: date and stream partitions (both validated: a date
// and an identifier), then the Kafka partition and the first offset of the group.
func objectKey(date, stream string, partition int, offset int64) string {
	return fmt.Sprintf("dt=%s/stream=%s/p%03d-%020d.ndjson", date, stream, partition, offset)
}

type group struct {
	key  string
	rows []*row
}

// write writes a batch: per Kafka partition, the journal entry first, then the objects. It
// returns each row's outcome (nil: written, or a duplicate of a written row).
func (s *Sink) write(batch []*row) map[*row]error {
	ctx := s.work
	out := map[*row]error{}
	// Rows of a partition, in offset order; duplicates (of rows written before, or within the
	// batch) are dropped here.
	sort.SliceStable(batch, func(i, j int) bool {
		a, b := batch[i], batch[j]
		return a.partition < b.partition || a.partition == b.partition && a.offset < b.offset
	})
	byPart := map[int][]*row{}
	inBatch := map[string]bool{}
	for _, r := range batch {
		if s.seen.has(r.key) || inBatch[r.key] {
			continue // written before: a duplicate from upstream
		}
		inBatch[r.key] = true
		byPart[r.partition] = append(byPart[r.partition], r)
	}
	parts := make([]int, 0, len(byPart))
	for p := range byPart {
		parts = append(parts, p)
	}
	sort.Ints(parts)
	written := 0
	for _, p := range parts {
		rows := byPart[p]
		groups := map[string]*group{}
		var order []*group
		e := &journalEntry{Partition: p, First: rows[0].offset, Last: rows[len(rows)-1].offset}
		index := map[*group]int{}
		for _, r := range rows {
			date := r.det.CaptureTime.UTC().Format("2006-01-02")
			gk := date + "/" + r.det.StreamID // one object per date and stream in this partition
			g := groups[gk]
			if g == nil {
				// Named after the group's first offset: rows are in offset order.
				g = &group{key: objectKey(date, r.det.StreamID, p, r.offset)}
				groups[gk] = g
				index[g] = len(e.Objects)
				e.Objects = append(e.Objects, g.key)
				order = append(order, g)
			}
			g.rows = append(g.rows, r)
			e.Rows = append(e.Rows, jrow{Offset: r.offset, Key: r.key, Object: index[g]})
		}
		fail := func(rows []*row, err error) {
			for _, r := range rows {
				out[r] = err
			}
		}
		if err := s.stage.Retry(ctx, "minio", func() error { return s.journal.write(ctx, e) }, nil); err != nil {
			fail(rows, fmt.Errorf("journal: %w", err))
			continue
		}
		for _, g := range order {
			var buf bytes.Buffer
			for _, r := range g.rows {
				buf.Write(bytes.TrimSpace(r.raw))
				buf.WriteByte('\n')
			}
			t0 := time.Now()
			if err := s.stage.Retry(ctx, "minio", func() error {
				return s.store.Put(ctx, s.cfg.Bucket, g.key, buf.Bytes(), "application/x-ndjson")
			}, nil); err != nil {
				fail(g.rows, err)
				continue
			}
			s.stage.Step(ctx, "write", time.Since(t0))
			for _, r := range g.rows {
				s.seen.add(r.key)
			}
			written += len(g.rows)
		}
		s.journal.add(e)
		c, ok := s.committed(p)
		if err := s.journal.trim(ctx, p, s.cfg.JournalBatches, c, ok); err != nil {
			s.stage.Tel.Logger.Warn("trimming the journal", "partition", p, "err", err) // retried at the next flush
		}
	}
	s.stage.Out.Add(ctx, int64(written), s.stage.Attrs(attribute.String("topic", "objects")))
	return out
}

// fifoSet remembers the last n keys.
type fifoSet struct {
	keys map[string]int // key → its slot in ring
	ring []string
	next int
}

func newFIFOSet(n int) *fifoSet {
	return &fifoSet{keys: make(map[string]int, n), ring: make([]string, n)}
}

func (f *fifoSet) has(k string) bool { _, ok := f.keys[k]; return ok }

func (f *fifoSet) add(k string) {
	if f.has(k) {
		return
	}
	if old := f.ring[f.next]; old != "" && f.keys[old] == f.next {
		delete(f.keys, old)
	}
	f.ring[f.next] = k
	f.keys[k] = f.next
	f.next = (f.next + 1) % len(f.ring)
}

// remove forgets k.
func (f *fifoSet) remove(k string) {
	if i, ok := f.keys[k]; ok {
		f.ring[i] = ""
		delete(f.keys, k)
	}
}

var (
	_ service.Runner = (*Sink)(nil)
	_ service.Runner = (*View)(nil)
)

// DefaultAddr is the data listener's default address (STREAMDET_SINK_ADDR).
const DefaultAddr = ":8083"
