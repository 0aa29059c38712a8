package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamdet/streamdet/pkg/contract"
)

// Progressive delivery: a Rollout moves a candidate version through weighted steps, each held
// for a duration and a minimum number of candidate frames, and gated on the statistics of the
// step's window (agreement with the baseline on paired frames, p99 latency, error rate,
// detections per frame). A failed gate rolls the route back at once; the last step passing
// promotes the candidate. The state lives in Redis (<prefix>:rollout:<model>), so a controller
// killed mid-rollout is replaced by the next one to take the lease (<prefix>:rollout-lease:<model>)
// and goes on from the recorded step.

// Rollout states.
const (
	RolloutRunning    = "running"
	RolloutPaused     = "paused"
	RolloutPromoted   = "promoted"
	RolloutRolledBack = "rolled_back"
	RolloutAborted    = "aborted"
)

// RolloutStep is one weight held for a while.
type RolloutStep struct {
	Weight    int               `json:"weight"`     // the candidate's share, 1 to 100
	Hold      contract.Duration `json:"hold"`       // at least this long
	MinFrames int64             `json:"min_frames"` // and at least this many candidate frames
}

// RolloutGates are what every step must pass, measured over the step's window.
type RolloutGates struct {
	// MinAgreement: the lower bound of the 95 % interval of the share of the baseline's boxes the
	// candidate also found, on frames both ran (Route.Compare), must reach this.
	MinAgreement float64 `json:"min_agreement"`
	// MaxP99Ratio: the candidate's p99 latency at most this times the baseline's (plus 5 ms).
	MaxP99Ratio float64 `json:"max_p99_ratio"`
	// MaxErrorRate: errors per candidate frame.
	MaxErrorRate float64 `json:"max_error_rate"`
	// DetectionsBand: the candidate's detections per frame within ± this share of the baseline's.
	DetectionsBand float64 `json:"detections_band"`
}

// RolloutPlan is what `detctl rollout start` asks for.
type RolloutPlan struct {
	Model     string        `json:"model"`
	Candidate string        `json:"candidate"`
	Steps     []RolloutStep `json:"steps"`
	Gates     RolloutGates  `json:"gates"`
	// Compare is the share of candidate frames also run on the baseline (Route.Compare).
	Compare float64 `json:"compare"`
}

// DefaultRolloutPlan is 5, 25, 50 and 100 % of streams, each held 2 minutes and 50 frames,
// gated at 90 % agreement, 1.5 × p99, 1 % errors and ± 25 % detections per frame.
func DefaultRolloutPlan(model, candidate string) RolloutPlan {
	step := func(w int) RolloutStep {
		return RolloutStep{Weight: w, Hold: contract.Duration(2 * time.Minute), MinFrames: 50}
	}
	return RolloutPlan{Model: model, Candidate: candidate, Compare: 0.5,
		Steps: []RolloutStep{step(5), step(25), step(50), step(100)},
		Gates: RolloutGates{MinAgreement: 0.9, MaxP99Ratio: 1.5, MaxErrorRate: 0.01, DetectionsBand: 0.25}}
}

// Validate checks the plan.
func (p RolloutPlan) Validate() error {
	errs := []error{contract.CheckIDs("rollout: model", p.Model, "rollout: candidate", p.Candidate)}
	if len(p.Steps) == 0 || len(p.Steps) > 20 {
		errs = append(errs, fmt.Errorf("rollout: %d steps, want 1 to 20", len(p.Steps)))
	}
	last := 0
	for i, s := range p.Steps {
		if s.Weight <= last || s.Weight > 100 {
			errs = append(errs, fmt.Errorf("rollout: step %d weight %d: weights rise, from 1 to 100", i+1, s.Weight))
		}
		last = s.Weight
		if s.Hold < 0 || time.Duration(s.Hold) > 24*time.Hour || s.MinFrames < 1 {
			errs = append(errs, fmt.Errorf("rollout: step %d: hold %s in [0, 24h] and min_frames ≥ 1", i+1, time.Duration(s.Hold)))
		}
	}
	g := p.Gates
	if !(g.MinAgreement >= 0 && g.MinAgreement <= 1) || !(g.MaxP99Ratio >= 1) || !(g.MaxErrorRate >= 0 && g.MaxErrorRate <= 1) || !(g.DetectionsBand > 0) {
		errs = append(errs, errors.New("rollout: gates: min_agreement in [0, 1], max_p99_ratio ≥ 1, max_error_rate in [0, 1], detections_band > 0"))
	}
	if !(p.Compare > 0 && p.Compare <= 1) && g.MinAgreement > 0 {
		errs = append(errs, errors.New("rollout: an agreement gate needs compare in (0, 1]"))
	}
	return errors.Join(errs...)
}

// RolloutEvent is one thing a rollout did, kept in its history and sent on <prefix>.rollouts.
type RolloutEvent struct {
	Model     string             `json:"model"`
	Candidate string             `json:"candidate"`
	Baseline  string             `json:"baseline"`
	Action    string             `json:"action"` // start, step, promote, rollback, pause, resume, abort
	Step      int                `json:"step"`   // 1-based
	Weight    int                `json:"weight"`
	Reason    string             `json:"reason,omitempty"`
	Figures   map[string]float64 `json:"figures,omitempty"`
	At        time.Time          `json:"at"`
}

// Rollout is a rollout's recorded state.
type Rollout struct {
	Plan        RolloutPlan    `json:"plan"`
	Baseline    string         `json:"baseline"`
	Step        int            `json:"step"` // 0-based index into Plan.Steps
	StepStarted time.Time      `json:"step_started"`
	State       string         `json:"state"`
	Reason      string         `json:"reason,omitempty"`
	History     []RolloutEvent `json:"history"`
	Updated     time.Time      `json:"updated"`
}

// Verdict of a step's gates.
type Verdict int

const (
	Wait Verdict = iota // not enough frames, time or evidence yet
	Pass
	Fail
)

// Evaluate judges the current step on w: Fail with the first gate broken, Pass when every gate
// holds and the step was held long enough with enough frames, Wait otherwise. An agreement whose
// interval straddles the threshold waits for more frames, up to three times the hold; then it
// fails as inconclusive. The gates against the baseline apply while it still serves (weight
// under 100).
func (r *Rollout) Evaluate(w Window, now time.Time) (Verdict, string, map[string]float64) {
	step, g := r.Plan.Steps[r.Step], r.Plan.Gates
	cand, base := w.Version(r.Plan.Candidate, ""), w.Version(r.Baseline, "")
	pair := w.Pair(r.Plan.Candidate, r.Baseline)
	share, lo, hi := pair.Agreement()
	fig := map[string]float64{"frames": float64(cand.Frames), "baseline_frames": float64(base.Frames),
		"error_rate": cand.ErrorRate(), "p99_ms": cand.LatencyQuantile(0.99), "baseline_p99_ms": base.LatencyQuantile(0.99),
		"detections_per_frame": cand.DetectionsPerFrame(), "baseline_detections_per_frame": base.DetectionsPerFrame(),
		"agreement": share, "agreement_lo": lo, "agreement_hi": hi, "compared": float64(pair.Compared)}
	if cand.Frames < step.MinFrames {
		return Wait, fmt.Sprintf("%d of %d frames", cand.Frames, step.MinFrames), fig
	}
	if e := cand.ErrorRate(); e > g.MaxErrorRate {
		return Fail, fmt.Sprintf("error rate %.2f%% over %.2f%%", 100*e, 100*g.MaxErrorRate), fig
	}
	// The baseline is compared with while it serves: at 100 % the window's baseline frames are
	// only the few from before the step began (its first bucket), too few for a p99 or a rate.
	serves := step.Weight < 100 && base.Frames > 0
	if serves && fig["p99_ms"] > g.MaxP99Ratio*fig["baseline_p99_ms"]+5 {
		return Fail, fmt.Sprintf("p99 %.1f ms over %.1f × the baseline's %.1f ms", fig["p99_ms"], g.MaxP99Ratio, fig["baseline_p99_ms"]), fig
	}
	if b := fig["baseline_detections_per_frame"]; serves && b > 0 && math.Abs(fig["detections_per_frame"]-b) > g.DetectionsBand*b {
		return Fail, fmt.Sprintf("%.2f detections per frame against the baseline's %.2f (band ±%.0f%%)", fig["detections_per_frame"], b, 100*g.DetectionsBand), fig
	}
	held := now.Sub(r.StepStarted) >= time.Duration(step.Hold)
	// At 100 % the baseline serves no frame and none is paired: only the candidate's own gates.
	if g.MinAgreement > 0 && step.Weight < 100 {
		switch {
		case pair.RefBoxes > 0 && hi < g.MinAgreement:
			return Fail, fmt.Sprintf("agreement with %s %.1f%% (95%% CI %.1f–%.1f%%) under %.0f%%", r.Baseline, 100*share, 100*lo, 100*hi, 100*g.MinAgreement), fig
		case pair.RefBoxes == 0 || lo < g.MinAgreement:
			if now.Sub(r.StepStarted) >= 3*max(time.Duration(step.Hold), time.Minute) {
				return Fail, fmt.Sprintf("agreement inconclusive after %s: %.1f%% (95%% CI %.1f–%.1f%%) over %d compared frames", now.Sub(r.StepStarted).Round(time.Second), 100*share, 100*lo, 100*hi, pair.Compared), fig
			}
			return Wait, fmt.Sprintf("agreement %.1f%% (95%% CI %.1f–%.1f%%): more frames needed", 100*share, 100*lo, 100*hi), fig
		}
	}
	if !held {
		return Wait, "holding", fig
	}
	return Pass, "", fig
}

// Route is the route for the rollout's current step (weights baseline/candidate, compare on).
func (r *Rollout) Route(cur *Route) *Route {
	w := r.Plan.Steps[r.Step].Weight
	out := &Route{Model: r.Plan.Model, Compare: r.Plan.Compare}
	if cur != nil {
		out.Pins, out.Sticky, out.Shadow = cur.Pins, cur.Sticky, cur.Shadow
	}
	if w < 100 {
		out.Arms = []Arm{{Version: r.Baseline, Weight: 100 - w}, {Version: r.Plan.Candidate, Weight: w}}
	} else {
		out.Arms = []Arm{{Version: r.Plan.Candidate, Weight: 100}}
		out.Compare = 0
		out.Warm = map[string]time.Time{r.Baseline: r.Updated.Add(10 * time.Minute)}
		// Promoted: the candidate's drift reference is what it serves from this step on.
		out.DriftReference = map[string]time.Time{r.Plan.Candidate: r.StepStarted}
	}
	out.KeepDriftReferences(cur)
	return out
}

// rolledBack is the route with the baseline alone.
func (r *Rollout) rolledBack(cur *Route) *Route {
	out := &Route{Model: r.Plan.Model, Arms: []Arm{{Version: r.Baseline, Weight: 100}}}
	if cur != nil {
		out.Sticky, out.Shadow = cur.Sticky, cur.Shadow
		for s, v := range cur.Pins {
			if v != r.Plan.Candidate { // no stream stays on the candidate
				if out.Pins == nil {
					out.Pins = map[string]string{}
				}
				out.Pins[s] = v
			}
		}
	}
	out.KeepDriftReferences(cur)
	return out
}

// GetRollout reads a model's rollout (ErrNoRollout when none was started).
func (s *Store) GetRollout(ctx context.Context, model string) (*Rollout, error) {
	b, err := s.rdb.Get(ctx, s.k("rollout", model)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNoRollout
	}
	if err != nil {
		return nil, err
	}
	if len(b) > MaxDocBytes {
		return nil, fmt.Errorf("rollout of %s: document over %d bytes", model, MaxDocBytes)
	}
	var r Rollout
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("rollout of %s: %w", model, err)
	}
	if err := r.Plan.Validate(); err != nil || r.Step < 0 || r.Step >= len(r.Plan.Steps) || contract.CheckID("baseline", r.Baseline) != nil {
		return nil, fmt.Errorf("rollout of %s: invalid document: %v", model, err)
	}
	return &r, nil
}

// ErrNoRollout: no rollout was started for the model.
var ErrNoRollout = errors.New("routing: no rollout for this model")

func (s *Store) putRollout(ctx context.Context, r *Rollout) error {
	r.Updated = s.now().UTC()
	if len(r.History) > 200 {
		r.History = r.History[len(r.History)-200:]
	}
	b, _ := json.Marshal(r)
	return s.rdb.Set(ctx, s.k("rollout", r.Plan.Model), b, 0).Err()
}

// Lease takes or renews the model's controller lease for holder, for ttl; false when another
// holder has it.
func (s *Store) Lease(ctx context.Context, model, holder string, ttl time.Duration) (bool, error) {
	key := s.k("rollout-lease", model)
	ok, err := s.rdb.SetNX(ctx, key, holder, ttl).Result()
	if err != nil || ok {
		return ok, err
	}
	// Renew only our own lease (compare and extend, atomically).
	n, err := s.rdb.Eval(ctx, `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`,
		[]string{key}, holder, strconv.FormatInt(ttl.Milliseconds(), 10)).Int()
	return n == 1, err
}

// ReleaseLease gives the lease up if holder has it.
func (s *Store) ReleaseLease(ctx context.Context, model, holder string) error {
	return s.rdb.Eval(ctx, `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`,
		[]string{s.k("rollout-lease", model)}, holder).Err()
}

// StartRollout records a new rollout of plan from the route's primary and sets the first step's
// route. A rollout already running for the model is refused.
func (s *Store) StartRollout(ctx context.Context, plan RolloutPlan) (*Rollout, RolloutEvent, error) {
	if err := plan.Validate(); err != nil {
		return nil, RolloutEvent{}, err
	}
	if old, err := s.GetRollout(ctx, plan.Model); err == nil && (old.State == RolloutRunning || old.State == RolloutPaused) {
		return nil, RolloutEvent{}, fmt.Errorf("a rollout of %s to %s is %s: abort it first", plan.Model, old.Plan.Candidate, old.State)
	}
	cur, err := s.Get(ctx, plan.Model)
	if err != nil {
		return nil, RolloutEvent{}, err
	}
	baseline, best := "", -1
	for _, a := range cur.Arms {
		if a.Weight > best {
			baseline, best = a.Version, a.Weight
		}
	}
	if baseline == plan.Candidate {
		return nil, RolloutEvent{}, fmt.Errorf("%s already serves as the primary of %s", plan.Candidate, plan.Model)
	}
	r := &Rollout{Plan: plan, Baseline: baseline, State: RolloutRunning, StepStarted: s.now().UTC()}
	ev := r.event("start", "", nil, s.now())
	r.History = append(r.History, ev)
	if err := s.Set(ctx, r.Route(cur)); err != nil {
		return nil, ev, err
	}
	return r, ev, s.putRollout(ctx, r)
}

func (r *Rollout) event(action, reason string, fig map[string]float64, now time.Time) RolloutEvent {
	return RolloutEvent{Model: r.Plan.Model, Candidate: r.Plan.Candidate, Baseline: r.Baseline, Action: action, Step: r.Step + 1,
		Weight: r.Plan.Steps[r.Step].Weight, Reason: reason, Figures: fig, At: now.UTC()}
}

// Control pauses, resumes or aborts a rollout (abort rolls the route back).
func (s *Store) Control(ctx context.Context, model, action string) (RolloutEvent, error) {
	r, err := s.GetRollout(ctx, model)
	if err != nil {
		return RolloutEvent{}, err
	}
	now := s.now()
	switch {
	case action == "pause" && r.State == RolloutRunning:
		r.State = RolloutPaused
	case action == "resume" && r.State == RolloutPaused:
		r.State, r.StepStarted = RolloutRunning, now.UTC() // the step's window starts again
	case action == "abort" && (r.State == RolloutRunning || r.State == RolloutPaused):
		cur, _ := s.Get(ctx, model)
		if err := s.Set(ctx, r.rolledBack(cur)); err != nil {
			return RolloutEvent{}, err
		}
		r.State, r.Reason = RolloutAborted, "aborted by an operator"
	default:
		return RolloutEvent{}, fmt.Errorf("cannot %s a rollout that is %s", action, r.State)
	}
	ev := r.event(action, r.Reason, nil, now)
	r.History = append(r.History, ev)
	return ev, s.putRollout(ctx, r)
}

// Advance evaluates a running rollout once and acts: the next step, promotion or rollback. It
// returns the events it caused (none while waiting). Only the lease holder calls it.
func (s *Store) Advance(ctx context.Context, model string) (*Rollout, []RolloutEvent, error) {
	r, err := s.GetRollout(ctx, model)
	if err != nil || r.State != RolloutRunning {
		return r, nil, err
	}
	now := s.now()
	w, err := s.ReadWindow(ctx, model, r.StepStarted)
	if err != nil {
		return r, nil, err
	}
	verdict, reason, fig := r.Evaluate(w, now)
	if verdict == Wait {
		return r, nil, nil
	}
	cur, err := s.Get(ctx, model)
	if err != nil {
		return r, nil, err
	}
	var ev RolloutEvent
	switch {
	case verdict == Fail:
		if err := s.Set(ctx, r.rolledBack(cur)); err != nil {
			return r, nil, err
		}
		r.State, r.Reason = RolloutRolledBack, fmt.Sprintf("step %d (%d%%): %s", r.Step+1, r.Plan.Steps[r.Step].Weight, reason)
		ev = r.event("rollback", reason, fig, now)
	case r.Step == len(r.Plan.Steps)-1:
		r.State = RolloutPromoted
		ev = r.event("promote", "every step passed", fig, now)
	default:
		passed := r.event("step", "passed", fig, now)
		r.History = append(r.History, passed)
		r.Step++
		r.StepStarted = now.UTC()
		if err := s.Set(ctx, r.Route(cur)); err != nil {
			return r, nil, err
		}
		ev = r.event("step", "started", nil, now)
		r.History = append(r.History, ev)
		return r, []RolloutEvent{passed, ev}, s.putRollout(ctx, r)
	}
	r.History = append(r.History, ev)
	return r, []RolloutEvent{ev}, s.putRollout(ctx, r)
}

// Describe is a rollout's one-line state.
func (r *Rollout) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s → %s: %s, step %d of %d (%d%%)", r.Baseline, r.Plan.Candidate, r.State, r.Step+1, len(r.Plan.Steps), r.Plan.Steps[r.Step].Weight)
	if r.Reason != "" {
		fmt.Fprintf(&b, ": %s", r.Reason)
	}
	return b.String()
}
