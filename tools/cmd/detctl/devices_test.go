package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
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
