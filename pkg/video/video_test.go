package video

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	jpeg := func(body string) []byte { return append(append([]byte{0xFF, 0xD8}, body...), 0xFF, 0xD9) }
	stream := bytes.Join([][]byte{jpeg("one"), jpeg("two\xFF\x00stuffed"), []byte("junk"), jpeg("three")}, nil)
	var got []string
	if err := Split(iotestOneByte(stream), 0, func(b []byte) error { got = append(got, string(b[2:len(b)-2])); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "one,two\xFF\x00stuffed,three" {
		t.Fatalf("frames %q", got)
	}
	// A stream that never ends an image is refused at the bound, not buffered forever.
	err := Split(bytes.NewReader(append([]byte{0xFF, 0xD8}, make([]byte, 200<<10)...)), 100<<10, func([]byte) error { return nil })
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("unbounded frame: %v", err)
	}
}

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		src  string
		o    Options
		want string
	}{
		{"a.mp4", Options{FPS: 5, Realtime: true}, "-re -i a.mp4 -vf fps=5"},
		{"rtsp://cam/1", Options{Realtime: true}, "-rtsp_transport tcp -i rtsp://cam/1 -f"},
		{"/dev/video0", Options{}, "-f v4l2 -i /dev/video0"},
		{"http://cam/mjpeg", Options{Realtime: true}, "-nostdin -loglevel error -i http://cam/mjpeg"},
	} {
		if got := strings.Join(Args(tc.src, tc.o), " "); !strings.Contains(got, tc.want) {
			t.Errorf("%s: %s, want it to contain %q", tc.src, got, tc.want)
		}
	}
	if !IsFile("a.mp4") || IsFile("rtsp://x") || IsFile("/dev/video0") || !IsVideo("/dev/video1") {
		t.Error("source kinds")
	}
}

func TestRedact(t *testing.T) {
	for src, want := range map[string]string{
		"rtsp://admin:s3cret@10.0.0.2:554/s1": "rtsp://admin:xxxxx@10.0.0.2:554/s1",
		"rtsp://10.0.0.2/s1":                  "rtsp://10.0.0.2/s1",
		"/dev/video0":                         "/dev/video0",
		"clip.mp4":                            "clip.mp4",
	} {
		if got := Redact(src); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("Redact(%s) = %s, want %s", src, got, want)
		}
	}
	// The error of a failed camera never carries the password.
	err := Frames(context.Background(), "rtsp://admin:s3cret@127.0.0.1:1/none", Options{}, func([]byte) error { return nil })
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "admin:xxxxx@") {
		t.Fatalf("error %v", err)
	}
}

type oneByte struct{ b []byte }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(o.b) == 0 {
		return 0, errEOF
	}
	p[0] = o.b[0]
	o.b = o.b[1:]
	return 1, nil
}

func iotestOneByte(b []byte) *oneByte { return &oneByte{b} }

var errEOF = io.EOF
