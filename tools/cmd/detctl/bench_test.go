package main

import (
	"fmt"
	"testing"
	"time"

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

func TestAppendLatencies(t *testing.T) {
	t0 := time.UnixMilli(1700000000000)
	back := []bench.Sampled{{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Sent: t0, Back: t0.Add(31500 * time.Microsecond)},
		{Sent: t0.Add(21700 * time.Microsecond), Back: t0.Add(121700 * time.Microsecond)}}
	got := string(appendLatencies(appendLatencies(nil, 1, 0, nil), 2, 46, back))
	want := "2,46.0,0.0,1700000000000,31.50,4bf92f3577b34da6a3ce929d0e0e4736\n2,46.0,21.7,1700000000021,100.00,\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
