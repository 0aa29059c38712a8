package edge

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/streamdet/streamdet/pkg/video"
)

// Frame is one captured frame.
type Frame struct {
	JPEG []byte
	At   time.Time // capture (arrival) time
}

// CameraStats are one camera's counters.
type CameraStats struct {
	State    string `json:"state"` // connecting, streaming, backoff, ended
	Frames   int64  `json:"frames"`
	Skipped  int64  `json:"skipped"` // frames replaced by a newer one before the model took them
	Restarts int64  `json:"restarts"`
	Bytes    int64  `json:"bytes"` // JPEG bytes read: what sending every frame upstream would cost
	LastErr  string `json:"last_error,omitempty"`
}

// Reader supervises one camera: it runs ffmpeg on the source, restarts it with backoff when it
// fails or a stream ends (a file ends the camera unless looping), and keeps only the newest
// frame for the detector, so latency never grows when the model is slower than the camera.
//
// Lifecycle: NewReader; Run until ctx ends (or a file ends); Latest and Stats from any goroutine.
type Reader struct {
	cam  Camera
	opts video.Options
	loop bool
	log  *slog.Logger
	// frames is a mailbox of one: a new frame replaces one not taken yet.
	frames chan Frame

	mu    sync.Mutex
	stats CameraStats
}

// NewReader creates the reader of cam at fps.
func NewReader(cam Camera, fps float64, loop bool, maxFrameBytes int, log *slog.Logger) *Reader {
	return &Reader{cam: cam, loop: loop, log: log.With("camera", cam.ID),
		opts:   video.Options{FPS: fps, Realtime: true, MaxFrameBytes: maxFrameBytes},
		frames: make(chan Frame, 1), stats: CameraStats{State: "connecting"}}
}

// Frames delivers the newest frame; it is closed when the reader ends.
func (r *Reader) Frames() <-chan Frame { return r.frames }

// Stats returns the camera's counters.
func (r *Reader) Stats() CameraStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

func (r *Reader) set(f func(*CameraStats)) {
	r.mu.Lock()
	f(&r.stats)
	r.mu.Unlock()
}

// Run reads the camera until ctx ends, or until its file ends when not looping.
func (r *Reader) Run(ctx context.Context) {
	defer close(r.frames)
	delay := newRetryDelay(500*time.Millisecond, 30*time.Second)
	for ctx.Err() == nil {
		r.set(func(s *CameraStats) { s.State = "connecting" })
		got := false
		err := video.Frames(ctx, r.cam.Source, r.opts, func(jpeg []byte) error {
			if !got {
				got = true
				r.set(func(s *CameraStats) { s.State = "streaming" })
			}
			r.offer(Frame{JPEG: jpeg, At: time.Now()})
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		if err == nil && video.IsFile(r.cam.Source) && !r.loop {
			r.log.Info("video file ended")
			return // "ended" once the detector has taken the last frame (markEnded)
		}
		if got {
			delay.reset() // it worked for a while: reconnect promptly
		}
		wait := delay.next()
		r.set(func(s *CameraStats) {
			s.State, s.Restarts = "backoff", s.Restarts+1
			if err != nil {
				s.LastErr = err.Error()
			}
		})
		if err != nil {
			r.log.Warn("camera failed; reconnecting", "in", wait.String(), "err", err)
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// markEnded records that the camera's file ended and its last frame was handled (called by
// the detector when Frames is closed and drained).
func (r *Reader) markEnded() { r.set(func(s *CameraStats) { s.State = "ended" }) }

// offer puts f in the mailbox, replacing a frame the detector has not taken.
func (r *Reader) offer(f Frame) {
	r.set(func(s *CameraStats) { s.Frames++; s.Bytes += int64(len(f.JPEG)) })
	for {
		select {
		case r.frames <- f:
			return
		default:
		}
		select {
		case <-r.frames:
			r.set(func(s *CameraStats) { s.Skipped++ })
		default:
		}
	}
}
