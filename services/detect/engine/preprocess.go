package engine

import (
	"math"
	"runtime"
	"sync"

	"github.com/streamdet/streamdet/services/detect/imaging"
)

// letterbox is where a frame of the original size lands in the model input: resized to nw×nh,
// offset by (left, top), and how boxes map back.
type letterbox struct {
	nw, nh    int     // resized size in input pixels
	left, top int     // placement in the input
	gain      float64 // input pixels per original pixel
	padX      float64 // subtracted before dividing by gain when mapping back
	padY      float64
}

// pyRound is Python 3's round(): halves go to the even neighbour.
func pyRound(x float64) float64 { return math.RoundToEven(x) }

// geometry computes the letterbox of a w×h frame in an inW×inH input, as the family's reference
// code does (see the package documentation).
func geometry(f family, w, h, inW, inH int) letterbox {
	r := math.Min(float64(inH)/float64(h), float64(inW)/float64(w))
	if !f.center { // YOLOX preproc: int() truncation, top-left, boxes / r
		return letterbox{nw: max(1, int(float64(w)*r)), nh: max(1, int(float64(h)*r)), gain: r}
	}
	// Ultralytics LetterBox + scale_boxes.
	nw, nh := int(pyRound(float64(w)*r)), int(pyRound(float64(h)*r))
	nw, nh = max(1, min(nw, inW)), max(1, min(nh, inH))
	dw, dh := float64(inW-nw)/2, float64(inH-nh)/2
	return letterbox{
		nw: nw, nh: nh,
		left: int(pyRound(dw - 0.1)), top: int(pyRound(dh - 0.1)),
		gain: r,
		padX: pyRound((float64(inW)-float64(w)*r)/2 - 0.1),
		padY: pyRound((float64(inH)-float64(h)*r)/2 - 0.1),
	}
}

// toOriginal maps a point in input pixels back to the original frame.
func (lb letterbox) toOriginal(x, y float32) (float32, float32) {
	return float32((float64(x) - lb.padX) / lb.gain), float32((float64(y) - lb.padY) / lb.gain)
}

const (
	coefBits  = 11 // OpenCV INTER_RESIZE_COEF_BITS
	coefScale = 1 << coefBits
)

// preprocessor fuses resize, letterbox, channel order, scaling and NCHW layout. It keeps its
// coordinate tables between frames; it is not safe for concurrent use.
type preprocessor struct {
	xofs  []int32 // per output column: byte offset of the left source pixel
	xofs1 []int32 // ... of the right source pixel
	xw    []int32 // weight of the right pixel, 0..coefScale
	lut   [256]float32
	lutOf float32
	hbuf  [][]int32 // horizontally resized rows, two per worker goroutine
	wg    sync.WaitGroup
}

// run writes img, letterboxed per lb and family f, into dst (3 planes of inW×inH).
func (p *preprocessor) run(f family, img imaging.RGB, lb letterbox, inW, inH int, dst []float32) {
	if p.lutOf != f.scale {
		for i := range p.lut {
			p.lut[i] = float32(i) * f.scale
		}
		p.lutOf = f.scale
	}
	plane := inW * inH
	c0, c2 := dst[:plane], dst[2*plane:3*plane] // R and B planes, swapped for BGR
	if f.bgr {
		c0, c2 = c2, c0
	}
	c1 := dst[plane : 2*plane]
	pad := p.lut[114]

	// Padding: rows above and below, columns left and right of the resized image.
	for _, c := range [][]float32{c0, c1, c2} {
		fill(c[:lb.top*inW], pad)
		fill(c[(lb.top+lb.nh)*inW:], pad)
		if lb.left > 0 || lb.left+lb.nw < inW {
			for y := lb.top; y < lb.top+lb.nh; y++ {
				row := c[y*inW : (y+1)*inW]
				fill(row[:lb.left], pad)
				fill(row[lb.left+lb.nw:], pad)
			}
		}
	}

	// Column tables (OpenCV INTER_LINEAR: half-pixel centres, clamped at the edges).
	p.xofs, p.xofs1, p.xw = growI32(p.xofs, lb.nw), growI32(p.xofs1, lb.nw), growI32(p.xw, lb.nw)
	sx := float64(img.Width) / float64(lb.nw)
	for dx := 0; dx < lb.nw; dx++ {
		x0, fx := srcCoord(dx, sx, img.Width)
		p.xofs[dx] = int32(3 * x0)
		p.xofs1[dx] = int32(3 * min(x0+1, img.Width-1))
		p.xw[dx] = int32(fx*coefScale + 0.5)
	}

	// Two passes, as OpenCV does: each needed source row is resized horizontally once into an
	// int32 row (samples × 2^11) and kept while consecutive output rows use it; the vertical
	// blend then reads two such rows sequentially.
	rows := func(y0, y1 int, hb [2][]int32) {
		sy := float64(img.Height) / float64(lb.nh)
		have := [2]int{-1, -1} // source row held by hb[0], hb[1]
		row := func(ry int) []int32 {
			// Rows ry and ry+1 differ in parity and are used in increasing order, so the slot
			// of ry's parity holds either ry or a row no longer needed.
			k := ry & 1
			if have[k] == ry {
				return hb[k]
			}
			h := hb[k][:3*lb.nw]
			src := img.Pix[ry*img.Stride : ry*img.Stride+3*img.Width]
			xofs, xofs1, xw := p.xofs[:lb.nw], p.xofs1[:lb.nw], p.xw[:lb.nw]
			for dx := range xofs {
				a, b, w1 := xofs[dx], xofs1[dx], xw[dx]
				w0 := coefScale - w1
				pa, pb := src[a:a+3:a+3], src[b:b+3:b+3]
				o := h[3*dx : 3*dx+3 : 3*dx+3]
				o[0] = int32(pa[0])*w0 + int32(pb[0])*w1
				o[1] = int32(pa[1])*w0 + int32(pb[1])*w1
				o[2] = int32(pa[2])*w0 + int32(pb[2])*w1
			}
			have[k] = ry
			return h
		}
		lut := &p.lut
		for dy := y0; dy < y1; dy++ {
			ry, fy := srcCoord(dy, sy, img.Height)
			wy1 := int32(fy*coefScale + 0.5)
			wy0 := coefScale - wy1
			h0 := row(ry)
			h1 := h0
			if wy1 != 0 {
				h1 = row(min(ry+1, img.Height-1))
			}
			o := (lb.top+dy)*inW + lb.left
			o0, o1, o2 := c0[o:o+lb.nw], c1[o:o+lb.nw], c2[o:o+lb.nw]
			h0, h1 = h0[:3*len(o0)], h1[:3*len(o0)]
			for dx := range o0 {
				a := h0[3*dx : 3*dx+3 : 3*dx+3]
				b := h1[3*dx : 3*dx+3 : 3*dx+3]
				o0[dx] = lut[uint8((a[0]*wy0+b[0]*wy1+1<<(2*coefBits-1))>>(2*coefBits))]
				o1[dx] = lut[uint8((a[1]*wy0+b[1]*wy1+1<<(2*coefBits-1))>>(2*coefBits))]
				o2[dx] = lut[uint8((a[2]*wy0+b[2]*wy1+1<<(2*coefBits-1))>>(2*coefBits))]
			}
		}
	}
	// Split large images across the cores; small ones are not worth the hand-off.
	n := runtime.GOMAXPROCS(0)
	if n < 2 || lb.nw*lb.nh < 64*1024 {
		n = 1
	}
	for len(p.hbuf) < 2*n {
		p.hbuf = append(p.hbuf, nil)
	}
	for i := range p.hbuf[:2*n] {
		if cap(p.hbuf[i]) < 3*lb.nw {
			p.hbuf[i] = make([]int32, 3*lb.nw)
		}
	}
	if n == 1 {
		rows(0, lb.nh, [2][]int32{p.hbuf[0], p.hbuf[1]})
		return
	}
	step := (lb.nh + n - 1) / n
	for i, y := 0, 0; y < lb.nh; i, y = i+1, y+step {
		p.wg.Add(1)
		go func(y0, y1 int, hb [2][]int32) { defer p.wg.Done(); rows(y0, y1, hb) }(y, min(y+step, lb.nh), [2][]int32{p.hbuf[2*i], p.hbuf[2*i+1]})
	}
	p.wg.Wait()
}

// srcCoord maps output index d to the left/top source index and the fractional weight of the
// next one, as OpenCV's INTER_LINEAR does.
func srcCoord(d int, scale float64, size int) (int, float64) {
	f := (float64(d)+0.5)*scale - 0.5
	i := int(math.Floor(f))
	frac := f - float64(i)
	if i < 0 {
		return 0, 0
	}
	if i >= size-1 {
		return size - 1, 0
	}
	return i, frac
}

func fill(s []float32, v float32) {
	for i := range s {
		s[i] = v
	}
}

func growI32(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}
