package service

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeTokens(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func TestTokens(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	writeTokens(t, file, "# producers\ncams  tok-cams-0123456789 cam-*,door-1\nviewer tok-view-0123456789\n")
	tk, err := LoadTokens(file)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tk.now = func() time.Time { return now }
	p := tk.Lookup("tok-cams-0123456789")
	if p == nil || p.Name != "cams" || !p.MayUse("cam-7") || !p.MayUse("door-1") || p.MayUse("door-2") || p.MayUse("yard") {
		t.Fatalf("scoped token: %+v", p)
	}
	if v := tk.Lookup("tok-view-0123456789"); v == nil || !v.MayUse("anything") {
		t.Fatalf("unscoped token: %+v", v)
	}
	for _, bad := range []string{"", "tok-cams-012345678", "tok-cams-0123456789x", "TOK-CAMS-0123456789"} {
		if tk.Lookup(bad) != nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// Revoked and added without a restart (the file is re-read at most once a second).
	writeTokens(t, file, "new tok-new-00000000000000\n")
	now = now.Add(2 * time.Second)
	if tk.Lookup("tok-cams-0123456789") != nil || tk.Lookup("tok-new-00000000000000") == nil {
		t.Fatal("tokens file not reloaded")
	}
	// A broken edit keeps the last good tokens, and says so.
	writeTokens(t, file, "broken short\n")
	now = now.Add(2 * time.Second)
	if tk.Lookup("tok-new-00000000000000") == nil || tk.Err() == nil {
		t.Fatal("a broken tokens file should keep the last good tokens and report an error")
	}
	if _, err := ParseTokens([]byte("a tooshort\n")); err == nil {
		t.Error("a token under 16 characters was accepted")
	}
}

func serve(t *testing.T, c ServerConfig) *Server {
	t.Helper()
	auth, err := c.Authenticator()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Listen(c, auth, NewHealth(), http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	s.Handle("POST /data", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			WriteError(w, http.StatusBadRequest, "read", "body")
			return
		}
		fmt.Fprintf(w, "%s %d", PrincipalFrom(r.Context()).Name, n)
	}))
	return s
}

func TestServerAuthAndLimits(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	writeTokens(t, file, "cams tok-cams-0123456789 cam-*\n")
	c := ServerConfig{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Auth: AuthToken, TokensFile: file,
		ReadTimeout: time.Second, WriteTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second, MaxConcurrent: 4}
	if err := c.Validate("ingest", true); err != nil {
		t.Fatal(err)
	}
	if err := (ServerConfig{Auth: AuthToken, ReadTimeout: time.Second, WriteTimeout: time.Second, IdleTimeout: time.Second, MaxConcurrent: 1}).Validate("ingest", true); err == nil {
		t.Error("token auth without a tokens file validated")
	}
	s := serve(t, c)
	post := func(auth string) (int, map[string]string, string) {
		req, _ := http.NewRequest("POST", "http://"+s.Addr()+"/data", strings.NewReader("hello"))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]string
		json.Unmarshal(b, &m)
		return resp.StatusCode, m, string(b)
	}
	if code, m, _ := post(""); code != 401 || m["reason"] != "unauthenticated" {
		t.Errorf("no token: %d %v", code, m)
	}
	if code, _, _ := post("Bearer wrong-token-0123456789"); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	if code, _, body := post("Bearer tok-cams-0123456789"); code != 200 || body != "cams 5" {
		t.Errorf("good token: %d %s", code, body)
	}
	req, _ := http.NewRequest("POST", "http://"+s.Addr()+"/data", strings.NewReader("x"))
	req.SetBasicAuth("anyone", "tok-cams-0123456789") // a browser's way
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("basic auth with the token: %v %v", resp, err)
	}
	// Health and metrics on the admin listener, not on the data listener.
	if resp, err := http.Get("http://" + s.AdminAddr() + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("admin /healthz: %v %v", resp, err)
	}
	if resp, err := http.Get("http://" + s.Addr() + "/healthz"); err != nil || resp.StatusCode != 401 {
		t.Errorf("data listener /healthz without a token: %v %v", resp, err)
	}

	// A body trickled at 1 byte a second is cut off by the read timeout, and the slot is freed.
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /data HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-cams-0123456789\r\nContent-Length: 1000000\r\n\r\n")
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		br := bufio.NewReader(conn)
		io.Copy(io.Discard, br)
	}()
	for i := 0; i < 30; i++ {
		if _, err := conn.Write([]byte("x")); err != nil {
			break
		}
		select {
		case <-closed:
			i = 30
		case <-time.After(time.Second):
		}
	}
	<-closed
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a trickled body held the connection for %s with a 1s read timeout", d)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	release := make(chan struct{})
	h := limit(2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	srv := &http.Server{Handler: h}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Close()
	for i := 0; i < 2; i++ {
		go http.Get("http://" + ln.Addr().String() + "/")
	}
	time.Sleep(200 * time.Millisecond)
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third request over a limit of 2: %v %v", resp, err)
	}
	close(release)
}
