//go:build !noturbojpeg

package imaging

/*
#cgo CFLAGS: -O3
#cgo LDFLAGS: -lturbojpeg
#include <stdlib.h>
#include <turbojpeg.h>

static int sd_scaling_count(void) { int n = 0; tjGetScalingFactors(&n); return n; }
static tjscalingfactor sd_scaling_factor(int i) { int n = 0; return tjGetScalingFactors(&n)[i]; }
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Native reports whether JPEG goes through libjpeg-turbo (true) or Go's image/jpeg.
const Native = true

type jpegHandle struct {
	dec, enc C.tjhandle
}

func (h *jpegHandle) close() {
	if h.dec != nil {
		C.tjDestroy(h.dec)
		h.dec = nil
	}
	if h.enc != nil {
		C.tjDestroy(h.enc)
		h.enc = nil
	}
}

type scalingFactor struct{ num, denom int }

// scalingFactors are libjpeg-turbo's DCT scaling factors, read once.
var scalingFactors = func() []scalingFactor {
	n := int(C.sd_scaling_count())
	out := make([]scalingFactor, 0, n)
	for i := 0; i < n; i++ {
		f := C.sd_scaling_factor(C.int(i))
		out = append(out, scalingFactor{int(f.num), int(f.denom)})
	}
	return out
}()

func scaled(dim int, f scalingFactor) int { return (dim*f.num + f.denom - 1) / f.denom }

// pickScale returns the decode size: the smallest DCT-scaled size that still covers the size the
// image takes when fitted into boxW×boxH, or the full size.
func pickScale(w, h, boxW, boxH int) (int, int) {
	f := pickFactor(w, h, boxW, boxH)
	return scaled(w, f), scaled(h, f)
}

func pickFactor(w, h, boxW, boxH int) scalingFactor {
	best := scalingFactor{1, 1}
	if boxW <= 0 || boxH <= 0 {
		return best
	}
	r := min(float64(boxW)/float64(w), float64(boxH)/float64(h))
	if r >= 0.5 { // not much larger than needed: decode at full size
		return best
	}
	needW, needH := int(float64(w)*r+0.999), int(float64(h)*r+0.999)
	bw, bh := w, h
	for _, f := range scalingFactors {
		sw, sh := scaled(w, f), scaled(h, f)
		if sw >= needW && sh >= needH && sw*sh < bw*bh {
			best, bw, bh = f, sw, sh
		}
	}
	return best
}

func (h *jpegHandle) errString(handle C.tjhandle) string {
	return C.GoString(C.tjGetErrorStr2(handle))
}

// failed returns the decompressor's error and drops the decompressor. libjpeg-turbo 2.1's
// tjDecompressHeader3 returns from an error without aborting the decompression, and the next
// frame's header is then parsed from the middle of the old one's state: a good frame refused as
// "Bogus Huffman table definition" after a bad one (found by fuzzing). A new handle
// per failure costs nothing on good frames.
func (h *jpegHandle) failed() string {
	msg := h.errString(h.dec)
	C.tjDestroy(h.dec)
	h.dec = nil
	return msg
}

func (d *Decoder) decodeJPEG(data []byte, cfg Config, boxW, boxH int) (RGB, error) {
	return d.decodeTurbo(data, cfg, pickFactor(cfg.Width, cfg.Height, boxW, boxH))
}

// decodeTurbo decodes with libjpeg-turbo at scale f.
func (d *Decoder) decodeTurbo(data []byte, cfg Config, f scalingFactor) (RGB, error) {
	if d.h.dec == nil {
		if d.h.dec = C.tjInitDecompress(); d.h.dec == nil {
			return RGB{}, fmt.Errorf("imaging: libjpeg-turbo: cannot create a decompressor")
		}
	}
	var w, ht, sub, cs C.int
	src := (*C.uchar)(unsafe.Pointer(&data[0]))
	if C.tjDecompressHeader3(d.h.dec, src, C.ulong(len(data)), &w, &ht, &sub, &cs) != 0 {
		return RGB{}, fmt.Errorf("%w: jpeg header: %s", ErrCorrupt, d.h.failed())
	}
	sw, sh := scaled(cfg.Width, f), scaled(cfg.Height, f)
	cmyk := cs == C.TJCS_CMYK || cs == C.TJCS_YCCK
	pf, bpp := C.int(C.TJPF_RGB), 3
	if cmyk {
		pf, bpp = C.TJPF_CMYK, 4
	}
	buf := d.grow(sw * sh * bpp)
	// TJFLAG_STOPONWARNING: a truncated or damaged stream is an error, not a grey half-frame.
	flags := C.int(C.TJFLAG_STOPONWARNING)
	if C.tjDecompress2(d.h.dec, src, C.ulong(len(data)), (*C.uchar)(unsafe.Pointer(&buf[0])),
		C.int(sw), C.int(sw*bpp), C.int(sh), pf, flags) != 0 {
		return RGB{}, fmt.Errorf("%w: jpeg: %s", ErrCorrupt, d.h.failed())
	}
	if cmyk { // libjpeg returns Adobe's inverted CMYK as stored: R = C·K/255
		for i, j := 0, 0; i < len(buf); i, j = i+4, j+3 {
			c, m, y, k := uint32(buf[i]), uint32(buf[i+1]), uint32(buf[i+2]), uint32(buf[i+3])
			buf[j], buf[j+1], buf[j+2] = uint8(c*k/255), uint8(m*k/255), uint8(y*k/255)
		}
		buf = buf[:sw*sh*3]
	}
	return RGB{Width: sw, Height: sh, Stride: 3 * sw, Pix: buf}, nil
}

// EncodeJPEG compresses packed RGB (4:2:0, the given quality) with libjpeg-turbo. With cmyk set
// it writes an Adobe (inverted) CMYK JPEG instead, which tests use to exercise the CMYK path.
func (d *Decoder) EncodeJPEG(img RGB, quality int, cmyk bool) ([]byte, error) {
	if cmyk {
		return d.encodeJPEG(img, quality, -1)
	}
	return d.encodeJPEG(img, quality, samp420)
}

// Chroma subsamplings for encodeJPEG (libjpeg-turbo's TJSAMP_*).
const (
	samp444  = int(C.TJSAMP_444)
	samp422  = int(C.TJSAMP_422)
	samp420  = int(C.TJSAMP_420)
	sampGray = int(C.TJSAMP_GRAY)
)

// encodeJPEG compresses with the given chroma subsampling, or as CMYK when sub < 0.
func (d *Decoder) encodeJPEG(img RGB, quality int, subsamp int) ([]byte, error) {
	cmyk, sub := subsamp < 0, C.int(subsamp)
	if d.h.enc == nil {
		if d.h.enc = C.tjInitCompress(); d.h.enc == nil {
			return nil, fmt.Errorf("imaging: libjpeg-turbo: cannot create a compressor")
		}
	}
	pix, pitch, pf := img.Pix, img.Stride, C.int(C.TJPF_RGB)
	if cmyk {
		pix = make([]byte, 4*img.Width*img.Height)
		for y := 0; y < img.Height; y++ {
			for x := 0; x < img.Width; x++ {
				p := img.Pix[y*img.Stride+3*x:]
				r, g, b := int(p[0]), int(p[1]), int(p[2])
				k := max(r, g, b) // inverted K (255 = no black)
				q := pix[4*(y*img.Width+x):]
				if k == 0 {
					q[0], q[1], q[2], q[3] = 0, 0, 0, 0
					continue
				}
				q[0], q[1], q[2], q[3] = uint8(r*255/k), uint8(g*255/k), uint8(b*255/k), uint8(k)
			}
		}
		pitch, pf, sub = 4*img.Width, C.TJPF_CMYK, C.TJSAMP_444
	}
	var out *C.uchar
	var size C.ulong
	if C.tjCompress2(d.h.enc, (*C.uchar)(unsafe.Pointer(&pix[0])), C.int(img.Width), C.int(pitch), C.int(img.Height),
		pf, &out, &size, sub, C.int(quality), 0) != 0 {
		return nil, fmt.Errorf("imaging: jpeg encode: %s", d.h.errString(d.h.enc))
	}
	defer C.tjFree(out)
	return C.GoBytes(unsafe.Pointer(out), C.int(size)), nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
