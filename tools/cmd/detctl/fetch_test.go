package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// TestFetch exercises the real download code against a local server: sha256 checked, cached,
// and a mismatch refused.
func TestFetch(t *testing.T) {
	body := []byte("pretend this is an onnx model")
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	dir := t.TempDir()
	a := asset{"m.onnx", srv.URL + "/m.onnx", digest(body)}
	p, err := fetch(context.Background(), a, dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != string(body) {
		t.Fatal("content")
	}
	if _, err := fetch(context.Background(), a, dir); err != nil || hits != 1 {
		t.Fatalf("second fetch: %v, %d downloads (want the cache)", err, hits)
	}
	bad := asset{"n.onnx", srv.URL + "/n.onnx", strings.Repeat("0", 64)}
	if _, err := fetch(context.Background(), bad, dir); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("digest mismatch: %v", err)
	}
	if _, err := os.Stat(dir + "/n.onnx"); err == nil {
		t.Fatal("a file failing its digest was cached")
	}
	if _, err := fetch(context.Background(), asset{"x", srv.URL + "/missing", ""}, dir); err == nil {
		t.Fatal("404 accepted")
	}
}
