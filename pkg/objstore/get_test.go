package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/testenv"
)

// TestGet runs the Get contract against the in-process S3 API.
func TestGet(t *testing.T) {
	_, cfg := testenv.FakeS3(t)
	testGet(t, cfg)
}

// countingProxy forwards to endpoint and counts the requests by method (the signature covers the
// Host header, which the proxy passes through unchanged).
type countingProxy struct {
	mu sync.Mutex
	n  map[string]int
}

func (p *countingProxy) counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := map[string]int{}
	for k, v := range p.n {
		c[k] = v
	}
	p.n = map[string]int{}
	return c
}

func startProxy(t *testing.T, endpoint string) (*countingProxy, string) {
	t.Helper()
	p := &countingProxy{n: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: endpoint})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.n[r.Method]++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return p, strings.TrimPrefix(srv.URL, "http://")
}

// testGet: a whole object comes back in one GET request (no HEAD first), an object over the
// limit is ErrTooLarge without its body being read, a missing one ErrNotFound.
func testGet(t *testing.T, cfg objstore.Config) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	proxy, addr := startProxy(t, cfg.Endpoint)
	cfg.Endpoint = addr
	st, err := objstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bucket := "gettest"
	if err := st.EnsureBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 15000) // 240 kB, a 1080p JPEG's size
	if err := st.Put(ctx, bucket, "f/1.jpg", data, "image/jpeg"); err != nil {
		t.Fatal(err)
	}
	proxy.counts()

	for _, max := range []int64{int64(len(data)), 10 << 20} {
		got, err := st.Get(ctx, bucket, "f/1.jpg", max)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("get (limit %d): %d bytes, %v; want the %d bytes put", max, len(got), err, len(data))
		}
		if c := proxy.counts(); c[http.MethodGet] != 1 || len(c) != 1 {
			t.Errorf("get (limit %d): requests %v, want one GET", max, c)
		}
	}
	if _, err := st.Get(ctx, bucket, "f/1.jpg", int64(len(data))-1); !errors.Is(err, objstore.ErrTooLarge) {
		t.Errorf("get over the limit: %v, want ErrTooLarge", err)
	}
	if _, err := st.Get(ctx, bucket, "f/missing.jpg", 1<<20); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("get of a missing object: %v, want ErrNotFound", err)
	}
	if _, err := st.Get(ctx, bucket, "", 1<<20); !errors.Is(err, objstore.ErrInvalidName) {
		t.Errorf("get of an empty key: %v, want ErrInvalidName", err)
	}
}
