package engine

import (
	"bytes"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"testing"

	"github.com/streamdet/streamdet/pkg/testenv"
	"github.com/streamdet/streamdet/services/detect/imaging"
)

// FuzzDecodePreprocess feeds arbitrary bytes through decode and the fused letterbox of both
// preprocessing conventions: nothing may panic, run away with memory (the pixel limit is small
// here) or write a value outside [0, 255·scale].
func FuzzDecodePreprocess(f *testing.F) {
	m := image.NewNRGBA(image.Rect(0, 0, 37, 23))
	for i := range m.Pix {
		m.Pix[i] = uint8(i * 7)
	}
	var jb, pb bytes.Buffer
	jpeg.Encode(&jb, m, &jpeg.Options{Quality: 80})
	png.Encode(&pb, m)
	f.Add(jb.Bytes())
	f.Add(pb.Bytes())
	f.Add(jb.Bytes()[:jb.Len()/2])
	f.Add(testenv.PNGDeclaring(100000, 100000))
	f.Add([]byte{0xFF, 0xD8, 0xFF})
	f.Add([]byte{})

	const in = 96
	dec := &imaging.Decoder{Limits: imaging.Limits{MaxPixels: 1 << 20, MaxBytes: 1 << 20}}
	var pre preprocessor
	dst := make([]float32, 3*in*in)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, fam := range []family{FormatYOLOX.family(), FormatYOLOv8.family()} {
			img, cfg, err := dec.Decode(data, in, in)
			if err != nil {
				return
			}
			if img.Width <= 0 || img.Height <= 0 || img.Width > cfg.Width || img.Height > cfg.Height || len(img.Pix) < img.Stride*img.Height {
				t.Fatalf("decoded %d×%d (stride %d, %d bytes) from a %d×%d header", img.Width, img.Height, img.Stride, len(img.Pix), cfg.Width, cfg.Height)
			}
			lb := geometry(fam, cfg.Width, cfg.Height, in, in)
			pre.run(fam, img, lb, in, in, dst)
			hi := 255 * fam.scale
			for i, v := range dst {
				if math.IsNaN(float64(v)) || v < 0 || v > hi {
					t.Fatalf("dst[%d] = %v outside [0, %v]", i, v, hi)
				}
			}
		}
	})
}
