package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/streamdet/streamdet/pkg/drift"
)

func runDrift(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("drift", flag.ContinueOnError)
	threshold := fs.Float64("threshold", 0, "only values with a PSI at least this (0.25: a significant shift)")
	stream := fs.String("stream", "", "only this stream (* for all streams together)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: detctl drift NAME [--threshold 0.25] [--stream S] [--json]")
		return 2
	}
	return withClients(ctx, "drift", true, stderr, func(c *clients) error {
		vs, err := c.routes.ReadDrift(ctx, pos[0])
		if err != nil {
			return err
		}
		var out []drift.Value
		for _, v := range vs {
			if v.PSI >= *threshold && (*stream == "" || v.Stream == *stream) {
				out = append(out, v)
			}
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(out)
		}
		printDrift(stdout, out, time.Now())
		return nil
	})
}

func printDrift(w io.Writer, vs []drift.Value, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTREAM\tFEATURE\tPSI\tSHIFT\tFRAMES\tAGE")
	for _, v := range vs {
		shift := "none"
		switch {
		case v.PSI >= 0.25:
			shift = "significant"
		case v.PSI >= 0.1:
			shift = "moderate"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f\t%s\t%d\t%s\n", v.Version, v.Stream, v.Feature, v.PSI, shift, v.Frames, now.Sub(v.At).Round(time.Second))
	}
	tw.Flush()
}
