package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/pkg/tlsconf"
)

// RedisConfig is how detect and detctl reach Redis.
type RedisConfig struct {
	// Addr: STREAMDET_REDIS_ADDR. Required.
	Addr string
	// Username and Password: STREAMDET_REDIS_USERNAME (ACL user, optional), STREAMDET_REDIS_PASSWORD
	// (or _FILE). A password is required: streamdet does not talk to an open Redis.
	Username, Password string
	// TLS: STREAMDET_REDIS_TLS=true, STREAMDET_REDIS_TLS_CA_FILE, _CERT_FILE, _KEY_FILE (see tlsconf).
	TLS tlsconf.Config
	// KeyPrefix: STREAMDET_REDIS_PREFIX, default "streamdet".
	KeyPrefix string
	// StatsHorizon is how long the 10-second statistics buckets are kept (STREAMDET_STATS_HORIZON,
	// default 24h, [1h, 30d]).
	StatsHorizon time.Duration
}

// RedisFromEnv reads the RedisConfig.
func RedisFromEnv(env envconf.Env) RedisConfig {
	return RedisConfig{
		Addr:         env.String("STREAMDET_REDIS_ADDR", ""),
		Username:     env.String("STREAMDET_REDIS_USERNAME", ""),
		Password:     env.Secret("STREAMDET_REDIS_PASSWORD"),
		TLS:          tlsconf.FromEnv(env, "STREAMDET_REDIS"),
		KeyPrefix:    env.String("STREAMDET_REDIS_PREFIX", "streamdet"),
		StatsHorizon: env.Duration("STREAMDET_STATS_HORIZON", 24*time.Hour),
	}
}

// Validate checks the RedisConfig.
func (c RedisConfig) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("STREAMDET_REDIS_ADDR is required"))
	}
	if c.Password == "" {
		errs = append(errs, errors.New("STREAMDET_REDIS_PASSWORD(_FILE) is required"))
	}
	if c.StatsHorizon != 0 && (c.StatsHorizon < time.Hour || c.StatsHorizon > 30*24*time.Hour) {
		errs = append(errs, fmt.Errorf("STREAMDET_STATS_HORIZON %s: must be in [1h, 720h]", c.StatsHorizon))
	}
	return errors.Join(append(errs, c.TLS.Validate())...)
}

// Store keeps routes, version status and comparison statistics in Redis.
//
//	<prefix>:route:<model>         the Route as JSON
//	<prefix>:routes                pub/sub channel: a model name whenever its route changes
//	<prefix>:status:<model>        hash version → Status JSON (loading, ready, failed)
//	<prefix>:stats:<model>         hash "<version>|<arm>|<counter>" → number
type Store struct {
	rdb     *redis.Client
	prefix  string
	horizon time.Duration
	now     func() time.Time
}

// NewStore connects (lazily) to Redis.
func NewStore(c RedisConfig) (*Store, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	o := &redis.Options{Addr: c.Addr, Username: c.Username, Password: c.Password,
		DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxRetries: 1}
	t, err := c.TLS.Client()
	if err != nil {
		return nil, err
	}
	o.TLSConfig = t
	h := c.StatsHorizon
	if h <= 0 {
		h = 24 * time.Hour
	}
	return &Store{rdb: redis.NewClient(o), prefix: c.KeyPrefix, horizon: h, now: time.Now}, nil
}

// Close closes the connection pool.
func (s *Store) Close() error { return s.rdb.Close() }

func (s *Store) k(parts ...string) string { return s.prefix + ":" + strings.Join(parts, ":") }

// ErrNoRoute: no route is stored for the model.
var ErrNoRoute = errors.New("routing: no route for this model")

// ErrInvalidRoute: the route document stored for the model breaks its schema or the identifier
// grammar. A watcher ignores it and keeps serving the last good route.
var ErrInvalidRoute = errors.New("routing: invalid route document")

// Get reads a model's route.
func (s *Store) Get(ctx context.Context, model string) (*Route, error) {
	b, err := s.rdb.Get(ctx, s.k("route", model)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w %q", ErrNoRoute, model)
	}
	if err != nil {
		return nil, fmt.Errorf("routing: get route %s: %w", model, err)
	}
	if len(b) > MaxDocBytes {
		return nil, fmt.Errorf("%w: route %s is %d bytes, over %d", ErrInvalidRoute, model, len(b), MaxDocBytes)
	}
	var r Route
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: route %s: %v", ErrInvalidRoute, model, err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%w: route %s: %v", ErrInvalidRoute, model, err)
	}
	if r.Model != model {
		return nil, fmt.Errorf("%w: route stored for %s names model %q", ErrInvalidRoute, model, r.Model)
	}
	return &r, nil
}

// Set stores r as the model's route, keeping the current one as r.Previous (one level), and
// tells watchers.
func (s *Store) Set(ctx context.Context, r *Route) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if old, err := s.Get(ctx, r.Model); err == nil {
		old.Previous = nil
		r.Previous = old
		r.Revision = old.Revision + 1
	} else if !errors.Is(err, ErrNoRoute) && !errors.Is(err, ErrInvalidRoute) { // an invalid route is replaced
		return err
	}
	r.Updated = time.Now().UTC()
	b, _ := json.Marshal(r)
	if err := s.rdb.Set(ctx, s.k("route", r.Model), b, 0).Err(); err != nil {
		return fmt.Errorf("routing: set route %s: %w", r.Model, err)
	}
	return s.rdb.Publish(ctx, s.k("routes"), r.Model).Err()
}

// Watch calls onRoute with the model's route now and whenever it changes (pub/sub, plus a
// resync every interval so a missed message costs at most one interval), and onError whenever
// Redis cannot be read; the caller keeps serving its last route meanwhile. It returns when ctx
// ends.
func (s *Store) Watch(ctx context.Context, model string, interval time.Duration, onRoute func(*Route), onError func(error)) {
	sub := s.rdb.Subscribe(ctx, s.k("routes"))
	defer sub.Close()
	msgs := sub.Channel(redis.WithChannelHealthCheckInterval(interval))
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last int64 = -1
	var lastUpdated time.Time
	load := func() {
		r, err := s.Get(ctx, model)
		if err != nil {
			if ctx.Err() == nil {
				onError(err)
			}
			return
		}
		onError(nil)
		if r.Revision != last || !r.Updated.Equal(lastUpdated) {
			last, lastUpdated = r.Revision, r.Updated
			onRoute(r)
		}
	}
	load()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if ok && m.Payload == model {
				load()
			}
		case <-tick.C:
			load()
		}
	}
}

// Status is a version's state in a detect instance.
type Status struct {
	State    string    `json:"state"` // loading, ready, failed, unloaded
	Error    string    `json:"error,omitempty"`
	Instance string    `json:"instance"`
	At       time.Time `json:"at"`
}

// RecordDigest records a version's sha256 digest once (HSETNX <prefix>:digest:<model>): the
// registry's ledger, out of the model bucket's reach. Recording the same digest again is a no-op;
// a different one is refused with registry.ErrExists.
func (s *Store) RecordDigest(ctx context.Context, model, version, sha256 string) error {
	ok, err := s.rdb.HSetNX(ctx, s.k("digest", model), version, sha256).Result()
	if err != nil {
		return fmt.Errorf("routing: record digest of %s/%s: %w", model, version, err)
	}
	if ok {
		return nil
	}
	have, err := s.Digest(ctx, model, version)
	if err != nil {
		return err
	}
	if have != sha256 {
		return fmt.Errorf("%w: %s/%s has digest %s recorded", registry.ErrExists, model, version, have)
	}
	return nil
}

// Digest returns a version's recorded digest (registry.ErrNotFound when none).
func (s *Store) Digest(ctx context.Context, model, version string) (string, error) {
	d, err := s.rdb.HGet(ctx, s.k("digest", model), version).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("%w: no digest recorded for %s/%s", registry.ErrNotFound, model, version)
	}
	if err != nil {
		return "", fmt.Errorf("routing: digest of %s/%s: %w", model, version, err)
	}
	return d, nil
}

// SetStatus records a version's state (the last instance to report wins).
func (s *Store) SetStatus(ctx context.Context, model, version string, st Status) error {
	st.At = time.Now().UTC()
	b, _ := json.Marshal(st)
	return s.rdb.HSet(ctx, s.k("status", model), version, b).Err()
}

// Statuses reads every version's state.
func (s *Store) Statuses(ctx context.Context, model string) (map[string]Status, error) {
	m, err := s.rdb.HGetAll(ctx, s.k("status", model)).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]Status{}
	for v, b := range m {
		var st Status
		json.Unmarshal([]byte(b), &st)
		out[v] = st
	}
	return out, nil
}

// Sample is one frame's figures for a version and arm.
type Sample struct {
	Version, Arm string
	LatencyMS    float64
	Detections   int
	ScoreSum     float64
	Error        bool
}

// Agreement is how far a candidate version's boxes match a reference version's on one frame:
// a shadow against the version that served the frame, or a canary (which served it) against the
// primary run beside it on a sample of canary frames (Route.Compare).
type Agreement struct {
	Version                      string // the candidate: the shadow, or the canary
	Reference                    string // the version it is compared with ("" means the served one, for old callers)
	Arm                          string // the candidate's arm: shadow (default) or canary
	PrimaryBoxes, PrimaryMatched int    // reference boxes, and those the candidate also found
	ShadowBoxes, ShadowMatched   int    // candidate boxes, and those the reference also found
}

func (a *Agreement) arm() string {
	if a.Arm == "" {
		return ArmShadow
	}
	return a.Arm
}

// Record adds one frame's figures (and agreement, when a shadow ran) to the model's statistics.
func (s *Store) Record(ctx context.Context, model string, smp Sample, agr *Agreement) error {
	p := s.rdb.Pipeline()
	key := s.k("stats", model)
	addSample(ctx, p, key, smp, false)
	if a := agr; a != nil {
		g := func(name string) string { return a.Version + "|" + a.arm() + "|" + name }
		p.HIncrBy(ctx, key, g("compared_frames"), 1)
		p.HIncrBy(ctx, key, g("primary_boxes"), int64(a.PrimaryBoxes))
		p.HIncrBy(ctx, key, g("primary_matched"), int64(a.PrimaryMatched))
		p.HIncrBy(ctx, key, g("shadow_boxes"), int64(a.ShadowBoxes))
		p.HIncrBy(ctx, key, g("shadow_matched"), int64(a.ShadowMatched))
	}
	s.recordWindow(ctx, p, model, smp, agr)
	_, err := p.Exec(ctx)
	return err
}

// addSample adds a frame's counters to the hash at key ("<version>|<arm>|<counter>"), with the
// latency histogram's bucket when hist.
func addSample(ctx context.Context, p redis.Pipeliner, key string, smp Sample, hist bool) {
	f := func(name string) string { return smp.Version + "|" + smp.Arm + "|" + name }
	p.HIncrBy(ctx, key, f("frames"), 1)
	if smp.Error {
		p.HIncrBy(ctx, key, f("errors"), 1)
		return
	}
	p.HIncrBy(ctx, key, f("detections"), int64(smp.Detections))
	p.HIncrByFloat(ctx, key, f("score_sum"), smp.ScoreSum)
	p.HIncrByFloat(ctx, key, f("latency_ms_sum"), smp.LatencyMS)
	if hist {
		p.HIncrBy(ctx, key, f("lat|"+strconv.Itoa(latencyBucket(smp.LatencyMS))), 1)
	}
}

// Stats are the accumulated figures of one version and arm.
type Stats struct {
	Version, Arm                           string
	Frames, Errors, Detections             int64
	ScoreSum, LatencyMSSum                 float64
	Compared, PrimaryBoxes, PrimaryMatched int64
	ShadowBoxes, ShadowMatched             int64
}

// ReadStats returns the model's statistics by version and arm.
func (s *Store) ReadStats(ctx context.Context, model string) ([]Stats, error) {
	m, err := s.rdb.HGetAll(ctx, s.k("stats", model)).Result()
	if err != nil {
		return nil, err
	}
	by := map[string]*Stats{}
	for field, val := range m {
		parts := strings.Split(field, "|")
		if len(parts) != 3 {
			continue
		}
		st := by[parts[0]+"|"+parts[1]]
		if st == nil {
			st = &Stats{Version: parts[0], Arm: parts[1]}
			by[parts[0]+"|"+parts[1]] = st
		}
		n, _ := strconv.ParseInt(val, 10, 64)
		fl, _ := strconv.ParseFloat(val, 64)
		switch parts[2] {
		case "frames":
			st.Frames = n
		case "errors":
			st.Errors = n
		case "detections":
			st.Detections = n
		case "score_sum":
			st.ScoreSum = fl
		case "latency_ms_sum":
			st.LatencyMSSum = fl
		case "compared_frames":
			st.Compared = n
		case "primary_boxes":
			st.PrimaryBoxes = n
		case "primary_matched":
			st.PrimaryMatched = n
		case "shadow_boxes":
			st.ShadowBoxes = n
		case "shadow_matched":
			st.ShadowMatched = n
		}
	}
	out := make([]Stats, 0, len(by))
	for _, st := range by {
		out = append(out, *st)
	}
	sortStats(out)
	return out, nil
}
