package routing

import (
	"fmt"
	"testing"
	"time"
)

func all(string) State { return Ready }

func TestStickyWeighted(t *testing.T) {
	r := Route{Model: "coco", Arms: []Arm{{"1", 80}, {"2", 20}}}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	onTwo := 0
	const streams = 5000
	for s := 0; s < streams; s++ {
		stream := fmt.Sprintf("cam-%d", s)
		first, _ := r.Choose(stream, "f0", all)
		for f := 1; f < 20; f++ {
			d, _ := r.Choose(stream, fmt.Sprintf("f%d", f), all)
			if d != first {
				t.Fatalf("stream %s flipped from %+v to %+v", stream, first, d)
			}
		}
		if first.Version == "2" {
			onTwo++
			if first.Arm != ArmCanary {
				t.Fatalf("version 2 served as %s", first.Arm)
			}
		}
	}
	if share := float64(onTwo) / streams; share < 0.18 || share > 0.22 {
		t.Errorf("share on version 2: %.3f, want about 0.20", share)
	}
}

func TestWeightChangeMovesFewStreams(t *testing.T) {
	a := Route{Model: "m", Arms: []Arm{{"1", 90}, {"2", 10}}}
	b := Route{Model: "m", Arms: []Arm{{"1", 80}, {"2", 20}}}
	moved := 0
	for s := 0; s < 5000; s++ {
		x, _ := a.Choose(fmt.Sprint(s), "", all)
		y, _ := b.Choose(fmt.Sprint(s), "", all)
		if x.Version != y.Version {
			moved++
			if x.Version != "1" || y.Version != "2" {
				t.Fatalf("stream moved from %s to %s", x.Version, y.Version)
			}
		}
	}
	if moved < 400 || moved > 600 { // ~10% of streams move, only from 1 to 2
		t.Errorf("%d of 5000 streams moved", moved)
	}
}

func TestPinsShadowAndReadiness(t *testing.T) {
	r := Route{Model: "m", Arms: []Arm{{"1", 100}}, Pins: map[string]string{"cam-7": "2"}, Shadow: &Shadow{"3", 0.25}}
	if d, _ := r.Choose("cam-7", "f", all); d.Version != "2" || d.Arm != ArmPinned {
		t.Errorf("pinned stream: %+v", d)
	}
	failedTwo := func(v string) State {
		if v == "2" {
			return Unavailable
		}
		return Ready
	}
	if d, _ := r.Choose("cam-7", "f", failedTwo); d.Version != "1" || d.Arm != ArmPrimary {
		t.Errorf("pin to a failed version must fall back to the weights: %+v", d)
	}
	loadingTwo := func(v string) State {
		if v == "2" {
			return Pending
		}
		return Ready
	}
	if d, ok := r.Choose("cam-7", "f", loadingTwo); ok {
		t.Errorf("pin to a version still loading must wait, not go elsewhere: %+v", d)
	}
	shadowed := 0
	for f := 0; f < 4000; f++ {
		d, _ := r.Choose("cam-1", fmt.Sprint(f), all)
		if d.Shadow == "3" {
			shadowed++
		}
		again, _ := r.Choose("cam-1", fmt.Sprint(f), all)
		if again != d {
			t.Fatal("shadow sampling is not deterministic per frame")
		}
	}
	if shadowed < 900 || shadowed > 1100 {
		t.Errorf("%d of 4000 frames shadowed at 0.25", shadowed)
	}
	if _, ok := r.Choose("cam-1", "f", func(string) State { return Unavailable }); ok {
		t.Error("no version available must not route")
	}
	got := r.Versions(time.Now())
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Errorf("versions %v", got)
	}
}

func TestValidate(t *testing.T) {
	for _, r := range []Route{
		{Model: "", Arms: []Arm{{"1", 1}}},
		{Model: "m"},
		{Model: "m", Arms: []Arm{{"1", 0}}},
		{Model: "m", Arms: []Arm{{"1", 1}, {"1", 2}}},
		{Model: "m", Arms: []Arm{{"1", 1}}, Shadow: &Shadow{"2", 1.5}},
	} {
		if r.Validate() == nil {
			t.Errorf("%+v accepted", r)
		}
	}
}

// TestLoadingVersionDoesNotFlipStreams: while version 2 loads, its streams wait; they are not
// served by version 1 in the meantime. A failed version's streams go to the others.
func TestLoadingVersionDoesNotFlipStreams(t *testing.T) {
	r := Route{Model: "m", Arms: []Arm{{"1", 50}, {"2", 50}}}
	loading := func(v string) State {
		if v == "2" {
			return Pending
		}
		return Ready
	}
	failed := func(v string) State {
		if v == "2" {
			return Unavailable
		}
		return Ready
	}
	for s := 0; s < 200; s++ {
		final, _ := r.Choose(fmt.Sprint(s), "", all)
		d, ok := r.Choose(fmt.Sprint(s), "", loading)
		if final.Version == "2" && ok || final.Version == "1" && (!ok || d.Version != "1") {
			t.Fatalf("stream %d: final %s, while 2 loads %+v %v", s, final.Version, d, ok)
		}
		if d, ok := r.Choose(fmt.Sprint(s), "", failed); !ok || d.Version != "1" {
			t.Fatalf("stream %d with version 2 failed: %+v %v", s, d, ok)
		}
	}
}

// TestCompare: a sampled share of canary frames runs the primary beside it (paired, the
// reference); primary frames never do; a paired frame runs no other shadow.
func TestCompare(t *testing.T) {
	sticky := false
	r := &Route{Model: "m", Arms: []Arm{{"1", 50}, {"2", 50}}, Compare: 0.25, Sticky: &sticky, Shadow: &Shadow{Version: "3", Sample: 1}}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	ready := func(string) State { return Ready }
	canary, paired := 0, 0
	for i := 0; i < 4000; i++ {
		d, ok := r.Choose("cam", fmt.Sprint("f", i), ready)
		if !ok {
			t.Fatal("not routed")
		}
		switch {
		case d.Arm == ArmPrimary && (d.Paired || d.Shadow != "3"):
			t.Fatalf("primary frame %+v", d)
		case d.Arm == ArmCanary && d.Paired:
			paired++
			if d.Shadow != "1" {
				t.Fatalf("paired with %s", d.Shadow)
			}
		case d.Arm == ArmCanary && d.Shadow != "3":
			t.Fatalf("canary frame %+v", d)
		}
		if d.Arm == ArmCanary {
			canary++
		}
	}
	if share := float64(paired) / float64(canary); share < 0.2 || share > 0.3 {
		t.Fatalf("%d of %d canary frames paired (%.2f), want about 0.25", paired, canary, share)
	}
	r.Compare = 1.5
	if r.Validate() == nil {
		t.Fatal("compare 1.5 accepted")
	}
}
