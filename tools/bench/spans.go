package bench

import (
	"sort"
	"strings"
	"time"

	"github.com/streamdet/streamdet/tools/jaeger"
)

// Sampled is a measured frame whose trace can be looked up: when it was produced, when its
// detections were read back, and the trace id its detections carry.
type Sampled struct {
	TraceID    string
	Sent, Back time.Time
}

// SpanStage is one stage of the end-to-end path with its mean duration over the sampled traces.
// Path stages add up to the latency: "→<service>" from the moment the frame was handed on (the
// bench's produce, or the previous service's send span starting) to the service's top span
// starting — the producer's linger, the broker, the consumer's fetch and its queue; "<service>"
// from there to its own send starting. "<service> <span>" are the spans directly inside a
// service's top span (including the send, which overlaps the next hop), and "→back" runs from
// the last send to the detections read by the bench.
type SpanStage struct {
	Name   string  `json:"name"`
	MeanMS float64 `json:"mean_ms"`
}

// SpanStages breaks the latency of sampled frames into stages from their traces. The services on
// the path are those whose top span has a send span starting before the detections were read
// (ingest, detect; not the sink, which reads the same detections). Stages are averaged over the
// traces that have them and listed in path order; a frame sent twice (two top spans of a service)
// counts its first.
func SpanStages(samples []Sampled, traces map[string]jaeger.Trace) (stages []SpanStage, used int) {
	sum, n := map[string]float64{}, map[string]int{}
	order := map[string]float64{} // summed position on the path, for listing
	add := func(name string, d time.Duration, pos float64) {
		sum[name] += float64(d) / float64(time.Millisecond)
		n[name]++
		order[name] += pos
	}
	for _, s := range samples {
		t, ok := traces[s.TraceID]
		if !ok || len(t.Spans) == 0 {
			continue
		}
		handed, pos := s.Sent, 0.0
		for _, top := range topSpans(t) {
			kids := children(t, top)
			send := -1
			for i, c := range kids {
				if strings.HasPrefix(c.Name, "send ") && c.Start.Before(s.Back) {
					send = i
					break
				}
			}
			if send < 0 {
				continue // produced nothing before the frame came back: not on the path
			}
			add("→"+top.Service, top.Start.Sub(handed), pos)
			add(top.Service, kids[send].Start.Sub(top.Start), pos+0.05)
			for _, c := range kids {
				frac := 0.0
				if top.Duration > 0 {
					frac = float64(c.Start.Sub(top.Start)) / float64(top.Duration)
				}
				add(top.Service+" "+c.Name, c.Duration, pos+0.1+0.8*min(max(frac, 0), 1))
			}
			handed, pos = kids[send].Start, pos+1
		}
		if pos == 0 {
			continue
		}
		add("→back", s.Back.Sub(handed), pos)
		used++
	}
	for name, v := range sum {
		stages = append(stages, SpanStage{Name: name, MeanMS: v / float64(n[name])})
	}
	sort.SliceStable(stages, func(i, j int) bool {
		a, b := stages[i].Name, stages[j].Name
		return order[a]/float64(n[a]) < order[b]/float64(n[b])
	})
	return stages, used
}

// topSpans returns, per service, its first span whose parent is not of that service (the span
// that received the frame), in order of start.
func topSpans(t jaeger.Trace) []jaeger.Span {
	byID := map[string]jaeger.Span{}
	for _, s := range t.Spans {
		byID[s.ID] = s
	}
	first := map[string]jaeger.Span{}
	for _, s := range t.Spans {
		if p, ok := byID[s.Parent]; ok && p.Service == s.Service {
			continue
		}
		if f, ok := first[s.Service]; !ok || s.Start.Before(f.Start) {
			first[s.Service] = s
		}
	}
	out := make([]jaeger.Span, 0, len(first))
	for _, s := range first {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// children returns the spans whose parent is p, in order of start.
func children(t jaeger.Trace, p jaeger.Span) []jaeger.Span {
	var out []jaeger.Span
	for _, s := range t.Spans {
		if s.Parent == p.ID && s.Service == p.Service {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}
