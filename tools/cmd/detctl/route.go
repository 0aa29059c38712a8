package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/streamdet/streamdet/pkg/routing"
)

var routingErrNoRoute = routing.ErrNoRoute

var routeCommands = map[string]command{
	"set":      {"set a route: detctl route set NAME --weights 1=90,2=10 [--shadow 3 --shadow-sample 0.2] [--pin cam-7=2]", runRouteSet},
	"get":      {"show a route and each version's load status", runRouteGet},
	"promote":  {"send 100% to a version, keeping the others warm: detctl route promote NAME VERSION [--keep-warm 10m]", runRoutePromote},
	"rollback": {"restore the route before the last change", runRouteRollback},
	"stats":    {"per version and arm: frames, latency, detections, scores, errors, agreement; --since 15m for a window (p50/p99, agreement with a 95% interval)", runRouteStats},
}

type kvList []string

func (k *kvList) String() string     { return strings.Join(*k, ",") }
func (k *kvList) Set(v string) error { *k = append(*k, strings.Split(v, ",")...); return nil }

func pairs(items []string) (map[string]string, error) {
	out := map[string]string{}
	for _, it := range items {
		if it = strings.TrimSpace(it); it == "" {
			continue
		}
		k, v, ok := strings.Cut(it, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%q: want KEY=VALUE", it)
		}
		out[k] = v
	}
	return out, nil
}

func runRouteSet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("route set", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var weights, pins kvList
	fs.Var(&weights, "weights", "VERSION=WEIGHT,... (required)")
	fs.Var(&pins, "pin", "STREAM=VERSION,... (repeatable)")
	shadow := fs.String("shadow", "", "version to run as shadow")
	sample := fs.Float64("shadow-sample", 1, "share of frames the shadow runs on")
	noSticky := fs.Bool("no-sticky", false, "place each frame independently instead of each stream")
	compare := fs.Float64("compare", 0, "share of canary frames also run on the primary, to measure each canary's agreement with it (0 to 1)")
	pos, err := parse(fs, args)
	if err != nil || len(pos) != 1 || len(weights) == 0 {
		fmt.Fprintln(stderr, "usage: detctl route set NAME --weights 1=90,2=10 [--compare 0.2] [--shadow V --shadow-sample 0.2] [--pin STREAM=V]")
		return 2
	}
	r := &routing.Route{Model: pos[0]}
	w, err := pairs(weights)
	if err == nil {
		for _, v := range sortedKeys(w) {
			n, perr := strconv.Atoi(w[v])
			if perr != nil {
				err = fmt.Errorf("weight %q of version %s: %v", w[v], v, perr)
				break
			}
			r.Arms = append(r.Arms, routing.Arm{Version: v, Weight: n})
		}
	}
	if err == nil && len(pins) > 0 {
		r.Pins, err = pairs(pins)
	}
	if err != nil {
		fmt.Fprintln(stderr, "detctl route set:", err)
		return 2
	}
	if *shadow != "" {
		r.Shadow = &routing.Shadow{Version: *shadow, Sample: *sample}
	}
	if *noSticky {
		f := false
		r.Sticky = &f
	}
	r.Compare = *compare
	return withClients(ctx, "route set", true, stderr, func(c *clients) error {
		if cur, err := c.routes.Get(ctx, r.Model); err == nil {
			r.KeepDriftReferences(cur) // new weights do not restart a version's drift reference
		}
		return storeRoute(ctx, c, r, stdout)
	})
}

// storeRoute checks the route and that every version it names exists in the registry, then
// stores it.
func storeRoute(ctx context.Context, c *clients, r *routing.Route, stdout io.Writer) error {
	if err := r.Validate(); err != nil {
		return usageError("detctl route: " + err.Error())
	}
	for _, v := range r.Versions(time.Now()) {
		if _, err := c.reg.Manifest(ctx, r.Model, v); err != nil {
			return fmt.Errorf("version %s: %w", v, err)
		}
	}
	if err := c.routes.Set(ctx, r); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "route %s revision %d: %s\n", r.Model, r.Revision, describe(r))
	return nil
}

func describe(r *routing.Route) string {
	var parts []string
	for _, a := range r.Arms {
		parts = append(parts, fmt.Sprintf("%s=%d", a.Version, a.Weight))
	}
	s := "weights " + strings.Join(parts, ",")
	if len(r.Pins) > 0 {
		var p []string
		for _, k := range sortedKeys(r.Pins) {
			p = append(p, k+"="+r.Pins[k])
		}
		s += "; pins " + strings.Join(p, ",")
	}
	if r.Shadow != nil {
		s += fmt.Sprintf("; shadow %s at %.2f", r.Shadow.Version, r.Shadow.Sample)
	}
	for _, v := range sortedKeys(r.Warm) {
		s += fmt.Sprintf("; %s warm until %s", v, r.Warm[v].Format(time.RFC3339))
	}
	return s
}

func runRouteGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("route get", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: detctl route get NAME [--json]")
		return 2
	}
	return withClients(ctx, "route get", true, stderr, func(c *clients) error { return showRoute(ctx, c, pos[0], *asJSON, stdout) })
}

func showRoute(ctx context.Context, c *clients, model string, asJSON bool, stdout io.Writer) error {
	r, err := c.routes.Get(ctx, model)
	if err != nil {
		return err
	}
	st, err := c.routes.Statuses(ctx, model)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"route": r, "status": st})
	}
	fmt.Fprintf(stdout, "route %s revision %d (updated %s): %s\n", r.Model, r.Revision, r.Updated.Format(time.RFC3339), describe(r))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tINSTANCE\tSINCE\tERROR")
	for _, v := range sortedKeys(st) {
		s := st[v]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v, s.State, s.Instance, s.At.Format(time.RFC3339), s.Error)
	}
	return tw.Flush()
}

func runRoutePromote(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("route promote", flag.ContinueOnError)
	keep := fs.Duration("keep-warm", 10*time.Minute, "how long the versions promoted from stay loaded for a rollback")
	pos, err := parse(fs, args)
	if err != nil || len(pos) != 2 {
		fmt.Fprintln(stderr, "usage: detctl route promote NAME VERSION [--keep-warm 10m]")
		return 2
	}
	return withClients(ctx, "route promote", true, stderr, func(c *clients) error {
		cur, err := c.routes.Get(ctx, pos[0])
		if err != nil {
			return err
		}
		return storeRoute(ctx, c, promoted(cur, pos[1], *keep), stdout)
	})
}

// promoted is cur with 100 % on version, the versions promoted from kept warm for keep.
func promoted(cur *routing.Route, version string, keep time.Duration) *routing.Route {
	pos := []string{cur.Model, version}
	r := &routing.Route{Model: pos[0], Arms: []routing.Arm{{Version: pos[1], Weight: 100}}, Pins: cur.Pins, Sticky: cur.Sticky,
		Warm: map[string]time.Time{}, DriftReference: map[string]time.Time{version: time.Now().UTC()}}
	if cur.Shadow != nil && cur.Shadow.Version != pos[1] {
		r.Shadow = cur.Shadow
	}
	until := time.Now().Add(keep).UTC()
	for _, a := range cur.Arms {
		if a.Version != pos[1] && a.Weight > 0 {
			r.Warm[a.Version] = until
		}
	}
	return r
}

func runRouteRollback(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: detctl route rollback NAME")
		return 2
	}
	return withClients(ctx, "route rollback", true, stderr, func(c *clients) error {
		cur, err := c.routes.Get(ctx, args[0])
		if err != nil {
			return err
		}
		if cur.Previous == nil {
			return fmt.Errorf("%s has no earlier route", args[0])
		}
		prev := cur.Previous
		prev.Warm = nil
		return storeRoute(ctx, c, prev, stdout)
	})
}

func runRouteStats(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("route stats", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	since := fs.Duration("since", 0, "only the last DURATION (10-second buckets, within the statistics horizon, 24h by default); 0: everything since the versions were first served")
	pos, err := parse(fs, args)
	if err != nil || len(pos) != 1 || *since < 0 {
		fmt.Fprintln(stderr, "usage: detctl route stats NAME [--since 15m] [--json]")
		return 2
	}
	return withClients(ctx, "route stats", true, stderr, func(c *clients) error {
		if *since > 0 {
			return showWindow(ctx, c, pos[0], *since, *asJSON, stdout)
		}
		return showStats(ctx, c, pos[0], *asJSON, stdout)
	})
}

func showStats(ctx context.Context, c *clients, model string, asJSON bool, stdout io.Writer) error {
	stats, err := c.routes.ReadStats(ctx, model)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(stats)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tARM\tFRAMES\tERRORS\tDET/FRAME\tMEAN SCORE\tMEAN LATENCY ms")
	for _, s := range stats {
		if s.Frames == 0 {
			continue
		}
		ok := float64(s.Frames - s.Errors)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.2f\t%.3f\t%.1f\n", s.Version, s.Arm, s.Frames, s.Errors,
			div(float64(s.Detections), ok), div(s.ScoreSum, float64(s.Detections)), div(s.LatencyMSSum, ok))
	}
	tw.Flush()
	for _, s := range stats {
		if s.Compared == 0 {
			continue
		}
		fmt.Fprintf(stdout, "agreement of %s %s with the primary over %d frames: %.1f%% of primary boxes matched (%d/%d), %.1f%% of %s boxes matched (%d/%d) [IoU ≥ 0.5, same class]\n",
			s.Arm, s.Version, s.Compared, 100*div(float64(s.PrimaryMatched), float64(s.PrimaryBoxes)), s.PrimaryMatched, s.PrimaryBoxes,
			100*div(float64(s.ShadowMatched), float64(s.ShadowBoxes)), s.Arm, s.ShadowMatched, s.ShadowBoxes)
	}
	return nil
}

// showWindow prints the model's statistics over the last since: per version and arm, with
// latency quantiles from the histogram, and each candidate's agreement with its reference with a
// 95 % confidence interval.
func showWindow(ctx context.Context, c *clients, model string, since time.Duration, asJSON bool, stdout io.Writer) error {
	w, err := c.routes.ReadWindow(ctx, model, time.Now().Add(-since))
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(w)
	}
	printWindow(stdout, w)
	return nil
}

func printWindow(stdout io.Writer, w routing.Window) {
	fmt.Fprintf(stdout, "from %s to %s\n", w.Since.Local().Format(time.DateTime), w.Until.Local().Format(time.DateTime))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tARM\tFRAMES\tERROR RATE\tDET/FRAME\tMEAN SCORE\tp50 ms\tp99 ms")
	for _, v := range w.Versions {
		if v.Frames == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f%%\t%.2f\t%.3f\t%.1f\t%.1f\n", v.Version, v.Arm, v.Frames, 100*v.ErrorRate(), v.DetectionsPerFrame(),
			div(v.ScoreSum, float64(v.Detections)), v.LatencyQuantile(0.5), v.LatencyQuantile(0.99))
	}
	tw.Flush()
	for _, p := range w.Pairs {
		share, lo, hi := p.Agreement()
		fmt.Fprintf(stdout, "agreement of %s %s with %s over %d frames: %.1f%% of %s's boxes found (%d/%d, 95%% CI %.1f–%.1f%%) [IoU ≥ 0.5, same class]\n",
			p.Arm, p.Candidate, p.Reference, p.Compared, 100*share, p.Reference, p.RefMatched, p.RefBoxes, 100*lo, 100*hi)
	}
}

func div(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
