package bench

import (
	"testing"
	"time"

	"github.com/streamdet/streamdet/tools/jaeger"
)

func TestSpanStages(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }
	dur := func(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }
	// ingest [2, 10] (put [2.2, 8], send [8, 10]); detect [9.5, 40] (get, inference, send
	// [36, 40]) starting before ingest's send returned; the sink reads the detections at 41,
	// after the bench did at 38: it has no send and is not on the path.
	mk := func(id string, shift float64) jaeger.Trace {
		sp := func(id, parent, svc, name string, start, d float64) jaeger.Span {
			return jaeger.Span{ID: id, Parent: parent, Service: svc, Name: name, Start: at(start + shift), Duration: dur(d)}
		}
		return jaeger.Trace{ID: id, Spans: []jaeger.Span{
			sp("s", "b", "sink", "process streamdet.detections", 41, 1959),
			sp("a", "", "ingest", "process streamdet.frames.raw", 2, 8),
			sp("a2", "a", "ingest", "send streamdet.frames", 8, 2),
			sp("a1", "a", "ingest", "objstore put", 2.2, 5.8),
			sp("b", "a2", "detect", "process streamdet.frames", 9.5, 30.5),
			sp("b2", "b", "detect", "inference", 20, 15),
			sp("b3", "b", "detect", "send streamdet.detections", 36, 4),
			sp("b1", "b", "detect", "objstore get", 9.5, 3),
		}}
	}
	traces := map[string]jaeger.Trace{"t1": mk("t1", 0), "t2": mk("t2", 100)}
	samples := []Sampled{{"t1", at(0), at(38)}, {"t2", at(100), at(138)}, {"missing", at(0), at(1)}}
	got, used := SpanStages(samples, traces)
	// The path stages add up to the 38 ms: 2 + 6 + 1.5 + 26.5 + 2.
	want := []SpanStage{{"→ingest", 2}, {"ingest", 6}, {"ingest objstore put", 5.8}, {"ingest send streamdet.frames", 2},
		{"→detect", 1.5}, {"detect", 26.5}, {"detect objstore get", 3}, {"detect inference", 15},
		{"detect send streamdet.detections", 4}, {"→back", 2}}
	if used != 2 || len(got) != len(want) {
		t.Fatalf("used %d traces, stages %v; want 2 and %v", used, got, want)
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].MeanMS < want[i].MeanMS-1e-6 || got[i].MeanMS > want[i].MeanMS+1e-6 {
			t.Errorf("stage %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
