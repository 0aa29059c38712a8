package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/streamdet/streamdet/pkg/drift"
	"github.com/streamdet/streamdet/pkg/routing"
)

func TestFleet(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	hb := func(dev, group, at, version string, depth int) []byte {
		return []byte(`{"device":"` + dev + `","group":"` + group + `","state":"running","at":"` + at + `","model":{"name":"m","version":"` + version +
			`"},"fps":4.5,"queue":{"depth":` + strings.Repeat("1", depth) + `0,"bytes":2048,"dropped":3},"cameras":{"gate":{"state":"streaming"}},"arch":"arm64"}`)
	}
	devs, bad := fleet([][]byte{
		hb("box1", "yards", "2026-12-01T11:59:50Z", "2", 1),
		hb("box1", "yards", "2026-12-01T11:59:40Z", "1", 0), // older, read later: ignored
		hb("box2", "docks", "2026-12-01T11:58:00Z", "1", 0),
		[]byte(`not json`),
		hb("../etc", "yards", "2026-12-01T11:59:50Z", "1", 0), // an id outside the grammar
	})
	if bad != 2 || len(devs) != 2 || devs["box1"].Model.Version != "2" {
		t.Fatalf("fleet: %d bad, %+v", bad, devs)
	}
	var out bytes.Buffer
	printFleet(&out, devs, "", false, now)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "box1") || !strings.Contains(lines[1], "10s ago") || !strings.Contains(lines[1], "10 (2.0 KiB)") ||
		!strings.Contains(lines[2], "2m0s ago") || !strings.Contains(lines[1], "1/1") {
		t.Fatalf("table:\n%s", out.String())
	}
	out.Reset()
	printFleet(&out, devs, "docks", true, now)
	if strings.Count(out.String(), "\n") != 1 || !strings.Contains(out.String(), `"device":"box2"`) {
		t.Fatalf("json for group docks:\n%s", out.String())
	}
}

func TestPrintWindow(t *testing.T) {
	lat := make([]int64, len(routing.LatencyBoundsMS)+1)
	lat[3] = 99 // 5–10 ms
	lat[6] = 1  // 20–30 ms
	w := routing.Window{Since: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), Until: time.Date(2026, 12, 1, 12, 15, 0, 0, time.UTC),
		Versions: []routing.VersionWindow{{Version: "2", Arm: "canary", Frames: 100, Errors: 1, Detections: 396, ScoreSum: 300, Latency: lat}},
		Pairs:    []routing.PairWindow{{Candidate: "2", Reference: "1", Arm: "canary", Compared: 20, RefBoxes: 80, RefMatched: 76}}}
	var out bytes.Buffer
	printWindow(&out, w)
	for _, want := range []string{"1.00%", "4.00", "0.758", "agreement of canary 2 with 1 over 20 frames: 95.0% of 1's boxes found (76/80, 95% CI 87.8–98.0%)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in:\n%s", want, out.String())
		}
	}
}

func TestParseSteps(t *testing.T) {
	steps, err := parseSteps("5:2m:50, 100:30s:10")
	if err != nil || len(steps) != 2 || steps[0].Weight != 5 || time.Duration(steps[0].Hold) != 2*time.Minute || steps[1].MinFrames != 10 {
		t.Fatalf("%+v %v", steps, err)
	}
	for _, bad := range []string{"5:2m", "x:2m:5", "5:soon:5", ""} {
		if _, err := parseSteps(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPrintDrift(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	printDrift(&out, []drift.Value{{Version: "1", Stream: "cam-3", Feature: "boxes", PSI: 2.4, Frames: 100, At: now.Add(-time.Minute), Baseline: "1764590400000"},
		{Version: "1", Stream: "*", Feature: "score", PSI: 0.12, Frames: 100, At: now, Baseline: "0"}}, now)
	if s := out.String(); !strings.Contains(s, "cam-3   boxes    2.400  significant  100     1m0s  since 2025-12-01T12:00:00Z") ||
		!strings.Contains(s, "moderate") || !strings.Contains(s, "first frames served") {
		t.Fatalf("table:\n%s", s)
	}
}
