// Package video reads frames from cameras and video files through ffmpeg: a file, an RTSP or
// HTTP stream, or a V4L2 device (/dev/videoN) is decoded by an ffmpeg child process and each
// frame handed over as a JPEG. It is how detctl samples videos and how the edge runtime reads
// its cameras.
//
// ffmpeg's output is treated as untrusted bytes: a frame larger than Options.MaxFrameBytes ends
// the read with ErrFrameTooLarge instead of growing a buffer without bound.
package video

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrFrameTooLarge: ffmpeg produced a frame over Options.MaxFrameBytes.
var ErrFrameTooLarge = errors.New("video: frame over the size limit")

// Options say how a source is read.
type Options struct {
	// FPS samples the source at this rate (ffmpeg's fps filter); 0 keeps every frame.
	FPS float64
	// Realtime reads a file at its native frame rate (ffmpeg -re), as a camera would deliver it;
	// network streams and devices are always real time.
	Realtime bool
	// Quality is the JPEG quality scale of the frames handed over (ffmpeg -q:v, 2 best to 31
	// worst); 0 means 3.
	Quality int
	// MaxFrameBytes bounds one encoded frame; 0 means 16 MiB.
	MaxFrameBytes int
}

var fileExt = map[string]bool{".mp4": true, ".mkv": true, ".avi": true, ".mov": true, ".webm": true, ".mjpeg": true, ".mpg": true, ".ts": true}

// IsVideo reports whether src names a video source rather than an image: a video file's
// extension, a URL, or a V4L2 device.
func IsVideo(src string) bool {
	return fileExt[strings.ToLower(filepath.Ext(src))] || strings.Contains(src, "://") || IsDevice(src)
}

// IsDevice reports whether src is a V4L2 capture device.
func IsDevice(src string) bool { return strings.HasPrefix(src, "/dev/video") }

// IsFile reports whether src is a file (it ends; a stream or device is reconnected instead).
func IsFile(src string) bool {
	return !strings.Contains(src, "://") && !IsDevice(src) || strings.HasPrefix(src, "file://")
}

// Redact returns src with the password of a URL's user information replaced by "xxxxx", for
// logs and status: camera URLs often carry credentials (rtsp://user:password@host/…).
func Redact(src string) string {
	u, err := url.Parse(src)
	if err != nil || u.User == nil {
		return src
	}
	if _, has := u.User.Password(); !has {
		return src
	}
	return u.Redacted()
}

// Args are ffmpeg's arguments for reading src with o, frames written as JPEGs to stdout.
func Args(src string, o Options) []string {
	q := o.Quality
	if q <= 0 {
		q = 3
	}
	args := []string{"-nostdin", "-loglevel", "error"}
	switch {
	case IsDevice(src):
		args = append(args, "-f", "v4l2")
	case strings.HasPrefix(src, "rtsp://") || strings.HasPrefix(src, "rtsps://"):
		args = append(args, "-rtsp_transport", "tcp")
	case o.Realtime && IsFile(src):
		args = append(args, "-re")
	}
	args = append(args, "-i", src)
	if o.FPS > 0 {
		args = append(args, "-vf", fmt.Sprintf("fps=%g", o.FPS))
	}
	return append(args, "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", fmt.Sprint(q), "-")
}

// Frames reads src through ffmpeg and calls emit with each frame (a JPEG; emit may keep it)
// until the source ends (nil), ctx ends (ctx's error), emit fails (its error) or ffmpeg fails.
func Frames(ctx context.Context, src string, o Options, emit func([]byte) error) error {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return fmt.Errorf("reading video needs ffmpeg (Debian's ffmpeg package; deploy/local/stack.sh install): %w", err)
	}
	cmd := exec.CommandContext(ctx, ffmpeg, Args(src, o)...)
	var stderr bytes.Buffer
	cmd.Stderr = &limited{w: &stderr, n: 4096}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	emitErr := Split(out, o.MaxFrameBytes, emit)
	if emitErr != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return emitErr
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// ffmpeg names its input in its errors: never with the camera's password.
		msg := strings.ReplaceAll(strings.TrimSpace(stderr.String()), src, Redact(src))
		return fmt.Errorf("ffmpeg %s: %v: %s", Redact(src), err, msg)
	}
	return ctx.Err()
}

// Split cuts a stream of back-to-back JPEGs into frames and calls emit with each, until r ends
// (nil) or emit fails. A frame over max bytes (0: 16 MiB) is ErrFrameTooLarge. Entropy-coded
// data stuffs every 0xFF byte, so an FF D9 pair is always an end-of-image marker.
func Split(r io.Reader, max int, emit func([]byte) error) error {
	if max <= 0 {
		max = 16 << 20
	}
	var buf []byte
	chunk := make([]byte, 64<<10)
	for {
		k, rerr := r.Read(chunk)
		buf = append(buf, chunk[:k]...)
		for {
			end := bytes.Index(buf, []byte{0xFF, 0xD9})
			if end < 0 {
				break
			}
			start := bytes.Index(buf[:end], []byte{0xFF, 0xD8})
			if start >= 0 {
				if err := emit(append([]byte(nil), buf[start:end+2]...)); err != nil {
					return err
				}
			}
			buf = buf[end+2:]
		}
		if len(buf) > max {
			return fmt.Errorf("%w: more than %d bytes without an end of image", ErrFrameTooLarge, max)
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// limited keeps the first n bytes written to it.
type limited struct {
	w io.Writer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
