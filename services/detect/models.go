package detect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/pkg/routing"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/services/detect/engine"
)

// Served is an engine chosen for a frame, with the labels its detections carry.
type Served struct {
	Eng   *engine.Engine
	Model contract.Model
	Arm   string
	// DriftBaseline names the version's drift reference (routing.Route.DriftBaseline; "" is
	// "0", its first frames served).
	DriftBaseline string
}

// Resolver picks the engines for a frame: the routed one and, when sampled, a shadow.
type Resolver interface {
	Resolve(stream, frame string) (primary Served, shadow *Served, err error)
}

// Static serves every frame with one engine (STREAMDET_MODEL_PATH/URI mode, no routing).
type Static struct{ Served }

// Resolve implements Resolver.
func (s Static) Resolve(string, string) (Served, *Served, error) { return s.Served, nil, nil }

// ErrNotRoutable: no version of the route is loaded yet (the frame waits; nothing is served by
// an unrouted default).
var ErrNotRoutable = errors.New("detect: no routed model version is ready")

// Manager follows a model's route in Redis and keeps exactly the versions it needs loaded: a
// version is fetched from the registry (its digest checked against the manifest), loaded and
// warmed with a test inference before any frame is routed to it; one that fails any step is
// never routed to, and its failure is written to Redis for `detctl route get`. Versions no
// route needs are closed after a grace period. If Redis is unreachable the last route keeps
// serving and the Manager reports itself degraded.
type Manager struct {
	name     string
	reg      ModelSource
	routes   RouteSource
	resync   time.Duration
	now      func() time.Time
	base     engine.Config
	grace    time.Duration
	instance string
	log      *slog.Logger
	onHealth func(degraded error)

	mu      sync.RWMutex
	route   *routing.Route
	drift   map[string]string // version → its drift baseline in route (computed once per route)
	ready   map[string]*Served
	busy    map[string]bool  // loading
	failed  map[string]error // by version, until the route's next revision
	unused  map[string]time.Time
	lastRev int64
}

// ModelSource gives a version's verified model bytes and manifest (a *registry.Registry).
type ModelSource interface {
	Fetch(ctx context.Context, name, version string) ([]byte, registry.Manifest, error)
}

// RouteSource is where the Manager follows its route and records version states (a
// *routing.Store): Watch calls apply with each revision and health with the reachability,
// until ctx ends.
type RouteSource interface {
	Watch(ctx context.Context, model string, resync time.Duration, apply func(*routing.Route), health func(error))
	SetStatus(ctx context.Context, model, version string, st routing.Status) error
}

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	Name     string // the model (route) name
	Registry ModelSource
	Routes   RouteSource
	// Resync is how often the route is re-read besides notifications (default 10s).
	Resync time.Duration
	// Now is the clock of route schedules and unload grace (default time.Now).
	Now         func() time.Time
	Engine      engine.Config // format, names and input size come from each version's manifest
	UnloadGrace time.Duration
	Logger      *slog.Logger
	OnHealth    func(degraded error) // called with nil when Redis answers again
}

// NewManager creates a Manager.
//
// Lifecycle (service.Runner): Run follows the route until ctx ends, then closes every engine
// and returns; Resolve may be called before (ErrNotRoutable), during and after Run.
func NewManager(c ManagerConfig) *Manager {
	host, _ := os.Hostname()
	if c.Resync <= 0 {
		c.Resync = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Manager{
		name: c.Name, reg: c.Registry, routes: c.Routes, base: c.Engine, grace: c.UnloadGrace, resync: c.Resync, now: c.Now,
		instance: fmt.Sprintf("%s/%d", host, os.Getpid()), log: c.Logger, onHealth: c.OnHealth,
		ready: map[string]*Served{}, busy: map[string]bool{}, failed: map[string]error{}, unused: map[string]time.Time{}, lastRev: -1,
	}
}

// Run watches the route until ctx ends, then closes every engine.
func (m *Manager) Run(ctx context.Context) error {
	go m.routes.Watch(ctx, m.name, m.resync, m.apply, func(err error) {
		if m.onHealth != nil {
			m.onHealth(err)
		}
		if err != nil {
			m.log.Warn("routes unreachable; serving the last known route", "model", m.name, "err", err)
		}
	})
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			m.mu.Lock()
			for v, s := range m.ready {
				s.Eng.Close()
				delete(m.ready, v)
			}
			m.mu.Unlock()
			return nil
		case <-tick.C:
			m.sweep()
		}
	}
}

func (m *Manager) apply(r *routing.Route) {
	m.mu.Lock()
	m.route = r
	m.drift = map[string]string{}
	for v := range r.DriftReference {
		m.drift[v] = r.DriftBaseline(v)
	}
	if r.Revision != m.lastRev {
		m.lastRev = r.Revision
		m.failed = map[string]error{} // a new revision retries versions that failed
	}
	var load []string
	for _, v := range r.Versions(m.now()) {
		if m.ready[v] == nil && !m.busy[v] && m.failed[v] == nil {
			m.busy[v] = true
			load = append(load, v)
		}
	}
	m.mu.Unlock()
	m.log.Info("route applied", "model", m.name, "revision", r.Revision, "arms", r.Arms, "pins", len(r.Pins), "shadow", r.Shadow)
	for _, v := range load {
		go m.load(v)
	}
}

func (m *Manager) status(v string, st routing.Status) {
	st.Instance = m.instance
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := m.routes.SetStatus(ctx, m.name, v, st); err != nil {
		m.log.Warn("cannot record version status", "version", v, "state", st.State, "err", err)
	}
}

// load fetches, verifies, loads and warms one version.
func (m *Manager) load(v string) {
	t0 := time.Now()
	m.status(v, routing.Status{State: "loading"})
	s, err := m.prepare(v)
	m.mu.Lock()
	delete(m.busy, v)
	if err != nil {
		m.failed[v] = err
	} else {
		m.ready[v] = s
	}
	m.mu.Unlock()
	if err != nil {
		m.log.Error("model version refused; it will not serve", "model", m.name, "version", v, "err", err)
		m.status(v, routing.Status{State: "failed", Error: err.Error()})
		return
	}
	m.log.Info("model version ready", "model", m.name, "version", v, "sha256", s.Model.Digest, "took", time.Since(t0).String())
	m.status(v, routing.Status{State: "ready"})
}

func (m *Manager) prepare(v string) (*Served, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Fetch verifies the bytes against the manifest's sha256; the session is created from those
	// same bytes.
	model, man, err := m.reg.Fetch(ctx, m.name, v)
	if err != nil {
		return nil, err
	}
	cfg := m.base
	if cfg.Format, err = engine.ParseFormat(man.Format); err != nil {
		return nil, err
	}
	cfg.Names = man.Names
	if man.InputWidth > 0 && man.InputHeight > 0 {
		cfg.InputWidth, cfg.InputHeight = man.InputWidth, man.InputHeight
	}
	eng, err := engine.New(model, cfg)
	if err != nil {
		return nil, err
	}
	logFallback(m.log, cfg.Provider.Name, eng.Info())
	if err := eng.Warm(ctx); err != nil {
		eng.Close()
		return nil, err
	}
	return &Served{Eng: eng, Model: contract.Model{Name: m.name, Version: v, Digest: "sha256:" + man.SHA256}}, nil
}

// sweep unloads versions no route has needed for the grace period.
func (m *Manager) sweep() {
	m.mu.Lock()
	if m.route == nil {
		m.mu.Unlock()
		return
	}
	now := m.now()
	need := map[string]bool{}
	for _, v := range m.route.Versions(now) {
		need[v] = true
	}
	var closing []*Served
	for v, s := range m.ready {
		if need[v] {
			delete(m.unused, v)
			continue
		}
		if _, ok := m.unused[v]; !ok {
			m.unused[v] = now
		}
		if now.Sub(m.unused[v]) >= m.grace {
			closing = append(closing, s)
			delete(m.ready, v)
			delete(m.unused, v)
		}
	}
	m.mu.Unlock()
	for _, s := range closing {
		s.Eng.Close() // waits for frames in flight on it
		m.log.Info("model version unloaded", "model", m.name, "version", s.Model.Version)
		m.status(s.Model.Version, routing.Status{State: "unloaded"})
	}
	if len(closing) > 0 {
		engine.ReleaseMemory() // give the freed sessions' memory back to the system
	}
}

// Resolve implements Resolver.
func (m *Manager) Resolve(stream, frame string) (Served, *Served, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.route == nil {
		return Served{}, nil, ErrNotRoutable
	}
	d, ok := m.route.Choose(stream, frame, m.state)
	if !ok {
		return Served{}, nil, ErrNotRoutable
	}
	p := *m.ready[d.Version]
	p.Arm, p.DriftBaseline = d.Arm, m.drift[d.Version] // "" (no reference start): "0"
	var sh *Served
	if d.Shadow != "" {
		s := *m.ready[d.Shadow]
		s.Arm = routing.ArmShadow
		if d.Paired {
			s.Arm = routing.ArmReference
		}
		sh = &s
	}
	return p, sh, nil
}

// state is a version's routing state; the caller holds m.mu.
func (m *Manager) state(v string) routing.State {
	switch {
	case m.ready[v] != nil:
		return routing.Ready
	case m.failed[v] != nil:
		return routing.Unavailable
	}
	return routing.Pending // loading, or about to be
}

var _ service.Runner = (*Manager)(nil)
