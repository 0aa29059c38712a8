package edge

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestReader: a file camera delivers frames and ends; when the detector is slower than the
// camera only the newest frame waits (the others are counted as skipped); a source that fails
// is restarted with backoff until the context ends.
func TestReader(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg not installed (deploy/local/stack.sh install puts it there)")
	}
	vid := filepath.Join(t.TempDir(), "v.mp4")
	if out, err := exec.Command("ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=20",
		"-t", "2", "-pix_fmt", "yuv420p", vid).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v %s", err, out)
	}
	log := slog.New(slog.DiscardHandler)
	r := NewReader(Camera{ID: "c", Source: vid}, 20, false, 1<<20, log)
	go r.Run(context.Background())
	taken := 0
	for f := range r.Frames() {
		if len(f.JPEG) < 100 || f.JPEG[0] != 0xFF || f.JPEG[1] != 0xD8 {
			t.Fatal("not a JPEG")
		}
		taken++
		time.Sleep(200 * time.Millisecond) // a slow model: 5 fps against 20
	}
	r.markEnded() // what the detector does once the frames are drained
	st := r.Stats()
	if st.State != "ended" || st.Frames < 30 || st.Skipped == 0 || int64(taken)+st.Skipped != st.Frames {
		t.Fatalf("took %d, stats %+v", taken, st)
	}

	bad := NewReader(Camera{ID: "b", Source: "rtsp://127.0.0.1:1/none"}, 5, false, 1<<20, log)
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	start := time.Now()
	bad.Run(ctx)
	if st := bad.Stats(); st.Restarts < 2 || st.LastErr == "" || time.Since(start) > 5*time.Second {
		t.Fatalf("failing source: %+v after %s", st, time.Since(start))
	}
}
