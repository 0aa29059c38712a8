package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// frame is one encoded image with where it came from.
type frame struct {
	name string
	data []byte
}

var videoExt = map[string]bool{".mp4": true, ".mkv": true, ".avi": true, ".mov": true, ".webm": true, ".mjpeg": true, ".mpg": true, ".ts": true}

func isVideo(path string) bool {
	return videoExt[strings.ToLower(filepath.Ext(path))] || strings.Contains(path, "://")
}

// loadFrames reads images from files and folders (JPEG and PNG, sorted by name).
func loadFrames(paths []string) ([]frame, error) {
	var out []frame
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		files := []string{p}
		if st.IsDir() {
			files = nil
			entries, err := os.ReadDir(p)
			if err != nil {
				return nil, err
			}
			for _, e := range entries {
				switch strings.ToLower(filepath.Ext(e.Name())) {
				case ".jpg", ".jpeg", ".png":
					files = append(files, filepath.Join(p, e.Name()))
				}
			}
			sort.Strings(files)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			out = append(out, frame{name: f, data: b})
		}
	}
	return out, nil
}

// videoFrames samples a video file or stream URL (RTSP, HTTP) at fps through ffmpeg and calls
// emit with each frame as JPEG, until the video ends, ctx ends or emit fails.
func videoFrames(ctx context.Context, src string, fps float64, emit func(frame) error) error {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return fmt.Errorf("sampling video needs ffmpeg (Debian's ffmpeg package; deploy/local/stack.sh install): %w", err)
	}
	cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-loglevel", "error", "-i", src,
		"-vf", fmt.Sprintf("fps=%g", fps), "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "3", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	// ffmpeg writes JPEGs back to back; entropy-coded data stuffs 0xFF bytes, so an FFD9 pair
	// is always an end-of-image marker.
	var buf []byte
	chunk := make([]byte, 64<<10)
	n := 0
	var emitErr error
	for emitErr == nil {
		k, rerr := out.Read(chunk)
		buf = append(buf, chunk[:k]...)
		for {
			end := bytes.Index(buf, []byte{0xFF, 0xD9})
			if end < 0 {
				break
			}
			start := bytes.Index(buf, []byte{0xFF, 0xD8})
			img := append([]byte(nil), buf[max(start, 0):end+2]...)
			buf = buf[end+2:]
			n++
			if emitErr = emit(frame{name: fmt.Sprintf("%s#%d", filepath.Base(src), n), data: img}); emitErr != nil {
				break
			}
		}
		if rerr != nil {
			break
		}
	}
	if emitErr != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return emitErr
	}
	if err := cmd.Wait(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("ffmpeg: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
