// Package annotate draws detections on a frame — a box and a "label score" tag per object, one
// colour per class — and encodes the result as JPEG, for the sink's annotated frames, its live
// view and the demo's output folder. Pure Go, so the sink stays free of cgo.
package annotate

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	_ "image/png" // frames may be PNG
	"sort"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/streamdet/streamdet/pkg/contract"
)

var palette = []color.RGBA{
	{255, 56, 56, 255}, {255, 157, 151, 255}, {255, 112, 31, 255}, {255, 178, 29, 255}, {207, 210, 49, 255},
	{72, 249, 10, 255}, {146, 204, 23, 255}, {61, 219, 134, 255}, {26, 147, 52, 255}, {0, 212, 187, 255},
	{44, 153, 168, 255}, {0, 194, 255, 255}, {52, 69, 147, 255}, {100, 115, 255, 255}, {0, 24, 236, 255},
	{132, 56, 255, 255}, {82, 0, 133, 255}, {203, 56, 255, 255}, {255, 149, 200, 255}, {255, 55, 199, 255},
}

// Color is the colour of a class.
func Color(class int) color.RGBA { return palette[((class%len(palette))+len(palette))%len(palette)] }

// Draw returns a copy of img with the detections drawn on it.
func Draw(img image.Image, dets []contract.Detection) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
	thick := max(2, min(b.Dx(), b.Dy())/300)
	face := basicfont.Face7x13
	// Lowest scores first, so that the strongest boxes and labels end up on top.
	order := make([]contract.Detection, len(dets))
	copy(order, dets)
	sort.SliceStable(order, func(i, j int) bool { return order[i].Score < order[j].Score })
	for _, d := range order {
		c := Color(d.ClassID)
		r := image.Rect(int(d.Box[0]), int(d.Box[1]), int(d.Box[2]), int(d.Box[3])).Intersect(out.Bounds())
		if r.Empty() {
			continue
		}
		for i := 0; i < thick; i++ {
			rect(out, r.Inset(i), c)
		}
		label := fmt.Sprintf("%s %.2f", d.Label, d.Score)
		if d.Label == "" {
			label = fmt.Sprintf("#%d %.2f", d.ClassID, d.Score)
		}
		w := font.MeasureString(face, label).Ceil() + 6
		top := r.Min.Y - 16
		if top < 0 {
			top = r.Min.Y
		}
		tag := image.Rect(r.Min.X, top, r.Min.X+w, top+16).Intersect(out.Bounds())
		draw.Draw(out, tag, &image.Uniform{c}, image.Point{}, draw.Src)
		dr := font.Drawer{Dst: out, Src: image.White, Face: face, Dot: fixed.P(tag.Min.X+3, tag.Min.Y+12)}
		dr.DrawString(label)
	}
	return out
}

func rect(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	if r.Empty() {
		return
	}
	for x := r.Min.X; x < r.Max.X; x++ {
		img.SetRGBA(x, r.Min.Y, c)
		img.SetRGBA(x, r.Max.Y-1, c)
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		img.SetRGBA(r.Min.X, y, c)
		img.SetRGBA(r.Max.X-1, y, c)
	}
}

// JPEG decodes an encoded frame (JPEG or PNG), draws the detections and encodes it as JPEG.
func JPEG(frame []byte, dets []contract.Detection, quality int) ([]byte, error) {
	img, _, err := image.Decode(bytes.NewReader(frame))
	if err != nil {
		return nil, fmt.Errorf("annotate: decode frame: %w", err)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, Draw(img, dets), &jpeg.Options{Quality: quality}); err != nil {
		return nil, fmt.Errorf("annotate: encode: %w", err)
	}
	return buf.Bytes(), nil
}
