package imaging

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"testing"
)

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want Format
		err  error
	}{
		{nil, "", ErrEmpty},
		{[]byte{0xFF, 0xD8, 0xFF, 0xE0}, JPEG, nil},
		{[]byte("\x89PNG\r\n\x1a\nrest"), PNG, nil},
		{[]byte("GIF89a"), "", ErrUnsupportedFormat},
		{[]byte{0xFF, 0xD8}, "", ErrUnsupportedFormat},
	} {
		got, err := Sniff(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("Sniff(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestPickScale(t *testing.T) {
	if !Native {
		t.Skip("DCT scaling needs libjpeg-turbo")
	}
	for _, tc := range []struct{ w, h, boxW, boxH, wantW, wantH int }{
		{1920, 1080, 640, 640, 720, 405}, // 3/8 still covers 640×360
		{1920, 1080, 416, 416, 480, 270}, // 1/4 covers 416×234
		{768, 576, 640, 640, 768, 576},   // not much larger: full size
		{768, 576, 416, 416, 768, 576},   // r = 0.54: full size
		{4000, 3000, 640, 640, 1000, 750},
		{1920, 1080, 0, 0, 1920, 1080}, // no box: full size
	} {
		if w, h := pickScale(tc.w, tc.h, tc.boxW, tc.boxH); w != tc.wantW || h != tc.wantH {
			t.Errorf("pickScale(%d×%d into %d×%d) = %d×%d, want %d×%d", tc.w, tc.h, tc.boxW, tc.boxH, w, h, tc.wantW, tc.wantH)
		}
	}
}

func encodePNG(t *testing.T, m image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPNGColourModels checks OpenCV imread(IMREAD_COLOR) semantics for each PNG colour model.
func TestPNGColourModels(t *testing.T) {
	gray := image.NewGray(image.Rect(0, 0, 2, 1))
	gray.Pix = []byte{10, 200}
	gray16 := image.NewGray16(image.Rect(0, 0, 1, 1))
	gray16.SetGray16(0, 0, color.Gray16{Y: 0xABCD})
	nrgba := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	nrgba.SetNRGBA(0, 0, color.NRGBA{R: 200, G: 100, B: 50, A: 10}) // alpha ignored, not composited
	nrgba64 := image.NewNRGBA64(image.Rect(0, 0, 1, 1))
	nrgba64.SetNRGBA64(0, 0, color.NRGBA64{R: 0x1234, G: 0x5678, B: 0x9ABC, A: 0xFFFF})
	pal := image.NewPaletted(image.Rect(0, 0, 1, 1), color.Palette{color.RGBA{1, 2, 3, 255}, color.RGBA{7, 8, 9, 255}})
	pal.SetColorIndex(0, 0, 1)
	for _, tc := range []struct {
		name string
		m    image.Image
		want []byte
	}{
		{"gray", gray, []byte{10, 10, 10, 200, 200, 200}},
		{"gray16", gray16, []byte{0xAB, 0xAB, 0xAB}},
		{"rgba with alpha", nrgba, []byte{200, 100, 50}},
		{"rgba 16-bit", nrgba64, []byte{0x12, 0x56, 0x9A}},
		{"paletted", pal, []byte{7, 8, 9}},
	} {
		var d Decoder
		img, cfg, err := d.Decode(encodePNG(t, tc.m), 0, 0)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if cfg.Format != PNG || !bytes.Equal(img.Pix[:len(tc.want)], tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.name, cfg.Format, img.Pix, tc.want)
		}
	}
}

// TestJPEGRoundTrip encodes RGB and CMYK JPEGs and decodes them back close to the original.
func TestJPEGRoundTrip(t *testing.T) {
	src := RGB{Width: 64, Height: 48, Stride: 192, Pix: make([]byte, 64*48*3)}
	for i := range src.Pix {
		src.Pix[i] = uint8(40 + (i/3)%64*2 + i%3*30)
	}
	for _, cmyk := range []bool{false, true} {
		if cmyk && !Native {
			continue
		}
		var d Decoder
		data, err := d.EncodeJPEG(src, 98, cmyk)
		if err != nil {
			t.Fatal(err)
		}
		img, _, err := d.Decode(data, 0, 0)
		if err != nil {
			t.Fatalf("cmyk=%v: %v", cmyk, err)
		}
		var worst int
		for i := range src.Pix {
			worst = max(worst, abs(int(img.Pix[i])-int(src.Pix[i])))
		}
		if worst > 24 {
			t.Errorf("cmyk=%v: decoded differs by up to %d levels", cmyk, worst)
		}
		d.Close()
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestBrightness(t *testing.T) {
	for _, c := range []struct {
		r, g, b byte
		want    float64
	}{{0, 0, 0, 0}, {255, 255, 255, 255}, {128, 128, 128, 128}, {255, 0, 0, 0.299 * 255}, {0, 0, 255, 0.114 * 255}} {
		m := RGB{Width: 300, Height: 7, Stride: 900, Pix: make([]byte, 900*7)}
		for i := 0; i < len(m.Pix); i += 3 {
			m.Pix[i], m.Pix[i+1], m.Pix[i+2] = c.r, c.g, c.b
		}
		if got := m.Brightness(); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("(%d,%d,%d): %v, want %v", c.r, c.g, c.b, got, c.want)
		}
	}
	if (RGB{}).Brightness() != 0 {
		t.Error("empty image")
	}
}
