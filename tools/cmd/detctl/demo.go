package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/annotate"
	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/kafkax"
)

// runDemo runs the whole pipeline in-process, sends it a handful of frames and reports what
// came out: a line per frame, annotated frames in a folder, the live view's address.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := devFlags(fs)
	framesPath := fs.String("frames", os.Getenv("STREAMDET_FRAMES"), "a folder of images, an image or a video file (default $STREAMDET_FRAMES, else a sample image, downloaded once)")
	outDir := fs.String("out", envOr("STREAMDET_DEMO_OUT", "demo-out"), "where annotated frames are written")
	keep := fs.Bool("keep", os.Getenv("DEMO_KEEP") == "1", "stay up after the summary (DEMO_KEEP=1) until Ctrl-C")
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	quietServices()
	t0 := time.Now()

	var frames []frame
	var err error
	switch {
	case *framesPath == "":
		var p string
		if p, err = fetch(ctx, defaultFrames[0], cacheDir()); err != nil {
			fmt.Fprintf(stderr, "demo: no frames: the sample could not be downloaded (%v); set STREAMDET_FRAMES to a folder of images or a video\n", err)
			return 1
		}
		frames, err = loadFrames([]string{p})
	case isVideo(*framesPath):
		err = videoFrames(ctx, *framesPath, 2, func(f frame) error {
			if len(frames) >= 20 {
				return io.EOF
			}
			frames = append(frames, f)
			return nil
		})
		if err == io.EOF {
			err = nil
		}
	default:
		frames, err = loadFrames([]string{*framesPath})
	}
	if err == nil && len(frames) == 0 {
		err = fmt.Errorf("no JPEG or PNG images in %s", *framesPath)
	}
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}

	st, err := startEmbedded(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	defer st.Close()
	brokers := strings.Split(st.Env["STREAMDET_KAFKA_BROKERS"], ",")

	// Publish the frames as a camera would: raw bytes on the raw-frames topic.
	w, err := kafkax.Config{Brokers: brokers, MaxMessageBytes: 10 << 20}.Writer("streamdet.frames.raw")
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	defer w.Close()
	sent := map[string]frame{}
	sentAt := map[string]time.Time{}
	for i, f := range frames {
		id := fmt.Sprintf("demo-%03d", i)
		sent[id], sentAt[id] = f, time.Now()
		err := w.WriteMessages(ctx, kafka.Message{Key: []byte(fmt.Sprintf("demo-cam-%d", i%2)), Value: f.data,
			Headers: []kafka.Header{{Key: contract.HeaderID, Value: []byte(id)}}})
		if err != nil {
			fmt.Fprintln(stderr, "demo: publish:", err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "demo: %d frames published; waiting for detections…\n", len(frames))

	// Collect one detections message per frame.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: "streamdet.detections", GroupID: "detctl-demo", StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	got := map[string]contract.Detections{}
	arrived := map[string]time.Time{}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for len(got) < len(sent) {
		m, err := r.ReadMessage(wctx)
		if err != nil {
			fmt.Fprintf(stderr, "demo: %d of %d frames answered: %v\n", len(got), len(sent), err)
			return 1
		}
		var d contract.Detections
		if json.Unmarshal(m.Value, &d) == nil && sent[d.FrameID].data != nil {
			if _, dup := got[d.FrameID]; !dup {
				got[d.FrameID], arrived[d.FrameID] = d, time.Now()
			}
		}
	}

	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	ids := make([]string, 0, len(got))
	for id := range got {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	fmt.Fprintf(stdout, "\nstreamdet demo — %s served by %s/%s\n\n", filepath.Base(o.model), got[ids[0]].Model.Name, got[ids[0]].Model.Version)
	for _, id := range ids {
		d, f := got[id], sent[id]
		var labels []string
		for _, x := range d.Detections {
			labels = append(labels, fmt.Sprintf("%s %.2f", x.Label, x.Score))
		}
		if len(labels) == 0 {
			labels = []string{"(nothing)"}
		}
		t := d.TimingMS
		fmt.Fprintf(stdout, "%-22s %-9s %s\n%22s %9s decode %.1f ms · preprocess %.1f · inference %.1f · postprocess %.1f · end to end %d ms\n",
			filepath.Base(f.name), d.StreamID, strings.Join(labels, ", "), "", "", t["decode"], t["preprocess"], t["infer"], t["postprocess"],
			arrived[id].Sub(sentAt[id]).Milliseconds())
		if img, err := annotate.JPEG(f.data, d.Detections, 90); err == nil {
			os.WriteFile(filepath.Join(*outDir, strings.TrimSuffix(filepath.Base(strings.ReplaceAll(f.name, "#", "-")), filepath.Ext(f.name))+".jpg"), img, 0o644)
		}
	}
	fmt.Fprintf(stdout, "\nannotated frames: %s/\nlive view:        http://%s/\n", *outDir, st.Env["STREAMDET_SINK_ADDR"])
	fmt.Fprintf(stdout, "took %s\n", time.Since(t0).Round(100*time.Millisecond))
	if *keep {
		fmt.Fprintln(stdout, "\nstaying up (DEMO_KEEP=1); Ctrl-C stops. Endpoints:")
		fmt.Fprint(stdout, st.Exports())
		<-ctx.Done()
	}
	return 0
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
