//go:build noturbojpeg

package imaging

import (
	"bytes"
	"fmt"
	"image/jpeg"
)

// Native reports whether JPEG goes through libjpeg-turbo (true) or Go's image/jpeg.
const Native = false

type jpegHandle struct{}

func (jpegHandle) close() {}

func (d *Decoder) decodeJPEG(data []byte, _ Config, _, _ int) (RGB, error) {
	m, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return RGB{}, fmt.Errorf("%w: jpeg: %v", ErrCorrupt, err)
	}
	return d.fromImage(m), nil
}

// EncodeJPEG compresses packed RGB with Go's image/jpeg (CMYK output needs libjpeg-turbo).
func (d *Decoder) EncodeJPEG(img RGB, quality int, cmyk bool) ([]byte, error) {
	if cmyk {
		return nil, fmt.Errorf("imaging: CMYK JPEG encoding needs libjpeg-turbo (built with noturbojpeg)")
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img.Image(), &jpeg.Options{Quality: quality}); err != nil {
		return nil, fmt.Errorf("imaging: jpeg encode: %w", err)
	}
	return buf.Bytes(), nil
}

// pickScale: Go's decoder cannot scale in the DCT domain; frames decode at full size.
func pickScale(w, h, _, _ int) (int, int) { return w, h }
