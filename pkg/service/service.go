// Package service is the common frame of streamdet's services: the HTTP endpoints operators and
// orchestrators use (/healthz, /readyz, /metrics, plus any the service adds) and readiness that
// components report as they go (a component retrying a transient failure marks itself not
// ready until it recovers).
package service

import (
	"context"
	"encoding/json"
	"errors"
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

// Server serves the service's HTTP endpoints.
type Server struct {
	srv *http.Server
	mux *http.ServeMux
	ln  net.Listener
}

// Listen binds addr (":8080", "127.0.0.1:0") and serves /healthz, /readyz and /metrics.
func Listen(addr string, h *Health, metrics http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		state, ok := h.Check(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(map[string]any{"ready": ok, "checks": state})
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, mux: mux, ln: ln}
	go s.srv.Serve(ln)
	return s, nil
}

// Handle adds an endpoint.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops accepting requests and waits for those in progress.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }
