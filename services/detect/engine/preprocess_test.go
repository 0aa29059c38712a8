package engine

import (
	"math"
	"testing"

	"github.com/streamdet/streamdet/services/detect/imaging"
)

// TestPreprocessMatchesReference compares the fused fixed-point letterbox with the float64
// reference (separate resize, pad, layout) sample by sample: at most one level apart, and on
// nearly every sample exactly equal; split in bands across goroutines or not, to the bit.
func TestPreprocessMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		w, h, in int
		f        Format
	}{
		{768, 576, 416, FormatYOLOX}, {768, 576, 640, FormatYOLOv8}, {300, 700, 640, FormatYOLOv8},
		{1920, 1080, 640, FormatYOLOv8}, {50, 30, 416, FormatYOLOX}, {641, 1, 640, FormatYOLOv8}, {1, 1, 64, FormatYOLOX},
	} {
		src := imaging.RGB{Width: tc.w, Height: tc.h, Stride: 3 * tc.w, Pix: make([]byte, 3*tc.w*tc.h)}
		for i := range src.Pix {
			src.Pix[i] = uint8((i*131 + i/(3*tc.w)*17) % 251)
		}
		fam := tc.f.family()
		lb := geometry(fam, tc.w, tc.h, tc.in, tc.in)
		p := preprocessor{bands: 3} // large frames in three bands on goroutines of their own
		got := make([]float32, 3*tc.in*tc.in)
		for i := range got {
			got[i] = -1 // every sample must be written
		}
		p.run(fam, src, lb, tc.in, tc.in, got)
		var one preprocessor // one band: the same samples, to the bit
		got1 := make([]float32, len(got))
		one.run(fam, src, lb, tc.in, tc.in, got1)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(got1[i]) {
				t.Fatalf("%d×%d → %d: sample %d is %v in three bands, %v in one", tc.w, tc.h, tc.in, i, got[i], got1[i])
			}
		}

		small := refResize(src, lb.nw, lb.nh)
		plane := tc.in * tc.in
		var diff, worst int
		for y := 0; y < tc.in; y++ {
			for x := 0; x < tc.in; x++ {
				px := [3]float32{114, 114, 114}
				if x >= lb.left && x < lb.left+lb.nw && y >= lb.top && y < lb.top+lb.nh {
					q := small.Pix[(y-lb.top)*small.Stride+3*(x-lb.left):]
					px = [3]float32{float32(q[0]), float32(q[1]), float32(q[2])}
				}
				if fam.bgr {
					px[0], px[2] = px[2], px[0]
				}
				for c := 0; c < 3; c++ {
					g := got[c*plane+y*tc.in+x] / fam.scale
					d := int(math.Round(math.Abs(float64(g - px[c]))))
					if d > 0 {
						diff++
					}
					worst = max(worst, d)
				}
			}
		}
		if worst > 1 || diff > 3*plane/100 {
			t.Errorf("%d×%d → %d (%s): %d samples differ, worst by %d levels", tc.w, tc.h, tc.in, tc.f, diff, worst)
		}
	}
}
