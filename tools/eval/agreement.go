package eval

import (
	"fmt"
	"sort"

	"github.com/streamdet/streamdet/pkg/contract"
)

// Counts are matched boxes between a baseline and a candidate.
type Counts struct {
	Baseline  int `json:"baseline_boxes"`
	Candidate int `json:"candidate_boxes"`
	Matched   int `json:"matched"`
}

// Precision is the share of the candidate's boxes the baseline also has, Recall the share of the
// baseline's boxes the candidate found, F1 their harmonic mean; each is 1 when there is nothing
// to find and nothing found.
func (c Counts) Precision() float64 { return ratio(c.Matched, c.Candidate) }
func (c Counts) Recall() float64    { return ratio(c.Matched, c.Baseline) }
func (c Counts) F1() float64 {
	if c.Baseline+c.Candidate == 0 {
		return 1
	}
	return 2 * float64(c.Matched) / float64(c.Baseline+c.Candidate)
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// Agreement is how closely a candidate version reproduces a baseline's detections, over frames
// and per class: boxes matched one to one at IoU ≥ Threshold with the same class, and the mean
// IoU of the matches.
type Agreement struct {
	Threshold float64           `json:"iou_threshold"`
	Frames    int               `json:"frames"`
	All       Counts            `json:"all"`
	PerClass  map[string]Counts `json:"per_class"`
	MeanIoU   float64           `json:"mean_iou"`
	iouSum    float64
}

// NewAgreement starts an empty comparison at an IoU threshold (0.5 when ≤ 0).
func NewAgreement(threshold float64) *Agreement {
	if threshold <= 0 {
		threshold = 0.5
	}
	return &Agreement{Threshold: threshold, PerClass: map[string]Counts{}}
}

// Add compares one frame's detections. Within each class, candidate boxes in descending score
// take the unmatched baseline box of highest IoU at or above the threshold (the COCO greedy
// rule), so a duplicate box is never matched twice.
func (a *Agreement) Add(baseline, candidate []contract.Detection) {
	a.Frames++
	names := map[int]string{}
	byClass := func(ds []contract.Detection) map[int][]contract.Detection {
		m := map[int][]contract.Detection{}
		for _, d := range ds {
			m[d.ClassID] = append(m[d.ClassID], d)
			if names[d.ClassID] == "" {
				names[d.ClassID] = d.Label
			}
		}
		return m
	}
	base, cand := byClass(baseline), byClass(candidate)
	classes := map[int]bool{}
	for c := range base {
		classes[c] = true
	}
	for c := range cand {
		classes[c] = true
	}
	for class := range classes {
		b, c := base[class], append([]contract.Detection(nil), cand[class]...)
		sort.SliceStable(c, func(i, j int) bool { return c[i].Score > c[j].Score })
		used := make([]bool, len(b))
		matched := 0
		for _, d := range c {
			best, m := a.Threshold, -1
			for i, g := range b {
				if used[i] {
					continue
				}
				if iou := detIoU(d, g); iou >= best {
					best, m = iou, i
				}
			}
			if m >= 0 {
				used[m] = true
				matched++
				a.iouSum += best
			}
		}
		name := names[class]
		if name == "" {
			name = fmt.Sprintf("class %d", class)
		}
		pc := a.PerClass[name]
		pc.Baseline += len(b)
		pc.Candidate += len(c)
		pc.Matched += matched
		a.PerClass[name] = pc
		a.All.Baseline += len(b)
		a.All.Candidate += len(c)
		a.All.Matched += matched
	}
	if a.All.Matched > 0 {
		a.MeanIoU = a.iouSum / float64(a.All.Matched)
	}
}

// detIoU is the IoU of two detections' pixel boxes ([x1, y1, x2, y2]).
func detIoU(a, b contract.Detection) float64 { return boxIoU(XYWH(a.Box), XYWH(b.Box)) }

// XYWH turns an [x1, y1, x2, y2] box into COCO's [x, y, width, height].
func XYWH(b [4]float32) [4]float64 {
	return [4]float64{float64(b[0]), float64(b[1]), float64(b[2] - b[0]), float64(b[3] - b[1])}
}
