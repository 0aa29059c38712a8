package service

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/streamdet/streamdet/pkg/envconf"
)

func TestHealthcheck(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	port := srv.Listener.Addr().String()[strings.LastIndex(srv.Listener.Addr().String(), ":"):]
	for _, tc := range []struct {
		name  string
		env   map[string]string
		ready bool
		want  int
	}{
		{"data listener, any address", map[string]string{"STREAMDET_INGEST_ADDR": port}, true, 0},
		{"not ready", map[string]string{"STREAMDET_INGEST_ADDR": port}, false, 1},
		{"admin listener first", map[string]string{"STREAMDET_INGEST_ADDR": "127.0.0.1:1", "STREAMDET_ADMIN_ADDR": "0.0.0.0" + port}, true, 0},
		{"nothing listening", map[string]string{"STREAMDET_INGEST_ADDR": "127.0.0.1:1"}, true, 1},
		{"bad address", map[string]string{"STREAMDET_INGEST_ADDR": "nonsense"}, true, 1},
	} {
		ready = tc.ready
		if got := Healthcheck(context.Background(), envconf.Map(tc.env), "ingest", ":8081"); got != tc.want {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.want)
		}
	}
}
