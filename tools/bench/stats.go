package bench

import (
	"math"
	"sort"
	"time"
)

// Percentile returns the p-th percentile (0–100) of xs by nearest rank; 0 for none.
func Percentile(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(k, 0), len(s)-1)]
}

// Step is one measured load level.
type Step struct {
	Offered    float64            `json:"offered_fps"` // 0: as fast as possible
	Achieved   float64            `json:"achieved_fps"`
	Sent       int                `json:"sent"`
	Received   int                `json:"received"`
	Lost       int                `json:"lost"`
	Duplicates int                `json:"duplicates"`
	P50        float64            `json:"latency_p50_ms"`
	P90        float64            `json:"latency_p90_ms"`
	P99        float64            `json:"latency_p99_ms"`
	StageMS    map[string]float64 `json:"stage_mean_ms"`        // detect's timing_ms fields, averaged
	CPUms      map[Group]float64  `json:"cpu_ms_per_frame"`     // per process group
	OwnCPUms   float64            `json:"own_cpu_ms_per_frame"` // ingest + detect + sink (or detctl dev)
	TotalCPUms float64            `json:"total_cpu_ms_per_frame"`
	Knee       bool               `json:"knee,omitempty"`
	// Baselines are bare ONNX Runtime measured just before the step (detctl bench --baseline),
	// one per thread layout (--baseline-layout).
	Baselines []Baseline `json:"baselines,omitempty"`
	// SpanStages break the latency of SpanTraces sampled frames into stages from their traces
	// (detctl bench --spans, with Jaeger).
	SpanStages []SpanStage `json:"span_stages_ms,omitempty"`
	SpanTraces int         `json:"span_traces,omitempty"`
	// SlowSpanStages are the same stages for the SlowSpanTraces slowest frames of the step
	// (detctl bench --slow-spans), whose latency is at least SlowFromMS: what makes the tail.
	SlowSpanStages []SpanStage `json:"slowest_span_stages_ms,omitempty"`
	SlowSpanTraces int         `json:"slowest_span_traces,omitempty"`
	SlowFromMS     float64     `json:"slowest_from_ms,omitempty"`
	// TailFrames are the frames at or above the p99, sent in TailBursts separate bursts (frames
	// sent less than BurstGap apart are one burst): a few bursts mean the tail is made by events
	// (a flush, a segment roll, a pause) that hold up every frame in flight, many mean jitter.
	TailFrames int `json:"tail_frames,omitempty"`
	TailBursts int `json:"tail_bursts,omitempty"`
}

// BurstGap separates two bursts of slow frames (Step.TailBursts).
const BurstGap = 500 * time.Millisecond

// Bursts counts the groups of times (in any order) that lie less than gap apart.
func Bursts(at []time.Time, gap time.Duration) int {
	s := append([]time.Time(nil), at...)
	sort.Slice(s, func(i, j int) bool { return s[i].Before(s[j]) })
	n := 0
	for i := range s {
		if i == 0 || s[i].Sub(s[i-1]) >= gap {
			n++
		}
	}
	return n
}

// MarkKnee marks the knee of a sweep ordered by offered rate: the last step that still keeps up
// (achieved ≥ 95 % of offered) with a p99 at most twice the lowest p99 seen. It returns its index,
// or -1 when no step qualifies.
func MarkKnee(steps []Step) int {
	if len(steps) == 0 {
		return -1
	}
	best := math.Inf(1)
	for _, s := range steps {
		if s.P99 > 0 {
			best = math.Min(best, s.P99)
		}
	}
	knee := -1
	for i := range steps {
		steps[i].Knee = false
		s := steps[i]
		if s.Offered > 0 && s.Achieved >= 0.95*s.Offered && s.P99 <= 2*best {
			knee = i
		}
	}
	if knee >= 0 {
		steps[knee].Knee = true
	}
	return knee
}
