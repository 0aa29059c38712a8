package annotate

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"

	"github.com/streamdet/streamdet/pkg/contract"
)

func TestDrawsBoxAndLabel(t *testing.T) {
	src := image.NewRGBA(image.Rect(0, 0, 200, 100))
	var buf bytes.Buffer
	png.Encode(&buf, src)
	out, err := JPEG(buf.Bytes(), []contract.Detection{{ClassID: 16, Label: "dog", Score: 0.9, Box: [4]float32{50, 40, 150, 90}}}, 95)
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := image.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := Color(16)
	near := func(c color.Color) bool {
		r, g, b, _ := c.RGBA()
		d := func(x uint32, y uint8) int { return int(x>>8) - int(y) }
		return abs(d(r, want.R)) < 40 && abs(d(g, want.G)) < 40 && abs(d(b, want.B)) < 40
	}
	if !near(img.At(100, 89)) || !near(img.At(50, 65)) {
		t.Error("box edges not drawn in the class colour")
	}
	if near(img.At(100, 65)) {
		t.Error("box interior painted")
	}
	if !near(img.At(52, 27)) { // the label tag above the box
		t.Error("no label tag above the box")
	}
	if _, err := JPEG([]byte("nope"), nil, 90); err == nil {
		t.Error("garbage accepted")
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
