// Package routing decides which model version serves a frame. A Route, one per model name, is a
// JSON document (schemas/v1/route.schema.json) kept in Redis: weighted arms, per-stream pins, an
// optional shadow version run on a sample of frames, and stickiness — by default a stream is
// placed on an arm by a hash of its id, so one camera never flips between versions frame by
// frame, and changing the weights moves only the streams whose hash falls in the moved range.
package routing

import (
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"time"

	"github.com/streamdet/streamdet/pkg/contract"
)

// Arm names reported in detections messages.
const (
	ArmPrimary = "primary" // the arm with the largest weight
	ArmCanary  = "canary"  // any other weighted arm
	ArmPinned  = "pinned"  // a per-stream pin
	ArmShadow  = "shadow"  // the shadow version (results on the shadow topic only)
	// ArmReference: the primary version run beside a canary on a sample of its frames, to
	// measure the canary's agreement (results on the shadow topic only).
	ArmReference = "reference"
)

// Arm is a version and its share of streams.
type Arm struct {
	Version string `json:"version"`
	Weight  int    `json:"weight"`
}

// Shadow runs a version on a sample of frames besides the routed one.
type Shadow struct {
	Version string  `json:"version"`
	Sample  float64 `json:"sample"`
}

// Route is the routing document of one model name.
type Route struct {
	Model  string  `json:"model"`
	Arms   []Arm   `json:"arms"`
	Shadow *Shadow `json:"shadow,omitempty"`
	// Compare is the share of canary frames also run on the primary version (a paired shadow:
	// its results go to the shadow topic only), so that each canary has an agreement measure
	// against the primary on the same frames. 0 (default) runs none.
	Compare float64           `json:"compare,omitempty"`
	Pins    map[string]string `json:"pins,omitempty"`
	// Sticky places streams by hash (default true). When false, each frame is placed by the
	// hash of its frame id instead.
	Sticky *bool `json:"sticky,omitempty"`
	// Warm lists versions kept loaded though no arm uses them (a promoted-from version kept for
	// rollback), each until a time.
	Warm map[string]time.Time `json:"warm,omitempty"`
	// DriftReference is, per version, when its drift reference starts: drift compares a
	// stream's frames with the first frames the version served it from then on (set by a
	// promotion, or by detctl drift reset). A version without one is compared with the first
	// frames it served. The reference, once captured, is kept in Redis for every detect replica.
	DriftReference map[string]time.Time `json:"drift_reference,omitempty"`
	// Previous is the route this one replaced, for rollback.
	Previous *Route    `json:"previous,omitempty"`
	Updated  time.Time `json:"updated"`
	Revision int64     `json:"revision"`
}

// MaxPins bounds a route's per-stream pins.
const MaxPins = 100_000

// MaxDocBytes bounds a route document read from Redis.
const MaxDocBytes = 8 << 20

// Validate checks the route: every identifier by the grammar of contract.IDPattern, weights and
// sample in range, sizes bounded. A route read from Redis is validated before it is used.
func (r *Route) Validate() error {
	var errs []error
	errs = append(errs, contract.CheckID("route: model", r.Model))
	total := 0
	seen := map[string]bool{}
	for _, a := range r.Arms {
		errs = append(errs, contract.CheckID("route: arm version", a.Version))
		if a.Weight < 0 || a.Weight > 1_000_000 {
			errs = append(errs, fmt.Errorf("route: arm %s: weight %d, want 0 to 1000000", a.Version, a.Weight))
		}
		if seen[a.Version] {
			errs = append(errs, fmt.Errorf("route: version %s has two arms", a.Version))
		}
		seen[a.Version] = true
		total += a.Weight
	}
	if total <= 0 {
		errs = append(errs, errors.New("route: the weights must add up to more than 0"))
	}
	if s := r.Shadow; s != nil {
		errs = append(errs, contract.CheckID("route: shadow version", s.Version))
		if !(s.Sample >= 0 && s.Sample <= 1) {
			errs = append(errs, fmt.Errorf("route: shadow %s: sample %v, want [0, 1]", s.Version, s.Sample))
		}
	}
	if !(r.Compare >= 0 && r.Compare <= 1) {
		errs = append(errs, fmt.Errorf("route: compare %v, want [0, 1]", r.Compare))
	}
	if len(r.Pins) > MaxPins {
		errs = append(errs, fmt.Errorf("route: %d pins, at most %d", len(r.Pins), MaxPins))
	}
	for stream, v := range r.Pins {
		errs = append(errs, contract.CheckID("route: pinned stream", stream), contract.CheckID("route: pinned version", v))
	}
	for v := range r.Warm {
		errs = append(errs, contract.CheckID("route: warm version", v))
	}
	for v := range r.DriftReference {
		errs = append(errs, contract.CheckID("route: drift reference version", v))
	}
	if len(r.DriftReference) > 64 {
		errs = append(errs, fmt.Errorf("route: %d drift references, at most 64", len(r.DriftReference)))
	}
	if len(r.Arms) > 64 {
		errs = append(errs, fmt.Errorf("route: %d arms, at most 64", len(r.Arms)))
	}
	return errors.Join(errs...)
}

// Versions are every version the route needs loaded now: arms with weight, pins, shadow and
// versions kept warm until after now.
func (r *Route) Versions(now time.Time) []string {
	set := map[string]bool{}
	for _, a := range r.Arms {
		if a.Weight > 0 {
			set[a.Version] = true
		}
	}
	for _, v := range r.Pins {
		set[v] = true
	}
	if r.Shadow != nil {
		set[r.Shadow.Version] = true
	}
	for v, until := range r.Warm {
		if now.Before(until) {
			set[v] = true
		}
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// KeepDriftReferences copies from cur the drift references of the versions r still routes to,
// so that changing weights does not restart a version's reference.
func (r *Route) KeepDriftReferences(cur *Route) {
	if cur == nil {
		return
	}
	now := time.Now()
	for v, since := range cur.DriftReference {
		if _, set := r.DriftReference[v]; !set && r.Uses(v, now) {
			if r.DriftReference == nil {
				r.DriftReference = map[string]time.Time{}
			}
			r.DriftReference[v] = since
		}
	}
}

// DriftBaseline names version's drift reference: "0" for its first frames served, else the
// start of the reference in Unix milliseconds.
func (r *Route) DriftBaseline(version string) string {
	if since, ok := r.DriftReference[version]; ok && !since.IsZero() {
		return strconv.FormatInt(since.UnixMilli(), 10)
	}
	return "0"
}

// Uses reports whether the route (not counting its Previous) refers to version.
func (r *Route) Uses(version string, now time.Time) bool {
	for _, v := range r.Versions(now) {
		if v == version {
			return true
		}
	}
	return false
}

// Decision is where a frame goes.
type Decision struct {
	Version string
	Arm     string
	Shadow  string // version to run as shadow on this frame, or ""
	// Paired: Shadow is the primary run beside a canary (Route.Compare), the reference the
	// canary is compared with.
	Paired bool
}

// hash01 maps s to [0, 1).
func hash01(s string) float64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	// fnv's low bits are weak for short similar strings; mix with a 64-bit finaliser.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return float64(x>>11) / float64(1<<53)
}

// State is whether a version can serve.
type State int

// Version states, as the serving side knows them.
const (
	// Unavailable: failed to load, or unknown; arms and pins on it are skipped.
	Unavailable State = iota
	// Pending: being loaded; frames placed on it wait rather than go elsewhere, so a stream
	// does not flip versions while one warms up.
	Pending
	// Ready: loaded and warmed.
	Ready
)

// Choose places a frame. state says which versions can serve: arms and pins on an Unavailable
// version are skipped (weights renormalised over the others), so a version that failed is never
// routed to; a frame placed on a Pending version is not routed yet (ok false: it waits). ok is
// also false when no arm can serve.
func (r *Route) Choose(stream, frame string, state func(string) State) (d Decision, ok bool) {
	if v, pinned := r.Pins[stream]; pinned && state(v) != Unavailable {
		if state(v) == Pending {
			return Decision{}, false
		}
		d = Decision{Version: v, Arm: ArmPinned}
	} else {
		primary, best := "", -1
		total := 0
		var usable []Arm
		for _, a := range r.Arms {
			if a.Weight > best {
				primary, best = a.Version, a.Weight
			}
			if a.Weight > 0 && state(a.Version) != Unavailable {
				total += a.Weight
				usable = append(usable, a)
			}
		}
		if total == 0 {
			return Decision{}, false
		}
		key := stream
		if r.Sticky != nil && !*r.Sticky {
			key = frame
		}
		x := hash01("arm/"+key) * float64(total)
		chosen := usable[len(usable)-1] // the top edge, should rounding leave x == total
		acc := 0.0
		for _, a := range usable {
			acc += float64(a.Weight)
			if x < acc {
				chosen = a
				break
			}
		}
		if state(chosen.Version) != Ready {
			return Decision{}, false
		}
		d = Decision{Version: chosen.Version, Arm: ArmCanary}
		if chosen.Version == primary {
			d.Arm = ArmPrimary
		} else if r.Compare > 0 && state(primary) == Ready && hash01("compare/"+frame) < r.Compare {
			d.Shadow, d.Paired = primary, true
		}
	}
	if s := r.Shadow; s != nil && !d.Paired && s.Version != d.Version && state(s.Version) == Ready && hash01("shadow/"+frame) < s.Sample {
		d.Shadow = s.Version
	}
	return d, true
}
