package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/kafkax"
)

func kafkaConfig() (kafkax.Config, error) {
	env := envconf.OS()
	c := kafkax.FromEnv(env)
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("configuration (for the local stack: eval \"$(make -s env)\"; for detctl dev: its export lines): %w", err)
	}
	return c, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// runProduce publishes images, folders or a sampled video as raw frames.
func runProduce(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stream := fs.String("stream", "cam-1", "stream id (the message key)")
	fps := fs.Float64("fps", 0, "frames per second per stream (0: as fast as possible; video: sampling rate, default 5)")
	loop := fs.Int("loop", 1, "send the images this many times (0: until interrupted)")
	streams := fs.Int("streams", 1, "fan the source out as N streams: STREAM-0 … STREAM-N-1")
	video := fs.String("video", "", "a video file or stream URL (RTSP, HTTP) to sample through ffmpeg")
	paths, err := parse(fs, args)
	if err != nil || (len(paths) == 0) == (*video == "") || *streams < 1 {
		fmt.Fprintln(stderr, "usage: detctl produce --stream S [--fps F] [--loop N] [--streams N] (PATH... | --video FILE|URL)")
		return 2
	}
	cfg, err := kafkaConfig()
	if err != nil {
		fmt.Fprintln(stderr, "detctl produce:", err)
		return 1
	}
	w, err := cfg.Writer(cfg.Topics().Raw)
	if err != nil {
		fmt.Fprintln(stderr, "detctl produce:", err)
		return 1
	}
	defer w.Close()
	names := []string{*stream}
	if *streams > 1 {
		names = names[:0]
		for i := 0; i < *streams; i++ {
			names = append(names, fmt.Sprintf("%s-%d", *stream, i))
		}
	}
	for _, n := range names {
		if err := contract.CheckID("stream id", n); err != nil {
			fmt.Fprintln(stderr, "detctl produce:", err)
			return 2
		}
	}
	tty := isTerminal(stderr)
	start := time.Now()
	sent, failed := 0, 0
	var tick *time.Ticker
	if *fps > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / *fps))
		defer tick.Stop()
	}
	report := func(final bool) {
		rate := float64(sent) / max(time.Since(start).Seconds(), 1e-3)
		switch {
		case tty:
			fmt.Fprintf(stderr, "\r%6d frames  %6.1f frames/s  %d errors ", sent, rate, failed)
			if final {
				fmt.Fprintln(stderr)
			}
		case final || sent%100 == 0:
			fmt.Fprintf(stderr, "produced %d frames (%.1f/s, %d errors) to %s\n", sent, rate, failed, w.Topic)
		}
	}
	send := func(f frame) error {
		if tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		now := time.Now().UTC().Format(time.RFC3339Nano)
		msgs := make([]kafka.Message, len(names))
		for i, s := range names {
			msgs[i] = kafka.Message{Key: []byte(s), Value: f.data, Headers: []kafka.Header{
				{Key: contract.HeaderSpecVersion, Value: []byte("1.0")}, {Key: contract.HeaderType, Value: []byte(contract.TypeRawFrame)},
				{Key: contract.HeaderTime, Value: []byte(now)}, {Key: contract.HeaderSource, Value: []byte("detctl-produce")}}}
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			failed += len(msgs)
			fmt.Fprintf(stderr, "\ndetctl produce: %s: %v\n", f.name, err)
		} else {
			sent += len(msgs)
		}
		report(false)
		return ctx.Err()
	}
	if *video != "" {
		if *fps == 0 {
			*fps = 5
		}
		tick = nil // ffmpeg samples at fps; sending keeps pace with the source
		err = videoFrames(ctx, *video, *fps, send)
	} else {
		var frames []frame
		if frames, err = loadFrames(paths); err == nil {
			for n := 0; (*loop == 0 || n < *loop) && err == nil; n++ {
				for _, f := range frames {
					if err = send(f); err != nil {
						break
					}
				}
			}
		}
	}
	report(true)
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(stderr, "detctl produce:", err)
		return 1
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// runTail follows the detections topic.
func runTail(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stream := fs.String("stream", "", "only this stream")
	label := fs.String("label", "", "only frames with a detection of this label")
	minScore := fs.Float64("min-score", 0, "only detections scored at least this")
	asJSON := fs.Bool("json", false, "print each detections message as JSON")
	fromStart := fs.Bool("from-beginning", false, "start at the oldest message instead of the newest")
	count := fs.Int("n", 0, "stop after this many frames (0: follow until interrupted)")
	shadow := fs.Bool("shadow", false, "follow the shadow topic instead")
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	cfg, err := kafkaConfig()
	if err != nil {
		fmt.Fprintln(stderr, "detctl tail:", err)
		return 1
	}
	d, err := cfg.Dialer()
	if err != nil {
		fmt.Fprintln(stderr, "detctl tail:", err)
		return 1
	}
	topic := cfg.Topics().Detections
	if *shadow {
		topic = cfg.Topics().Shadow
	}
	start := kafka.LastOffset
	if *fromStart {
		start = kafka.FirstOffset
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: cfg.Brokers, Topic: topic, Dialer: d, StartOffset: start,
		GroupID: fmt.Sprintf("detctl-tail-%d", time.Now().UnixNano()), MaxWait: 200 * time.Millisecond})
	defer r.Close()
	shown := 0
	for *count == 0 || shown < *count {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			fmt.Fprintln(stderr, "detctl tail:", err)
			return 1
		}
		var det contract.Detections
		if json.Unmarshal(m.Value, &det) != nil || (*stream != "" && det.StreamID != *stream) {
			continue
		}
		var keep []contract.Detection
		for _, o := range det.Detections {
			if o.Score >= float32(*minScore) && (*label == "" || o.Label == *label) {
				keep = append(keep, o)
			}
		}
		if *label != "" && len(keep) == 0 {
			continue
		}
		shown++
		if *asJSON {
			fmt.Fprintln(stdout, string(m.Value))
			continue
		}
		var parts []string
		for _, o := range keep {
			parts = append(parts, fmt.Sprintf("%s %.2f", o.Label, o.Score))
		}
		if len(parts) == 0 {
			parts = []string{"-"}
		}
		trace := det.TraceID
		if l := traceLink(det.TraceID); l != "" {
			trace = l
		}
		fmt.Fprintf(stdout, "%s %-12s %-28s %s/%s %-7s %s  trace=%s\n", det.CaptureTime.Local().Format("15:04:05.000"), det.StreamID, det.FrameID,
			det.Model.Name, det.Model.Version, det.Route.Arm, strings.Join(parts, ", "), trace)
	}
	return 0
}
