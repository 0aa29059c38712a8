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
		tr.Observe("m", "1", "steady", 768, 576, scene)
		dets, w, h := scene, 768, 576
		if i >= 50 { // after the reference, cam-x sees grey, tiny frames
			dets, w, h = nil, 64, 48
		}
		for _, v := range tr.Observe("m", "1", "changed", w, h, dets) {
			if v.Stream == "changed" {
				if last == nil {
					last = map[string]Value{}
				}
				last[v.Feature] = v
			}
		}
	}
	for _, f := range []string{"boxes", "frame_pixels"} {
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
	tr2.Observe("m", "1", "a", 10, 10, nil)
	tr2.Observe("m", "1", "b", 10, 10, nil) // over the bound: overall only
	for _, v := range tr2.Latest() {
		if v.Stream == "b" {
			t.Fatal("a stream over MaxStreams tracked")
		}
	}
}
