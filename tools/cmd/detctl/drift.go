package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/streamdet/streamdet/pkg/drift"
)

func runDrift(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "reset" {
		return runDriftReset(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("drift", flag.ContinueOnError)
	threshold := fs.Float64("threshold", 0, "only values with a PSI at least this (0.25: a significant shift)")
	stream := fs.String("stream", "", "only this stream (* for all streams together)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: detctl drift NAME [--threshold 0.25] [--stream S] [--json]\n       detctl drift reset NAME VERSION")
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
	fmt.Fprintln(tw, "VERSION\tSTREAM\tFEATURE\tPSI\tSHIFT\tFRAMES\tAGE\tREFERENCE")
	for _, v := range vs {
		shift := "none"
		switch {
		case v.PSI >= 0.25:
			shift = "significant"
		case v.PSI >= 0.1:
			shift = "moderate"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f\t%s\t%d\t%s\t%s\n", v.Version, v.Stream, v.Feature, v.PSI, shift, v.Frames, now.Sub(v.At).Round(time.Second), reference(v.Baseline))
	}
	tw.Flush()
}

// runDriftReset starts a new drift reference for a version: every detect replica recaptures it
// from the frames the version serves from now on (the route's drift_reference).
func runDriftReset(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: detctl drift reset NAME VERSION")
		return 2
	}
	return withClients(ctx, "drift reset", true, stderr, func(c *clients) error {
		cur, err := c.routes.Get(ctx, args[0])
		if err != nil {
			return err
		}
		if !cur.Uses(args[1], time.Now()) {
			return usageError(fmt.Sprintf("detctl drift reset: the route of %s does not serve version %s", args[0], args[1]))
		}
		next := *cur // Set keeps cur as next's Previous
		next.DriftReference = map[string]time.Time{}
		for v, since := range cur.DriftReference {
			next.DriftReference[v] = since
		}
		next.DriftReference[args[1]] = time.Now().UTC()
		return storeRoute(ctx, c, &next, stdout)
	})
}

// reference describes a drift baseline: the version's first frames, or its frames since a time.
func reference(baseline string) string {
	ms, err := strconv.ParseInt(baseline, 10, 64)
	if err != nil || ms <= 0 {
		return "first frames served"
	}
	return "since " + time.UnixMilli(ms).UTC().Format(time.RFC3339)
}
