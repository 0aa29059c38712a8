package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/streamdet/streamdet/pkg/testenv"
	"github.com/streamdet/streamdet/services/detect/imaging"
)

// jpegDeclaring rewrites the SOF0 dimensions of a real JPEG.
func jpegDeclaring(t testing.TB, src []byte, w, h uint16) []byte {
	b := bytes.Clone(src)
	for i := 2; i+9 < len(b); i++ {
		if b[i] == 0xFF && (b[i+1] == 0xC0 || b[i+1] == 0xC2) {
			binary.BigEndian.PutUint16(b[i+5:], h)
			binary.BigEndian.PutUint16(b[i+7:], w)
			return b
		}
	}
	t.Fatal("no SOF marker")
	return nil
}

func TestBadImages(t *testing.T) {
	e := yoloxEngine(t)
	dog := readImage(t, "dog.jpg")
	png := solidPNG(t, 64, 48, [3]uint8{1, 2, 3})
	corruptPNG := bytes.Clone(png)
	corruptPNG[len(corruptPNG)-20] ^= 0xFF // inside IDAT/IEND: checksum mismatch
	corruptJPEG := bytes.Clone(dog)
	for i := len(dog) / 2; i < len(dog)/2+2000; i++ {
		corruptJPEG[i] = 0xFF // a run of marker bytes in the middle of the scan
	}
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"zero bytes", nil, imaging.ErrEmpty},
		{"garbage", []byte("this is not an image at all, just text"), imaging.ErrUnsupportedFormat},
		{"gif", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), imaging.ErrUnsupportedFormat},
		{"truncated jpeg", dog[:len(dog)/3], imaging.ErrCorrupt},
		{"jpeg header only", dog[:200], imaging.ErrCorrupt},
		{"corrupt jpeg", corruptJPEG, imaging.ErrCorrupt},
		{"truncated png", png[:len(png)/2], imaging.ErrCorrupt},
		{"corrupt png", corruptPNG, imaging.ErrCorrupt},
		{"png declaring 100000×100000", testenv.PNGDeclaring(100000, 100000), imaging.ErrTooLarge},
		{"jpeg declaring 60000×60000", jpegDeclaring(t, dog, 60000, 60000), imaging.ErrTooLarge},
		{"png declaring 0×10", testenv.PNGDeclaring(0, 10), imaging.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Detect(context.Background(), tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
	// The engine still works after all of that.
	if res, err := e.Detect(context.Background(), dog); err != nil || len(res.Detections) == 0 {
		t.Fatalf("good frame after bad ones: %v", err)
	}
}

func TestPixelLimit(t *testing.T) {
	lim := imaging.Limits{MaxPixels: 768*576 - 1}
	if _, err := imaging.DecodeConfig(readImage(t, "dog.jpg"), lim); !errors.Is(err, imaging.ErrTooLarge) {
		t.Fatalf("768×576 under a limit of one pixel less: %v", err)
	}
	if _, err := imaging.DecodeConfig(readImage(t, "dog.jpg"), imaging.Limits{MaxBytes: 1000}); !errors.Is(err, imaging.ErrTooLarge) {
		t.Fatalf("163 kB under a 1000-byte limit: %v", err)
	}
}

func TestBadModels(t *testing.T) {
	lib := testenv.ONNXRuntimeLib(t)
	yolox := sharedModel(t, "yolox_nano.onnx")
	for _, tc := range []struct {
		name  string
		model []byte
		cfg   Config
		want  error
	}{
		{"empty", nil, Config{Format: FormatYOLOX}, ErrModel},
		{"garbage", []byte("definitely not protobuf \x00\x01\x02"), Config{Format: FormatYOLOX}, ErrModel},
		{"truncated", yolox[:len(yolox)/2], Config{Format: FormatYOLOX}, ErrModel},
		{"yolox declared yolov8", yolox, Config{Format: FormatYOLOv8}, ErrModel},
		{"yolox declared end2end", yolox, Config{Format: FormatEnd2End}, ErrModel},
		{"yolox with 3 names", yolox, Config{Format: FormatYOLOX, Names: []string{"a", "b", "c"}}, ErrModel},
		{"batch model declared yolox", batchModel(), Config{Format: FormatYOLOX}, ErrModel},
		{"unknown format", yolox, Config{Format: "yolov99"}, ErrUnknownFormat},
		{"no metadata, auto", yolox, Config{}, ErrUnknownFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.LibraryPath = lib
			e, err := New(tc.model, tc.cfg)
			if err == nil {
				e.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Conf: 1.5}, "conf 1.5: must be in (0, 1)"},
		{Config{IoU: -1}, "iou -1: must be in (0, 1]"},
		{Config{Sessions: 100}, "sessions 100: must be in [1, 64]"},
		{Config{InputWidth: 100, InputHeight: 100}, "input size 100×100: must be positive multiples of 32"},
	} {
		if err := tc.cfg.Validate(); err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
