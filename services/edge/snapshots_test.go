package edge

import (
	"strings"
	"testing"
	"time"

	"github.com/streamdet/streamdet/pkg/contract"
)

func TestSnapshotRules(t *testing.T) {
	cams := []Camera{{ID: "gate", Source: "x"}, {ID: "dock", Source: "y"}}
	rules, err := ParseSnapshotRules(strings.NewReader(`{"rules":[
		{"name":"dog-on-path","cameras":["gate"],"labels":["dog"],"min_score":0.5,"cooldown":"10s",
		 "zones":[[[100,400],[400,400],[400,576],[100,576]]]},
		{"name":"any-car","labels":["car"],"min_score":0.6,"cooldown":"0s"}]}`), cams)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSnapshotter(rules)
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	dog := contract.Detection{Label: "dog", Score: 0.85, Box: [4]float32{132, 206, 327, 543}} // stands at (229, 543): in the zone
	far := contract.Detection{Label: "dog", Score: 0.85, Box: [4]float32{500, 10, 600, 100}}  // stands at (550, 100): outside
	car := contract.Detection{Label: "car", Score: 0.79, Box: [4]float32{466, 78, 692, 171}}
	for _, tc := range []struct {
		cam  string
		dets []contract.Detection
		at   time.Duration
		want string
	}{
		{"gate", []contract.Detection{far}, 0, ""},
		{"gate", []contract.Detection{far, dog}, 0, "dog-on-path"},
		{"gate", []contract.Detection{dog}, 5 * time.Second, ""}, // cooldown
		{"dock", []contract.Detection{dog}, 5 * time.Second, ""}, // not this rule's camera
		{"gate", []contract.Detection{dog}, 10 * time.Second, "dog-on-path"},
		{"dock", []contract.Detection{car}, 11 * time.Second, "any-car"},
		{"dock", []contract.Detection{car}, 11 * time.Second, "any-car"}, // no cooldown
		{"dock", []contract.Detection{{Label: "car", Score: 0.3, Box: car.Box}}, 12 * time.Second, ""},
	} {
		if got := s.Decide(tc.cam, tc.dets, t0.Add(tc.at)); got != tc.want {
			t.Errorf("%s at +%s: %q, want %q", tc.cam, tc.at, got, tc.want)
		}
	}
	var nilSnap *Snapshotter
	if nilSnap.Decide("gate", []contract.Detection{dog}, t0) != "" {
		t.Error("no rules, yet a snapshot")
	}

	for _, tc := range []struct{ doc, want string }{
		{`{"rules":[]}`, "0 rules"},
		{`{"rules":[{"name":"a","min_score":2}]}`, "min_score 2"},
		{`{"rules":[{"name":"a","cameras":["roof"]}]}`, `camera "roof"`},
		{`{"rules":[{"name":"../a"}]}`, "name"},
		{`{"rules":[{"name":"a"},{"name":"a"}]}`, "twice"},
		{`{"rules":[{"name":"a","zones":[[[0,0],[1,1]]]}]}`, "2 points"},
		{`{"rules":[{"name":"a","cooldown":"-1s"}]}`, "cooldown"},
		{`{"rules":[{"name":"a","cooldown":30}]}`, "duration"},
		{`{"rules":[{"name":"a","colour":"red"}]}`, "unknown field"},
		{`{"rules":[{"name":"a"}]}` + strings.Repeat(" ", maxRulesBytes), "over"},
	} {
		if _, err := ParseSnapshotRules(strings.NewReader(tc.doc), cams); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.60s: %v, want %q", tc.doc, err, tc.want)
		}
	}
}

func TestInside(t *testing.T) {
	tri := [][2]float32{{0, 0}, {10, 0}, {0, 10}}
	for _, tc := range []struct {
		p    [2]float32
		want bool
	}{{[2]float32{1, 1}, true}, {[2]float32{6, 6}, false}, {[2]float32{-1, 1}, false}, {[2]float32{4, 5}, true}} {
		if inside(tc.p, tri) != tc.want {
			t.Errorf("%v: want %v", tc.p, tc.want)
		}
	}
}

// FuzzSnapshotRules: any rules document is refused with an error or accepted as valid rules;
// it never panics, and accepted rules decide without panicking.
func FuzzSnapshotRules(f *testing.F) {
	f.Add(`{"rules":[{"name":"a","labels":["dog"],"min_score":0.5,"cooldown":"1s","zones":[[[0,0],[10,0],[0,10]]]}]}`)
	f.Add(`{"rules":[{"name":"b","cameras":["gate"],"zones":[[[0,0],[0,0],[0,0]]]}]}`)
	f.Add(`{"rules":null}`)
	cams := []Camera{{ID: "gate", Source: "x"}}
	f.Fuzz(func(t *testing.T, doc string) {
		rules, err := ParseSnapshotRules(strings.NewReader(doc), cams)
		if err != nil {
			return
		}
		NewSnapshotter(rules).Decide("gate", []contract.Detection{{Label: "dog", Score: 0.9, Box: [4]float32{1, 1, 5, 5}}}, time.Now())
	})
}
