package main

import (
	"fmt"
	"testing"

	"github.com/streamdet/streamdet/tools/bench"
)

func TestParseRates(t *testing.T) {
	got, err := parseRates("max, 5,12.5,70%")
	if err != nil || len(got) != 4 || got[0] != (rate{}) || got[1].fps != 5 || got[2].fps != 12.5 || got[3].share != 0.7 {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range []string{"", "x", "-3", "0%", "500%", "1e9", "5,,6"} {
		if _, err := parseRates(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseLayouts(t *testing.T) {
	for _, tc := range []struct {
		in    string
		cores int
		want  string
	}{{"", 2, "[2x1 1x2]"}, {"", 1, "[1x1]"}, {"", 8, "[8x1 1x8]"}, {"4x2, 1x8", 8, "[4x2 1x8]"}} {
		got, err := parseLayouts(tc.in, tc.cores)
		if err != nil || fmt.Sprint(got) != tc.want {
			t.Errorf("parseLayouts(%q, %d) = %v, %v; want %s", tc.in, tc.cores, got, err, tc.want)
		}
	}
	for _, bad := range []string{"2", "x1", "0x1", "1x0", "2x1,", "65x1", "1x257", "2y1"} {
		if _, err := parseLayouts(bad, 2); err == nil {
			t.Errorf("parseLayouts(%q) accepted", bad)
		}
	}
}

func TestFormatStages(t *testing.T) {
	got := formatStages([]bench.SpanStage{{Name: "→ingest", MeanMS: 2}, {Name: "ingest", MeanMS: 8}, {Name: "ingest objstore put", MeanMS: 5.8}, {Name: "ingest send streamdet.frames", MeanMS: 2.7},
		{Name: "→detect", MeanMS: 2}, {Name: "detect", MeanMS: 28}, {Name: "detect inference", MeanMS: 15}, {Name: "→back", MeanMS: 3}})
	want := "→ingest 2.0, ingest 8.0 (objstore put 5.8, send streamdet.frames 2.7), →detect 2.0, detect 28.0 (inference 15.0), →back 3.0"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
