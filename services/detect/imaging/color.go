package imaging

import "image/color"

// color8 converts a colour to non-premultiplied 8-bit RGB, ignoring alpha as OpenCV does.
func color8(c color.Color) [3]uint8 {
	switch v := c.(type) {
	case color.NRGBA:
		return [3]uint8{v.R, v.G, v.B}
	case color.YCbCr:
		r, g, b := color.YCbCrToRGB(v.Y, v.Cb, v.Cr)
		return [3]uint8{r, g, b}
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return [3]uint8{n.R, n.G, n.B}
}
