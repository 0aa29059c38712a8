// Package service is the common frame of streamdet's services: the HTTP endpoints operators and
// orchestrators use (/healthz, /readyz, /metrics, plus any the service adds) and readiness that
// components report as they go (a component retrying a transient failure marks itself not
// ready until it recovers).
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Health collects readiness. Components call Set; probes run on each /readyz request.
type Health struct {
	mu       sync.Mutex
	state    map[string]error // component → nil (ready) or why not
	degraded map[string]error // component → why it is degraded (reported, still ready)
	probes   map[string]func(context.Context) error
}

// NewHealth creates a Health with the named components initially not ready.
func NewHealth(components ...string) *Health {
	h := &Health{state: map[string]error{}, degraded: map[string]error{}, probes: map[string]func(context.Context) error{}}
	for _, c := range components {
		h.state[c] = errors.New("starting")
	}
	return h
}

// Set records a component's readiness: nil for ready.
func (h *Health) Set(component string, err error) {
	h.mu.Lock()
	h.state[component] = err
	h.mu.Unlock()
}

// Degrade records that a component works in a degraded mode (nil clears it): /readyz reports it
// but stays ready.
func (h *Health) Degrade(component string, err error) {
	h.mu.Lock()
	if err == nil {
		delete(h.degraded, component)
	} else {
		h.degraded[component] = err
	}
	h.mu.Unlock()
}

// Probe registers a check run on each readiness request.
func (h *Health) Probe(name string, fn func(context.Context) error) {
	h.mu.Lock()
	h.probes[name] = fn
	h.mu.Unlock()
}

// Check returns every component's and probe's state; ok when all are ready.
func (h *Health) Check(ctx context.Context) (map[string]string, bool) {
	h.mu.Lock()
	out := map[string]string{}
	ok := true
	for c, err := range h.state {
		out[c] = "ok"
		if err != nil {
			out[c], ok = err.Error(), false
		}
	}
	for c, err := range h.degraded {
		out[c] = "degraded: " + err.Error()
	}
	probes := make(map[string]func(context.Context) error, len(h.probes))
	for k, v := range h.probes {
		probes[k] = v
	}
	h.mu.Unlock()
	names := make([]string, 0, len(probes))
	for n := range probes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := probes[n](pctx)
		cancel()
		out[n] = "ok"
		if err != nil {
			out[n], ok = err.Error(), false
		}
	}
	return out, ok
}

// Server serves the service's HTTP endpoints: data routes (added with Handle) behind the
// Authenticator, and /healthz, /readyz and /metrics — unauthenticated, on the admin listener
// when one is configured, else beside the data routes.
type Server struct {
	data, admin *http.Server
	dataMux     *http.ServeMux
	ln, adminLn net.Listener
}

// Listen binds the listeners of c and serves. auth guards the data routes.
func Listen(c ServerConfig, auth *Authenticator, h *Health, metrics http.Handler) (*Server, error) {
	t, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	ops := http.NewServeMux()
	ops.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	ops.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		state, ok := h.Check(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(map[string]any{"ready": ok, "checks": state})
	})
	if metrics != nil {
		ops.Handle("GET /metrics", metrics)
	}
	s := &Server{dataMux: http.NewServeMux()}
	root := ops
	if c.AdminAddr != "" {
		if s.adminLn, err = listen(c.AdminAddr, nil); err != nil {
			return nil, fmt.Errorf("admin listener %s: %w", c.AdminAddr, err)
		}
		s.admin = newHTTPServer(c, ops)
		go s.admin.Serve(s.adminLn)
		root = http.NewServeMux()
	}
	root.Handle("/", auth.Wrap(s.dataMux))
	if s.ln, err = listen(c.Addr, t); err != nil {
		if s.adminLn != nil {
			s.adminLn.Close()
		}
		return nil, fmt.Errorf("listener %s: %w", c.Addr, err)
	}
	s.data = newHTTPServer(c, root)
	go s.data.Serve(s.ln)
	return s, nil
}

// Handle adds an authenticated data endpoint.
func (s *Server) Handle(pattern string, h http.Handler) { s.dataMux.Handle(pattern, h) }

// Addr is the address of the data listener.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// AdminAddr is the address of the admin listener, or the data listener's when there is none.
func (s *Server) AdminAddr() string {
	if s.adminLn != nil {
		return s.adminLn.Addr().String()
	}
	return s.Addr()
}

// Shutdown stops accepting requests and waits for those in progress (until ctx ends, when the
// remaining connections are closed).
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	for _, srv := range []*http.Server{s.data, s.admin} {
		if srv == nil {
			continue
		}
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err, srv.Close())
		}
	}
	return errors.Join(errs...)
}
