//go:build !noturbojpeg

package imaging

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/streamdet/streamdet/pkg/testenv"
)

// sharedFrame decodes one of ../shared/images at full size and stretches it (nearest
// neighbour, which keeps edges sharp and the entropy data large) to w×h.
func sharedFrame(t testing.TB, name string, w, h int) RGB {
	data, err := os.ReadFile(testenv.Shared(t, "images", name))
	if err != nil {
		t.Fatal(err)
	}
	var d Decoder
	defer d.Close()
	src, _, err := d.Decode(data, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := RGB{Width: w, Height: h, Stride: 3 * w, Pix: make([]byte, 3*w*h)}
	for y := 0; y < h; y++ {
		sy := y * src.Height / h
		for x := 0; x < w; x++ {
			sx := x * src.Width / w
			copy(out.Pix[y*out.Stride+3*x:y*out.Stride+3*x+3], src.Pix[sy*src.Stride+3*sx:])
		}
	}
	return out
}

func encodeWith(t testing.TB, img RGB, quality int, sub int) []byte {
	var d Decoder
	defer d.Close()
	data, err := d.encodeJPEG(img, quality, sub)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestParallelMatchesLibjpegTurbo: the two-thread decoder gives libjpeg-turbo's pixels, byte for
// byte, across images, sizes (MCU-aligned and not), qualities, subsamplings and scales, and the
// two halves really do meet (the second thread's work is used).
func TestParallelMatchesLibjpegTurbo(t *testing.T) {
	type size struct{ w, h int }
	sizes := []size{{1920, 1080}, {1283, 721}, {640, 480}}
	if testing.Short() {
		sizes = sizes[:1]
	}
	var par, ref Decoder
	par.Threads = 2
	defer par.Close()
	defer ref.Close()
	for _, name := range []string{"dog.jpg", "horses.jpg", "person.jpg"} {
		for _, sz := range sizes {
			img := sharedFrame(t, name, sz.w, sz.h)
			for _, sub := range []struct {
				name   string
				s      int
				scales []int // eighths
			}{{"420", samp420, []int{1, 2}}, {"444", samp444, []int{1, 2, 4}}, {"gray", sampGray, []int{1, 2, 4}}} {
				for _, q := range []int{40, 75, 90, 98} {
					data := encodeWith(t, img, q, sub.s)
					for _, s := range sub.scales {
						f := scalingFactor{s, 8}
						t.Run(fmt.Sprintf("%s/%dx%d/%s/q%d/%d_8", name, sz.w, sz.h, sub.name, q, s), func(t *testing.T) {
							cfg := Config{Format: JPEG, Width: sz.w, Height: sz.h}
							want, err := ref.decodeTurbo(data, cfg, f)
							if err != nil {
								t.Fatal(err)
							}
							want.Pix = bytes.Clone(want.Pix)
							// One after the other the halves always meet, so the join is checked every
							// time; then the same on two threads, as the engine runs it.
							for _, concurrent := range []bool{false, true} {
								got, met, ok := par.decodeParallelAt(data, f, want.Width, want.Height, concurrent)
								if !ok {
									t.Fatalf("parallel decoder refused a %d-byte baseline JPEG", len(data))
								}
								if met < 0 && !concurrent {
									t.Errorf("the halves of a %d-byte scan never met", len(data))
								}
								if got.Width != want.Width || got.Height != want.Height {
									t.Fatalf("size %d×%d, want %d×%d", got.Width, got.Height, want.Width, want.Height)
								}
								if i := firstDiff(got.Pix, want.Pix); i >= 0 {
									px := i / 3
									t.Fatalf("concurrent=%v: pixel (%d, %d) channel %d = %d, libjpeg-turbo %d (halves met at MCU %d)",
										concurrent, px%want.Width, px/want.Width, i%3, got.Pix[i], want.Pix[i], met)
								}
							}
						})
					}
				}
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// BenchmarkDecode1080: a 1920×1080 frame (q90, 4:2:0) at 1/4 scale, libjpeg-turbo alone against
// the two-thread decoder.
func BenchmarkDecode1080(b *testing.B) {
	data := encodeWith(b, sharedFrame(b, "dog.jpg", 1920, 1080), 90, samp420)
	cfg := Config{Format: JPEG, Width: 1920, Height: 1080}
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			d := Decoder{Threads: threads, Limits: DefaultLimits}
			defer d.Close()
			for b.Loop() {
				if _, err := d.decodeJPEG(data, cfg, 416, 416); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
