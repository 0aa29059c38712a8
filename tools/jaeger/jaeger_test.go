package jaeger

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// testdata/frame-trace.json is a real answer of the local stack's Jaeger (v2, built from
// v1.76.0) to a search for one frame: GET /api/traces?service=ingest&tags={"streamdet.frame_id":…}.
func readTrace(t testing.TB) []byte {
	b, err := os.ReadFile("testdata/frame-trace.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeRealAnswer(t *testing.T) {
	ts, err := Decode(readTrace(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 {
		t.Fatalf("%d traces", len(ts))
	}
	tr := ts[0]
	if !IsTraceID(tr.ID) || len(tr.Spans) < 12 {
		t.Fatalf("trace %q with %d spans", tr.ID, len(tr.Spans))
	}
	if got := strings.Join(tr.Services(), ","); got != "ingest,detect,sink" {
		t.Fatalf("services %s", got)
	}
	roots := 0
	for _, s := range tr.Spans {
		if s.Parent == "" {
			roots++
			if s.Service != "ingest" {
				t.Errorf("root span from %s", s.Service)
			}
			continue
		}
		if _, ok := tr.Span(s.Parent); !ok {
			t.Errorf("span %s %q: parent %s not in the trace", s.Service, s.Name, s.Parent)
		}
		if s.Service == "sink" {
			if a := strings.Join(tr.Ancestors(s), ","); !strings.Contains(a, "detect") || !strings.HasSuffix(a, "ingest") {
				t.Errorf("sink span %q: ancestors %s", s.Name, a)
			}
		}
	}
	if roots != 1 {
		t.Errorf("%d roots", roots)
	}

	var out bytes.Buffer
	tr.Waterfall(&out, 30)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(tr.Spans)+1 || !strings.HasPrefix(lines[0], "trace "+tr.ID) || !strings.Contains(lines[0], "ingest → detect → sink") {
		t.Fatalf("waterfall:\n%s", out.String())
	}
	// Tree order: the root first, every child below its parent, indented one step further.
	if !strings.HasPrefix(lines[1], "ingest  process ") {
		t.Errorf("first row is not the root:\n%s", out.String())
	}
	// detect's consumer span is a grandchild of the root; its steps one level below, named with
	// their version and arm.
	if !strings.Contains(out.String(), "detect      process ") || !strings.Contains(out.String(), "detect        inference [primary v1]") ||
		!strings.Contains(out.String(), "detect        inference [shadow v2]") {
		t.Errorf("tree order or labels:\n%s", out.String())
	}
	for _, l := range lines[1:] {
		if !strings.Contains(l, "█") || strings.Count(l, "|") != 2 {
			t.Errorf("row without a bar: %q", l)
		}
	}
	t.Logf("\n%s", out.String())
}

func TestClient(t *testing.T) {
	answer := readTrace(t)
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.String())
		switch {
		case r.URL.Path == "/api/traces" && strings.Contains(r.URL.Query().Get("tags"), `"streamdet.frame_id":"f-1"`):
			w.Write(answer)
		case r.URL.Path == "/api/traces":
			w.Write([]byte(`{"data":[],"total":0,"limit":0,"offset":0,"errors":null}`))
		case r.URL.Path == "/api/traces/0af7651916cd43dd8448eb211c80319c":
			w.Write(answer)
		case r.URL.Path == "/api/traces/00000000000000000000000000000001":
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"data":null,"errors":[{"code":404,"msg":"trace not found"}]}`))
		case r.URL.Path == "/api/traces/00000000000000000000000000000002":
			w.Write(bytes.Repeat([]byte(" "), MaxResponseBytes+10))
		default:
			http.Error(w, "boom", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := Client{URL: srv.URL}

	ts, err := c.FindFrame(ctx, FrameQuery{FrameID: "f-1", StreamID: "cam-1", Lookback: time.Minute})
	if err != nil || len(ts) != 1 {
		t.Fatalf("FindFrame: %d traces, %v", len(ts), err)
	}
	if q := asked[len(asked)-1]; !strings.Contains(q, "service=ingest") || !strings.Contains(q, "streamdet.stream_id") {
		t.Errorf("asked %s", q)
	}
	if _, err := c.FindFrame(ctx, FrameQuery{FrameID: "f-2"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("no match: %v", err)
	}
	if _, err := c.Get(ctx, "0af7651916cd43dd8448eb211c80319c"); err != nil {
		t.Errorf("Get: %v", err)
	}
	for id, want := range map[string]string{
		"00000000000000000000000000000001": ErrNotFound.Error(),
		"00000000000000000000000000000002": "exceeds",
		"00000000000000000000000000000003": "500",
		"../../etc/passwd":                 "want 32 hex digits",
		"00000000000000000000000000000000": "want 32 hex digits",
	} {
		if _, err := c.Get(ctx, id); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Get %s: %v, want %q", id, err, want)
		}
	}
	for _, q := range []FrameQuery{{FrameID: "a/b"}, {FrameID: ".."}, {FrameID: "ok", StreamID: "x y"}} {
		if _, err := c.FindFrame(ctx, q); err == nil {
			t.Errorf("FindFrame %+v: no error", q)
		}
	}
	if _, err := (Client{URL: "file:///etc"}).Get(ctx, "0af7651916cd43dd8448eb211c80319c"); err == nil {
		t.Error("a file URL was accepted")
	}
}

// FuzzDecodeWaterfall: whatever Jaeger (or something answering in its place) returns, decoding
// and drawing it neither panics nor loops (a span its own ancestor, missing parents, huge times).
func FuzzDecodeWaterfall(f *testing.F) {
	f.Add(readTrace(f))
	f.Add([]byte(`{"data":[{"traceID":"a","spans":[{"spanID":"1","references":[{"refType":"CHILD_OF","spanID":"2"}]},{"spanID":"2","references":[{"refType":"CHILD_OF","spanID":"1"}]}]}]}`))
	f.Add([]byte(`{"data":[{"traceID":"a","spans":[{"spanID":"1","startTime":-9223372036854775808,"duration":9223372036854775807}]}]}`))
	f.Add([]byte(`{"errors":[{"msg":"x"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := Decode(b)
		if err != nil {
			return
		}
		for _, tr := range ts {
			var out bytes.Buffer
			tr.Waterfall(&out, 20)
			for _, s := range tr.Spans {
				tr.Ancestors(s)
			}
		}
	})
}
