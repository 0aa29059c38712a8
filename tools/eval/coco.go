// Package eval measures detectors: COCO-style mean average precision against ground truth,
// computed exactly as pycocotools' COCOeval does for boxes, and agreement between two versions
// of a model (matched boxes, precision, recall, F1, mean IoU) for when there is no ground truth.
package eval

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
)

// Dataset is a COCO ground-truth file: images, box annotations and categories. Only the fields
// box evaluation needs are read.
type Dataset struct {
	Images      []Image      `json:"images"`
	Annotations []Annotation `json:"annotations"`
	Categories  []Category   `json:"categories"`
}

// Image is one image of a Dataset.
type Image struct {
	ID       int64  `json:"id"`
	FileName string `json:"file_name,omitempty"`
	Width    int    `json:"width,omitempty"`
	Height   int    `json:"height,omitempty"`
}

// Annotation is one ground-truth box, [x, y, width, height] in pixels.
type Annotation struct {
	ID         int64      `json:"id"`
	ImageID    int64      `json:"image_id"`
	CategoryID int64      `json:"category_id"`
	BBox       [4]float64 `json:"bbox"`
	Area       float64    `json:"area"`
	IsCrowd    int        `json:"iscrowd"`
}

// Category is one class.
type Category struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// Detection is one detected box in COCO's results format.
type Detection struct {
	ImageID    int64      `json:"image_id"`
	CategoryID int64      `json:"category_id"`
	BBox       [4]float64 `json:"bbox"`
	Score      float64    `json:"score"`
}

// Limits on what ParseDataset accepts.
const (
	MaxImages      = 1 << 20
	MaxAnnotations = 1 << 24
)

// ParseDataset reads and checks a COCO ground-truth file: unique ids, every annotation on a known
// image and category, boxes finite with non-negative size. Crowd annotations (iscrowd = 1) are
// refused: detection ground truth here is crowd-free.
func ParseDataset(b []byte) (Dataset, error) {
	var d Dataset
	if err := json.Unmarshal(b, &d); err != nil {
		return Dataset{}, fmt.Errorf("eval: ground truth: %w", err)
	}
	if len(d.Images) > MaxImages || len(d.Annotations) > MaxAnnotations {
		return Dataset{}, fmt.Errorf("eval: ground truth: %d images, %d annotations: over the limits (%d, %d)", len(d.Images), len(d.Annotations), MaxImages, MaxAnnotations)
	}
	imgs, cats, anns := map[int64]bool{}, map[int64]bool{}, map[int64]bool{}
	for _, im := range d.Images {
		if imgs[im.ID] {
			return Dataset{}, fmt.Errorf("eval: ground truth: image id %d twice", im.ID)
		}
		imgs[im.ID] = true
	}
	for _, c := range d.Categories {
		if cats[c.ID] {
			return Dataset{}, fmt.Errorf("eval: ground truth: category id %d twice", c.ID)
		}
		cats[c.ID] = true
	}
	for _, a := range d.Annotations {
		switch {
		case anns[a.ID]:
			return Dataset{}, fmt.Errorf("eval: ground truth: annotation id %d twice", a.ID)
		case !imgs[a.ImageID]:
			return Dataset{}, fmt.Errorf("eval: ground truth: annotation %d on unknown image %d", a.ID, a.ImageID)
		case !cats[a.CategoryID]:
			return Dataset{}, fmt.Errorf("eval: ground truth: annotation %d of unknown category %d", a.ID, a.CategoryID)
		case a.IsCrowd != 0:
			return Dataset{}, fmt.Errorf("eval: ground truth: annotation %d is a crowd region (iscrowd=%d): not supported", a.ID, a.IsCrowd)
		case !validBox(a.BBox):
			return Dataset{}, fmt.Errorf("eval: ground truth: annotation %d: bad box %v", a.ID, a.BBox)
		}
		anns[a.ID] = true
	}
	return d, nil
}

func validBox(b [4]float64) bool {
	for _, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e7 {
			return false
		}
	}
	return b[2] >= 0 && b[3] >= 0
}

// Stats are COCOeval's first two summary numbers for boxes: AP over IoU 0.50:0.05:0.95 and at
// IoU 0.50 (all areas, at most 100 detections per image), and AP per category (0.50:0.95) for the
// categories with ground truth.
type Stats struct {
	MAP      float64           `json:"map"`
	MAP50    float64           `json:"map50"`
	PerClass map[int64]float64 `json:"ap_per_category"`
}

const maxDets = 100

// iouThresholds and recallThresholds are numpy.linspace(.5, .95, 10) and linspace(0, 1, 101),
// value for value.
var iouThresholds, recallThresholds = linspace(0.5, 0.95, 10), linspace(0, 1, 101)

func linspace(start, stop float64, n int) []float64 {
	out := make([]float64, n)
	step := (stop - start) / float64(n-1)
	for i := range out {
		out[i] = float64(i)*step + start
	}
	out[n-1] = stop
	return out
}

// Evaluate computes Stats of dets against gt as pycocotools' COCOeval (iouType "bbox") does:
// per image and category, detections in descending score (ties in input order) are matched
// greedily to the unmatched ground truth box of highest IoU ≥ the threshold; precision is made
// monotone and read at 101 recall points; categories without ground truth are left out.
// Detections on images or of categories gt does not have are an error.
func Evaluate(gt Dataset, dets []Detection) (Stats, error) {
	imgs, cats := map[int64]bool{}, map[int64]bool{}
	for _, im := range gt.Images {
		imgs[im.ID] = true
	}
	for _, c := range gt.Categories {
		cats[c.ID] = true
	}
	type key struct{ img, cat int64 }
	gts, dts := map[key][]Annotation{}, map[key][]Detection{}
	for _, a := range gt.Annotations {
		k := key{a.ImageID, a.CategoryID}
		gts[k] = append(gts[k], a)
	}
	for i, d := range dets {
		if !imgs[d.ImageID] {
			return Stats{}, fmt.Errorf("eval: detection %d on image %d, which the ground truth does not have", i, d.ImageID)
		}
		if !cats[d.CategoryID] {
			return Stats{}, fmt.Errorf("eval: detection %d of category %d, which the ground truth does not have", i, d.CategoryID)
		}
		if !validBox(d.BBox) || math.IsNaN(d.Score) || math.IsInf(d.Score, 0) {
			return Stats{}, fmt.Errorf("eval: detection %d: bad box %v or score %v", i, d.BBox, d.Score)
		}
		k := key{d.ImageID, d.CategoryID}
		dts[k] = append(dts[k], d)
	}
	imgIDs := make([]int64, 0, len(imgs))
	for id := range imgs {
		imgIDs = append(imgIDs, id)
	}
	sort.Slice(imgIDs, func(i, j int) bool { return imgIDs[i] < imgIDs[j] })
	catIDs := make([]int64, 0, len(cats))
	for id := range cats {
		catIDs = append(catIDs, id)
	}
	sort.Slice(catIDs, func(i, j int) bool { return catIDs[i] < catIDs[j] })

	T := len(iouThresholds)
	st := Stats{PerClass: map[int64]float64{}}
	var sumAll, sum50 float64
	var nAll, n50 int
	for _, cat := range catIDs {
		// One category: every image's matches, concatenated in image order (as COCOeval's
		// accumulate does), then sorted by score.
		var scores []float64
		var matched [][]bool // [threshold][detection]
		for t := 0; t < T; t++ {
			matched = append(matched, nil)
		}
		npig := 0
		for _, img := range imgIDs {
			k := key{img, cat}
			g, d := gts[k], dts[k]
			if len(g) == 0 && len(d) == 0 {
				continue
			}
			npig += len(g)
			d = append([]Detection(nil), d...)
			sort.SliceStable(d, func(i, j int) bool { return d[i].Score > d[j].Score })
			if len(d) > maxDets {
				d = d[:maxDets]
			}
			for t, thr := range iouThresholds {
				used := make([]bool, len(g))
				for _, det := range d {
					best, m := math.Min(thr, 1-1e-10), -1
					for gi, gb := range g {
						if used[gi] {
							continue
						}
						iou := boxIoU(det.BBox, gb.BBox)
						if iou < best {
							continue
						}
						best, m = iou, gi
					}
					if m >= 0 {
						used[m] = true
					}
					matched[t] = append(matched[t], m >= 0)
				}
			}
			for _, det := range d {
				scores = append(scores, det.Score)
			}
		}
		if npig == 0 {
			continue // no ground truth: COCOeval leaves the category out (-1)
		}
		order := make([]int, len(scores))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(i, j int) bool { return scores[order[i]] > scores[order[j]] })
		var catSum float64
		for t := 0; t < T; t++ {
			q := precisionAtRecalls(matched[t], order, npig)
			for _, v := range q {
				catSum += v
				sumAll += v
			}
			nAll += len(q)
			if t == 0 {
				for _, v := range q {
					sum50 += v
				}
				n50 += len(q)
			}
		}
		st.PerClass[cat] = catSum / float64(T*len(recallThresholds))
	}
	if nAll == 0 {
		return Stats{}, errors.New("eval: no category has ground truth")
	}
	st.MAP, st.MAP50 = sumAll/float64(nAll), sum50/float64(n50)
	return st, nil
}

// precisionAtRecalls is COCOeval.accumulate for one threshold and category: cumulative true and
// false positives in score order, precision made non-increasing from the right, read at each
// recall threshold (0 past the last recall reached).
func precisionAtRecalls(matched []bool, order []int, npig int) []float64 {
	nd := len(order)
	rc, pr := make([]float64, nd), make([]float64, nd)
	tp, fp := 0.0, 0.0
	eps := math.Nextafter(1, 2) - 1 // numpy.spacing(1)
	for i, o := range order {
		if matched[o] {
			tp++
		} else {
			fp++
		}
		rc[i] = tp / float64(npig)
		pr[i] = tp / (fp + tp + eps)
	}
	for i := nd - 1; i > 0; i-- {
		if pr[i] > pr[i-1] {
			pr[i-1] = pr[i]
		}
	}
	q := make([]float64, len(recallThresholds))
	for ri, r := range recallThresholds {
		pi := sort.SearchFloat64s(rc, r) // numpy.searchsorted(rc, r, side="left")
		if pi < nd {
			q[ri] = pr[pi]
		}
	}
	return q
}

// boxIoU is the IoU of two [x, y, w, h] boxes as pycocotools computes it (no +1 on sizes).
func boxIoU(a, b [4]float64) float64 {
	iw := math.Min(a[0]+a[2], b[0]+b[2]) - math.Max(a[0], b[0])
	ih := math.Min(a[1]+a[3], b[1]+b[3]) - math.Max(a[1], b[1])
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := iw * ih
	return inter / (a[2]*a[3] + b[2]*b[3] - inter)
}
