package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/streamdet/streamdet/tools/jaeger"
)

// defaultJaegerURL is the local stack's Jaeger query API (make up); STREAMDET_JAEGER_URL or
// --jaeger points elsewhere.
const defaultJaegerURL = "http://127.0.0.1:16686"

// traceLink renders STREAMDET_TRACE_URL (e.g. http://127.0.0.1:16686/trace/{trace_id}) for id,
// or returns "" when it is unset or id is not a trace id.
func traceLink(id string) string {
	tmpl := os.Getenv("STREAMDET_TRACE_URL")
	if tmpl == "" || !jaeger.IsTraceID(id) {
		return ""
	}
	return strings.ReplaceAll(tmpl, "{trace_id}", id)
}

// runTrace prints a frame's trace (or a trace by id) from Jaeger's query API as a waterfall.
func runTrace(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: detctl trace [--stream ID] [--jaeger URL] [--lookback D] [--all] FRAME_ID|TRACE_ID")
		fs.PrintDefaults()
	}
	stream := fs.String("stream", "", "the frame's stream (frame ids are unique per stream)")
	url := fs.String("jaeger", envOr("STREAMDET_JAEGER_URL", defaultJaegerURL), "Jaeger query URL (STREAMDET_JAEGER_URL)")
	lookback := fs.Duration("lookback", 24*time.Hour, "how far back to search")
	all := fs.Bool("all", false, "print every trace of the frame (a frame sent twice has two), not only the newest")
	width := fs.Int("width", 40, "width of the time bars")
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	c := jaeger.Client{URL: *url}
	var traces []jaeger.Trace
	if jaeger.IsTraceID(pos[0]) {
		t, err := c.Get(ctx, pos[0])
		if err != nil {
			return traceFail(stderr, pos[0], err)
		}
		traces = []jaeger.Trace{t}
	} else {
		traces, err = c.FindFrame(ctx, jaeger.FrameQuery{FrameID: pos[0], StreamID: *stream, Lookback: *lookback})
		if err != nil {
			return traceFail(stderr, pos[0], err)
		}
		if !*all {
			traces = traces[:1]
		}
	}
	for i, t := range traces {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		t.Waterfall(stdout, *width)
		if l := traceLink(t.ID); l != "" {
			fmt.Fprintln(stdout, l)
		}
	}
	return 0
}

func traceFail(stderr io.Writer, what string, err error) int {
	if errors.Is(err, jaeger.ErrNotFound) {
		fmt.Fprintf(stderr, "detctl trace: %s: no trace in Jaeger (sampled out, older than --lookback, or sent elsewhere)\n", what)
	} else {
		fmt.Fprintln(stderr, "detctl trace:", err)
	}
	return 1
}
