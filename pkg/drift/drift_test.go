package drift

import (
	"math"
	"testing"

	"github.com/streamdet/streamdet/pkg/contract"
)

func TestPSI(t *testing.T) {
	same := []float64{10, 20, 30, 40}
	if p := PSI(same, []float64{1, 2, 3, 4}); p > 1e-9 {
		t.Fatalf("same proportions: %g", p)
	}
	if p := PSI(same, []float64{40, 30, 20, 10}); p < 0.25 {
		t.Fatalf("reversed: %g", p)
	}
	if p := PSI([]float64{0, 0}, []float64{0, 0}); p != 0 || math.IsNaN(PSI(same, []float64{0, 0, 0, 1})) {
		t.Fatal("empty or one-sided")
	}
}

// TestTracker: a stream whose frames change (no objects, tiny frames) drifts past 0.25 on the
// affected features; a stream that keeps its scene does not; the overall series sees the mix.
func TestTracker(t *testing.T) {
	tr := NewTracker(Config{ReferenceFrames: 50, WindowFrames: 50})
	scene := []contract.Detection{
		{ClassID: 16, Score: 0.85, Box: [4]float32{132, 206, 327, 543}},
		{ClassID: 1, Score: 0.8, Box: [4]float32{57, 137, 572, 423}},
		{ClassID: 2, Score: 0.79, Box: [4]float32{466, 78, 692, 171}},
	}
	var last map[string]Value
	for i := 0; i < 200; i++ {
		tr.Observe("m", "1", "0", "steady", Frame{Width: 768, Height: 576, Brightness: 110, Detections: scene})
		f := Frame{Width: 768, Height: 576, Brightness: 110, Detections: scene}
		if i >= 50 { // after the reference, cam-x sees dark, tiny frames
			f = Frame{Width: 64, Height: 48, Brightness: 10}
		}
		for _, v := range tr.Observe("m", "1", "0", "changed", f).Values {
			if v.Stream == "changed" {
				if last == nil {
					last = map[string]Value{}
				}
				last[v.Feature] = v
			}
		}
	}
	for _, f := range []string{"boxes", "frame_pixels", "brightness"} {
		if last[f].PSI < 0.25 {
			t.Errorf("changed stream %s PSI %.3f, want > 0.25", f, last[f].PSI)
		}
	}
	for _, v := range tr.Latest() {
		if v.Stream == "steady" && v.PSI > 0.01 {
			t.Errorf("steady stream drifts on %s: %.3f", v.Feature, v.PSI)
		}
	}
	tr2 := NewTracker(Config{ReferenceFrames: 1, WindowFrames: 1, MaxStreams: 1})
	tr2.Observe("m", "1", "0", "a", Frame{Width: 10, Height: 10})
	tr2.Observe("m", "1", "0", "b", Frame{Width: 10, Height: 10}) // over the bound: overall only
	for _, v := range tr2.Latest() {
		if v.Stream == "b" {
			t.Fatal("a stream over MaxStreams tracked")
		}
	}
}

// TestTrackerReferences: a new series asks for its stored reference; a completed capture is
// handed out once; an adopted reference replaces the own capture (a restart, or a replica whose
// capture lost the race, compares with the stored one); a new baseline starts again.
func TestTrackerReferences(t *testing.T) {
	tr := NewTracker(Config{ReferenceFrames: 10, WindowFrames: 10})
	bright := Frame{Width: 640, Height: 480, Brightness: 200}
	r := tr.Observe("m", "1", "0", "cam", bright)
	if len(r.Wanted) != 2 || r.Wanted[0] != (Key{"m", "1", "0", "cam"}) || r.Wanted[1].Stream != "*" {
		t.Fatalf("wanted %+v", r.Wanted)
	}
	var captured []Reference
	for i := 1; i < 10; i++ {
		r = tr.Observe("m", "1", "0", "cam", bright)
		if len(r.Wanted) != 0 {
			t.Fatalf("frame %d wanted %+v again", i, r.Wanted)
		}
		captured = append(captured, r.Captured...)
	}
	if len(captured) != 2 || captured[0].Frames != 10 || captured[0].Validate() != nil {
		t.Fatalf("captured %+v", captured)
	}
	// The stored reference (another replica's, from dark frames) replaces this one's.
	stored := captured[0]
	stored.Hist = map[string][]float64{}
	dark := NewTracker(Config{ReferenceFrames: 10, WindowFrames: 10})
	for i := 0; i < 10; i++ {
		for _, c := range dark.Observe("m", "1", "0", "cam", Frame{Width: 640, Height: 480, Brightness: 20}).Captured {
			if c.Stream == "cam" {
				stored = c
			}
		}
	}
	if !tr.Adopt(stored) {
		t.Fatal("not adopted")
	}
	var last []Value
	for i := 0; i < 10; i++ {
		last = append(last, tr.Observe("m", "1", "0", "cam", bright).Values...)
	}
	psi := map[string]float64{}
	for _, v := range last {
		if v.Stream == "cam" {
			psi[v.Feature] = v.PSI
		}
	}
	if psi["brightness"] < 0.25 {
		t.Errorf("bright frames against the adopted dark reference: PSI %v", psi)
	}
	// A reference of another baseline, or a malformed one, is not adopted.
	other := stored
	other.Baseline = "1764936000000"
	bad := stored
	bad.Hist = map[string][]float64{"class": {1}}
	if tr.Adopt(other) || tr.Adopt(bad) {
		t.Error("adopted a reference of another baseline or a malformed one")
	}
	// A restarted tracker: the stored reference arrives after its first frames, which count in
	// its first window (10 frames give a value).
	restarted := NewTracker(Config{ReferenceFrames: 10, WindowFrames: 10})
	restarted.Observe("m", "1", "0", "cam", bright)
	restarted.Observe("m", "1", "0", "cam", bright)
	if !restarted.Adopt(stored) {
		t.Fatal("not adopted by the restarted tracker")
	}
	var first []Value
	for i := 0; i < 8; i++ {
		first = append(first, restarted.Observe("m", "1", "0", "cam", bright).Values...)
	}
	if len(first) != len(Features) || first[0].Frames != 10 {
		t.Errorf("restarted: %d values after 10 frames (%+v), want one window of 10", len(first), first)
	}
	// Promotion: a new baseline starts the series again and asks for its reference.
	r = tr.Observe("m", "1", "1764936000000", "cam", bright)
	if len(r.Wanted) != 2 || r.Wanted[0].Baseline != "1764936000000" {
		t.Errorf("after a new baseline, wanted %+v", r.Wanted)
	}
}

func TestReferenceValidate(t *testing.T) {
	tr := NewTracker(Config{ReferenceFrames: 1, WindowFrames: 1})
	ref := tr.Observe("m", "1", "0", "cam", Frame{Width: 10, Height: 10}).Captured[0]
	if err := ref.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Reference){
		"no frames":       func(r *Reference) { r.Frames = 0 },
		"missing feature": func(r *Reference) { delete(r.Hist, "brightness") },
		"wrong bins":      func(r *Reference) { r.Hist["score"] = []float64{1} },
		"negative count":  func(r *Reference) { r.Hist["boxes"] = make([]float64, 8); r.Hist["boxes"][0] = -1 },
		"NaN":             func(r *Reference) { r.Hist["boxes"] = make([]float64, 8); r.Hist["boxes"][0] = math.NaN() },
	} {
		r := ref
		r.Hist = map[string][]float64{}
		for f, h := range ref.Hist {
			r.Hist[f] = append([]float64(nil), h...)
		}
		mutate(&r)
		if r.Validate() == nil {
			t.Errorf("%s: valid", name)
		}
	}
}
