// Package edge is streamdet's edge runtime (the streamdet-edge binary): on a box beside the
// cameras it reads each camera through ffmpeg, detects locally with the detect service's engine
// and model manager, and sends detections only — never frames — to the central Kafka topic, with
// the same contract and trace context as the detect service plus the device, its group and a
// per-stream sequence number.
//
// The uplink may be down for hours: every detection goes through a durable, bounded on-disk
// queue (bbolt) and is forwarded in order when Kafka answers; a kill -9 loses nothing queued,
// and ids are stable, so a resend after a crash is a duplicate the sink already ignores. The
// device follows its group's route of the model from the central registry (Redis and object
// storage, the same contracts as detect), keeps the route and every verified version it served
// on disk, and serves from there when the centre is unreachable, across restarts too. It reports
// itself on the devices topic (`detctl devices ls`).
package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/kafkax"
	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/pkg/routing"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/pkg/telemetry"
	"github.com/streamdet/streamdet/services/detect"
	"github.com/streamdet/streamdet/services/detect/engine"
)

// Runtime is one edge device at work.
type Runtime struct {
	cfg     Config
	tel     *telemetry.Telemetry
	topics  kafkax.Topics
	queue   *Queue
	models  atomic.Pointer[detect.Resolver] // nil until the model file is loaded or the route followed
	health  *service.Health
	readers map[string]*Reader
	started time.Time
	store   *objstore.Store // central object storage: registry reads, snapshot uploads
	snap    *Snapshotter    // nil without snapshot rules
	upload  *Uploader

	snapshots atomic.Int64

	detected, errs, unserved, forwarded, upstream atomic.Int64
	uplinkMu                                      sync.Mutex
	uplink                                        string
	lastBeat                                      struct {
		at       time.Time
		detected int64
	}
	frames metric.Int64Counter
}

// Run is the edge runtime: it runs with cfg (validated first) until ctx ends (SIGTERM), then
// stops the cameras, finishes the frames in hand, forwards what it can within the drain timeout
// and returns; what is not forwarded stays queued on disk for the next start.
func Run(ctx context.Context, cfg Config, tel *telemetry.Telemetry) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if tel == nil {
		tel = telemetry.Discard()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	q, err := OpenQueue(filepath.Join(cfg.DataDir, "queue.db"), cfg.QueueMaxBytes, cfg.DropPolicy)
	if err != nil {
		return err
	}
	defer q.Close()
	rt := &Runtime{cfg: cfg, tel: tel, topics: cfg.Kafka.Topics(), queue: q, health: service.NewHealth("model"),
		readers: map[string]*Reader{}, started: time.Now(), uplink: "connecting"}
	rt.lastBeat.at = rt.started
	if rt.frames, err = tel.Meter.Int64Counter("streamdet_edge_frames", metric.WithDescription("camera frames by outcome (detected, error, unserved)")); err != nil {
		return err
	}
	if err := rt.gauges(); err != nil {
		return err
	}

	// The cameras' readers exist before anything reports their state (the status endpoint, the
	// heartbeats): rt.readers is not written after this, so those read it without a lock.
	for _, cam := range cfg.Cameras {
		rt.readers[cam.ID] = NewReader(cam, cfg.FPS, cfg.Loop, cfg.Engine.Limits.MaxBytes, tel.Logger)
	}

	srv, err := service.Listen(cfg.Server, nil, rt.health, tel.Metrics)
	if err != nil {
		return err
	}
	srv.Handle("GET /status", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(rt.Status("running"))
	}))
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	tel.Logger.Info("edge device starting", "device", cfg.DeviceID, "group", cfg.Group, "cameras", len(cfg.Cameras),
		"queued", q.Stats().Depth, "addr", srv.Addr(), "arch", runtime.GOARCH)

	if cfg.Routed() || cfg.SnapshotRules != "" {
		if rt.store, err = objstore.New(cfg.Store, objstore.WithTracerProvider(tel.TracerProvider)); err != nil {
			return err
		}
	}
	if cfg.SnapshotRules != "" {
		rules, err := readRules(cfg.SnapshotRules, cfg.Cameras)
		if err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
		sq, err := OpenQueue(filepath.Join(cfg.DataDir, "snapshots.db"), cfg.SnapshotMaxBytes, DropOldest)
		if err != nil {
			return err
		}
		defer sq.Close()
		rt.snap, rt.upload = NewSnapshotter(rules), &Uploader{Queue: sq, Store: rt.store, Log: tel.Logger}
		uctx, stopUploads := context.WithCancel(context.WithoutCancel(ctx))
		uploaded := make(chan struct{})
		go func() { defer close(uploaded); rt.upload.Run(uctx) }()
		defer func() { stopUploads(); <-uploaded }()
	}

	// Models: the group's route from the registry, or one file.
	mctx, stopModels := context.WithCancel(context.WithoutCancel(ctx))
	var modelsDone sync.WaitGroup
	defer func() { stopModels(); modelsDone.Wait() }() // engines closed before Run returns, on every path
	models, err := rt.startModels(mctx, &modelsDone)
	if err != nil {
		return err
	}
	rt.models.Store(&models)

	// The uplink: one writer for detections (through the queue) and heartbeats.
	w, err := uplinkWriter(cfg.Kafka)
	if err != nil {
		return err
	}
	defer w.Close()
	fctx, stopForward := context.WithCancel(context.WithoutCancel(ctx))
	forwardDone := make(chan struct{})
	go func() { defer close(forwardDone); rt.forward(fctx, ctx, w) }()
	hctx, stopBeats := context.WithCancel(context.WithoutCancel(ctx))
	beatsDone := make(chan struct{})
	go func() { defer close(beatsDone); rt.heartbeats(hctx, w) }()

	// Cameras: a supervised reader and a detector each.
	var cams sync.WaitGroup
	for _, cam := range cfg.Cameras {
		r := rt.readers[cam.ID]
		cams.Add(2)
		go func() { defer cams.Done(); r.Run(ctx) }()
		go func() { defer cams.Done(); rt.detectLoop(ctx, cam, r) }()
	}
	cams.Wait() // ctx ended (or every file camera ended)
	if ctx.Err() == nil {
		tel.Logger.Info("every camera ended; forwarding what is queued")
		<-ctx.Done()
	}

	// Drain: forward within the drain timeout, report stopping, close.
	deadline := time.After(cfg.DrainTimeout)
	for q.Stats().Depth > 0 {
		select {
		case <-deadline:
			tel.Logger.Warn("drain timeout: records stay queued on disk for the next start", "queued", q.Stats().Depth)
			goto stop
		case <-time.After(50 * time.Millisecond):
		}
	}
stop:
	stopForward()
	<-forwardDone
	stopBeats()
	<-beatsDone
	bctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	rt.beat(bctx, w, "stopping")
	cancel()
	stopModels()
	return nil
}

// startModels loads the model file, or starts following the group's route.
func (rt *Runtime) startModels(ctx context.Context, wg *sync.WaitGroup) (detect.Resolver, error) {
	cfg, log := rt.cfg, rt.tel.Logger
	if !cfg.Routed() {
		b, err := os.ReadFile(cfg.ModelPath)
		if err != nil {
			return nil, fmt.Errorf("load model: %w", err)
		}
		ecfg := cfg.Engine
		if cfg.NamesPath != "" {
			names, err := os.ReadFile(cfg.NamesPath)
			if err != nil {
				return nil, fmt.Errorf("class names: %w", err)
			}
			ecfg.Names = engine.ReadNames(names)
		}
		eng, err := engine.New(b, ecfg)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", cfg.ModelName, err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); <-ctx.Done(); eng.Close() }()
		if err := eng.Warm(ctx); err != nil {
			return nil, err
		}
		rt.health.Set("model", nil)
		return detect.Static{Served: detect.Served{Eng: eng, Model: detect.ModelOf(cfg.ModelName, cfg.ModelVersion, eng), Arm: routing.ArmPrimary}}, nil
	}
	routes, err := routing.NewStore(cfg.Redis)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.DataDir, "models")
	m := detect.NewManager(detect.ManagerConfig{
		Name:     cfg.ModelName,
		Registry: &CachedRegistry{Source: registry.Open(rt.store, cfg.ModelsBucket).WithLedger(routes), Dir: dir, Log: log},
		Routes:   &CachedRoutes{Source: routes, Dir: dir, Log: log},
		Resync:   cfg.RouteResync, Engine: cfg.Engine, UnloadGrace: 30 * time.Second, Logger: log,
		OnHealth: func(err error) { rt.health.Degrade("routes", err) },
	})
	rt.health.Set("model", nil) // a frame waits for a version (unserved), the device stays up
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.Run(ctx)
		routes.Close()
	}()
	return m, nil
}

// detectLoop detects on the newest frame of cam whenever the model is free, and queues the
// result.
func (rt *Runtime) detectLoop(ctx context.Context, cam Camera, r *Reader) {
	for f := range r.Frames() {
		if ctx.Err() != nil {
			return
		}
		rt.detectFrame(ctx, cam, f)
	}
	if ctx.Err() == nil { // the file ended (not a shutdown): every frame it gave is handled
		r.markEnded()
	}
}

func (rt *Runtime) detectFrame(ctx context.Context, cam Camera, f Frame) {
	stream := rt.cfg.StreamID(cam)
	ctx, span := rt.tel.Tracer.Start(ctx, "edge detect", trace.WithAttributes(
		attribute.String("streamdet.stream_id", stream), attribute.String("streamdet.device", rt.cfg.DeviceID)))
	defer span.End()
	var served detect.Served
	var res engine.Result
	var err error
	for try := 0; try < 3; try++ { // a version unloaded under the frame: pick again
		if served, _, err = rt.resolve(fmt.Sprint(f.At.UnixNano())); err != nil {
			break
		}
		if res, err = served.Eng.Detect(ctx, f.JPEG); !errors.Is(err, engine.ErrClosed) {
			break
		}
	}
	switch {
	case errors.Is(err, detect.ErrNotRoutable):
		rt.unserved.Add(1)
		rt.frames.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "unserved")))
		return
	case err != nil:
		rt.errs.Add(1)
		rt.frames.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "error")))
		rt.tel.Logger.Warn("detection failed", "stream", stream, "err", err)
		return
	}
	now := time.Now().UTC()
	// An event snapshot: the frame is queued for upload before its detections, so that it is
	// there first whenever object storage is reachable.
	var snap contract.FrameRef
	rule := rt.snap.Decide(cam.ID, res.Detections, f.At)
	if rule != "" {
		snap = snapshotRef(rt.cfg.FramesBucket, stream, f.At, f.JPEG, res.Width, res.Height)
		if err := rt.upload.Enqueue(snap.Bucket, snap.Key, f.JPEG); err != nil {
			rt.tel.Logger.Warn("snapshot not queued", "stream", stream, "rule", rule, "err", err)
			rule, snap = "", contract.FrameRef{}
		} else {
			rt.snapshots.Add(1)
		}
	}
	var out contract.Detections
	traceID := span.SpanContext().TraceID().String()
	hdr := map[string]string{}
	rt.tel.Propagator.Inject(ctx, mapCarrier(hdr))
	seq, err := rt.queue.Append(stream, func(seq int64) (Record, error) {
		out = contract.Detections{
			FrameID: fmt.Sprintf("%s-%d", stream, seq), StreamID: stream, CaptureTime: f.At.UTC(),
			Width: res.Width, Height: res.Height, Model: served.Model, Route: contract.RouteArm{Arm: served.Arm},
			Detections: res.Detections,
			TimingMS: map[string]float64{"decode": res.Timing.DecodeMS, "preprocess": res.Timing.PreprocessMS,
				"infer": res.Timing.InferMS, "postprocess": res.Timing.PostprocessMS},
			TraceID: traceID, DetectedAt: now,
			Edge: &contract.Edge{Device: rt.cfg.DeviceID, Group: rt.cfg.Group, Sequence: seq, Snapshot: rule},
		}
		if rule != "" {
			out.Frame = snap
			out.Frame.FrameID, out.Frame.Sequence = out.FrameID, seq
		}
		if out.Detections == nil {
			out.Detections = []contract.Detection{}
		}
		body, err := json.Marshal(out)
		if err != nil {
			return Record{}, err
		}
		h := map[string]string{
			contract.HeaderSpecVersion: "1.0", contract.HeaderID: out.FrameID + "/" + out.Model.Name + "/" + out.Model.Version,
			contract.HeaderSource: "/streamdet/edge/" + rt.cfg.DeviceID, contract.HeaderType: contract.TypeDetections,
			contract.HeaderTime: now.Format(time.RFC3339Nano), contract.HeaderSubject: stream,
			contract.HeaderContentType: "application/json",
		}
		for k, v := range hdr {
			h[k] = v
		}
		return Record{Topic: rt.topics.Detections, Key: stream, Value: body, Headers: h}, nil
	})
	if err != nil && !errors.Is(err, ErrDropped) {
		rt.errs.Add(1)
		rt.tel.Logger.Error("cannot queue detections", "stream", stream, "err", err)
		return
	}
	span.SetAttributes(attribute.Int64("streamdet.sequence", seq))
	if rule != "" && err == nil {
		if img, aerr := annotated(f.JPEG, res.Detections); aerr != nil {
			rt.tel.Logger.Warn("annotating a snapshot", "err", aerr)
		} else if qerr := rt.upload.Enqueue(rt.cfg.AnnotatedBucket, contract.AnnotatedKey(out), img); qerr != nil {
			rt.tel.Logger.Warn("annotated snapshot not queued", "err", qerr)
		}
	}
	rt.detected.Add(1)
	rt.frames.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "detected")))
}

// resolve picks the version serving the device's group for a frame.
func (rt *Runtime) resolve(frame string) (detect.Served, *detect.Served, error) {
	m := rt.models.Load()
	if m == nil {
		return detect.Served{}, nil, detect.ErrNotRoutable
	}
	return (*m).Resolve(rt.cfg.Group, frame)
}

type mapCarrier map[string]string

func (m mapCarrier) Get(k string) string { return m[k] }
func (m mapCarrier) Set(k, v string)     { m[k] = v }
func (m mapCarrier) Keys() []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// uplinkWriter is the writer of detections (through the queue) and heartbeats; every message
// names its topic.
func uplinkWriter(c kafkax.Config) (*kafka.Writer, error) {
	w, err := c.Writer("")
	if err != nil {
		return nil, err
	}
	w.Topic = ""
	w.WriteTimeout = 10 * time.Second
	// One produce batch per partition for everything forward sends in one call: kafka-go cuts a
	// partition's messages into batches of BatchSize (default 100) sent one after another, and
	// a later batch could be stored while an earlier one failed — a stream reordered.
	w.BatchSize = forwardBatch
	return w, nil
}

// forwardBatch is the most records forward sends in one call (the writer's BatchSize).
const forwardBatch = 256

// forwardable is the longest prefix of entries whose payload fits in half of maxBytes (kafka-go's
// BatchBytes, which also counts each record's framing), at least one entry: so that a stream's
// records in one call are one produce batch, stored or refused together.
func forwardable(entries []Entry, maxBytes int64) []Entry {
	var n int64
	for i, e := range entries {
		n += entrySize(e)
		if i > 0 && n > maxBytes/2 {
			return entries[:i]
		}
	}
	return entries
}

func entrySize(e Entry) int64 {
	n := len(e.Key) + len(e.Value)
	for k, v := range e.Headers {
		n += len(k) + len(v)
	}
	return int64(n)
}

// forward sends queued records in order until ctx ends, retrying with backoff while the uplink
// is down; records leave the queue only once Kafka acknowledged them (acks=all). svc is the
// service's context: while it runs the forwarder waits for work, after it ended it only drains.
func (rt *Runtime) forward(ctx, svc context.Context, w *kafka.Writer) {
	delay := newRetryDelay(200*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		entries, err := rt.queue.Peek(forwardBatch)
		if err != nil {
			rt.tel.Logger.Error("reading the queue", "err", err)
		}
		entries = forwardable(entries, w.BatchBytes)
		if len(entries) == 0 {
			select {
			case <-ctx.Done():
			case <-rt.queue.Notify():
			case <-time.After(time.Second):
			}
			continue
		}
		msgs := make([]kafka.Message, len(entries))
		for i, e := range entries {
			m := kafka.Message{Topic: e.Topic, Key: []byte(e.Key), Value: e.Value}
			for k, v := range e.Headers {
				m.Headers = append(m.Headers, kafka.Header{Key: k, Value: []byte(v)})
			}
			msgs[i] = m
		}
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err = w.WriteMessages(wctx, msgs...)
		cancel()
		done := entries
		if err != nil {
			// Messages of one stream share a partition and so, in one call, a produce request
			// (uplinkWriter, forwardable): those that were acknowledged can leave the queue without
			// reordering any stream.
			var werrs kafka.WriteErrors
			done = nil
			if errors.As(err, &werrs) && len(werrs) == len(entries) {
				for i, e := range werrs {
					if e == nil {
						done = append(done, entries[i])
					}
				}
			}
		}
		if len(done) > 0 {
			if aerr := rt.queue.Ack(done); aerr != nil {
				rt.tel.Logger.Error("removing forwarded records from the queue", "err", aerr)
			}
			rt.forwarded.Add(int64(len(done)))
			for _, e := range done {
				rt.upstream.Add(entrySize(e))
			}
		}
		if err == nil {
			rt.setUplink(nil)
			delay.reset()
			continue
		}
		rt.setUplink(err)
		if !sleep(ctx, delay.next()) {
			return
		}
	}
}

func (rt *Runtime) setUplink(err error) {
	rt.uplinkMu.Lock()
	defer rt.uplinkMu.Unlock()
	was := rt.uplink
	if err == nil {
		rt.uplink = "ok"
		if was != "ok" {
			rt.tel.Logger.Info("uplink up: forwarding", "queued", rt.queue.Stats().Depth)
		}
		rt.health.Degrade("uplink", nil)
		return
	}
	rt.uplink = err.Error()
	if was == "ok" || was == "connecting" {
		rt.tel.Logger.Warn("uplink down: detections are queued on disk", "err", err)
	}
	rt.health.Degrade("uplink", err) // the device keeps detecting: degraded, not unready
}

// heartbeats reports the device on the devices topic every Heartbeat, best effort (a heartbeat
// is state, not history: one missed while the uplink is down is not queued).
func (rt *Runtime) heartbeats(ctx context.Context, w *kafka.Writer) {
	rt.beat(ctx, w, "running")
	t := time.NewTicker(rt.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rt.beat(ctx, w, "running")
		}
	}
}

func (rt *Runtime) beat(ctx context.Context, w *kafka.Writer, state string) {
	st := rt.Status(state)
	rt.uplinkMu.Lock()
	rt.lastBeat.at, rt.lastBeat.detected = st.At, st.Detected
	rt.uplinkMu.Unlock()
	body, _ := json.Marshal(st)
	hs := []kafka.Header{
		{Key: contract.HeaderSpecVersion, Value: []byte("1.0")},
		{Key: contract.HeaderID, Value: []byte(rt.cfg.DeviceID + "/" + st.At.Format(time.RFC3339Nano))},
		{Key: contract.HeaderSource, Value: []byte("/streamdet/edge/" + rt.cfg.DeviceID)},
		{Key: contract.HeaderType, Value: []byte(contract.TypeDevice)},
		{Key: contract.HeaderTime, Value: []byte(st.At.Format(time.RFC3339Nano))},
		{Key: contract.HeaderContentType, Value: []byte("application/json")},
	}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := w.WriteMessages(bctx, kafka.Message{Topic: rt.topics.Devices, Key: []byte(rt.cfg.DeviceID), Value: body, Headers: hs}); err != nil {
		rt.tel.Logger.Debug("heartbeat not sent", "err", err)
	}
}

// Status is the device's state now: its heartbeat and /status answer.
func (rt *Runtime) Status(state string) contract.DeviceStatus {
	now := time.Now().UTC()
	st := contract.DeviceStatus{Device: rt.cfg.DeviceID, Group: rt.cfg.Group, State: state, At: now, Started: rt.started.UTC(),
		Detected: rt.detected.Load(), Errors: rt.errs.Load(), Unserved: rt.unserved.Load(),
		Forwarded: rt.forwarded.Load(), Upstream: rt.upstream.Load(), Cameras: map[string]contract.CameraStatus{}, Arch: runtime.GOARCH}
	if s, _, err := rt.resolve(""); err == nil {
		st.Model, st.Arm = s.Model, s.Arm
	}
	rt.uplinkMu.Lock()
	st.Uplink = rt.uplink
	if dt := now.Sub(rt.lastBeat.at).Seconds(); dt > 0 {
		st.FPS = float64(st.Detected-rt.lastBeat.detected) / dt
	}
	rt.uplinkMu.Unlock()
	qs := rt.queue.Stats()
	st.Queue.Depth, st.Queue.Bytes, st.Queue.Dropped, st.Queue.Max = qs.Depth, qs.Bytes, qs.Dropped, rt.cfg.QueueMaxBytes
	if rt.upload != nil {
		qs := rt.upload.Queue.Stats()
		st.Snapshots = &contract.SnapshotStatus{Taken: rt.snapshots.Load(), Uploaded: rt.upload.Uploaded(), Queued: qs.Depth, Bytes: qs.Bytes, Dropped: qs.Dropped}
	}
	for id, r := range rt.readers {
		c := r.Stats()
		st.Cameras[id] = contract.CameraStatus{State: c.State, Frames: c.Frames, Skipped: c.Skipped, Restarts: c.Restarts, Bytes: c.Bytes, LastErr: c.LastErr}
	}
	return st
}

// gauges registers the queue's gauges.
func (rt *Runtime) gauges() error {
	m := rt.tel.Meter
	depth, err1 := m.Int64ObservableGauge("streamdet_edge_queue_depth", metric.WithDescription("records waiting for the uplink"))
	size, err2 := m.Int64ObservableGauge("streamdet_edge_queue_bytes", metric.WithDescription("bytes waiting for the uplink"))
	dropped, err3 := m.Int64ObservableCounter("streamdet_edge_queue_dropped", metric.WithDescription("records the full queue dropped by its policy"))
	fwd, err4 := m.Int64ObservableCounter("streamdet_edge_upstream_bytes", metric.WithDescription("bytes of records the uplink acknowledged"))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return err
	}
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := rt.queue.Stats()
		o.ObserveInt64(depth, s.Depth)
		o.ObserveInt64(size, s.Bytes)
		o.ObserveInt64(dropped, s.Dropped)
		o.ObserveInt64(fwd, rt.upstream.Load())
		return nil
	}, depth, size, dropped, fwd)
	return err
}
