package engine

import (
	"math"
	"slices"

	"github.com/streamdet/streamdet/pkg/contract"
)

// candidate is a box in model-input pixels before NMS.
type candidate struct {
	x1, y1, x2, y2 float32
	score          float32
	class          int32
}

// maxNMS caps the candidates considered by NMS (Ultralytics max_nms).
const maxNMS = 30000

// decoder turns one image's raw output (batch dimension removed) into candidates above conf.
type decoder func(out []float32, dims []int64, conf float32, dst []candidate) []candidate

// decodeYOLOX: [N, 5+C] grid-encoded over strides 8, 16, 32 in row-major cell order.
func decodeYOLOX(inW, inH int) decoder {
	type cell struct{ gx, gy, s float32 }
	var grid []cell
	for _, s := range []int{8, 16, 32} {
		for y := 0; y < inH/s; y++ {
			for x := 0; x < inW/s; x++ {
				grid = append(grid, cell{float32(x), float32(y), float32(s)})
			}
		}
	}
	return func(out []float32, dims []int64, conf float32, dst []candidate) []candidate {
		n, stride := int(dims[0]), int(dims[1])
		for i := 0; i < n && i < len(grid); i++ {
			row := out[i*stride : (i+1)*stride]
			obj := row[4]
			if obj <= conf { // score = obj × cls ≤ obj
				continue
			}
			cls, best := argmax(row[5:])
			score := obj * best
			if score <= conf {
				continue
			}
			g := grid[i]
			cx, cy := (row[0]+g.gx)*g.s, (row[1]+g.gy)*g.s
			w, h := float32(math.Exp(float64(row[2])))*g.s, float32(math.Exp(float64(row[3])))*g.s
			dst = append(dst, candidate{cx - w/2, cy - h/2, cx + w/2, cy + h/2, score, int32(cls)})
		}
		return dst
	}
}

// decodeYOLOv8: [4+C, N], channel-major. The best class of every anchor is found class row by
// class row, so memory is read sequentially (an anchor's scores are N floats apart).
func decodeYOLOv8(out []float32, dims []int64, conf float32, dst []candidate) []candidate {
	rows, n := int(dims[0]), int(dims[1])
	best := make([]float32, n)
	cls := make([]int32, n)
	copy(best, out[4*n:5*n])
	for c := 5; c < rows; c++ {
		row := out[c*n : (c+1)*n]
		for i, v := range row {
			if v > best[i] {
				best[i], cls[i] = v, int32(c-4)
			}
		}
	}
	for i, b := range best {
		if b <= conf {
			continue
		}
		cx, cy, w, h := out[i], out[n+i], out[2*n+i], out[3*n+i]
		dst = append(dst, candidate{cx - w/2, cy - h/2, cx + w/2, cy + h/2, b, cls[i]})
	}
	return dst
}

// decodeYOLOv5: [N, 5+C] decoded: cx, cy, w, h, objectness, classes.
func decodeYOLOv5(out []float32, dims []int64, conf float32, dst []candidate) []candidate {
	n, stride := int(dims[0]), int(dims[1])
	for i := 0; i < n; i++ {
		row := out[i*stride : (i+1)*stride]
		obj := row[4]
		if obj <= conf {
			continue
		}
		cls, best := argmax(row[5:])
		score := obj * best
		if score <= conf {
			continue
		}
		cx, cy, w, h := row[0], row[1], row[2], row[3]
		dst = append(dst, candidate{cx - w/2, cy - h/2, cx + w/2, cy + h/2, score, int32(cls)})
	}
	return dst
}

// decodeEnd2End: [K, 6] = x1, y1, x2, y2, score, class; NMS already done.
func decodeEnd2End(out []float32, dims []int64, conf float32, dst []candidate) []candidate {
	k, stride := int(dims[0]), int(dims[1])
	for i := 0; i < k; i++ {
		r := out[i*stride : (i+1)*stride]
		if r[4] <= conf {
			continue
		}
		dst = append(dst, candidate{r[0], r[1], r[2], r[3], r[4], int32(r[5])})
	}
	return dst
}

func argmax(v []float32) (int, float32) {
	best, idx := float32(math.Inf(-1)), 0
	for i, x := range v {
		if x > best {
			best, idx = x, i
		}
	}
	return idx, best
}

func iou(a, b *candidate) float32 {
	ix := min(a.x2, b.x2) - max(a.x1, b.x1)
	iy := min(a.y2, b.y2) - max(a.y1, b.y1)
	if ix <= 0 || iy <= 0 {
		return 0
	}
	inter := ix * iy
	union := (a.x2-a.x1)*(a.y2-a.y1) + (b.x2-b.x1)*(b.y2-b.y1) - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// nms sorts cands by score and keeps greedily those not overlapping a kept box of the same
// class (any class when agnostic) by more than iouThr, at most maxDet. It reuses cands.
func nms(cands []candidate, iouThr float32, agnostic bool, maxDet int) []candidate {
	slices.SortStableFunc(cands, func(a, b candidate) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	if len(cands) > maxNMS {
		cands = cands[:maxNMS]
	}
	keep := cands[:0]
	for i := range cands {
		c := cands[i]
		ok := true
		for j := range keep {
			if (agnostic || keep[j].class == c.class) && iou(&keep[j], &c) > iouThr {
				ok = false
				break
			}
		}
		if ok {
			keep = append(keep, c)
			if len(keep) == maxDet {
				break
			}
		}
	}
	return keep
}

// finish maps kept candidates back to the original w×h frame, clips them and labels them.
func finish(cands []candidate, lb letterbox, w, h int, names []string) []contract.Detection {
	out := make([]contract.Detection, 0, len(cands))
	fw, fh := float32(w), float32(h)
	for _, c := range cands {
		x1, y1 := lb.toOriginal(c.x1, c.y1)
		x2, y2 := lb.toOriginal(c.x2, c.y2)
		d := contract.Detection{
			ClassID: int(c.class),
			Score:   c.score,
			Box:     [4]float32{clamp(x1, fw), clamp(y1, fh), clamp(x2, fw), clamp(y2, fh)},
		}
		if d.ClassID >= 0 && d.ClassID < len(names) {
			d.Label = names[d.ClassID]
		}
		out = append(out, d)
	}
	return out
}

func clamp(v, hi float32) float32 { return min(max(v, 0), hi) }
