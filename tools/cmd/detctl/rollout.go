package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/routing"
)

var rolloutCommands = map[string]command{
	"start":  {"start a progressive rollout: detctl rollout start NAME VERSION [--steps 5:2m:50,25:2m:50,50:2m:50,100:2m:50] [--min-agreement 0.9 …]", runRolloutStart},
	"run":    {"the controller: advance NAME's rollout until it ends (one active per model, by a Redis lease)", runRolloutRun},
	"status": {"a rollout's state, its step's figures and its history", runRolloutStatus},
	"pause": {"hold the rollout at its step", func(ctx context.Context, a []string, o, e io.Writer) int {
		return rolloutControl(ctx, "pause", a, o, e)
	}},
	"resume": {"resume a paused rollout (its step's window starts again)", func(ctx context.Context, a []string, o, e io.Writer) int {
		return rolloutControl(ctx, "resume", a, o, e)
	}},
	"abort": {"stop the rollout and route every stream back to the baseline", func(ctx context.Context, a []string, o, e io.Writer) int {
		return rolloutControl(ctx, "abort", a, o, e)
	}},
}

// parseSteps reads WEIGHT:HOLD:MIN_FRAMES,… .
func parseSteps(s string) ([]routing.RolloutStep, error) {
	var out []routing.RolloutStep
	for _, it := range strings.Split(s, ",") {
		f := strings.Split(strings.TrimSpace(it), ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("step %q: want WEIGHT:HOLD:MIN_FRAMES, e.g. 5:2m:50", it)
		}
		w, err1 := strconv.Atoi(f[0])
		h, err2 := time.ParseDuration(f[1])
		n, err3 := strconv.ParseInt(f[2], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("step %q: %w", it, err)
		}
		out = append(out, routing.RolloutStep{Weight: w, Hold: contract.Duration(h), MinFrames: n})
	}
	return out, nil
}

func runRolloutStart(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rollout start", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := routing.DefaultRolloutPlan("", "")
	steps := fs.String("steps", "5:2m:50,25:2m:50,50:2m:50,100:2m:50", "WEIGHT:HOLD:MIN_FRAMES per step, rising to 100")
	compare := fs.Float64("compare", def.Compare, "share of candidate frames also run on the baseline, for the agreement gate")
	minAgr := fs.Float64("min-agreement", def.Gates.MinAgreement, "gate: lower 95% bound of the agreement with the baseline (0 disables)")
	p99 := fs.Float64("max-p99-ratio", def.Gates.MaxP99Ratio, "gate: candidate p99 latency ≤ this × the baseline's (+5 ms)")
	errRate := fs.Float64("max-error-rate", def.Gates.MaxErrorRate, "gate: errors per candidate frame")
	band := fs.Float64("detections-band", def.Gates.DetectionsBand, "gate: detections per frame within ± this share of the baseline's")
	pos, err := parse(fs, args)
	if err != nil || len(pos) != 2 {
		fmt.Fprintln(stderr, "usage: detctl rollout start NAME VERSION [--steps 5:2m:50,...] [--compare 0.5] [--min-agreement 0.9] [--max-p99-ratio 1.5] [--max-error-rate 0.01] [--detections-band 0.25]")
		return 2
	}
	plan := routing.RolloutPlan{Model: pos[0], Candidate: pos[1], Compare: *compare,
		Gates: routing.RolloutGates{MinAgreement: *minAgr, MaxP99Ratio: *p99, MaxErrorRate: *errRate, DetectionsBand: *band}}
	if plan.Steps, err = parseSteps(*steps); err == nil {
		err = plan.Validate()
	}
	if err != nil {
		fmt.Fprintln(stderr, "detctl rollout start:", err)
		return 2
	}
	return withClients(ctx, "rollout start", true, stderr, func(c *clients) error {
		if _, err := c.reg.Manifest(ctx, plan.Model, plan.Candidate); err != nil {
			return fmt.Errorf("version %s: %w", plan.Candidate, err)
		}
		r, ev, err := c.routes.StartRollout(ctx, plan)
		if err != nil {
			return err
		}
		publishRolloutEvents(ctx, stderr, ev)
		fmt.Fprintf(stdout, "rollout of %s: %s\nrun the controller: detctl rollout run %s\n", plan.Model, r.Describe(), plan.Model)
		return nil
	})
}

// publishRolloutEvents sends events to <prefix>.rollouts (best effort: the history in Redis is
// the record; a failure is reported, not fatal).
func publishRolloutEvents(ctx context.Context, stderr io.Writer, evs ...routing.RolloutEvent) {
	if len(evs) == 0 {
		return
	}
	cfg, err := kafkaConfig()
	var w *kafka.Writer
	if err == nil {
		w, err = cfg.Writer(cfg.Topics().Rollouts)
	}
	if err == nil {
		defer w.Close()
		var msgs []kafka.Message
		for _, ev := range evs {
			b, _ := json.Marshal(ev)
			msgs = append(msgs, kafka.Message{Key: []byte(ev.Model), Value: b, Headers: []kafka.Header{
				{Key: contract.HeaderSpecVersion, Value: []byte("1.0")}, {Key: contract.HeaderType, Value: []byte(contract.TypeRollout)},
				{Key: contract.HeaderID, Value: []byte(ev.Model + "/" + ev.Candidate + "/" + ev.Action + "/" + strconv.Itoa(ev.Step) + "/" + ev.At.Format(time.RFC3339Nano))},
				{Key: contract.HeaderSource, Value: []byte("/streamdet/detctl/rollout")}, {Key: contract.HeaderTime, Value: []byte(ev.At.Format(time.RFC3339Nano))},
				{Key: contract.HeaderContentType, Value: []byte("application/json")}}})
		}
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err = w.WriteMessages(wctx, msgs...)
		cancel()
	}
	if err != nil {
		fmt.Fprintln(stderr, "detctl rollout: event not sent to the rollouts topic (kept in the rollout's history):", err)
	}
}

func runRolloutRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rollout run", flag.ContinueOnError)
	every := fs.Duration("interval", 2*time.Second, "how often the step is evaluated")
	pos, err := parse(fs, args)
	if err != nil || len(pos) != 1 || *every < 100*time.Millisecond {
		fmt.Fprintln(stderr, "usage: detctl rollout run NAME [--interval 2s]")
		return 2
	}
	model := pos[0]
	host, _ := os.Hostname()
	holder := fmt.Sprintf("%s/%d", host, os.Getpid())
	return withClients(ctx, "rollout run", true, stderr, func(c *clients) error {
		defer c.routes.ReleaseLease(context.WithoutCancel(ctx), model, holder)
		waiting := false
		for {
			ok, err := c.routes.Lease(ctx, model, holder, 5**every+5*time.Second)
			switch {
			case err != nil:
				fmt.Fprintln(stderr, "detctl rollout run: lease:", err)
			case !ok:
				if !waiting {
					fmt.Fprintf(stdout, "another controller holds the rollout of %s; waiting for its lease\n", model)
					waiting = true
				}
			default:
				waiting = false
				r, evs, err := c.routes.Advance(ctx, model)
				if err != nil {
					if errors.Is(err, routing.ErrNoRollout) {
						return err
					}
					fmt.Fprintln(stderr, "detctl rollout run:", err)
				}
				for _, ev := range evs {
					fmt.Fprintf(stdout, "%s %s step %d (%d%%): %s %s\n", ev.At.Local().Format(time.TimeOnly), ev.Action, ev.Step, ev.Weight, ev.Reason, figures(ev.Figures))
				}
				publishRolloutEvents(ctx, stderr, evs...)
				if r != nil && r.State != routing.RolloutRunning && r.State != routing.RolloutPaused {
					fmt.Fprintf(stdout, "rollout of %s: %s\n", model, r.Describe())
					return nil
				}
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(*every):
			}
		}
	})
}

func figures(f map[string]float64) string {
	if len(f) == 0 {
		return ""
	}
	return fmt.Sprintf("[frames %.0f, agreement %.1f%% (%.1f–%.1f%%), p99 %.1f/%.1f ms, det/frame %.2f/%.2f, errors %.2f%%]", f["frames"],
		100*f["agreement"], 100*f["agreement_lo"], 100*f["agreement_hi"], f["p99_ms"], f["baseline_p99_ms"],
		f["detections_per_frame"], f["baseline_detections_per_frame"], 100*f["error_rate"])
}

func runRolloutStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rollout status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the rollout document")
	pos, err := parse(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: detctl rollout status NAME [--json]")
		return 2
	}
	return withClients(ctx, "rollout status", true, stderr, func(c *clients) error {
		r, err := c.routes.GetRollout(ctx, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(r)
		}
		fmt.Fprintf(stdout, "rollout of %s: %s\n", pos[0], r.Describe())
		if r.State == routing.RolloutRunning {
			if w, err := c.routes.ReadWindow(ctx, pos[0], r.StepStarted); err == nil {
				_, why, fig := r.Evaluate(w, time.Now())
				fmt.Fprintf(stdout, "step %d since %s: %s %s\n", r.Step+1, r.StepStarted.Local().Format(time.TimeOnly), why, figures(fig))
			}
		}
		for _, ev := range r.History {
			fmt.Fprintf(stdout, "  %s  %-8s step %d (%d%%) %s %s\n", ev.At.Local().Format(time.DateTime), ev.Action, ev.Step, ev.Weight, ev.Reason, figures(ev.Figures))
		}
		return nil
	})
}

func rolloutControl(ctx context.Context, action string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rollout "+action, flag.ContinueOnError)
	pos, err := parse(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintf(stderr, "usage: detctl rollout %s NAME\n", action)
		return 2
	}
	return withClients(ctx, "rollout "+action, true, stderr, func(c *clients) error {
		ev, err := c.routes.Control(ctx, pos[0], action)
		if err != nil {
			return err
		}
		publishRolloutEvents(ctx, stderr, ev)
		fmt.Fprintf(stdout, "rollout of %s: %s at step %d (%d%%)\n", pos[0], action, ev.Step, ev.Weight)
		return nil
	})
}
