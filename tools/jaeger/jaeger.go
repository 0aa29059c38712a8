// Package jaeger reads traces from Jaeger's query API (the HTTP JSON API of Jaeger v1 and v2,
// /api/traces) and draws them as a terminal waterfall: what `detctl trace` prints and what the
// integration tests check a frame's trace with.
package jaeger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/streamdet/streamdet/pkg/contract"
)

// MaxResponseBytes bounds what the client reads from Jaeger (a search returns whole traces).
const MaxResponseBytes = 32 << 20

// Client asks one Jaeger query service.
type Client struct {
	URL  string       // base URL, e.g. http://127.0.0.1:16686
	HTTP *http.Client // nil: a client with a 30 s timeout
}

// Span is one span of a trace.
type Span struct {
	ID, Parent string // hex; Parent empty for a root
	Service    string
	Name       string
	Start      time.Time
	Duration   time.Duration
	Tags       map[string]string
	Error      bool
}

// Trace is one trace's spans, in no particular order.
type Trace struct {
	ID    string
	Spans []Span
}

// ErrNotFound means Jaeger has no such trace (or none matched).
var ErrNotFound = errors.New("no trace found")

var traceIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// IsTraceID reports whether s is a W3C trace id (32 lowercase hex digits, not all zero).
func IsTraceID(s string) bool {
	return traceIDPattern.MatchString(s) && s != strings.Repeat("0", 32)
}

// Get returns the trace with this id.
func (c Client) Get(ctx context.Context, traceID string) (Trace, error) {
	if !IsTraceID(traceID) {
		return Trace{}, fmt.Errorf("trace id %q: want 32 hex digits", traceID)
	}
	ts, err := c.get(ctx, "/api/traces/"+traceID, nil)
	if err != nil {
		return Trace{}, err
	}
	return ts[0], nil
}

// FrameQuery finds the traces of one frame.
type FrameQuery struct {
	FrameID  string
	StreamID string        // optional: frame ids are unique per stream
	Service  string        // the service whose spans carry the ids; default ingest
	Lookback time.Duration // default one hour
	Limit    int           // default 20
}

// FindFrame returns the traces whose spans carry streamdet.frame_id = q.FrameID (and
// streamdet.stream_id = q.StreamID when set), newest first. A frame sent twice has two traces.
func (c Client) FindFrame(ctx context.Context, q FrameQuery) ([]Trace, error) {
	if err := contract.CheckID("frame id", q.FrameID); err != nil {
		return nil, err
	}
	tags := map[string]string{"streamdet.frame_id": q.FrameID}
	if q.StreamID != "" {
		if err := contract.CheckID("stream id", q.StreamID); err != nil {
			return nil, err
		}
		tags["streamdet.stream_id"] = q.StreamID
	}
	if q.Service == "" {
		q.Service = "ingest"
	}
	if q.Lookback <= 0 {
		q.Lookback = time.Hour
	}
	if q.Limit <= 0 {
		q.Limit = 20
	}
	tj, _ := json.Marshal(tags)
	end := time.Now()
	v := url.Values{
		"service": {q.Service}, "tags": {string(tj)}, "limit": {strconv.Itoa(q.Limit)},
		"start": {strconv.FormatInt(end.Add(-q.Lookback).UnixMicro(), 10)}, "end": {strconv.FormatInt(end.UnixMicro(), 10)},
	}
	ts, err := c.get(ctx, "/api/traces", v)
	if err != nil {
		return nil, err
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Start().After(ts[j].Start()) })
	return ts, nil
}

// Start is when the trace's first span started.
func (t Trace) Start() time.Time {
	var s time.Time
	for _, sp := range t.Spans {
		if s.IsZero() || sp.Start.Before(s) {
			s = sp.Start
		}
	}
	return s
}

// Services lists the services with spans in the trace, in order of their first span.
func (t Trace) Services() []string {
	spans := append([]Span(nil), t.Spans...)
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].Start.Before(spans[j].Start) })
	var out []string
	seen := map[string]bool{}
	for _, s := range spans {
		if !seen[s.Service] {
			seen[s.Service] = true
			out = append(out, s.Service)
		}
	}
	return out
}

// Span returns the span with this id.
func (t Trace) Span(id string) (Span, bool) {
	for _, s := range t.Spans {
		if s.ID == id {
			return s, true
		}
	}
	return Span{}, false
}

// Ancestors returns the services of s's ancestors, nearest first.
func (t Trace) Ancestors(s Span) []string {
	var out []string
	for i := 0; s.Parent != "" && i < len(t.Spans); i++ {
		p, ok := t.Span(s.Parent)
		if !ok {
			break
		}
		out = append(out, p.Service)
		s = p
	}
	return out
}

func (c Client) get(ctx context.Context, path string, q url.Values) ([]Trace, error) {
	u, err := url.Parse(strings.TrimRight(c.URL, "/") + path)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("jaeger URL %q: want http(s)://host:port", c.URL)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking jaeger: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading jaeger's answer: %w", err)
	}
	if len(body) > MaxResponseBytes {
		return nil, fmt.Errorf("jaeger's answer exceeds %d bytes", MaxResponseBytes)
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, ErrNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jaeger %s: %s", resp.Status, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	ts, err := Decode(body)
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, ErrNotFound
	}
	return ts, nil
}

// wire is the query API's JSON (Jaeger's UI model).
type wire struct {
	Data []struct {
		TraceID string `json:"traceID"`
		Spans   []struct {
			SpanID        string `json:"spanID"`
			OperationName string `json:"operationName"`
			References    []struct {
				RefType string `json:"refType"`
				SpanID  string `json:"spanID"`
			} `json:"references"`
			StartTime int64  `json:"startTime"` // µs since the epoch
			Duration  int64  `json:"duration"`  // µs
			ProcessID string `json:"processID"`
			Tags      []struct {
				Key   string `json:"key"`
				Value any    `json:"value"`
			} `json:"tags"`
		} `json:"spans"`
		Processes map[string]struct {
			ServiceName string `json:"serviceName"`
		} `json:"processes"`
	} `json:"data"`
	Errors []struct {
		Msg string `json:"msg"`
	} `json:"errors"`
}

// Decode reads a query API answer.
func Decode(b []byte) ([]Trace, error) {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("decoding jaeger's answer: %w", err)
	}
	if len(w.Errors) > 0 && len(w.Data) == 0 {
		return nil, fmt.Errorf("jaeger: %s", w.Errors[0].Msg)
	}
	out := make([]Trace, 0, len(w.Data))
	for _, d := range w.Data {
		t := Trace{ID: d.TraceID}
		for _, s := range d.Spans {
			sp := Span{
				ID: s.SpanID, Name: s.OperationName, Service: d.Processes[s.ProcessID].ServiceName,
				Start: time.UnixMicro(s.StartTime), Duration: time.Duration(s.Duration) * time.Microsecond,
				Tags: map[string]string{},
			}
			for _, r := range s.References {
				if r.RefType == "CHILD_OF" || (sp.Parent == "" && r.RefType == "FOLLOWS_FROM") {
					sp.Parent = r.SpanID
				}
			}
			for _, tg := range s.Tags {
				sp.Tags[tg.Key] = fmt.Sprint(tg.Value)
			}
			sp.Error = sp.Tags["error"] == "true" || sp.Tags["otel.status_code"] == "ERROR"
			t.Spans = append(t.Spans, sp)
		}
		out = append(out, t)
	}
	return out, nil
}
