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
// every earlier one of its partition have been handled. Concurrency bounds the uncommitted
// window, not just the handlers running: a slow message holds back at most Concurrency-1 others.
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
	window       chan struct{} // one token per delivery: fetched and neither committed nor dropped-and-finished

	mu    sync.Mutex
	parts map[int]*partition
	held  int // deliveries holding a window token (InFlight)

	commitMu  sync.Mutex
	committed map[int]int64 // highest offset committed per partition
	commitFn  func(context.Context, ...kafka.Message) error
}

// groupReader is what a Consumer needs of its *kafka.Reader (unit tests give it a fake).
type groupReader interface {
	FetchMessage(context.Context) (kafka.Message, error)
	Stats() kafka.ReaderStats
	Close() error
}

type partition struct {
	pending []*delivery // fetched, in offset order, not yet committed
	next    int64       // the offset after the last one delivered
}

// delivery is one fetch of one message. Each delivery holds one window token, released exactly
// once: when its offset is committed, or — if a rebalance rewind dropped it — when its handler
// finishes. A message delivered again after a rewind is a new delivery, so a message in flight
// across any number of rewinds never shares (and never leaks) a token.
type delivery struct {
	m       kafka.Message
	done    bool // handler finished successfully
	dropped bool // removed from pending by a rewind while its handler was running
}

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	Group        string
	Topic        string
	Concurrency  int           // uncommitted messages at once; default 1
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
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(c.drainTimeout):
		c.log.Warn("drain timeout: messages still in flight are left uncommitted", "timeout", c.drainTimeout)
		hcancel()
		<-drained
	}
	errMu.Lock()
	defer errMu.Unlock()
	return errors.Join(append(errs, c.reader.Close())...)
}

// InFlight is the number of deliveries holding a window token: not yet committed, or dropped by
// a rewind and still running. (The fetch loop also holds one token while it waits for a message.)
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

// finish marks d handled, commits the longest handled prefix of its partition and returns the
// window tokens of the deliveries committed (or d's own, if a rewind dropped it).
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
	c.commit(ctx, commit)
	c.mu.Lock()
	c.release(popped)
	c.mu.Unlock()
}

// commit commits up to m. kafka-go commits offset+1 of the message given. Commits are
// serialized and never go backwards, whichever goroutine gets here first.
func (c *Consumer) commit(ctx context.Context, m kafka.Message) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	if prev, ok := c.committed[m.Partition]; ok && m.Offset <= prev {
		return
	}
	if err := c.commitFn(ctx, m); err != nil {
		c.log.Warn("commit failed; the messages will be delivered again", "partition", m.Partition, "offset", m.Offset, "err", err)
		return
	}
	c.committed[m.Partition] = m.Offset
}
