package sink

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/streamdet/streamdet/pkg/annotate"
	"github.com/streamdet/streamdet/pkg/contract"
)

//go:embed view.html
var viewHTML []byte

// viewCSP allows the page's own inline script (by its digest) and same-origin fetches and
// images, nothing else: a stream id that smuggled markup past the page's text-only rendering
// still could not run a script.
var viewCSP = func() string {
	_, rest, _ := bytes.Cut(viewHTML, []byte("<script>"))
	script, _, _ := bytes.Cut(rest, []byte("</script>"))
	sum := sha256.Sum256(script)
	return "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; style-src 'unsafe-inline'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

// View renders annotated frames (to object storage and memory) and serves the live view: the
// latest annotated frame of each stream and, per model version and arm, frames per second,
// latency p50/p99 and detections per frame. Rendering is best effort and never holds up the
// pipeline: when it falls behind, frames are skipped (and counted).
type View struct {
	cfg   ViewConfig
	queue chan contract.Detections
	now   func() time.Time

	mu      sync.Mutex
	latest  map[string]*streamView
	served  map[string][]served // version|arm → recent frames
	skipped int64
}

type streamView struct {
	JPEG []byte              `json:"-"`
	Det  contract.Detections `json:"-"`
	Info map[string]any      `json:"info"`
	at   time.Time
}

type served struct {
	at        time.Time
	latencyMS float64
	dets      int
}

// ViewConfig configures a View.
type ViewConfig struct {
	// Store: frames are read from it, annotated frames written to it.
	Store interface {
		Get(ctx context.Context, bucket, key string, max int64) ([]byte, error)
		Put(ctx context.Context, bucket, key string, data []byte, contentType string) error
	}
	// Now is the clock of the per-version windows and expiry (default time.Now).
	Now func() time.Time
	// FramesBucket is the only bucket frames are read from (content-addressed keys only).
	FramesBucket string
	// Bucket receives annotated frames at <stream>/<frame>/<model>/<version>.jpg; "" keeps
	// them in memory only.
	Bucket string
	// TraceURL links to traces, e.g. http://jaeger:16686/trace/{trace_id}.
	TraceURL string
	// MaxStreams bounds the streams shown (default 256): the least recently updated goes first.
	MaxStreams int
	// TTL drops a stream not updated for this long (default 10m).
	TTL time.Duration
}

// maxVersionRows bounds the per-version statistics kept.
const maxVersionRows = 64

// NewView creates a View; Run renders, Handler serves.
//
// Lifecycle (service.Runner): Run renders offered frames until ctx ends; Offer and Handler may
// be used before, during and after Run.
func NewView(c ViewConfig) *View {
	if c.MaxStreams <= 0 {
		c.MaxStreams = 256
	}
	if c.TTL <= 0 {
		c.TTL = 10 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &View{cfg: c, queue: make(chan contract.Detections, 64), now: c.Now,
		latest: map[string]*streamView{}, served: map[string][]served{}}
}

var traceIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// AnnotatedKey is where the annotated frame of a row is stored (contract.AnnotatedKey).
func AnnotatedKey(d contract.Detections) string { return contract.AnnotatedKey(d) }

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
	if _, ok := v.served[key]; !ok && len(v.served) >= maxVersionRows {
		return
	}
	s := append(v.served[key], served{at: now, latencyMS: lat, dets: len(d.Detections)})
	for len(s) > 0 && now.Sub(s[0].at) > 30*time.Second {
		s = s[1:]
	}
	v.served[key] = s
}

// Run renders queued frames until ctx ends.
func (v *View) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-v.queue:
			v.render(ctx, d)
		}
	}
}

func (v *View) render(ctx context.Context, d contract.Detections) {
	// The message names the frame: read it only if it is a frame ingest wrote. Handle has
	// checked the identifiers.
	if contract.ValidateFrameRef(d.Frame, v.cfg.FramesBucket) != nil || d.Frame.StreamID != d.StreamID || d.Frame.FrameID != d.FrameID {
		return
	}
	frame, err := v.cfg.Store.Get(ctx, d.Frame.Bucket, d.Frame.Key, 64<<20)
	if err != nil {
		return
	}
	img, err := annotate.JPEG(frame, d.Detections, 85)
	if err != nil {
		return
	}
	if v.cfg.Bucket != "" {
		v.cfg.Store.Put(ctx, v.cfg.Bucket, AnnotatedKey(d), img, "image/jpeg")
	}
	if !traceIDRE.MatchString(d.TraceID) {
		d.TraceID = ""
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
	if v.cfg.TraceURL != "" && d.TraceID != "" {
		info["trace_url"] = strings.ReplaceAll(v.cfg.TraceURL, "{trace_id}", d.TraceID)
	}
	v.keep(d, img, info)
}

// keep records a stream's newest annotated frame, evicting the least recently updated stream
// when MaxStreams are kept.
func (v *View) keep(d contract.Detections, img []byte, info map[string]any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if _, ok := v.latest[d.StreamID]; !ok && len(v.latest) >= v.cfg.MaxStreams {
		v.expire(now)
		if len(v.latest) >= v.cfg.MaxStreams { // still full: the least recently updated goes
			var oldest string
			for k, s := range v.latest {
				if oldest == "" || s.at.Before(v.latest[oldest].at) {
					oldest = k
				}
			}
			delete(v.latest, oldest)
		}
	}
	v.latest[d.StreamID] = &streamView{JPEG: img, Det: d, Info: info, at: now}
}

// expire drops streams not updated within the TTL; v.mu is held.
func (v *View) expire(now time.Time) {
	for k, s := range v.latest {
		if now.Sub(s.at) > v.cfg.TTL {
			delete(v.latest, k)
		}
	}
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
	v.expire(now)
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
		w.Header().Set("Content-Security-Policy", viewCSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
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
