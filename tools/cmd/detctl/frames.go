package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/streamdet/streamdet/pkg/video"
)

// frame is one encoded image with where it came from.
type frame struct {
	name string
	data []byte
}

func isVideo(path string) bool { return video.IsVideo(path) }

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
	n := 0
	return video.Frames(ctx, src, video.Options{FPS: fps}, func(img []byte) error {
		n++
		return emit(frame{name: fmt.Sprintf("%s#%d", filepath.Base(src), n), data: img})
	})
}
