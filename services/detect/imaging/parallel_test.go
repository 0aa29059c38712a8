//go:build pjpeg && !noturbojpeg

package imaging

import (
	"bytes"
	"errors"
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
							// Checked or not, frames encoded from 8-bit samples decode exactly alike.
							for _, mode := range []struct{ concurrent, checked bool }{{false, true}, {true, true}, {false, false}, {true, false}} {
								got, met, ok := par.decodeParallelAt(data, f, want.Width, want.Height, mode.concurrent, mode.checked)
								if !ok {
									t.Fatalf("%+v: parallel decoder refused a %d-byte baseline JPEG", mode, len(data))
								}
								if met < 0 && !mode.concurrent {
									t.Errorf("the halves of a %d-byte scan never met", len(data))
								}
								if got.Width != want.Width || got.Height != want.Height {
									t.Fatalf("size %d×%d, want %d×%d", got.Width, got.Height, want.Width, want.Height)
								}
								if i := firstDiff(got.Pix, want.Pix); i >= 0 {
									px := i / 3
									t.Fatalf("%+v: pixel (%d, %d) channel %d = %d, libjpeg-turbo %d (halves met at MCU %d)",
										mode, px%want.Width, px/want.Width, i%3, got.Pix[i], want.Pix[i], met)
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

// FuzzParallelDecode: whatever the bytes, the two-thread decoder never decodes a frame
// libjpeg-turbo calls bad, nothing panics or overruns, and in checked mode what it accepts is
// exactly libjpeg-turbo's output; unchecked (as the engine runs it), a frame checked mode also
// accepts decodes to the same bytes. Both the deterministic (one thread after the other) and the
// concurrent runs are checked.
func FuzzParallelDecode(f *testing.F) {
	small := sharedFrame(f, "dog.jpg", 96, 64)
	for _, sub := range []int{samp420, samp444, sampGray, samp422} {
		f.Add(encodeWith(f, small, 75, sub))
	}
	odd := sharedFrame(f, "horses.jpg", 45, 29)
	f.Add(encodeWith(f, odd, 95, samp420))
	f.Add(encodeWith(f, odd, 20, samp444))

	lim := Limits{MaxPixels: 1 << 20, MaxBytes: 1 << 20}
	var par, ref Decoder
	par.Threads = 2
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := DecodeConfig(data, lim)
		if err != nil || cfg.Format != JPEG {
			return
		}
		for _, s := range []int{1, 2, 4} {
			sf := scalingFactor{s, 8}
			w, h := scaled(cfg.Width, sf), scaled(cfg.Height, sf)
			want, wantErr := ref.decodeTurbo(data, cfg, sf)
			for _, concurrent := range []bool{false, true} {
				checked, _, okChecked := par.decodeParallelAt(data, sf, w, h, concurrent, true)
				checked.Pix = bytes.Clone(checked.Pix)
				got, _, ok := par.decodeParallelAt(data, sf, w, h, concurrent, false)
				if (ok || okChecked) && wantErr != nil {
					t.Fatalf("scale %d/8: decoded a frame libjpeg-turbo refuses (%v)", s, wantErr)
				}
				if okChecked && !ok {
					t.Fatalf("scale %d/8 concurrent=%v: unchecked refused what checked accepted", s, concurrent)
				}
				if !okChecked {
					continue
				}
				if i := firstDiff(checked.Pix, want.Pix); i >= 0 {
					t.Fatalf("scale %d/8 concurrent=%v: byte %d = %d, libjpeg-turbo %d", s, concurrent, i, checked.Pix[i], want.Pix[i])
				}
				if i := firstDiff(got.Pix, want.Pix); i >= 0 {
					t.Fatalf("scale %d/8 concurrent=%v unchecked: byte %d = %d, libjpeg-turbo %d", s, concurrent, i, got.Pix[i], want.Pix[i])
				}
			}
		}
	})
}

// TestGoodFrameAfterBadHeader: a frame whose header libjpeg-turbo refuses must not spoil the
// next one. libjpeg-turbo 2.1 leaves the decompressor mid-header after such an error, and the
// next good frame then failed ("Bogus DQT index", "Bogus Huffman table definition").
func TestGoodFrameAfterBadHeader(t *testing.T) {
	good := encodeWith(t, sharedFrame(t, "dog.jpg", 96, 64), 75, samp420)
	sof := bytes.Index(good, []byte{0xFF, 0xC0})
	dht := bytes.Index(good[sof:], []byte{0xFF, 0xC4})
	if sof < 0 || dht < 0 {
		t.Fatal("no SOF0 followed by a DHT in the test frame")
	}
	bad := bytes.Clone(good)
	bad[sof+dht+1] = 0x02 // an unknown marker after the frame header: only libjpeg-turbo sees it
	var d Decoder
	defer d.Close()
	if _, _, err := d.Decode(bad, 0, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad header: %v, want ErrCorrupt", err)
	}
	for i := 0; i < 2; i++ {
		if _, _, err := d.Decode(good, 0, 0); err != nil {
			t.Fatalf("good frame %d after a bad one: %v", i, err)
		}
	}
}
