package routing

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/streamdet/streamdet/pkg/contract"
)

type rolloutRig struct {
	t   *testing.T
	mr  *miniredis.Miniredis
	s   *Store
	now time.Time
}

func newRolloutRig(t *testing.T) *rolloutRig {
	base, mr := testStore(t)
	r := &rolloutRig{t: t, mr: mr, now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	r.s = base.WithClock(func() time.Time { return r.now })
	if err := r.s.Set(context.Background(), &Route{Model: "m", Arms: []Arm{{"1", 100}}, Pins: map[string]string{"cam-9": "1"}}); err != nil {
		t.Fatal(err)
	}
	return r
}

// serve records n frames a minute of the route's current placement: the candidate finds
// `agree` of the baseline's 4 boxes on compared frames, and detects `dets` boxes a frame.
func (r *rolloutRig) serve(minutes int, agree float64, dets int) {
	ctx := context.Background()
	for m := 0; m < minutes; m++ {
		rt, _ := r.s.Get(ctx, "m")
		for i := 0; i < 100; i++ {
			d, _ := rt.Choose("cam-"+string(rune('a'+i%26))+string(rune('a'+i/26)), "f"+time.Duration(i).String()+r.now.String(), func(string) State { return Ready })
			smp := Sample{Version: d.Version, Arm: d.Arm, LatencyMS: 20, Detections: 4}
			var agr *Agreement
			if d.Arm == ArmCanary {
				smp.Detections = dets
				if d.Paired {
					agr = &Agreement{Version: d.Version, Reference: d.Shadow, Arm: ArmCanary, PrimaryBoxes: 4, PrimaryMatched: int(agree * 4), ShadowBoxes: dets, ShadowMatched: int(agree * 4)}
				}
			}
			if err := r.s.Record(ctx, "m", smp, agr); err != nil {
				r.t.Fatal(err)
			}
		}
		r.now = r.now.Add(time.Minute)
		r.mr.FastForward(time.Minute)
	}
}

func plan() RolloutPlan {
	p := DefaultRolloutPlan("m", "2")
	p.Compare = 1
	for i := range p.Steps {
		p.Steps[i].Hold = contract.Duration(time.Minute)
		p.Steps[i].MinFrames = 10
	}
	p.Steps = []RolloutStep{{Weight: 20, Hold: contract.Duration(time.Minute), MinFrames: 10}, {Weight: 50, Hold: contract.Duration(time.Minute), MinFrames: 10}, {Weight: 100, Hold: contract.Duration(time.Minute), MinFrames: 10}}
	return p
}

func TestRolloutPromotes(t *testing.T) {
	r := newRolloutRig(t)
	ctx := context.Background()
	if _, _, err := r.s.StartRollout(ctx, plan()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.s.StartRollout(ctx, plan()); err == nil {
		t.Fatal("a second rollout started")
	}
	var actions []string
	for i := 0; i < 20; i++ {
		r.serve(1, 1, 4)
		ro, evs, err := r.s.Advance(ctx, "m")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			actions = append(actions, e.Action+"/"+e.Reason)
		}
		if ro.State != RolloutRunning {
			break
		}
	}
	ro, _ := r.s.GetRollout(ctx, "m")
	route, _ := r.s.Get(ctx, "m")
	if ro.State != RolloutPromoted || len(route.Arms) != 1 || route.Arms[0].Version != "2" || route.Warm["1"].IsZero() {
		t.Fatalf("state %s, route %+v, actions %v", ro.State, route, actions)
	}
	if got := strings.Join(actions, " "); got != "step/passed step/started step/passed step/started promote/every step passed" {
		t.Fatalf("actions: %s", got)
	}
	// The candidate's drift reference starts with the step that gave it every stream.
	if since := route.DriftReference["2"]; since.IsZero() || !since.Equal(ro.StepStarted) {
		t.Errorf("drift reference of 2: %v, want the last step's start %v", since, ro.StepStarted)
	}
}

func TestRolloutRollsBack(t *testing.T) {
	r := newRolloutRig(t)
	ctx := context.Background()
	if _, _, err := r.s.StartRollout(ctx, plan()); err != nil {
		t.Fatal(err)
	}
	// Pin a stream to the candidate meanwhile: after the rollback no stream stays on it.
	cur, _ := r.s.Get(ctx, "m")
	cur.Pins["cam-7"] = "2"
	r.s.Set(ctx, cur)
	r.serve(1, 0.25, 4) // finds 1 of 4 of the baseline's boxes
	ro, evs, err := r.s.Advance(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	route, _ := r.s.Get(ctx, "m")
	if ro.State != RolloutRolledBack || len(evs) != 1 || evs[0].Action != "rollback" || !strings.Contains(ro.Reason, "agreement") || ro.Step != 0 {
		t.Fatalf("rollout %+v, events %+v", ro, evs)
	}
	if route.Uses("2", r.now) || route.Pins["cam-9"] != "1" || route.Compare != 0 {
		t.Fatalf("route after the rollback %+v", route)
	}
	if _, err := r.s.Control(ctx, "m", "resume"); err == nil {
		t.Fatal("resumed a rolled-back rollout")
	}
}

func TestRolloutLeaseAndResume(t *testing.T) {
	r := newRolloutRig(t)
	ctx := context.Background()
	if _, _, err := r.s.StartRollout(ctx, plan()); err != nil {
		t.Fatal(err)
	}
	if ok, _ := r.s.Lease(ctx, "m", "a", 10*time.Second); !ok {
		t.Fatal("a: no lease")
	}
	if ok, _ := r.s.Lease(ctx, "m", "b", 10*time.Second); ok {
		t.Fatal("b took a's lease")
	}
	if ok, _ := r.s.Lease(ctx, "m", "a", 10*time.Second); !ok {
		t.Fatal("a cannot renew")
	}
	r.serve(2, 1, 4)
	if ro, _, _ := r.s.Advance(ctx, "m"); ro.Step != 1 {
		t.Fatalf("step %d", ro.Step)
	}
	// a is killed (no release): b takes over once the lease expires and goes on from step 2.
	r.mr.FastForward(11 * time.Second)
	if ok, _ := r.s.Lease(ctx, "m", "b", 10*time.Second); !ok {
		t.Fatal("b: no lease after a's expired")
	}
	ro, _ := r.s.GetRollout(ctx, "m")
	if ro.Step != 1 || ro.State != RolloutRunning {
		t.Fatalf("recorded %+v", ro)
	}
	if _, err := r.s.Control(ctx, "m", "pause"); err != nil {
		t.Fatal(err)
	}
	r.serve(3, 1, 4)
	if ro, evs, _ := r.s.Advance(ctx, "m"); ro.State != RolloutPaused || len(evs) != 0 {
		t.Fatal("a paused rollout advanced")
	}
	if _, err := r.s.Control(ctx, "m", "abort"); err != nil {
		t.Fatal(err)
	}
	if route, _ := r.s.Get(ctx, "m"); route.Uses("2", r.now) {
		t.Fatalf("aborted, still routed: %+v", route)
	}
}

func TestEvaluateGates(t *testing.T) {
	lat := func(bucket int) []int64 {
		l := make([]int64, len(LatencyBoundsMS)+1)
		l[bucket] = 100
		return l
	}
	good := PairWindow{Candidate: "2", Reference: "1", Compared: 50, RefBoxes: 200, RefMatched: 198}
	base := VersionWindow{Version: "1", Arm: ArmPrimary, Frames: 100, Detections: 400, Latency: lat(5)}
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		cand VersionWindow
		pair PairWindow
		at   time.Duration
		want Verdict
		why  string
	}{
		{"too few frames", VersionWindow{Version: "2", Frames: 5, Detections: 20, Latency: lat(5)}, good, time.Hour, Wait, "5 of 10"},
		{"good", VersionWindow{Version: "2", Frames: 100, Detections: 400, Latency: lat(5)}, good, 2 * time.Minute, Pass, ""},
		{"good, not held", VersionWindow{Version: "2", Frames: 100, Detections: 400, Latency: lat(5)}, good, 10 * time.Second, Wait, "holding"},
		{"errors", VersionWindow{Version: "2", Frames: 100, Errors: 5, Detections: 380, Latency: lat(5)}, good, time.Minute, Fail, "error rate"},
		{"slow", VersionWindow{Version: "2", Frames: 100, Detections: 400, Latency: lat(10)}, good, time.Minute, Fail, "p99"},
		{"sees more", VersionWindow{Version: "2", Frames: 100, Detections: 600, Latency: lat(5)}, good, time.Minute, Fail, "detections per frame"},
		{"disagrees", VersionWindow{Version: "2", Frames: 100, Detections: 400, Latency: lat(5)}, PairWindow{Candidate: "2", Reference: "1", Compared: 50, RefBoxes: 200, RefMatched: 100}, time.Minute, Fail, "agreement"},
		{"unsure", VersionWindow{Version: "2", Frames: 100, Detections: 400, Latency: lat(5)}, PairWindow{Candidate: "2", Reference: "1", Compared: 3, RefBoxes: 12, RefMatched: 11}, time.Minute, Wait, "more frames"},
		{"unsure too long", VersionWindow{Version: "2", Frames: 100, Detections: 400, Latency: lat(5)}, PairWindow{Candidate: "2", Reference: "1", Compared: 3, RefBoxes: 12, RefMatched: 11}, 4 * time.Minute, Fail, "inconclusive"},
	} {
		r := &Rollout{Plan: plan(), Baseline: "1", StepStarted: t0}
		w := Window{Versions: []VersionWindow{base, tc.cand}, Pairs: []PairWindow{tc.pair}}
		got, why, _ := r.Evaluate(w, t0.Add(tc.at))
		if got != tc.want || !strings.Contains(why, tc.why) {
			t.Errorf("%s: %v %q, want %v %q", tc.name, got, why, tc.want, tc.why)
		}
	}
	// At 100 % the baseline serves nothing: the few fast frames the step's window holds from
	// before the step began (its first bucket) are no baseline to compare p99 or detections with.
	r := &Rollout{Plan: plan(), Baseline: "1", StepStarted: t0, Step: len(plan().Steps) - 1}
	w := Window{Versions: []VersionWindow{{Version: "1", Arm: ArmPrimary, Frames: 4, Detections: 16, Latency: lat(2)},
		{Version: "2", Frames: 100, Detections: 500, Latency: lat(10)}}}
	if got, why, _ := r.Evaluate(w, t0.Add(2*time.Minute)); got != Pass {
		t.Errorf("100 %%, the baseline's last frames: %v %q, want %v", got, why, Pass)
	}
	bad := plan()
	bad.Steps[1].Weight = 10
	if bad.Validate() == nil {
		t.Error("falling weights accepted")
	}
}
