package sink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/pkg/telemetry"
	"github.com/streamdet/streamdet/pkg/testenv"
)

func TestFIFOSetForgetsOldest(t *testing.T) {
	s := newFIFOSet(3)
	for i := 0; i < 5; i++ {
		s.add(fmt.Sprint(i))
		s.add(fmt.Sprint(i)) // adding twice keeps one slot
	}
	for i, want := range []bool{false, false, true, true, true} {
		if s.has(fmt.Sprint(i)) != want {
			t.Errorf("has(%d) = %v, want %v", i, !want, want)
		}
	}
	s.remove("4")
	s.add("4") // re-added after a removal: its old slot must not evict it later
	s.add("5")
	s.add("6")
	if !s.has("4") || !s.has("5") || !s.has("6") || s.has("3") {
		t.Errorf("after remove and re-add: %v", s.keys)
	}
}

func TestObjectKeyIsStableAndPartitioned(t *testing.T) {
	a := objectKey("2026-11-27", "cam-1", 2, 1234)
	if a != "dt=2026-11-27/stream=cam-1/p002-00000000000000001234.ndjson" || a != objectKey("2026-11-27", "cam-1", 2, 1234) {
		t.Fatalf("key %q", a)
	}
}

// fakeS3 is an in-process S3 API (the integration tests use MinIO) with the detections bucket.
func fakeS3(t *testing.T) *objstore.Store {
	st, _ := testenv.FakeS3(t, "detections")
	return st
}

func newTestSink(t *testing.T, st *objstore.Store, batchRows int) *Sink {
	t.Helper()
	stage, err := pipeline.New("sink", telemetry.Discard(), service.NewHealth(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Group: "g", Bucket: "detections", BatchRows: batchRows, FlushInterval: time.Hour, DedupeKeys: 1000, JournalBatches: 4}
	return New(Options{Work: context.Background(), Config: cfg, Stage: stage, Store: st, Topic: "t.detections"})
}

// message is the detections message of (stream, frame) at a partition offset.
func message(stream, frame string, offset int64) (contract.Detections, []byte) {
	d := contract.Detections{
		FrameID: frame, StreamID: stream, CaptureTime: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC),
		Model: contract.Model{Name: "coco", Version: "1"}, Detections: []contract.Detection{},
	}
	b, _ := json.Marshal(d)
	return d, b
}

// deliver hands offsets [from, to) of partition 0 to the sink in batches of n rows, as the
// consumer would after assigning the partition at from. Offsets alternate between two streams
// that number their frames alike (frame i of cam-a and frame i of cam-b are different rows).
func deliver(t *testing.T, s *Sink, from, to int64, n int, dup map[int64]int64) {
	t.Helper()
	if err := s.Assigned(context.Background(), 0, from); err != nil {
		t.Fatal(err)
	}
	var batch []*row
	for o := from; o < to; o++ {
		src := o
		if d, ok := dup[o]; ok {
			src = d // an upstream duplicate of an earlier offset's row
		}
		stream := []string{"cam-a", "cam-b"}[src%2]
		det, raw := message(stream, fmt.Sprint(src/2), o)
		batch = append(batch, &row{key: dedupeKey(det), det: det, raw: raw, partition: 0, offset: o})
		if len(batch) == n || o == to-1 {
			s.flushMu.Lock()
			errs := s.write(batch)
			s.flushMu.Unlock()
			for r, err := range errs {
				if err != nil {
					t.Fatalf("offset %d: %v", r.offset, err)
				}
			}
			batch = nil
		}
	}
}

// rows counts each row identity in the sink's data files.
func rows(t *testing.T, st Store) map[string]int {
	t.Helper()
	out := map[string]int{}
	keys, err := st.List(context.Background(), "detections", "dt=")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		b, err := st.Get(context.Background(), "detections", k, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			var d contract.Detections
			if err := json.Unmarshal(line, &d); err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			out[dedupeKey(d)]++
		}
	}
	return out
}

func exactlyOnce(t *testing.T, st Store, n int) {
	t.Helper()
	got := rows(t, st)
	if len(got) != n {
		t.Errorf("%d distinct rows in the files, want %d", len(got), n)
	}
	for k, c := range got {
		if c != 1 {
			t.Errorf("row %q written %d times", k, c)
		}
	}
}

// TestExactlyOnceAcrossCrashes: each step is a new sink instance (empty memory) after a crash
// that lost the commits of what the previous instance wrote, with different batch boundaries
// each time. The files must hold every row exactly once after each recovery.
func TestExactlyOnceAcrossCrashes(t *testing.T) {
	st := fakeS3(t)
	// Instance 1 writes offsets 0..19 in batches of 7 and crashes before any commit.
	deliver(t, newTestSink(t, st, 7), 0, 20, 7, nil)
	exactlyOnce(t, st, 20)
	// Instance 2 gets the partition from offset 0 again (nothing was committed): it writes
	// 0..29 in batches of 4, and crashes having committed up to 12.
	deliver(t, newTestSink(t, st, 4), 0, 30, 4, nil)
	exactlyOnce(t, st, 30)
	// Instance 3 resumes at 12 (the commit of a batch that ended at 11), writes to 40 in one
	// batch, with offsets 35 and 38 upstream duplicates of rows 5 and 31.
	deliver(t, newTestSink(t, st, 100), 12, 40, 100, map[int64]int64{35: 5, 38: 31})
	exactlyOnce(t, st, 38)
	// Instance 4 resumes at 40 with a duplicate of a row written two instances ago: the
	// de-duplication set was seeded from the journal.
	deliver(t, newTestSink(t, st, 3), 40, 44, 3, map[int64]int64{41: 7})
	exactlyOnce(t, st, 41)
}

// TestTwoStreamsSameFrameIDs: two cameras that number their frames alike both keep every row.
func TestTwoStreamsSameFrameIDs(t *testing.T) {
	st := fakeS3(t)
	s := newTestSink(t, st, 50)
	deliver(t, s, 0, 300, 50, nil) // 150 frame ids, each on cam-a and cam-b
	exactlyOnce(t, st, 300)
}

// TestJournalTrimmedOnlyPastCommit: entries beyond the retention are removed only once committed.
func TestJournalTrimmedOnlyPastCommit(t *testing.T) {
	st := fakeS3(t)
	s := newTestSink(t, st, 2)
	deliver(t, s, 0, 20, 2, nil) // 10 entries, nothing committed
	if n := len(s.journal.entries[0]); n != 10 {
		t.Fatalf("%d entries kept with nothing committed, want 10", n)
	}
	s.committed = func(int) (int64, bool) { return 20, true }
	deliver(t, s, 20, 22, 2, nil)
	if n := len(s.journal.entries[0]); n != 4 {
		t.Fatalf("%d entries after the commit, want the retention of 4", n)
	}
}

// TestCrashBetweenJournalAndObjects: the journal entry of a batch was written, its objects were
// not. The rows must not count as written: a new instance writes them (nothing lost).
func TestCrashBetweenJournalAndObjects(t *testing.T) {
	st := fakeS3(t)
	deliver(t, newTestSink(t, st, 5), 0, 10, 5, nil)
	// A batch of offsets 10..14 journalled, then the crash.
	s := newTestSink(t, st, 5)
	e := &journalEntry{Partition: 0, First: 10, Last: 14}
	for o := int64(10); o < 15; o++ {
		det, _ := message([]string{"cam-a", "cam-b"}[o%2], fmt.Sprint(o/2), o)
		e.Rows = append(e.Rows, jrow{Offset: o, Key: dedupeKey(det), Object: 0})
	}
	e.Objects = []string{objectKey("2026-11-30", "cam-a", 0, 10)}
	if err := s.journal.write(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	deliver(t, newTestSink(t, st, 5), 10, 15, 5, nil)
	exactlyOnce(t, st, 15)
}

// TestViewBounded: the live view keeps at most MaxStreams streams, drops streams idle past the
// TTL, and serves its page with a script-restricting Content Security Policy.
func TestViewBounded(t *testing.T) {
	v := NewView(ViewConfig{MaxStreams: 3, TTL: time.Minute})
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	v.now = func() time.Time { return now }
	for i := 0; i < 10; i++ {
		v.keep(contract.Detections{StreamID: fmt.Sprintf("cam-%d", i)}, nil, map[string]any{"stream": fmt.Sprintf("cam-%d", i)})
		now = now.Add(time.Second)
	}
	if n := len(v.State()["streams"].([]map[string]any)); n != 3 {
		t.Fatalf("%d streams kept, want 3", n)
	}
	now = now.Add(2 * time.Minute)
	if s := v.State()["streams"]; s != nil && len(s.([]map[string]any)) != 0 {
		t.Fatalf("streams idle past the TTL still shown: %v", s)
	}
	rec := httptest.NewRecorder()
	v.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'sha256-") || strings.Contains(csp, "unsafe-inline' ;") {
		t.Fatalf("CSP %q", csp)
	}
}

// TestHandleAndFlush: rows handed to Handle return once their batch is written (by size or by
// age), a refused row is a Reject, and Close writes what is left.
func TestHandleAndFlush(t *testing.T) {
	st := fakeS3(t)
	s := newTestSink(t, st, 3)
	s.cfg.FlushInterval = 50 * time.Millisecond
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(runCtx) }()
	ctx := context.Background()
	if err := s.Assigned(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 7)
	for i := 0; i < 7; i++ {
		go func(i int) {
			_, raw := message("cam-h", fmt.Sprint(i), int64(i))
			errs <- s.Handle(ctx, kafka.Message{Partition: 0, Offset: int64(i), Value: raw})
		}(i)
	}
	for i := 0; i < 7; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []string{`{`, `{"frame_id":"a/../b","stream_id":"cam","model":{"name":"m","version":"1"}}`} {
		var rej *pipeline.Reject
		if err := s.Handle(ctx, kafka.Message{Value: []byte(bad)}); !errors.As(err, &rej) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	exactlyOnce(t, st, 7)
}

// TestViewRenders: the annotator reads only frames ingest wrote, stores one annotated JPEG per
// (stream, frame, model, version), and serves the latest per stream.
func TestViewRenders(t *testing.T) {
	st := fakeS3(t)
	ctx := context.Background()
	st.EnsureBucket(ctx, "frames")
	st.EnsureBucket(ctx, "annotated")
	dog, err := os.ReadFile(testenv.Shared(t, "images", "dog.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(dog)
	h := hex.EncodeToString(sum[:])
	st.Put(ctx, "frames", contract.FrameKey(h, ".jpg"), dog, "image/jpeg")
	v := NewView(ViewConfig{Store: st, FramesBucket: "frames", Bucket: "annotated", TraceURL: "http://jaeger/trace/{trace_id}"})
	d, _ := message("cam-v", "f-1", 0)
	d.Frame = contract.FrameRef{FrameID: "f-1", StreamID: "cam-v", Bucket: "frames", Key: contract.FrameKey(h, ".jpg"), SHA256: h, ContentType: "image/jpeg", Width: 768, Height: 576}
	d.TraceID = strings.Repeat("ab", 16)
	d.Detections = []contract.Detection{{Label: "dog", Score: 0.9, Box: [4]float32{10, 10, 200, 200}}}
	v.render(ctx, d)
	bad := d
	bad.StreamID, bad.FrameID = "cam-w", "f-2"
	bad.Frame.Bucket = "models" // not the frames bucket: never read
	v.render(ctx, bad)
	state := v.State()
	streams := state["streams"].([]map[string]any)
	if len(streams) != 1 || streams[0]["stream"] != "cam-v" || streams[0]["trace_url"] != "http://jaeger/trace/"+d.TraceID {
		t.Fatalf("streams %+v", streams)
	}
	if b, err := st.Get(ctx, "annotated", AnnotatedKey(d), 1<<20); err != nil || len(b) == 0 {
		t.Fatalf("annotated frame: %v", err)
	}
	rec := httptest.NewRecorder()
	v.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/frames/cam-v.jpg", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "image/jpeg" {
		t.Fatalf("frame: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	v.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/view", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "cam-v") {
		t.Fatalf("api: %d %s", rec.Code, rec.Body.String())
	}
	v.Offer(d)
	if len(v.queue) != 1 {
		t.Fatal("offer did not queue")
	}
}
