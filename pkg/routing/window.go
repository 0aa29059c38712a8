package routing

import (
	"context"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Windowed statistics: besides the cumulative hash, every frame's figures go to the bucket of
// its 10 seconds,
//
//	<prefix>:wstats:<model>:<unix time / 10 s>   hash, expiring after the store's horizon
//	  "<version>|<arm>|<counter>"            frames, errors, detections, score_sum, latency_ms_sum
//	  "<version>|<arm>|lat|<i>"              frames whose latency falls in LatencyBoundsMS[i]
//	  "<candidate>|<reference>|<arm>|agr|<counter>"   compared_frames, ref_boxes, ref_matched,
//	                                                  cand_boxes, cand_matched
//
// so any window within the horizon is the sum of its buckets: reset-free by construction, and
// a comparison is always between one candidate and one reference version.

// Bucket is the width of a statistics bucket: a rollout step's window starts at most this long
// before the step did. 10 s keep a day's horizon at 8,640 small hashes per model.
const Bucket = 10 * time.Second

// LatencyBoundsMS are the upper bounds of the latency histogram's buckets (ms); the last bucket
// is everything above.
var LatencyBoundsMS = []float64{1, 2, 5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000}

func latencyBucket(ms float64) int {
	return sort.SearchFloat64s(LatencyBoundsMS, ms) // first bound ≥ ms; len = above every bound
}

// WithClock returns the store using now as its clock (tests).
func (s *Store) WithClock(now func() time.Time) *Store {
	c := *s
	c.now = now
	return &c
}

func (s *Store) bucketKey(model string, t time.Time) string {
	return s.k("wstats", model, strconv.FormatInt(t.Unix()/int64(Bucket/time.Second), 10))
}

// recordWindow adds the frame to its bucket (in the caller's pipeline).
func (s *Store) recordWindow(ctx context.Context, p redis.Pipeliner, model string, smp Sample, agr *Agreement) {
	key := s.bucketKey(model, s.now())
	addSample(ctx, p, key, smp, true)
	if a := agr; a != nil {
		ref := a.Reference
		if ref == "" {
			ref = smp.Version
		}
		g := func(name string) string { return a.Version + "|" + ref + "|" + a.arm() + "|agr|" + name }
		p.HIncrBy(ctx, key, g("compared_frames"), 1)
		p.HIncrBy(ctx, key, g("ref_boxes"), int64(a.PrimaryBoxes))
		p.HIncrBy(ctx, key, g("ref_matched"), int64(a.PrimaryMatched))
		p.HIncrBy(ctx, key, g("cand_boxes"), int64(a.ShadowBoxes))
		p.HIncrBy(ctx, key, g("cand_matched"), int64(a.ShadowMatched))
	}
	p.Expire(ctx, key, s.horizon+Bucket)
}

// VersionWindow is one version and arm over a window.
type VersionWindow struct {
	Version, Arm               string
	Frames, Errors, Detections int64
	ScoreSum, LatencyMSSum     float64
	// Latency is the histogram over LatencyBoundsMS (one more bucket: above the last bound).
	Latency []int64
}

// ErrorRate is errors per frame.
func (v VersionWindow) ErrorRate() float64 { return ratio(float64(v.Errors), float64(v.Frames)) }

// DetectionsPerFrame is the mean number of detections on frames served without error.
func (v VersionWindow) DetectionsPerFrame() float64 {
	return ratio(float64(v.Detections), float64(v.Frames-v.Errors))
}

// LatencyQuantile estimates the q-quantile of latency (ms) from the histogram, interpolating
// linearly inside its bucket; 0 without frames.
func (v VersionWindow) LatencyQuantile(q float64) float64 {
	var total int64
	for _, n := range v.Latency {
		total += n
	}
	if total == 0 {
		return 0
	}
	target := q * float64(total)
	var cum float64
	for i, n := range v.Latency {
		if n == 0 {
			continue
		}
		if cum+float64(n) >= target {
			lo := 0.0
			if i > 0 {
				lo = LatencyBoundsMS[i-1]
			}
			if i >= len(LatencyBoundsMS) {
				return lo // above the last bound: report the bound
			}
			return lo + (LatencyBoundsMS[i]-lo)*(target-cum)/float64(n)
		}
		cum += float64(n)
	}
	return LatencyBoundsMS[len(LatencyBoundsMS)-1]
}

// PairWindow is a candidate's agreement with one reference version over a window.
type PairWindow struct {
	Candidate, Reference, Arm string
	Compared                  int64
	RefBoxes, RefMatched      int64 // reference boxes, and those the candidate also found
	CandBoxes, CandMatched    int64 // candidate boxes, and those the reference also found
}

// Agreement is the share of the reference's boxes the candidate found, with the 95 % Wilson
// score interval (boxes as trials): the lower bound is what a rollout gate compares.
func (p PairWindow) Agreement() (share, lo, hi float64) {
	return wilson(p.RefMatched, p.RefBoxes)
}

// wilson is the Wilson score interval (z = 1.96) of k successes in n trials.
func wilson(k, n int64) (p, lo, hi float64) {
	if n <= 0 {
		return 0, 0, 1
	}
	const z = 1.959964
	p = float64(k) / float64(n)
	nn := float64(n)
	den := 1 + z*z/nn
	mid := (p + z*z/(2*nn)) / den
	half := z * math.Sqrt(p*(1-p)/nn+z*z/(4*nn*nn)) / den
	return p, max(0, mid-half), min(1, mid+half)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Window is a model's statistics over [Since, Until), to the minute.
type Window struct {
	Since, Until time.Time
	Versions     []VersionWindow
	Pairs        []PairWindow
}

// Version returns the figures of version on arm ("" for every arm summed).
func (w Window) Version(version, arm string) VersionWindow {
	out := VersionWindow{Version: version, Arm: arm, Latency: make([]int64, len(LatencyBoundsMS)+1)}
	for _, v := range w.Versions {
		if v.Version != version || arm != "" && v.Arm != arm {
			continue
		}
		out.Frames += v.Frames
		out.Errors += v.Errors
		out.Detections += v.Detections
		out.ScoreSum += v.ScoreSum
		out.LatencyMSSum += v.LatencyMSSum
		for i, n := range v.Latency {
			out.Latency[i] += n
		}
	}
	return out
}

// Pair returns the agreement of candidate with reference (every arm summed).
func (w Window) Pair(candidate, reference string) PairWindow {
	out := PairWindow{Candidate: candidate, Reference: reference}
	for _, p := range w.Pairs {
		if p.Candidate == candidate && p.Reference == reference {
			out.Compared += p.Compared
			out.RefBoxes += p.RefBoxes
			out.RefMatched += p.RefMatched
			out.CandBoxes += p.CandBoxes
			out.CandMatched += p.CandMatched
		}
	}
	return out
}

// ReadWindow sums the model's minute buckets from since's minute up to now's (at most the
// horizon back).
func (s *Store) ReadWindow(ctx context.Context, model string, since time.Time) (Window, error) {
	now := s.now()
	if since.Before(now.Add(-s.horizon)) {
		since = now.Add(-s.horizon)
	}
	w := Window{Since: since.Truncate(Bucket), Until: now}
	p := s.rdb.Pipeline()
	var cmds []*redis.MapStringStringCmd
	for t := w.Since; !t.After(now); t = t.Add(Bucket) {
		cmds = append(cmds, p.HGetAll(ctx, s.bucketKey(model, t)))
	}
	if _, err := p.Exec(ctx); err != nil && err != redis.Nil {
		return w, err
	}
	versions := map[string]*VersionWindow{}
	pairs := map[string]*PairWindow{}
	for _, c := range cmds {
		for field, val := range c.Val() {
			parts := strings.Split(field, "|")
			n, _ := strconv.ParseInt(val, 10, 64)
			fl, _ := strconv.ParseFloat(val, 64)
			switch {
			case len(parts) == 5 && parts[3] == "agr":
				k := parts[0] + "|" + parts[1] + "|" + parts[2]
				pw := pairs[k]
				if pw == nil {
					pw = &PairWindow{Candidate: parts[0], Reference: parts[1], Arm: parts[2]}
					pairs[k] = pw
				}
				switch parts[4] {
				case "compared_frames":
					pw.Compared += n
				case "ref_boxes":
					pw.RefBoxes += n
				case "ref_matched":
					pw.RefMatched += n
				case "cand_boxes":
					pw.CandBoxes += n
				case "cand_matched":
					pw.CandMatched += n
				}
			case len(parts) == 3 || len(parts) == 4 && parts[2] == "lat":
				k := parts[0] + "|" + parts[1]
				vw := versions[k]
				if vw == nil {
					vw = &VersionWindow{Version: parts[0], Arm: parts[1], Latency: make([]int64, len(LatencyBoundsMS)+1)}
					versions[k] = vw
				}
				if len(parts) == 4 {
					if i, err := strconv.Atoi(parts[3]); err == nil && i >= 0 && i < len(vw.Latency) {
						vw.Latency[i] += n
					}
					continue
				}
				switch parts[2] {
				case "frames":
					vw.Frames += n
				case "errors":
					vw.Errors += n
				case "detections":
					vw.Detections += n
				case "score_sum":
					vw.ScoreSum += fl
				case "latency_ms_sum":
					vw.LatencyMSSum += fl
				}
			}
		}
	}
	for _, v := range versions {
		w.Versions = append(w.Versions, *v)
	}
	for _, p := range pairs {
		w.Pairs = append(w.Pairs, *p)
	}
	sort.Slice(w.Versions, func(i, j int) bool {
		a, b := w.Versions[i], w.Versions[j]
		return a.Version < b.Version || a.Version == b.Version && a.Arm < b.Arm
	})
	sort.Slice(w.Pairs, func(i, j int) bool {
		a, b := w.Pairs[i], w.Pairs[j]
		return a.Candidate+"|"+a.Reference+"|"+a.Arm < b.Candidate+"|"+b.Reference+"|"+b.Arm
	})
	return w, nil
}
