package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/tools/jaeger"
)

// Runner drives a running pipeline: it publishes raw frames to the raw topic as N streams and
// follows the detections topic, matching each detections message to its frame by frame id.
type Runner struct {
	Writer  *kafka.Writer   // to the raw frames topic; Async with a Completion is set by Start
	Readers []*kafka.Reader // one per partition of the detections topic, positioned at its end
	Frames  [][]byte        // payloads, sent in turn
	Streams int             // stream ids <Run>-0 … <Run>-(Streams-1)
	Run     string          // prefix of every stream and frame id of this run
	Window  int             // frames in flight when sending as fast as possible
	ProcDir string          // where to read CPU times (default /proc)
	Wait    time.Duration   // how long to wait for stragglers after the last frame of a step
	Out     io.Writer       // progress, one line refreshed in place when it is a terminal
	TTY     bool

	mu       sync.Mutex
	sentAt   map[string]time.Time
	got      map[string]int
	gotAt    map[string]time.Time
	stageSum map[string]float64
	stageN   map[string]int
	sendErrs int
	recvErr  error
	step     int
	// stepSent and stepBack count the current step's frames sent and back (once each), so that
	// a frame lost in an earlier step does not hold a place in the window for ever.
	stepSent, stepBack int
	stepPrefix         string            // <Run>-<step>-: the current step's frame ids
	traceOf            map[string]string // frame id → the trace id its detections carry
	lastMeasured       []string          // the last step's measured frame ids
}

// Start begins following the detections topic; it runs until ctx ends.
func (r *Runner) Start(ctx context.Context) {
	r.sentAt, r.got, r.gotAt = map[string]time.Time{}, map[string]int{}, map[string]time.Time{}
	r.stageSum, r.stageN, r.traceOf = map[string]float64{}, map[string]int{}, map[string]string{}
	if r.ProcDir == "" {
		r.ProcDir = "/proc"
	}
	r.Writer.Completion = func(msgs []kafka.Message, err error) {
		if err != nil {
			r.mu.Lock()
			r.sendErrs += len(msgs)
			r.mu.Unlock()
		}
	}
	for _, rd := range r.Readers {
		go func(rd *kafka.Reader) {
			for {
				m, err := rd.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() == nil {
						r.mu.Lock()
						r.recvErr = err
						r.mu.Unlock()
					}
					return
				}
				r.receive(m, time.Now())
			}
		}(rd)
	}
}

func (r *Runner) receive(m kafka.Message, at time.Time) {
	var d contract.Detections
	if json.Unmarshal(m.Value, &d) != nil || !strings.HasPrefix(d.FrameID, r.Run+"-") {
		return // not ours (another producer's frames share the topic)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.sentAt[d.FrameID]; !ok {
		return
	}
	r.got[d.FrameID]++
	if r.got[d.FrameID] == 1 {
		r.gotAt[d.FrameID] = at
		r.traceOf[d.FrameID] = d.TraceID
		if strings.HasPrefix(d.FrameID, r.stepPrefix) {
			r.stepBack++
		}
		for k, v := range d.TimingMS {
			r.stageSum[k] += v
			r.stageN[k]++
		}
	}
}

// Measure runs one step: frames at offered frames/s (0: as fast as the pipeline takes them,
// Window in flight) for warmup, then for dur measured; then it waits for the stragglers (up to
// Wait) and reports.
func (r *Runner) Measure(ctx context.Context, offered float64, warmup, dur time.Duration) (Step, error) {
	r.mu.Lock()
	r.step++
	step := r.step
	r.stepSent, r.stepBack, r.stepPrefix = 0, 0, fmt.Sprintf("%s-%d-", r.Run, step)
	clear(r.stageSum)
	clear(r.stageN)
	r.mu.Unlock()
	var measured []string
	var cpu0 Procs
	var err error
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(dur)
	i := 0
	for now := time.Now(); now.Before(end); now = time.Now() {
		if ctx.Err() != nil {
			return Step{}, ctx.Err()
		}
		if offered > 0 {
			next := start.Add(time.Duration(float64(i) / offered * float64(time.Second)))
			if d := time.Until(next); d > 0 {
				time.Sleep(min(d, time.Until(end)))
				continue
			}
		} else if r.inFlight() >= r.Window {
			time.Sleep(time.Millisecond)
			continue
		}
		inWindow := !now.Before(measureFrom)
		if inWindow && cpu0 == nil {
			if cpu0, err = Sample(r.ProcDir); err != nil {
				return Step{}, err
			}
		}
		id := fmt.Sprintf("%s-%d-%d", r.Run, step, i)
		stream := fmt.Sprintf("%s-%d", r.Run, i%r.Streams)
		r.mu.Lock()
		r.sentAt[id] = time.Now()
		r.stepSent++
		r.mu.Unlock()
		if inWindow {
			measured = append(measured, id)
		}
		if err := r.Writer.WriteMessages(ctx, kafka.Message{Key: []byte(stream), Value: r.Frames[i%len(r.Frames)], Headers: []kafka.Header{
			{Key: contract.HeaderID, Value: []byte(id)}, {Key: contract.HeaderSpecVersion, Value: []byte("1.0")},
			{Key: contract.HeaderType, Value: []byte(contract.TypeRawFrame)}, {Key: contract.HeaderSource, Value: []byte("detctl-bench")}}}); err != nil {
			return Step{}, fmt.Errorf("producing: %w", err)
		}
		i++
		r.progress(offered, len(measured), false)
	}
	if len(measured) == 0 {
		return Step{}, errors.New("no frame sent in the measured window (duration too short?)")
	}
	// Stragglers: until every measured frame is back, or Wait passes without progress.
	last, lastN := time.Now(), -1
	for {
		n := r.count(measured)
		if n == len(measured) {
			break
		}
		if n != lastN {
			last, lastN = time.Now(), n
		}
		if time.Since(last) > r.Wait || ctx.Err() != nil {
			break
		}
		r.progress(offered, len(measured), false)
		time.Sleep(50 * time.Millisecond)
	}
	cpu1, err := Sample(r.ProcDir)
	if err != nil {
		return Step{}, err
	}
	r.progress(offered, len(measured), true)
	r.mu.Lock()
	r.lastMeasured = measured
	r.mu.Unlock()
	return r.report(offered, measured, cpu1.Since(cpu0))
}

// Samples returns up to n of the last step's measured frames that came back with a trace id,
// spread evenly over the step, for SpanStages.
func (r *Runner) Samples(n int) []Sampled {
	back := r.traced()
	if n <= 0 || len(back) == 0 {
		return nil
	}
	var out []Sampled
	for i := 0; i < len(back) && len(out) < n; i += max(1, len(back)/n) {
		out = append(out, back[i])
	}
	return out
}

// Slowest returns up to n of the last step's measured frames that came back with a trace id,
// the slowest first (produce to detections read), for SpanStages: where the tail comes from.
func (r *Runner) Slowest(n int) []Sampled {
	back := r.traced()
	if n <= 0 || len(back) == 0 {
		return nil
	}
	sort.SliceStable(back, func(i, j int) bool { return back[i].Back.Sub(back[i].Sent) > back[j].Back.Sub(back[j].Sent) })
	return back[:min(n, len(back))]
}

// Back is every measured frame of the last step that came back, in order of sending, with its
// trace id if it carried one: the raw latencies (detctl bench --latencies).
func (r *Runner) Back() []Sampled {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Sampled
	for _, id := range r.lastMeasured {
		if r.got[id] > 0 {
			out = append(out, Sampled{TraceID: r.traceOf[id], Sent: r.sentAt[id], Back: r.gotAt[id]})
		}
	}
	return out
}

// traced is the last step's measured frames that came back with a trace id, in order of sending.
func (r *Runner) traced() []Sampled {
	var out []Sampled
	for _, s := range r.Back() {
		if jaeger.IsTraceID(s.TraceID) {
			out = append(out, s)
		}
	}
	return out
}

func (r *Runner) inFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stepSent - r.stepBack
}

func (r *Runner) count(ids []string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, id := range ids {
		if r.got[id] > 0 {
			n++
		}
	}
	return n
}

func (r *Runner) progress(offered float64, sent int, final bool) {
	if r.Out == nil || (!r.TTY && !final) {
		return
	}
	r.mu.Lock()
	back := len(r.gotAt)
	r.mu.Unlock()
	rate := "max"
	if offered > 0 {
		rate = fmt.Sprintf("%.0f/s", offered)
	}
	const width = 24
	done := 0
	if sent > 0 {
		done = min(width, back*width/max(len(r.sentAt), 1))
	}
	fmt.Fprintf(r.Out, "\r  %-6s [%s%s] %d sent, %d back ", rate, strings.Repeat("#", done), strings.Repeat(".", width-done), len(r.sentAt), back)
	if final {
		fmt.Fprintln(r.Out)
	}
}

func (r *Runner) report(offered float64, ids []string, cpu CPU) (Step, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.recvErr != nil {
		return Step{}, fmt.Errorf("reading detections: %w", r.recvErr)
	}
	s := Step{Offered: offered, Sent: len(ids), StageMS: map[string]float64{}, CPUms: map[Group]float64{}}
	var lat []time.Duration
	var sent []time.Time // of the frame whose latency is lat[i]
	first, lastBack := r.sentAt[ids[0]], time.Time{}
	for _, id := range ids {
		n := r.got[id]
		if n == 0 {
			s.Lost++
			continue
		}
		s.Received++
		s.Duplicates += n - 1
		lat = append(lat, r.gotAt[id].Sub(r.sentAt[id]))
		sent = append(sent, r.sentAt[id])
		if r.gotAt[id].After(lastBack) {
			lastBack = r.gotAt[id]
		}
	}
	if s.Received > 0 {
		s.Achieved = float64(s.Received) / lastBack.Sub(first).Seconds()
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	p99 := Percentile(lat, 99)
	s.P50, s.P90, s.P99 = ms(Percentile(lat, 50)), ms(Percentile(lat, 90)), ms(p99)
	var tail []time.Time
	for i, l := range lat {
		if l >= p99 {
			tail = append(tail, sent[i])
		}
	}
	s.TailFrames, s.TailBursts = len(tail), Bursts(tail, BurstGap)
	for k, v := range r.stageSum {
		s.StageMS[k] = v / float64(r.stageN[k])
	}
	if s.Received > 0 {
		per := 1000 / float64(s.Received)
		for g, v := range cpu {
			s.CPUms[g] = v * per
		}
		s.OwnCPUms, s.TotalCPUms = cpu.Own()*per, cpu.Total()*per
	}
	return s, nil
}
