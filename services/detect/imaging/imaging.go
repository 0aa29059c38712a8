package imaging

import (
	"bytes"
	"fmt"
	"image"
	"image/png"

	"github.com/streamdet/streamdet/pkg/imageinfo"
)

// The header checks, limits and sentinel errors are imageinfo's, so that ingest (pure Go) and
// detect refuse exactly the same frames.
var (
	ErrEmpty             = imageinfo.ErrEmpty
	ErrUnsupportedFormat = imageinfo.ErrUnsupportedFormat
	ErrTooLarge          = imageinfo.ErrTooLarge
	ErrCorrupt           = imageinfo.ErrCorrupt
	DefaultLimits        = imageinfo.DefaultLimits
)

type (
	// Format is an encoded image format.
	Format = imageinfo.Format
	// Limits bound the frames accepted; see imageinfo.Limits.
	Limits = imageinfo.Limits
	// Config is what an image's header says.
	Config = imageinfo.Config
)

// The formats the package decodes.
const (
	JPEG = imageinfo.JPEG
	PNG  = imageinfo.PNG
)

// Sniff names the format from the first bytes.
func Sniff(data []byte) (Format, error) { return imageinfo.Sniff(data) }

// DecodeConfig reads only the header and checks it against the limits.
func DecodeConfig(data []byte, lim Limits) (Config, error) { return imageinfo.DecodeConfig(data, lim) }

// RGB is a packed 8-bit RGB image: pixel (x, y) is Pix[y*Stride+3*x : y*Stride+3*x+3].
type RGB struct {
	Width, Height, Stride int
	Pix                   []byte
}

// Brightness is the image's mean luma (Rec. 601, 0–255), sampled on a grid of about 64×64
// pixels: cheap enough for every frame, exact enough for a drift histogram.
func (m RGB) Brightness() float64 {
	if m.Width <= 0 || m.Height <= 0 {
		return 0
	}
	sx, sy := max(1, m.Width/64), max(1, m.Height/64)
	var sum, n float64
	for y := sy / 2; y < m.Height; y += sy {
		row := m.Pix[y*m.Stride:]
		for x := sx / 2; x < m.Width; x += sx {
			p := row[3*x : 3*x+3]
			sum += 0.299*float64(p[0]) + 0.587*float64(p[1]) + 0.114*float64(p[2])
			n++
		}
	}
	return sum / n
}

// Decoder decodes frames into a reused buffer. A Decoder is not safe for concurrent use; give
// each worker its own.
type Decoder struct {
	Limits Limits
	buf    []byte
	h      jpegHandle
}

// Close releases the native decoder, if any.
func (d *Decoder) Close() { d.h.close() }

// Decode checks the header against the limits, then decodes the image. When minW and minH are
// positive and the image is a JPEG at least twice as large, it is decoded at the smallest DCT
// scale whose output is still at least minW×minH pixels (preserving the aspect ratio). The
// returned RGB shares the Decoder's buffer and is valid until the next call. The Config is the
// header's (the original size), not the possibly scaled decode size.
func (d *Decoder) Decode(data []byte, minW, minH int) (RGB, Config, error) {
	cfg, err := DecodeConfig(data, d.Limits)
	if err != nil {
		return RGB{}, Config{}, err
	}
	var img RGB
	switch cfg.Format {
	case JPEG:
		img, err = d.decodeJPEG(data, cfg, minW, minH)
	case PNG:
		img, err = d.decodePNG(data)
	}
	if err != nil {
		return RGB{}, Config{}, err
	}
	return img, cfg, nil
}

func (d *Decoder) grow(n int) []byte {
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	return d.buf[:n]
}

func (d *Decoder) decodePNG(data []byte) (RGB, error) {
	m, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return RGB{}, fmt.Errorf("%w: png: %v", ErrCorrupt, err)
	}
	return d.fromImage(m), nil
}

// fromImage converts any decoded image to packed RGB with OpenCV's IMREAD_COLOR semantics.
func (d *Decoder) fromImage(m image.Image) RGB {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	out := RGB{Width: w, Height: h, Stride: 3 * w, Pix: d.grow(3 * w * h)}
	switch src := m.(type) {
	case *image.RGBA: // alpha dropped; Go's PNG decoder yields RGBA only for opaque images
		packRGBA(out, src.Pix, src.Stride, 4)
	case *image.NRGBA:
		packRGBA(out, src.Pix, src.Stride, 4)
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := src.Pix[y*src.Stride : y*src.Stride+w]
			o := out.Pix[y*out.Stride:]
			for x, v := range row {
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
	case *image.NRGBA64: // big-endian 16-bit samples: keep the high byte
		packRGBA(out, src.Pix, src.Stride, 8)
	case *image.RGBA64:
		packRGBA(out, src.Pix, src.Stride, 8)
	case *image.Gray16:
		for y := 0; y < h; y++ {
			o := out.Pix[y*out.Stride:]
			for x := 0; x < w; x++ {
				v := src.Pix[y*src.Stride+2*x]
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
	case *image.CMYK: // Go's JPEG decoder has already undone the Adobe inversion
		for y := 0; y < h; y++ {
			o := out.Pix[y*out.Stride:]
			row := src.Pix[y*src.Stride:]
			for x := 0; x < w; x++ {
				c, mm, yy, k := uint32(row[4*x]), uint32(row[4*x+1]), uint32(row[4*x+2]), uint32(row[4*x+3])
				o[3*x] = uint8((255 - c) * (255 - k) / 255)
				o[3*x+1] = uint8((255 - mm) * (255 - k) / 255)
				o[3*x+2] = uint8((255 - yy) * (255 - k) / 255)
			}
		}
	default: // paletted, YCbCr (pure-Go JPEG) and anything else: through the generic colour model
		for y := 0; y < h; y++ {
			o := out.Pix[y*out.Stride:]
			for x := 0; x < w; x++ {
				c := color8(m.At(b.Min.X+x, b.Min.Y+y))
				o[3*x], o[3*x+1], o[3*x+2] = c[0], c[1], c[2]
			}
		}
	}
	return out
}

// packRGBA copies the R, G, B bytes (the high byte for 16-bit samples, step 8) of each pixel.
func packRGBA(out RGB, pix []byte, stride, step int) {
	sub := step / 4 // byte distance between samples: 1 for 8-bit, 2 for 16-bit
	for y := 0; y < out.Height; y++ {
		row := pix[y*stride:]
		o := out.Pix[y*out.Stride : y*out.Stride+3*out.Width]
		for x := 0; x < out.Width; x++ {
			p := row[x*step:]
			o[3*x], o[3*x+1], o[3*x+2] = p[0], p[sub], p[2*sub]
		}
	}
}

// Image returns a copy of the frame as an *image.NRGBA, for drawing and encoding.
func (m RGB) Image() *image.NRGBA {
	out := image.NewNRGBA(image.Rect(0, 0, m.Width, m.Height))
	for y := 0; y < m.Height; y++ {
		s := m.Pix[y*m.Stride:]
		o := out.Pix[y*out.Stride:]
		for x := 0; x < m.Width; x++ {
			o[4*x], o[4*x+1], o[4*x+2], o[4*x+3] = s[3*x], s[3*x+1], s[3*x+2], 255
		}
	}
	return out
}
