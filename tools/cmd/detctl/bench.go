package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/services/detect/engine"
	"github.com/streamdet/streamdet/tools/bench"
	"github.com/streamdet/streamdet/tools/jaeger"
)

// runBench drives the running pipeline (the local stack's services, a deployment, or detctl dev)
// with frames and reports what users feel: throughput, end-to-end latency, loss and duplicates,
// and CPU per frame of each process.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: detctl bench [--rate 0|R1,R2,…] [--streams N] [--duration D] [--warmup D] [--json FILE] [--plot FILE.png] IMAGE|DIR...")
		fs.PrintDefaults()
	}
	rates := fs.String("rate", "max", "frames/s in total, or a comma-separated sweep; max: as fast as the pipeline takes them; N%: that share of the max measured earlier in the sweep")
	streams := fs.Int("streams", 8, "streams to spread the frames over (the message keys)")
	duration := fs.Duration("duration", 20*time.Second, "measured time per step")
	warmup := fs.Duration("warmup", 5*time.Second, "time per step before measuring (not counted)")
	window := fs.Int("window", 16, "frames in flight at --rate 0")
	wait := fs.Duration("wait", 30*time.Second, "after a step, how long to wait for a frame still missing before counting it lost")
	jsonOut := fs.String("json", "", "write the steps as JSON to this file (- for stdout)")
	latOut := fs.String("latencies", "", "write every measured frame's latency as CSV to this file (step, offered_fps, sent_ms from the step's first frame, sent_unix_ms, latency_ms, trace_id): where in time the tail is")
	plotOut := fs.String("plot", "", "write the latency/throughput curve to this file (.png, .svg, .pdf)")
	baseline := fs.String("baseline", "", "ONNX model to measure bare ONNX Runtime with before each step")
	layouts := fs.String("baseline-layout", "", "the baseline's sessions×threads, comma-separated (default: a session per core, i.e. detect's default here, and one session with a thread per core)")
	baseFormat := fs.String("baseline-format", envOr("STREAMDET_MODEL_FORMAT", "auto"), "the baseline model's format")
	baseTime := fs.Duration("baseline-time", 5*time.Second, "how long each baseline probe runs")
	spans := fs.Int("spans", 20, "frames per step whose traces (from Jaeger) break the latency into stages; 0: none")
	slowSpans := fs.Int("slow-spans", 10, "the slowest frames per step whose traces break the tail of the latency into stages; 0: none")
	jaegerURL := fs.String("jaeger", os.Getenv("STREAMDET_JAEGER_URL"), "Jaeger query URL for --spans (default $STREAMDET_JAEGER_URL; empty: no span stages)")
	paths, err := parse(fs, args)
	if err != nil {
		return 2
	}
	offered, err := parseRates(*rates)
	if err != nil {
		fmt.Fprintln(stderr, "detctl bench:", err)
		return 2
	}
	if len(paths) == 0 || *streams < 1 || *window < 1 || *duration <= 0 {
		fs.Usage()
		return 2
	}
	frames, err := loadFrames(paths)
	if err == nil && len(frames) == 0 {
		err = fmt.Errorf("no .jpg, .jpeg or .png in %s", strings.Join(paths, ", "))
	}
	if err != nil {
		fmt.Fprintln(stderr, "detctl bench:", err)
		return 1
	}
	r, cleanup, err := benchRunner(ctx, frames)
	if err != nil {
		fmt.Fprintln(stderr, "detctl bench:", err)
		return 1
	}
	defer cleanup()
	r.Streams, r.Window, r.Wait, r.Out, r.TTY = *streams, *window, *wait, stderr, isTerminal(stderr)
	var bare []bareLayout
	if *baseline != "" {
		ls, err := parseLayouts(*layouts, numCPU())
		if err != nil {
			fmt.Fprintln(stderr, "detctl bench:", err)
			return 2
		}
		for _, l := range ls {
			e, err := baselineEngine(*baseline, *baseFormat, l.sessions, l.threads)
			if err != nil {
				fmt.Fprintln(stderr, "detctl bench: baseline:", err)
				return 1
			}
			defer e.Close()
			bare = append(bare, bareLayout{l, e})
		}
	}
	fmt.Fprintf(stderr, "detctl bench: %d frames over %d streams, %s warm-up + %s per step, run %s\n", len(frames), *streams, *warmup, *duration, r.Run)

	var steps []bench.Step
	var latencies []byte
	maxFPS := 0.0
	for _, o := range offered {
		rate := o.fps
		if o.share > 0 {
			if maxFPS == 0 {
				fmt.Fprintf(stderr, "detctl bench: --rate %.0f%%: no max measured before it in the sweep\n", o.share*100)
				return 2
			}
			rate = o.share * maxFPS
		}
		var base []bench.Baseline
		for _, l := range bare {
			b, err := bench.MeasureBaseline(ctx, l.eng, *baseTime, "")
			if err != nil {
				fmt.Fprintln(stderr, "detctl bench: baseline:", err)
				return 1
			}
			b.Layout = l.String()
			base = append(base, b)
		}
		s, err := r.Measure(ctx, rate, *warmup, *duration)
		if err != nil {
			fmt.Fprintln(stderr, "detctl bench:", err)
			return 1
		}
		s.Baselines = base
		if *spans > 0 && *jaegerURL != "" {
			s.SpanStages, s.SpanTraces = spanStages(ctx, jaeger.Client{URL: *jaegerURL}, r.Samples(*spans), stderr)
		}
		if slow := r.Slowest(*slowSpans); len(slow) > 0 && *jaegerURL != "" {
			last := slow[len(slow)-1]
			s.SlowFromMS = float64(last.Back.Sub(last.Sent)) / float64(time.Millisecond)
			s.SlowSpanStages, s.SlowSpanTraces = spanStages(ctx, jaeger.Client{URL: *jaegerURL}, slow, stderr)
		}
		if rate == 0 {
			maxFPS = max(maxFPS, s.Achieved)
		}
		steps = append(steps, s)
		latencies = appendLatencies(latencies, len(steps), rate, r.Back())
	}
	if len(steps) > 1 {
		bench.MarkKnee(steps)
	}
	printSteps(stdout, steps)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"run": r.Run, "streams": *streams, "frames": len(frames), "steps": steps}, "", "  ")
		b = append(b, '\n')
		if *jsonOut == "-" {
			stdout.Write(b)
		} else if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fmt.Fprintln(stderr, "detctl bench:", err)
			return 1
		}
	}
	if *latOut != "" {
		if err := os.WriteFile(*latOut, append([]byte("step,offered_fps,sent_ms,sent_unix_ms,latency_ms,trace_id\n"), latencies...), 0o644); err != nil {
			fmt.Fprintln(stderr, "detctl bench:", err)
			return 1
		}
	}
	if *plotOut != "" {
		if err := bench.Plot(steps, "streamdet: end-to-end latency vs throughput", *plotOut); err != nil {
			fmt.Fprintln(stderr, "detctl bench:", err)
			return 1
		}
	}
	lost := 0
	for _, s := range steps {
		lost += s.Lost
	}
	if lost > 0 {
		fmt.Fprintf(stderr, "detctl bench: %d frames lost\n", lost)
		return 1
	}
	return 0
}

// benchRunner connects to Kafka from the environment: a writer to the raw frames topic and one
// reader per partition of the detections topic, at its current end.
func benchRunner(ctx context.Context, frames []frame) (*bench.Runner, func(), error) {
	cfg, err := kafkaConfig()
	if err != nil {
		return nil, nil, err
	}
	w, err := cfg.Writer(cfg.Topics().Raw)
	if err != nil {
		return nil, nil, err
	}
	w.Async = true // each frame leaves at once (the Config's linger, 0 by default), as from a camera
	client, err := cfg.Client()
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	d, err := cfg.Dialer()
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	topic := cfg.Topics().Detections
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err == nil && (len(md.Topics) == 0 || md.Topics[0].Error != nil) {
		err = fmt.Errorf("topic %s not found", topic)
	}
	if err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("detections topic: %w", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &bench.Runner{Writer: w, Run: fmt.Sprintf("bench%d", time.Now().UnixNano()%1e9)}
	for _, f := range frames {
		r.Frames = append(r.Frames, f.data)
	}
	cleanup := func() {
		cancel()
		w.Close()
		for _, rd := range r.Readers {
			rd.Close()
		}
	}
	for _, p := range md.Topics[0].Partitions {
		offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(p.ID)}}})
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("end of %s/%d: %w", topic, p.ID, err)
		}
		rd := kafka.NewReader(kafka.ReaderConfig{Brokers: cfg.Brokers, Topic: topic, Partition: p.ID, Dialer: d,
			MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 250 * time.Millisecond, ReadBackoffMin: 10 * time.Millisecond})
		rd.SetOffset(offs.Topics[topic][0].LastOffset)
		r.Readers = append(r.Readers, rd)
	}
	r.Start(rctx)
	return r, cleanup, nil
}

// rate is one step of --rate: frames/s (0: as fast as possible), or a share of the max.
type rate struct{ fps, share float64 }

func parseRates(s string) ([]rate, error) {
	var out []rate
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "max" || f == "0":
			out = append(out, rate{})
		case strings.HasSuffix(f, "%"):
			v, err := strconv.ParseFloat(strings.TrimSuffix(f, "%"), 64)
			if err != nil || v <= 0 || v > 200 {
				return nil, fmt.Errorf("--rate %q: want a share of the max between 0 and 200%%", f)
			}
			out = append(out, rate{share: v / 100})
		default:
			v, err := strconv.ParseFloat(f, 64)
			if err != nil || v <= 0 || v > 1e5 {
				return nil, fmt.Errorf("--rate %q: want frames/s, max or N%%", f)
			}
			out = append(out, rate{fps: v})
		}
	}
	return out, nil
}

// spanExportDelay is how long after a frame's detections are read its spans can take to reach
// Jaeger: the services' batch span processors export every few seconds.
const spanExportDelay = 6 * time.Second

// spanStages fetches the sampled frames' traces from Jaeger and breaks their latency into
// stages. Jaeger being unreachable costs the stages, not the run.
func spanStages(ctx context.Context, c jaeger.Client, samples []bench.Sampled, stderr io.Writer) ([]bench.SpanStage, int) {
	if len(samples) == 0 {
		return nil, 0
	}
	last := samples[0].Back
	for _, s := range samples {
		if s.Back.After(last) {
			last = s.Back
		}
	}
	select {
	case <-time.After(time.Until(last.Add(spanExportDelay))):
	case <-ctx.Done():
		return nil, 0
	}
	traces := map[string]jaeger.Trace{}
	var firstErr error
	for _, s := range samples {
		t, err := c.Get(ctx, s.TraceID)
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		traces[s.TraceID] = t
	}
	if firstErr != nil {
		fmt.Fprintf(stderr, "detctl bench: %d of %d traces not read from Jaeger (%v)\n", len(samples)-len(traces), len(samples), firstErr)
	}
	return bench.SpanStages(samples, traces)
}

// layout is a baseline's sessions × intra-op threads.
type layout struct{ sessions, threads int }

func (l layout) String() string { return fmt.Sprintf("%dx%d", l.sessions, l.threads) }

type bareLayout struct {
	layout
	eng *engine.Engine
}

// parseLayouts reads --baseline-layout ("2x1,1x2"); empty means a session per core and one
// session with a thread per core (the same when cores is 1).
func parseLayouts(s string, cores int) ([]layout, error) {
	if s == "" {
		if cores == 1 {
			return []layout{{1, 1}}, nil
		}
		return []layout{{cores, 1}, {1, cores}}, nil
	}
	var out []layout
	for _, f := range strings.Split(s, ",") {
		var l layout
		if n, err := fmt.Sscanf(strings.TrimSpace(f), "%dx%d", &l.sessions, &l.threads); err != nil || n != 2 ||
			l.sessions < 1 || l.sessions > 64 || l.threads < 1 || l.threads > 256 {
			return nil, fmt.Errorf("--baseline-layout %q: want SESSIONSxTHREADS, e.g. 2x1, sessions in [1, 64], threads in [1, 256]", f)
		}
		out = append(out, l)
	}
	return out, nil
}

// baselineEngine loads the model with sessions × threads and detect's other engine defaults.
func baselineEngine(path, format string, sessions, threads int) (*engine.Engine, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := engine.ParseFormat(format)
	if err != nil {
		return nil, err
	}
	return engine.New(data, engine.Config{Format: f, Sessions: sessions, IntraOpThreads: threads})
}

func printSteps(w io.Writer, steps []bench.Step) {
	groups := map[bench.Group]bool{}
	stages := map[string]bool{}
	for _, s := range steps {
		for g := range s.CPUms {
			groups[g] = true
		}
		for k := range s.StageMS {
			stages[k] = true
		}
	}
	cpu := bench.CPU{}
	for g := range groups {
		cpu[g] = 1
	}
	gs := cpu.Groups()
	var ks []string
	for k := range stages {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "offered\tfps\tp50 ms\tp90 ms\tp99 ms\tlost\tdup\t")
	for _, g := range gs {
		fmt.Fprintf(tw, "%s\t", g)
	}
	fmt.Fprint(tw, "own\tall\t\n")
	for _, s := range steps {
		o := "max"
		if s.Offered > 0 {
			o = fmt.Sprintf("%.0f", s.Offered)
		}
		if s.Knee {
			o = "knee " + o
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.0f\t%.0f\t%.0f\t%d\t%d\t", o, s.Achieved, s.P50, s.P90, s.P99, s.Lost, s.Duplicates)
		for _, g := range gs {
			fmt.Fprintf(tw, "%.1f\t", s.CPUms[g])
		}
		fmt.Fprintf(tw, "%.1f\t%.1f\t\n", s.OwnCPUms, s.TotalCPUms)
	}
	tw.Flush()
	fmt.Fprintln(w, "(fps: frames back per second; latency: raw frame produced → detections read; CPU: ms per frame, from /proc;\n load: detctl bench itself, sharing the cores, not in own or all)")
	for _, s := range steps {
		for _, b := range s.Baselines {
			if b.FPS <= 0 || b.CPUms <= 0 || b.LatencyMS <= 0 {
				continue
			}
			o := "max"
			if s.Offered > 0 {
				o = fmt.Sprintf("%.0f/s", s.Offered)
			}
			fmt.Fprintf(w, "%s vs bare ONNX Runtime %s just before (%.1f fps, %.1f CPU ms/frame, %.1f ms/inference): throughput %.2f×, own CPU/frame %.2f×, p99 %.1f× one inference\n",
				o, b.Layout, b.FPS, b.CPUms, b.LatencyMS, s.Achieved/b.FPS, s.OwnCPUms/b.CPUms, s.P99/b.LatencyMS)
		}
	}
	for _, s := range steps {
		o := "max"
		if s.Offered > 0 {
			o = fmt.Sprintf("%.0f/s", s.Offered)
		}
		if len(s.SpanStages) > 0 {
			fmt.Fprintf(w, "%s, stages from %d traces (mean ms): %s\n", o, s.SpanTraces, formatStages(s.SpanStages))
		}
		if len(s.SlowSpanStages) > 0 {
			fmt.Fprintf(w, "%s, stages of the %d slowest frames (≥ %.0f ms; mean ms): %s\n", o, s.SlowSpanTraces, s.SlowFromMS, formatStages(s.SlowSpanStages))
		}
		if s.TailFrames > 0 {
			fmt.Fprintf(w, "%s, the %d frames at or above the p99 were sent in %d bursts (frames less than %v apart: one burst)\n", o, s.TailFrames, s.TailBursts, bench.BurstGap)
		}
	}
	if len(ks) > 0 {
		fmt.Fprint(w, "detect's stages, mean ms:")
		last := steps[len(steps)-1]
		for _, k := range ks {
			fmt.Fprintf(w, " %s %.1f", k, last.StageMS[k])
		}
		fmt.Fprintln(w, " (last step)")
	}
}

// formatStages prints path stages with the spans inside a service in parentheses after it:
// "→ingest 2.0, ingest 8.0 (objstore put 5.8), →detect 2.0, …".
func formatStages(stages []bench.SpanStage) string {
	var b strings.Builder
	open := ""
	for _, st := range stages {
		svc, inner, isInner := strings.Cut(st.Name, " ")
		switch {
		case isInner && svc == open:
			fmt.Fprintf(&b, ", %s %.1f", inner, st.MeanMS)
			continue
		case isInner:
			fmt.Fprintf(&b, " (%s %.1f", inner, st.MeanMS)
			open = svc
			continue
		}
		if open != "" {
			b.WriteString(")")
			open = ""
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.1f", st.Name, st.MeanMS)
	}
	if open != "" {
		b.WriteString(")")
	}
	return b.String()
}

// appendLatencies adds one CSV row per frame of a step: sent_ms counts from the step's first
// measured frame, so that a row's place in time shows whether slow frames come together.
func appendLatencies(b []byte, step int, offered float64, back []bench.Sampled) []byte {
	if len(back) == 0 {
		return b
	}
	first := back[0].Sent
	for _, f := range back {
		b = fmt.Appendf(b, "%d,%.1f,%.1f,%d,%.2f,%s\n", step, offered, float64(f.Sent.Sub(first))/1e6, f.Sent.UnixMilli(), float64(f.Back.Sub(f.Sent))/1e6, f.TraceID)
	}
	return b
}
