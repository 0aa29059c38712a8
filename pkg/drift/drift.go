// Package drift notices when the frames a model serves stop looking like the frames it was
// promoted on: per model version and stream (and over all streams) it keeps a reference
// distribution of each feature — class frequencies, detection scores, boxes per frame, box size
// and position, frame size and brightness — captured from the first frames served after the
// reference's start (its baseline: a promotion, or the version's first frames), then compares
// each following window of frames with it by the population stability index (PSI). A PSI over
// 0.25 is the usual sign of a significant shift; 0.1 to 0.25 a moderate one.
//
// The Tracker only computes; its Results ask the caller to load references kept elsewhere
// (Wanted) and to keep the ones it captured (Captured), and Adopt installs a reference so
// kept, so that every replica and every restart compares with the same reference.
package drift

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/streamdet/streamdet/pkg/contract"
)

// Features are the compared distributions.
var Features = []string{"class", "score", "boxes", "box_area", "position", "frame_pixels", "brightness"}

const classBins = 81 // 80 COCO-sized classes and "other"

func bins(feature string) int {
	switch feature {
	case "class":
		return classBins
	case "score":
		return 10
	case "boxes":
		return 8
	case "box_area":
		return 8
	case "position":
		return 9
	case "frame_pixels":
		return 8
	case "brightness":
		return 8
	}
	return 0
}

// hist is one feature's counts.
type hist []float64

// Frame is what the tracker takes from one served frame.
type Frame struct {
	Width, Height int
	Brightness    float64 // mean luma, 0–255
	Detections    []contract.Detection
}

// add adds one frame's contributions to each feature's histogram.
func add(h map[string]hist, f Frame) {
	width, height, dets := f.Width, f.Height, f.Detections
	for _, f := range Features {
		if h[f] == nil {
			h[f] = make(hist, bins(f))
		}
	}
	n := len(dets)
	h["boxes"][bucket(float64(n), []float64{0, 1, 2, 3, 5, 8, 13})]++
	px := float64(width * height)
	h["frame_pixels"][bucket(px, []float64{320 * 240, 640 * 480, 1280 * 720, 1920 * 1080, 2560 * 1440, 3840 * 2160, 8e6})]++
	h["brightness"][bucket(f.Brightness, []float64{32, 64, 96, 128, 160, 192, 224})]++
	for _, d := range dets {
		c := d.ClassID
		if c < 0 || c >= classBins-1 {
			c = classBins - 1
		}
		h["class"][c]++
		h["score"][bucket(float64(d.Score), []float64{0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95})]++
		w, hh := float64(d.Box[2]-d.Box[0]), float64(d.Box[3]-d.Box[1])
		if px > 0 {
			h["box_area"][bucket(w*hh/px, []float64{0.001, 0.004, 0.016, 0.04, 0.1, 0.25, 0.5})]++
		}
		if width > 0 && height > 0 {
			cx := min(2, max(0, int(3*(float64(d.Box[0]+d.Box[2])/2)/float64(width))))
			cy := min(2, max(0, int(3*(float64(d.Box[1]+d.Box[3])/2)/float64(height))))
			h["position"][3*cy+cx]++
		}
	}
}

// bucket is the index of the first bound v is under (len(bounds) above them all).
func bucket(v float64, bounds []float64) int {
	return sort.Search(len(bounds), func(i int) bool { return v < bounds[i] })
}

// PSI is the population stability index of actual against expected (counts; proportions are
// smoothed so an empty bin is not infinite). Two empty histograms have none (0).
func PSI(expected, actual []float64) float64 {
	var te, ta float64
	for i := range expected {
		te += expected[i]
		ta += actual[i]
	}
	if te == 0 || ta == 0 {
		return 0
	}
	const eps = 1e-4
	psi := 0.0
	for i := range expected {
		e := max(expected[i]/te, eps)
		a := max(actual[i]/ta, eps)
		psi += (a - e) * math.Log(a/e)
	}
	return psi
}

// Value is a drift figure.
type Value struct {
	Model, Version, Stream, Feature string
	PSI                             float64
	Frames                          int64 // frames in the window compared
	At                              time.Time
	// Baseline names the reference compared with ("0": the version's first frames served;
	// else the reference's start in Unix milliseconds).
	Baseline string `json:",omitempty"`
}

// Key names one reference: a model version's stream ("*" for all streams) from a baseline.
type Key struct {
	Model, Version, Baseline, Stream string
}

// Reference is a captured reference distribution.
type Reference struct {
	Key
	Frames int                  // frames it was captured from
	Hist   map[string][]float64 // per feature, the counts of its bins
	At     time.Time            // when its capture completed
}

// Validate checks a reference read back from storage: every feature with its number of
// bins, finite non-negative counts, at least one frame.
func (r Reference) Validate() error {
	if r.Frames < 1 {
		return fmt.Errorf("drift reference of %d frames", r.Frames)
	}
	if len(r.Hist) != len(Features) {
		return fmt.Errorf("drift reference with %d features, want %d", len(r.Hist), len(Features))
	}
	for _, f := range Features {
		h, ok := r.Hist[f]
		if !ok || len(h) != bins(f) {
			return fmt.Errorf("drift reference: feature %s has %d bins, want %d", f, len(h), bins(f))
		}
		for _, c := range h {
			if c < 0 || math.IsNaN(c) || math.IsInf(c, 0) {
				return fmt.Errorf("drift reference: feature %s has a count %v", f, c)
			}
		}
	}
	return nil
}

// Result is what Observe asks of its caller.
type Result struct {
	// Values are the figures of windows that closed.
	Values []Value
	// Wanted are references to look up in storage and Adopt (series just started).
	Wanted []Key
	// Captured are references this tracker completed: keep them (the first kept wins), and
	// Adopt what storage holds if another replica's was kept first.
	Captured []Reference
}

// Config bounds a Tracker.
type Config struct {
	ReferenceFrames int // frames of the reference (default 200)
	WindowFrames    int // frames of each compared window (default 100)
	MaxStreams      int // streams tracked per process (default 10,000; others count only overall)
}

type series struct {
	baseline   string
	ref, cur   map[string]hist
	refN, curN int
	last       map[string]Value
}

// Tracker keeps the reference and current window of every (model, version, stream) and of
// (model, version, "*"). Safe for concurrent use.
type Tracker struct {
	cfg Config
	mu  sync.Mutex
	s   map[[3]string]*series
	now func() time.Time
}

// NewTracker creates a Tracker.
func NewTracker(c Config) *Tracker {
	if c.ReferenceFrames <= 0 {
		c.ReferenceFrames = 200
	}
	if c.WindowFrames <= 0 {
		c.WindowFrames = 100
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 10_000
	}
	return &Tracker{cfg: c, s: map[[3]string]*series{}, now: time.Now}
}

// Observe adds a frame served by model version on stream, whose drift reference starts at
// baseline (Route.DriftBaseline). A series whose baseline changed starts again.
func (t *Tracker) Observe(model, version, baseline, stream string, f Frame) Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out Result
	for _, key := range [][3]string{{model, version, stream}, {model, version, "*"}} {
		s := t.s[key]
		if s == nil || s.baseline != baseline {
			if s == nil && key[2] != "*" && len(t.s) >= t.cfg.MaxStreams {
				continue
			}
			s = &series{baseline: baseline, ref: map[string]hist{}, cur: map[string]hist{}, last: map[string]Value{}}
			t.s[key] = s
			out.Wanted = append(out.Wanted, Key{Model: key[0], Version: key[1], Baseline: baseline, Stream: key[2]})
		}
		if s.refN < t.cfg.ReferenceFrames {
			add(s.ref, f)
			s.refN++
			if s.refN == t.cfg.ReferenceFrames {
				out.Captured = append(out.Captured, Reference{Key: Key{Model: key[0], Version: key[1], Baseline: baseline, Stream: key[2]},
					Frames: s.refN, Hist: copyHist[[]float64](s.ref), At: t.now().UTC()})
			}
			continue
		}
		add(s.cur, f)
		s.curN++
		if s.curN < t.cfg.WindowFrames {
			continue
		}
		for _, ft := range Features {
			v := Value{Model: key[0], Version: key[1], Stream: key[2], Feature: ft, PSI: PSI(s.ref[ft], s.cur[ft]), Frames: int64(s.curN), At: t.now().UTC(), Baseline: baseline}
			s.last[ft] = v
			out.Values = append(out.Values, v)
		}
		s.cur, s.curN = map[string]hist{}, 0
	}
	return out
}

// Adopt installs a reference from storage in its series, if that series is still tracked on
// the same baseline: its own capture, complete or not, is replaced (the frames of an
// incomplete one join the current window). It reports whether it did.
func (t *Tracker) Adopt(r Reference) bool {
	if r.Validate() != nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.s[[3]string{r.Model, r.Version, r.Stream}]
	if s == nil || s.baseline != r.Baseline {
		return false
	}
	if s.refN < t.cfg.ReferenceFrames {
		// Frames taken into an own capture before the stored reference arrived are compared
		// with it, not lost: they start the current window.
		for f, h := range s.ref {
			if s.cur[f] == nil {
				s.cur[f] = make(hist, len(h))
			}
			for i, c := range h {
				s.cur[f][i] += c
			}
		}
		s.curN += s.refN
	}
	s.ref = copyHist[hist](r.Hist)
	s.refN = t.cfg.ReferenceFrames
	return true
}

// copyHist copies histograms, between the tracker's and a Reference's types.
func copyHist[Out, In ~[]float64](h map[string]In) map[string]Out {
	out := make(map[string]Out, len(h))
	for f, c := range h {
		out[f] = append(Out(nil), c...)
	}
	return out
}

// Latest returns the last computed value of every series and feature.
func (t *Tracker) Latest() []Value {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Value
	for _, s := range t.s {
		for _, v := range s.last {
			out = append(out, v)
		}
	}
	return out
}
