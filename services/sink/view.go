package sink

import (
	"context"
	_ "embed"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/streamdet/streamdet/pkg/annotate"
	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/objstore"
)

//go:embed view.html
var viewHTML []byte

// View renders annotated frames (to object storage and memory) and serves the live view: the
// latest annotated frame of each stream and, per model version and arm, frames per second,
// latency p50/p99 and detections per frame. Rendering is best effort and never holds up the
// pipeline: when it falls behind, frames are skipped (and counted).
type View struct {
	store    *objstore.Store
	bucket   string // annotated frames; "" keeps them in memory only
	traceURL string // e.g. http://jaeger:16686/trace/{trace_id}
	queue    chan contract.Detections
	now      func() time.Time

	mu      sync.Mutex
	latest  map[string]*streamView
	served  map[string][]served // version|arm → recent frames
	skipped int64
}

type streamView struct {
	JPEG []byte              `json:"-"`
	Det  contract.Detections `json:"-"`
	Info map[string]any      `json:"info"`
}

type served struct {
	at        time.Time
	latencyMS float64
	dets      int
}

// NewView creates a View; Run renders, Handler serves.
func NewView(store *objstore.Store, bucket, traceURL string) *View {
	return &View{store: store, bucket: bucket, traceURL: traceURL, queue: make(chan contract.Detections, 64), now: time.Now,
		latest: map[string]*streamView{}, served: map[string][]served{}}
}

// Offer queues a frame's detections for rendering, or skips it when rendering is behind.
func (v *View) Offer(d contract.Detections) {
	v.observe(d)
	select {
	case v.queue <- d:
	default:
		v.mu.Lock()
		v.skipped++
		v.mu.Unlock()
	}
}

func (v *View) observe(d contract.Detections) {
	lat := 0.0
	for k, ms := range d.TimingMS {
		if k != "fetch" {
			lat += ms
		}
	}
	key := d.Model.Version + "|" + d.Route.Arm
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	s := append(v.served[key], served{at: now, latencyMS: lat, dets: len(d.Detections)})
	for len(s) > 0 && now.Sub(s[0].at) > 30*time.Second {
		s = s[1:]
	}
	v.served[key] = s
}

// Run renders queued frames until ctx ends.
func (v *View) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-v.queue:
			v.render(ctx, d)
		}
	}
}

func (v *View) render(ctx context.Context, d contract.Detections) {
	frame, err := v.store.Get(ctx, d.Frame.Bucket, d.Frame.Key, 64<<20)
	if err != nil {
		return
	}
	img, err := annotate.JPEG(frame, d.Detections, 85)
	if err != nil {
		return
	}
	if v.bucket != "" {
		v.store.Put(ctx, v.bucket, d.StreamID+"/"+d.FrameID+".jpg", img, "image/jpeg")
	}
	labels := map[string]int{}
	for _, o := range d.Detections {
		labels[o.Label]++
	}
	info := map[string]any{
		"stream": d.StreamID, "frame_id": d.FrameID, "trace_id": d.TraceID, "captured": d.CaptureTime,
		"detected": d.DetectedAt, "model": d.Model.Name + "/" + d.Model.Version, "arm": d.Route.Arm,
		"detections": len(d.Detections), "labels": labels,
	}
	if v.traceURL != "" && d.TraceID != "" {
		info["trace_url"] = strings.ReplaceAll(v.traceURL, "{trace_id}", d.TraceID)
	}
	v.mu.Lock()
	v.latest[d.StreamID] = &streamView{JPEG: img, Det: d, Info: info}
	v.mu.Unlock()
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// State is the live view's data.
func (v *View) State() map[string]any {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	var streams []map[string]any
	for _, s := range v.latest {
		streams = append(streams, s.Info)
	}
	sort.Slice(streams, func(i, j int) bool { return streams[i]["stream"].(string) < streams[j]["stream"].(string) })
	var versions []map[string]any
	for key, s := range v.served {
		var recent []served
		for _, x := range s {
			if now.Sub(x.at) <= 30*time.Second {
				recent = append(recent, x)
			}
		}
		if len(recent) == 0 {
			continue
		}
		lat := make([]float64, len(recent))
		dets := 0
		for i, x := range recent {
			lat[i] = x.latencyMS
			dets += x.dets
		}
		sort.Float64s(lat)
		span := now.Sub(recent[0].at).Seconds()
		fps := 0.0
		if span > 0 {
			fps = float64(len(recent)-1) / span
		}
		ver, arm, _ := strings.Cut(key, "|")
		versions = append(versions, map[string]any{"version": ver, "arm": arm, "frames": len(recent), "fps": fps,
			"latency_p50_ms": percentile(lat, 0.5), "latency_p99_ms": percentile(lat, 0.99), "detections_per_frame": float64(dets) / float64(len(recent))})
	}
	sort.Slice(versions, func(i, j int) bool {
		return versions[i]["version"].(string)+versions[i]["arm"].(string) < versions[j]["version"].(string)+versions[j]["arm"].(string)
	})
	return map[string]any{"streams": streams, "versions": versions, "skipped": v.skipped, "at": now}
}

// Handler serves GET / (the page), GET /api/view (its data) and GET /frames/{stream} (the
// latest annotated JPEG of a stream).
func (v *View) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(viewHTML)
	})
	mux.HandleFunc("GET /api/view", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(v.State())
	})
	mux.HandleFunc("GET /frames/{stream}", func(w http.ResponseWriter, r *http.Request) {
		v.mu.Lock()
		s := v.latest[strings.TrimSuffix(r.PathValue("stream"), ".jpg")]
		v.mu.Unlock()
		if s == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(s.JPEG)
	})
	return mux
}
