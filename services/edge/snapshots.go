package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/streamdet/streamdet/pkg/annotate"
	"github.com/streamdet/streamdet/pkg/contract"
)

// Event snapshots: when a detection matches a rule, the frame (and an annotated copy) is
// uploaded to object storage — queued on disk while storage is unreachable — and the detections
// message references it, so that the sink and the live view show it like a central frame. Rules
// come from a JSON file (STREAMDET_EDGE_SNAPSHOT_RULES), untrusted like any input: sizes bounded,
// names checked.

// Limits of a rules document.
const (
	maxRulesBytes = 1 << 20
	maxRules      = 64
	maxZones      = 16
	maxPoints     = 64
	maxLabels     = 100
)

// SnapshotRule says which detections are worth a snapshot.
type SnapshotRule struct {
	// Name identifies the rule (identifier grammar); detections messages carry it.
	Name string `json:"name"`
	// Cameras limits the rule to these camera ids (default: every camera).
	Cameras []string `json:"cameras,omitempty"`
	// Labels limits it to these class labels (default: any).
	Labels []string `json:"labels,omitempty"`
	// MinScore is the lowest score that counts (0 to 1).
	MinScore float32 `json:"min_score"`
	// Zones are polygons in frame pixels ([[x, y], …], at least 3 points); a box counts when its
	// bottom centre (where an object stands) lies inside one. Default: the whole frame.
	Zones [][][2]float32 `json:"zones,omitempty"`
	// Cooldown is the least time between two snapshots of the rule on one camera ("30s").
	Cooldown contract.Duration `json:"cooldown"`
}

// ParseSnapshotRules reads a rules document ({"rules": [...]}) and validates every rule against
// the device's cameras.
func ParseSnapshotRules(r io.Reader, cameras []Camera) ([]SnapshotRule, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxRulesBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRulesBytes {
		return nil, fmt.Errorf("snapshot rules: over %d bytes", maxRulesBytes)
	}
	var doc struct {
		Rules []SnapshotRule `json:"rules"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("snapshot rules: %w", err)
	}
	if len(doc.Rules) == 0 || len(doc.Rules) > maxRules {
		return nil, fmt.Errorf("snapshot rules: %d rules, want 1 to %d", len(doc.Rules), maxRules)
	}
	known := map[string]bool{}
	for _, c := range cameras {
		known[c.ID] = true
	}
	var errs []error
	names := map[string]bool{}
	for i, rule := range doc.Rules {
		where := fmt.Sprintf("snapshot rule %d", i+1)
		if err := contract.CheckID(where+": name", rule.Name); err != nil {
			errs = append(errs, err)
		} else if names[rule.Name] {
			errs = append(errs, fmt.Errorf("%s: name %s twice", where, rule.Name))
		}
		names[rule.Name] = true
		for _, c := range rule.Cameras {
			if !known[c] {
				errs = append(errs, fmt.Errorf("%s: camera %q is not one of STREAMDET_EDGE_CAMERAS", where, c))
			}
		}
		if len(rule.Labels) > maxLabels {
			errs = append(errs, fmt.Errorf("%s: %d labels, at most %d", where, len(rule.Labels), maxLabels))
		}
		if !(rule.MinScore >= 0 && rule.MinScore <= 1) {
			errs = append(errs, fmt.Errorf("%s: min_score %g: must be in [0, 1]", where, rule.MinScore))
		}
		if rule.Cooldown < 0 || time.Duration(rule.Cooldown) > 24*time.Hour {
			errs = append(errs, fmt.Errorf("%s: cooldown %s: must be in [0, 24h]", where, time.Duration(rule.Cooldown)))
		}
		if len(rule.Zones) > maxZones {
			errs = append(errs, fmt.Errorf("%s: %d zones, at most %d", where, len(rule.Zones), maxZones))
		}
		for j, z := range rule.Zones {
			if len(z) < 3 || len(z) > maxPoints {
				errs = append(errs, fmt.Errorf("%s: zone %d has %d points, want 3 to %d", where, j+1, len(z), maxPoints))
			}
		}
	}
	return doc.Rules, errors.Join(errs...)
}

// inside reports whether p lies inside polygon z (even-odd rule).
func inside(p [2]float32, z [][2]float32) bool {
	in := false
	for i, j := 0, len(z)-1; i < len(z); j, i = i, i+1 {
		a, b := z[i], z[j]
		if (a[1] > p[1]) != (b[1] > p[1]) && p[0] < (b[0]-a[0])*(p[1]-a[1])/(b[1]-a[1])+a[0] {
			in = !in
		}
	}
	return in
}

// matches reports whether d counts for the rule.
func (r SnapshotRule) matches(d contract.Detection) bool {
	if d.Score < r.MinScore || len(r.Labels) > 0 && !slices.Contains(r.Labels, d.Label) {
		return false
	}
	if len(r.Zones) == 0 {
		return true
	}
	foot := [2]float32{(d.Box[0] + d.Box[2]) / 2, d.Box[3]}
	for _, z := range r.Zones {
		if inside(foot, z) {
			return true
		}
	}
	return false
}

// Snapshotter decides which frames are snapshots (rules and cooldowns per camera).
type Snapshotter struct {
	rules []SnapshotRule
	mu    sync.Mutex
	last  map[string]time.Time // rule + "\x00" + camera → last snapshot
}

// NewSnapshotter creates a Snapshotter for rules.
func NewSnapshotter(rules []SnapshotRule) *Snapshotter {
	return &Snapshotter{rules: rules, last: map[string]time.Time{}}
}

// Decide returns the first rule that fires on a camera's detections at now (and starts its
// cooldown), or "".
func (s *Snapshotter) Decide(camera string, dets []contract.Detection, now time.Time) string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rules {
		if len(r.Cameras) > 0 && !slices.Contains(r.Cameras, camera) {
			continue
		}
		k := r.Name + "\x00" + camera
		if t, ok := s.last[k]; ok && now.Sub(t) < time.Duration(r.Cooldown) {
			continue
		}
		for _, d := range dets {
			if r.matches(d) {
				s.last[k] = now
				return r.Name
			}
		}
	}
	return ""
}

// snapshotRef is the frame reference of a snapshot: the frames bucket, content-addressed.
func snapshotRef(bucket, stream string, at time.Time, jpeg []byte, width, height int) contract.FrameRef {
	sum := sha256.Sum256(jpeg)
	h := hex.EncodeToString(sum[:])
	return contract.FrameRef{StreamID: stream, CaptureTime: at.UTC(), Bucket: bucket, Key: contract.FrameKey(h, ".jpg"),
		ContentType: "image/jpeg", Width: width, Height: height, Size: int64(len(jpeg)), SHA256: h}
}

// Uploader puts queued snapshot objects into object storage, in order, retrying with backoff
// while it is unreachable; an object leaves the queue once stored.
type Uploader struct {
	Queue *Queue
	Store interface {
		Put(ctx context.Context, bucket, key string, data []byte, contentType string) error
	}
	Log      *slog.Logger
	uploaded int64
	mu       sync.Mutex
}

// Enqueue queues one object (Record.Topic is the bucket, Key the object key).
func (u *Uploader) Enqueue(bucket, key string, data []byte) error {
	_, err := u.Queue.Append("snapshots", func(int64) (Record, error) {
		return Record{Topic: bucket, Key: key, Value: data, Headers: map[string]string{"content-type": "image/jpeg"}}, nil
	})
	return err
}

// Uploaded is how many objects were stored since start.
func (u *Uploader) Uploaded() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.uploaded
}

// Run uploads until ctx ends.
func (u *Uploader) Run(ctx context.Context) {
	delay := newRetryDelay(200*time.Millisecond, 10*time.Second)
	for ctx.Err() == nil {
		es, err := u.Queue.Peek(1)
		if err != nil || len(es) == 0 {
			select {
			case <-ctx.Done():
			case <-u.Queue.Notify():
			case <-time.After(time.Second):
			}
			continue
		}
		e := es[0]
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = u.Store.Put(pctx, e.Topic, e.Key, e.Value, e.Headers["content-type"])
		cancel()
		if err == nil {
			u.Queue.Ack(es)
			u.mu.Lock()
			u.uploaded++
			u.mu.Unlock()
			delay.reset()
			continue
		}
		wait := delay.next()
		u.Log.Warn("snapshot upload failed; kept on disk", "key", e.Key, "in", wait.String(), "err", err)
		if !sleep(ctx, wait) {
			return
		}
	}
}

// annotated renders the small annotated copy of a snapshot.
func annotated(jpeg []byte, dets []contract.Detection) ([]byte, error) {
	return annotate.JPEG(jpeg, dets, 70)
}

// readRules reads the rules file named by the configuration, if any.
func readRules(path string, cameras []Camera) ([]SnapshotRule, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("STREAMDET_EDGE_SNAPSHOT_RULES: %w", err)
	}
	defer f.Close()
	return ParseSnapshotRules(f, cameras)
}
