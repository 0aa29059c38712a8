// Package imageinfo identifies encoded frames and checks them against size and pixel limits
// from their headers alone, in pure Go: ingest uses it to refuse bad frames without decoding
// them, and the detect service's decoder runs the same checks before it decodes a pixel.
package imageinfo

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
)

// Sentinel errors. Every error the package returns wraps exactly one of them, so callers can map
// it to a dead-letter reason with errors.Is.
var (
	// ErrEmpty is returned for a zero-byte input.
	ErrEmpty = errors.New("image: empty input")
	// ErrUnsupportedFormat is returned when the bytes are neither JPEG nor PNG.
	ErrUnsupportedFormat = errors.New("image: unsupported format (want JPEG or PNG)")
	// ErrTooLarge is returned when the input exceeds Limits.MaxBytes or its header declares more
	// pixels than Limits.MaxPixels (or a side over MaxSide).
	ErrTooLarge = errors.New("image: over limits")
	// ErrCorrupt is returned when the header or the data cannot be decoded.
	ErrCorrupt = errors.New("image: corrupt")
)

// Format is an encoded image format.
type Format string

// The formats streamdet accepts.
const (
	JPEG Format = "jpeg"
	PNG  Format = "png"
)

// ContentType is the MIME type of the format.
func (f Format) ContentType() string { return "image/" + string(f) }

// Ext is the file extension of the format, with the dot.
func (f Format) Ext() string {
	if f == JPEG {
		return ".jpg"
	}
	return "." + string(f)
}

// Limits bound what DecodeConfig accepts. A zero field takes its value from DefaultLimits.
type Limits struct {
	// MaxBytes is the largest encoded input accepted. Default 32 MiB.
	MaxBytes int
	// MaxPixels is the largest width×height accepted. Default 50 megapixels.
	MaxPixels int
	// MaxSide is the largest width or height accepted. Default 65,500 (the JPEG maximum).
	MaxSide int
}

// DefaultLimits are the limits applied where a field of Limits is zero.
var DefaultLimits = Limits{MaxBytes: 32 << 20, MaxPixels: 50_000_000, MaxSide: 65500}

// Validate checks limits configured from STREAMDET_MAX_FRAME_BYTES and STREAMDET_MAX_FRAME_PIXELS
// (the same check in every service that reads them).
func (l Limits) Validate() error {
	var errs []error
	if l.MaxBytes < 1 || l.MaxBytes > 256<<20 {
		errs = append(errs, fmt.Errorf("STREAMDET_MAX_FRAME_BYTES %d: must be in [1, 256 MiB]", l.MaxBytes))
	}
	if l.MaxPixels < 1 || l.MaxPixels > 1<<31 {
		errs = append(errs, fmt.Errorf("STREAMDET_MAX_FRAME_PIXELS %d: must be in [1, 2^31]", l.MaxPixels))
	}
	return errors.Join(errs...)
}

// WithDefaults fills zero fields from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	if l.MaxPixels <= 0 {
		l.MaxPixels = DefaultLimits.MaxPixels
	}
	if l.MaxSide <= 0 {
		l.MaxSide = DefaultLimits.MaxSide
	}
	return l
}

// Config is what an image's header says.
type Config struct {
	Format Format
	Width  int
	Height int
}

// Sniff names the format from the first bytes, or returns ErrEmpty/ErrUnsupportedFormat.
func Sniff(data []byte) (Format, error) {
	switch {
	case len(data) == 0:
		return "", ErrEmpty
	case len(data) >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF:
		return JPEG, nil
	case len(data) >= 8 && bytes.Equal(data[:8], []byte("\x89PNG\r\n\x1a\n")):
		return PNG, nil
	}
	return "", ErrUnsupportedFormat
}

// DecodeConfig reads only the header and checks it against the limits.
func DecodeConfig(data []byte, lim Limits) (Config, error) {
	lim = lim.WithDefaults()
	f, err := Sniff(data)
	if err != nil {
		return Config{}, err
	}
	if len(data) > lim.MaxBytes {
		return Config{}, fmt.Errorf("%w: %d bytes exceeds the limit of %d", ErrTooLarge, len(data), lim.MaxBytes)
	}
	var ic image.Config
	switch f {
	case JPEG:
		ic, err = jpeg.DecodeConfig(bytes.NewReader(data))
	case PNG:
		ic, err = png.DecodeConfig(bytes.NewReader(data))
	}
	if err != nil {
		return Config{}, fmt.Errorf("%w: %s header: %v", ErrCorrupt, f, err)
	}
	c := Config{Format: f, Width: ic.Width, Height: ic.Height}
	if c.Width <= 0 || c.Height <= 0 {
		return Config{}, fmt.Errorf("%w: header declares %d×%d pixels", ErrCorrupt, c.Width, c.Height)
	}
	if c.Width > lim.MaxSide || c.Height > lim.MaxSide {
		return Config{}, fmt.Errorf("%w: %d×%d has a side over the limit of %d", ErrTooLarge, c.Width, c.Height, lim.MaxSide)
	}
	if px := int64(c.Width) * int64(c.Height); px > int64(lim.MaxPixels) {
		return Config{}, fmt.Errorf("%w: %d×%d = %d pixels exceeds the limit of %d", ErrTooLarge, c.Width, c.Height, px, lim.MaxPixels)
	}
	return c, nil
}
