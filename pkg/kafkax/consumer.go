package kafkax

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// Handler processes one message. It returns nil once the message is finished with for good:
// its output durably produced, or the message dead-lettered. Transient failures are the
// handler's to retry (see Retry). Any other error stops the consumer (Run returns it) with the
// message uncommitted, so it is delivered again after the service restarts: at-least-once never
// skips a message it could not finish.
type Handler func(ctx context.Context, m kafka.Message) error

// Consumer reads a topic in a consumer group and runs a Handler on several messages at once,
// committing each partition's offsets in order: an offset is committed only when its message and
// every earlier one of its partition have been handled. Concurrency bounds the window of
// messages not yet handled in order, not just the handlers running: a slow message holds back
// at most Concurrency-1 others.
//
// Commits are coalesced (Config.CommitInterval): the first message handled after a quiet spell
// is committed at once, those handled while a commit is due wait for the next one, so a
// partition sees at most one OffsetCommit per interval whatever the message rate. Each commit
// costs the group coordinator an append to __consumer_offsets; one per message cost the broker
// as much CPU as a third of a frame's inference in the pipeline. After a crash, what was handled
// since the last commit (at most an interval's worth) is delivered again; idempotent keys make
// that harmless. A shutdown commits everything handled before the reader closes.
//
// Lifecycle: NewConsumer, then Run until its context ends; Run then stops fetching, lets the
// messages in flight finish (within DrainTimeout), commits what finished and closes the reader.
type Consumer struct {
	reader       groupReader
	topic        string
	onAssign     func(context.Context, int, int64) error
	onFetchError func(error)
	fetchRetry   time.Duration
	concurrency  int
	drainTimeout time.Duration
	log          *slog.Logger
	window       chan struct{} // one token per delivery: fetched and neither handled in order nor dropped-and-finished

	mu    sync.Mutex
	parts map[int]*partition
	held  int // deliveries holding a window token (InFlight)

	commitMu  sync.Mutex    // serializes commits (held across the request)
	committed map[int]int64 // highest offset committed per partition
	commitFn  func(context.Context, ...kafka.Message) error

	// interval > 0: handled prefixes wait in due (per partition, the highest) for the commit
	// loop, woken by kick; 0: finish commits each prefix itself before returning its tokens.
	interval time.Duration
	dueMu    sync.Mutex
	due      map[int]kafka.Message
	assigns  map[int]uint64 // per partition, how many times it was reassigned (guarded by dueMu)
	kick     chan struct{}
}

// groupReader is what a Consumer needs of its *kafka.Reader (unit tests give it a fake).
type groupReader interface {
	FetchMessage(context.Context) (kafka.Message, error)
	Stats() kafka.ReaderStats
	Close() error
}

type partition struct {
	pending []*delivery // fetched, in offset order, not yet handled in order
	next    int64       // the offset after the last one delivered
}

// delivery is one fetch of one message. Each delivery holds one window token, released exactly
// once: when it and every earlier delivery of its partition are handled (and, with no commit
// interval, committed), or — if a rebalance rewind dropped it — when its handler finishes. A
// message delivered again after a rewind is a new delivery, so a message in flight across any
// number of rewinds never shares (and never leaks) a token.
type delivery struct {
	m       kafka.Message
	done    bool // handler finished successfully
	dropped bool // removed from pending by a rewind while its handler was running
}

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	Group        string
	Topic        string
	Concurrency  int           // messages fetched and not yet handled in order; default 1
	DrainTimeout time.Duration // how long Run waits for messages in flight at shutdown; default 30s
	Logger       *slog.Logger
	// OnAssign, when set, is called before the first message of a partition is handed to the
	// handler after the partition was assigned to this consumer (at start, or again after a
	// rebalance: seen as any break in the partition's offsets, a rewind or a jump), with the
	// offset delivery starts from (every later offset of the partition will be delivered).
	// Messages of the partition wait for it; an error stops the consumer, as a handler error does.
	OnAssign func(ctx context.Context, partition int, offset int64) error
	// FetchRetryTimeout bounds how long fetching may keep failing (a broker or the group
	// coordinator unreachable: the reader heals by itself once the cluster does) before Run gives
	// up and returns the error; default 2m. Meanwhile fetches are retried (kafka-go paces them).
	FetchRetryTimeout time.Duration
	// OnFetchError, when set, is told each failed fetch while fetching fails, and nil once a
	// fetch succeeds again (the service reports itself not ready meanwhile).
	OnFetchError func(error)
}

// NewConsumer creates a consumer group reader on cfg's brokers.
func NewConsumer(cfg Config, cc ConsumerConfig) (*Consumer, error) {
	d, err := cfg.Dialer()
	if err != nil {
		return nil, err
	}
	if cc.Concurrency < 1 {
		cc.Concurrency = 1
	}
	if cc.DrainTimeout <= 0 {
		cc.DrainTimeout = 30 * time.Second
	}
	if cc.FetchRetryTimeout <= 0 {
		cc.FetchRetryTimeout = 2 * time.Minute
	}
	if cc.Logger == nil {
		cc.Logger = slog.Default()
	}
	if err := cfg.validateCommitInterval(); err != nil {
		return nil, err
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: cfg.Brokers, GroupID: cc.Group, Topic: cc.Topic, Dialer: d,
		StartOffset: kafka.FirstOffset, MinBytes: 1, MaxBytes: cfg.MaxMessageBytes + 1<<20,
		MaxWait: 250 * time.Millisecond, ReadBackoffMin: 50 * time.Millisecond, ReadBackoffMax: time.Second,
		HeartbeatInterval: time.Second, SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
		JoinGroupBackoff: 500 * time.Millisecond, QueueCapacity: 2 * cc.Concurrency,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) { cc.Logger.Warn("kafka reader: " + fmt.Sprintf(f, a...)) }),
	})
	return &Consumer{
		reader: r, topic: cc.Topic, concurrency: cc.Concurrency, drainTimeout: cc.DrainTimeout, log: cc.Logger,
		window: make(chan struct{}, cc.Concurrency), parts: map[int]*partition{}, committed: map[int]int64{},
		commitFn: r.CommitMessages, onAssign: cc.OnAssign, onFetchError: cc.OnFetchError, fetchRetry: cc.FetchRetryTimeout,
		interval: cfg.CommitInterval, due: map[int]kafka.Message{}, assigns: map[int]uint64{}, kick: make(chan struct{}, 1),
	}, nil
}

// Lag is the reader's last known lag (messages behind the high watermark).
func (c *Consumer) Lag() int64 { return c.reader.Stats().Lag }

// Run fetches and handles messages until ctx ends, then drains and closes.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	// Handlers run on a context that outlives ctx by the drain timeout, so a frame in flight at
	// SIGTERM finishes and is committed instead of being redone by the next owner.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	stopCommits := c.startCommits(hctx)
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var errs []error
	var failing, logged time.Time // since when fetches fail (zero: they do not); last warning
	failures := 0
	for {
		select {
		case c.window <- struct{}{}:
		case <-fetchCtx.Done():
		}
		if fetchCtx.Err() != nil {
			break
		}
		var quiet *time.Timer
		if !failing.IsZero() && c.onFetchError != nil {
			// The reader reports a failing group or partition within seconds; one that stays quiet
			// for 10 s has healed even if no message is there to fetch (an idle topic).
			quiet = time.AfterFunc(10*time.Second, func() { c.onFetchError(nil) })
		}
		m, err := c.reader.FetchMessage(fetchCtx)
		if quiet != nil {
			quiet.Stop()
		}
		if err != nil {
			<-c.window
			if fetchCtx.Err() != nil {
				break
			}
			// A failed fetch is transient (the reader keeps rejoining the group and redialling
			// partition leaders) unless the reader is closed or it keeps failing too long.
			if failing.IsZero() {
				failing = time.Now()
			}
			if errors.Is(err, io.EOF) || time.Since(failing) > c.fetchRetry {
				errMu.Lock()
				errs = append(errs, fmt.Errorf("fetch from %s (failing for %s): %w", c.topic, time.Since(failing).Round(time.Second), err))
				errMu.Unlock()
				break
			}
			failures++
			if time.Since(logged) >= 5*time.Second {
				c.log.Warn("fetch failed; retrying", "topic", c.topic, "failing_for", time.Since(failing).Round(time.Millisecond), "failures", failures, "err", err)
				logged = time.Now()
			}
			if c.onFetchError != nil {
				c.onFetchError(fmt.Errorf("fetch from %s: %w", c.topic, err))
			}
			// kafka-go backs off by itself (it retries the group and each partition leader) and
			// queues the errors of those attempts with the messages: take the next at once, so
			// that errors queued while a broker was away do not outlast it; pause only briefly.
			select {
			case <-fetchCtx.Done():
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		if !failing.IsZero() {
			c.log.Info("fetching again", "topic", c.topic, "after", time.Since(failing).Round(time.Millisecond), "failures", failures)
			failing, failures, logged = time.Time{}, 0, time.Time{}
			if c.onFetchError != nil {
				c.onFetchError(nil)
			}
		}
		d, assigned := c.track(m)
		if assigned && c.onAssign != nil {
			if err := c.onAssign(fetchCtx, m.Partition, m.Offset); err != nil {
				if fetchCtx.Err() == nil {
					errMu.Lock()
					errs = append(errs, fmt.Errorf("partition %d assigned at %d: %w", m.Partition, m.Offset, err))
					errMu.Unlock()
				}
				break // d stays pending, uncommitted: delivered again after the restart
			}
		}
		wg.Add(1)
		go func(d *delivery) {
			defer wg.Done()
			m := d.m
			if err := h(hctx, m); err != nil {
				if ctx.Err() == nil {
					c.log.Error("message could not be handled; stopping so that it is delivered again",
						"topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
					errMu.Lock()
					errs = append(errs, fmt.Errorf("handle %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err))
					errMu.Unlock()
					stopFetch()
				}
				return // uncommitted: its window token stays taken until Run ends
			}
			c.finish(hctx, d)
		}(d)
	}
	drainBy := time.Now().Add(c.drainTimeout) // for the handlers in flight and the last commit
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(c.drainTimeout):
		c.log.Warn("drain timeout: messages still in flight are left uncommitted", "timeout", c.drainTimeout)
		hcancel()
		<-drained
	}
	stopCommits(drainBy) // commits what was handled, before the reader leaves the group
	errMu.Lock()
	defer errMu.Unlock()
	return errors.Join(append(errs, c.reader.Close())...)
}

// InFlight is the number of deliveries holding a window token: not yet handled in order, or
// dropped by a rewind and still running. (The fetch loop also holds one token while it waits
// for a message.)
func (c *Consumer) InFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held
}

// release returns n deliveries' window tokens; c.mu is held.
func (c *Consumer) release(n int) {
	c.held -= n
	for i := 0; i < n; i++ {
		<-c.window
	}
}

// Committed returns the next offset of partition to be delivered after a restart, as far as
// this consumer committed it (false if it committed nothing on that partition).
func (c *Consumer) Committed(partition int) (int64, bool) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	o, ok := c.committed[partition]
	return o + 1, ok
}

// track records a new delivery; assigned reports that m is the first of its partition since
// the partition was assigned or rewound.
func (c *Consumer) track(m kafka.Message) (d *delivery, assigned bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.parts[m.Partition]
	// Delivery from a partition is contiguous while this consumer owns it; any other offset
	// means the partition was (re)assigned: delivery now starts from the group's committed
	// offset (a jump forward when another member advanced it meanwhile, or a rewind).
	assigned = p == nil || m.Offset != p.next
	if assigned && p != nil {
		// The group's committed offset is the truth again: a commit still due for the partition
		// would move it back after another member advanced it (only duplicates, but needless).
		// A commit of the old assignment that is in flight now and fails is not put back either.
		c.dueMu.Lock()
		delete(c.due, m.Partition)
		c.assigns[m.Partition]++
		c.dueMu.Unlock()
	}
	if rewind := p != nil && len(p.pending) > 0 && m.Offset <= p.pending[len(p.pending)-1].m.Offset; p == nil || rewind {
		// New partition, or a rewind after a rebalance: the group's committed offset is the
		// truth again and what was pending will be delivered again. Tokens of the dropped
		// deliveries come back now if they finished, or when they finish. (After a jump
		// forward, deliveries still pending from before finish and commit in order as usual.)
		if p != nil {
			for _, old := range p.pending {
				if old.done {
					c.release(1)
				} else {
					old.dropped = true
				}
			}
		}
		p = &partition{}
		c.parts[m.Partition] = p
	}
	d = &delivery{m: m}
	p.pending = append(p.pending, d)
	p.next = m.Offset + 1
	c.held++
	return d, assigned
}

// finish marks d handled, commits the longest handled prefix of its partition (or hands it to
// the commit loop) and returns the window tokens of the deliveries in it (or d's own, if a
// rewind dropped it).
func (c *Consumer) finish(ctx context.Context, d *delivery) {
	c.mu.Lock()
	if d.dropped {
		c.release(1)
		c.mu.Unlock()
		return
	}
	d.done = true
	p := c.parts[d.m.Partition]
	var last *kafka.Message
	popped := 0
	for len(p.pending) > 0 && p.pending[0].done {
		last = &p.pending[0].m
		p.pending = p.pending[1:]
		popped++
	}
	var commit kafka.Message
	if last != nil {
		commit = *last
	}
	c.mu.Unlock()
	if last == nil {
		return
	}
	if c.interval > 0 {
		c.dueMu.Lock()
		if prev, ok := c.due[commit.Partition]; !ok || commit.Offset > prev.Offset {
			c.due[commit.Partition] = commit
		}
		c.dueMu.Unlock()
		select {
		case c.kick <- struct{}{}:
		default:
		}
	} else {
		c.commit(ctx, commit)
	}
	c.mu.Lock()
	c.release(popped)
	c.mu.Unlock()
}

// commit commits up to each of ms (one per partition) in one request. kafka-go commits offset+1
// of each message given. Commits are serialized and never go backwards, whichever goroutine
// gets here first. It reports what it could not commit (nil when nothing was to be done).
func (c *Consumer) commit(ctx context.Context, ms ...kafka.Message) []kafka.Message {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	var send []kafka.Message
	for _, m := range ms {
		if prev, ok := c.committed[m.Partition]; !ok || m.Offset > prev {
			send = append(send, m)
		}
	}
	if len(send) == 0 {
		return nil
	}
	if err := c.commitFn(ctx, send...); err != nil {
		c.log.Warn("commit failed; retried with the next one, or the messages are delivered again after a restart",
			"topic", c.topic, "partitions", len(send), "err", err)
		return send
	}
	for _, m := range send {
		c.committed[m.Partition] = m.Offset
	}
	return nil
}

// startCommits runs the commit loop when commits are coalesced; the func it returns stops the
// loop and commits what is still due, by the deadline it is given (what is left of the drain
// timeout), so a drained shutdown leaves nothing handled uncommitted and still ends in time.
func (c *Consumer) startCommits(ctx context.Context) (stop func(deadline time.Time)) {
	if c.interval <= 0 {
		return func(time.Time) {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(ctx) // ends a commit still in flight at the deadline
	go func() {
		defer close(done)
		for {
			select {
			case <-c.kick:
			case <-quit:
				return
			}
			if failed := c.flushDue(ctx); len(failed) > 0 {
				select { // retried after the interval even if nothing else is handled
				case c.kick <- struct{}{}:
				default:
				}
			}
			t := time.NewTimer(c.interval) // at most one commit per interval
			select {
			case <-t.C:
			case <-quit:
				t.Stop()
				return
			}
		}
	}()
	return func(deadline time.Time) {
		close(quit)
		t := time.AfterFunc(time.Until(deadline), cancel)
		<-done
		t.Stop()
		cancel()
		fctx, cancelFinal := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		defer cancelFinal()
		if failed := c.flushDue(fctx); len(failed) > 0 {
			c.log.Warn("final commit failed: what was handled since the last commit will be delivered again", "topic", c.topic, "partitions", len(failed))
		}
	}
}

// flushDue commits every partition's due prefix in one request. What fails stays due — unless
// a later prefix of its partition became due meanwhile, or the partition was reassigned while
// the request was in flight (the group's offset is the truth again) — and is retried at the
// next round.
func (c *Consumer) flushDue(ctx context.Context) []kafka.Message {
	c.dueMu.Lock()
	ms := make([]kafka.Message, 0, len(c.due))
	assigns := make(map[int]uint64, len(c.due))
	for p, m := range c.due {
		ms = append(ms, m)
		assigns[p] = c.assigns[p]
	}
	clear(c.due)
	c.dueMu.Unlock()
	failed := c.commit(ctx, ms...)
	if len(failed) > 0 {
		c.dueMu.Lock()
		for _, m := range failed {
			_, newer := c.due[m.Partition]
			if !newer && c.assigns[m.Partition] == assigns[m.Partition] {
				c.due[m.Partition] = m
			}
		}
		c.dueMu.Unlock()
	}
	return failed
}
