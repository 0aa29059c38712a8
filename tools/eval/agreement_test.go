package eval

import (
	"math"
	"testing"

	"github.com/streamdet/streamdet/pkg/contract"
)

func TestAgreement(t *testing.T) {
	det := func(class int, label string, score float32, x1, y1, x2, y2 float32) contract.Detection {
		return contract.Detection{ClassID: class, Label: label, Score: score, Box: [4]float32{x1, y1, x2, y2}}
	}
	a := NewAgreement(0)
	// Frame 1: the candidate finds both persons (one shifted: IoU 0.8), a duplicate of one, and
	// a dog the baseline calls a cat (class differs: no match).
	a.Add([]contract.Detection{det(0, "person", .9, 0, 0, 100, 100), det(0, "person", .8, 200, 0, 300, 100), det(15, "cat", .7, 0, 200, 50, 250)},
		[]contract.Detection{det(0, "person", .95, 0, 0, 100, 100), det(0, "person", .9, 0, 0, 100, 100), det(0, "person", .6, 210, 0, 310, 111),
			det(16, "dog", .7, 0, 200, 50, 250)})
	// Frame 2: nothing on either side. Frame 3: the candidate misses a box.
	a.Add(nil, nil)
	a.Add([]contract.Detection{det(0, "person", .5, 0, 0, 10, 10)}, nil)
	if a.Frames != 3 || a.All != (Counts{Baseline: 4, Candidate: 4, Matched: 2}) {
		t.Fatalf("%d frames, %+v", a.Frames, a.All)
	}
	if p := a.PerClass["person"]; p != (Counts{Baseline: 3, Candidate: 3, Matched: 2}) {
		t.Errorf("person: %+v", p)
	}
	if c, d := a.PerClass["cat"], a.PerClass["dog"]; c != (Counts{Baseline: 1}) || d != (Counts{Candidate: 1}) {
		t.Errorf("cat %+v, dog %+v", c, d)
	}
	want := (1 + boxIoU([4]float64{200, 0, 100, 100}, [4]float64{210, 0, 100, 111})) / 2
	if math.Abs(a.MeanIoU-want) > 1e-6 {
		t.Errorf("mean IoU %v, want %v", a.MeanIoU, want)
	}
	if p, r, f := a.All.Precision(), a.All.Recall(), a.All.F1(); p != 0.5 || r != 0.5 || f != 0.5 {
		t.Errorf("precision %v recall %v F1 %v", p, r, f)
	}
	if e := (Counts{}); e.Precision() != 1 || e.Recall() != 1 || e.F1() != 1 {
		t.Error("nothing to find and nothing found should agree fully")
	}
}
