package engine

/*
#cgo CFLAGS: -O3
#include "letterbox.h"
*/
import "C"

import (
	"math"
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
	xofs  []int32   // per output column: byte offset of the left source pixel
	xofs1 []int32   // ... of the right source pixel
	xw    []int32   // weight of the right pixel, 0..coefScale
	ry    []int32   // per output row: the upper source row
	wy    []int32   // ... and the weight of the lower one, 0..coefScale
	hbuf  [][]int32 // horizontally resized rows, two per worker goroutine
	// bands is how many goroutines a large frame may be split across: the cores this session
	// has to itself (cores ÷ sessions). With a session per core the other cores are busy with
	// frames of their own, and handing a band to another thread only costs a wake-up.
	bands int
	// padded is the last padding written: the same geometry into the same tensor needs none.
	padded struct {
		dst      *float32
		lb       letterbox
		inW, inH int
		pad      float32
	}
	wg sync.WaitGroup
}

// run writes img, letterboxed per lb and family f, into dst (3 planes of inW×inH).
func (p *preprocessor) run(f family, img imaging.RGB, lb letterbox, inW, inH int, dst []float32) {
	plane := inW * inH
	c0, c2 := dst[:plane], dst[2*plane:3*plane] // R and B planes, swapped for BGR
	if f.bgr {
		c0, c2 = c2, c0
	}
	c1 := dst[plane : 2*plane]
	pad := float32(114) * f.scale

	// Padding: frames of one size in a row (a camera's stream) find it already there.
	key := p.padded
	key.dst, key.lb, key.inW, key.inH, key.pad = &dst[0], lb, inW, inH, pad
	if key != p.padded {
		p.padded = key
		for _, c := range [][]float32{c0, c1, c2} {
			fillPadding(c, lb, inW, pad)
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

	// Row tables, likewise.
	p.ry, p.wy = growI32(p.ry, lb.nh), growI32(p.wy, lb.nh)
	sy := float64(img.Height) / float64(lb.nh)
	for dy := 0; dy < lb.nh; dy++ {
		ry, fy := srcCoord(dy, sy, img.Height)
		p.ry[dy], p.wy[dy] = int32(ry), int32(fy*coefScale+0.5)
	}

	// Two passes, as OpenCV does (letterbox.c): each needed source row is resized horizontally
	// once into an int32 row (samples × 2^11) and kept while consecutive output rows use it; the
	// vertical blend then reads two such rows sequentially.
	rows := func(y0, y1 int, hb [2][]int32) {
		C.sd_letterbox_rows((*C.uint8_t)(&img.Pix[0]), C.int(img.Stride), C.int(img.Height),
			(*C.int32_t)(&p.xofs[0]), (*C.int32_t)(&p.xofs1[0]), (*C.int32_t)(&p.xw[0]), C.int(lb.nw),
			(*C.int32_t)(&p.ry[0]), (*C.int32_t)(&p.wy[0]), C.int(y0), C.int(y1),
			(*C.int32_t)(&hb[0][0]), (*C.int32_t)(&hb[1][0]),
			(*C.float)(&c0[0]), (*C.float)(&c1[0]), (*C.float)(&c2[0]), C.int(inW), C.int(lb.top), C.int(lb.left),
			C.float(f.scale))
	}
	// Split large images across the session's cores; small ones are not worth the hand-off.
	n := p.bands
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
	// The first band runs here, the others on goroutines of their own.
	step := (lb.nh + n - 1) / n
	for i, y := 1, step; y < lb.nh; i, y = i+1, y+step {
		p.wg.Add(1)
		go func(y0, y1 int, hb [2][]int32) { defer p.wg.Done(); rows(y0, y1, hb) }(y, min(y+step, lb.nh), [2][]int32{p.hbuf[2*i], p.hbuf[2*i+1]})
	}
	rows(0, min(step, lb.nh), [2][]int32{p.hbuf[0], p.hbuf[1]})
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

// fillPadding fills the rows above and below and the columns left and right of the resized
// image in one plane.
func fillPadding(c []float32, lb letterbox, inW int, pad float32) {
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
