package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/kafkax"
	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/pkg/telemetry"
	"github.com/streamdet/streamdet/pkg/testenv"
)

type fixture struct {
	in      *Ingester
	store   *objstore.Store
	brokers []string
	dog     []byte
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	brokers := testenv.FakeKafka(t, "t.frames", "t.dlq")
	store, _ := testenv.FakeS3(t, "frames", "uploads", "deadletters")
	kc := kafkax.Config{Brokers: brokers, MaxMessageBytes: 10 << 20, TopicPrefix: "t"}
	dlq, _ := kc.Writer("t.dlq")
	frames, _ := kc.Writer("t.frames")
	t.Cleanup(func() { dlq.Close(); frames.Close() })
	stage, err := pipeline.New("ingest", telemetry.Discard(), service.NewHealth(), pipeline.KafkaProducer(dlq))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.EventBuckets, cfg.Limits.MaxBytes = []string{"uploads"}, 1000000
	dog, err := os.ReadFile(testenv.Shared(t, "images", "dog.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	return fixture{in: New(cfg, stage, store, pipeline.KafkaProducer(frames)), store: store, brokers: brokers, dog: dog}
}

func (f fixture) refs(t *testing.T, n int) []contract.FrameRef {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []contract.FrameRef
	for _, m := range testenv.ReadTopic(ctx, t, f.brokers, "t.frames", n) {
		var r contract.FrameRef
		if err := json.Unmarshal(m.Value, &r); err != nil {
			t.Fatal(err)
		}
		if string(m.Key) != r.StreamID {
			t.Errorf("frame reference keyed %q for stream %q", m.Key, r.StreamID)
		}
		out = append(out, r)
	}
	return out
}

func reason(err error) contract.Reason {
	var rej *pipeline.Reject
	if errors.As(err, &rej) {
		return rej.Reason
	}
	return ""
}

func TestHTTPUpload(t *testing.T) {
	f := newFixture(t)
	tokens := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(tokens, []byte("cams tok-cams-0123456789 cam-*\n"), 0o600)
	tk, err := service.LoadTokens(tokens)
	if err != nil {
		t.Fatal(err)
	}
	h := (&service.Authenticator{Mode: service.AuthToken, Tokens: tk}).Wrap(f.in)
	post := func(stream, frame string, body []byte, hdr map[string]string) (int, map[string]string) {
		req := httptest.NewRequest("POST", "/v1/frames", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok-cams-0123456789")
		req.Header.Set("X-Stream-Id", stream)
		req.Header.Set("X-Frame-Id", frame)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		out := map[string]string{}
		json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out
	}
	code, resp := post("cam-1", "f-1", f.dog, map[string]string{"X-Capture-Time": "2026-11-30T10:00:00Z", "X-Sequence": "7"})
	if code != http.StatusAccepted || resp["frame_id"] != "f-1" || resp["stream_id"] != "cam-1" {
		t.Fatalf("good upload: %d %v", code, resp)
	}
	if b, err := f.store.Get(context.Background(), resp["bucket"], resp["key"], 1<<20); err != nil || !bytes.Equal(b, f.dog) {
		t.Fatalf("stored frame: %v", err)
	}
	refs := f.refs(t, 1)
	if len(refs) != 1 || refs[0].Sequence != 7 || !refs[0].CaptureTime.Equal(time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)) || refs[0].Width != 768 {
		t.Fatalf("frame reference %+v", refs)
	}
	for _, tc := range []struct {
		name, stream, frame string
		body                []byte
		hdr                 map[string]string
		status              int
		reason              string
	}{
		{"not an image", "cam-1", "f-2", []byte("hello"), nil, 415, "unsupported_format"},
		{"empty", "cam-1", "f-3", nil, nil, 400, "empty"},
		{"over the limit", "cam-1", "f-4", bytes.Repeat([]byte{0xFF}, 1_200_000), nil, 413, "too_large"},
		{"stream traversal", "a/../b", "f-5", f.dog, nil, 400, "invalid_identifier"},
		{"frame id of 1 KiB", "cam-1", strings.Repeat("f", 1024), f.dog, nil, 400, "invalid_identifier"},
		{"outside the token's scope", "door-1", "f-6", f.dog, nil, 403, "forbidden"},
		{"bad capture time", "cam-1", "f-7", f.dog, map[string]string{"X-Capture-Time": "yesterday"}, 400, "schema_violation"},
		{"bad sequence", "cam-1", "f-8", f.dog, map[string]string{"X-Sequence": "-1"}, 400, "schema_violation"},
	} {
		if code, resp := post(tc.stream, tc.frame, tc.body, tc.hdr); code != tc.status || resp["reason"] != tc.reason {
			t.Errorf("%s: %d %v, want %d %s", tc.name, code, resp, tc.status, tc.reason)
		}
	}
	// Without credentials.
	req := httptest.NewRequest("POST", "/v1/frames", bytes.NewReader(f.dog))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("no token: %d", rec.Code)
	}
}

func TestHandleRaw(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.in.HandleRaw(ctx, kafka.Message{Topic: "t.frames.raw", Partition: 2, Offset: 9, Key: []byte("cam-9"), Value: f.dog}); err != nil {
		t.Fatal(err)
	}
	with := func(h ...string) []kafka.Header {
		var hs []kafka.Header
		for i := 0; i+1 < len(h); i += 2 {
			hs = append(hs, kafka.Header{Key: h[i], Value: []byte(h[i+1])})
		}
		return hs
	}
	if err := f.in.HandleRaw(ctx, kafka.Message{Key: []byte("cam-9"), Value: f.dog, Headers: with("ce_id", "given-1", "ce_subject", "cam-s", "ce_sequence", "5")}); err != nil {
		t.Fatal(err)
	}
	refs := f.refs(t, 2)
	if len(refs) != 2 {
		t.Fatalf("%d references", len(refs))
	}
	byID := map[string]contract.FrameRef{}
	for _, r := range refs {
		byID[r.FrameID] = r
	}
	if r := byID[contract.DerivedFrameID("t.frames.raw", 2, 9)]; r.StreamID != "cam-9" {
		t.Errorf("derived frame id: %+v", refs)
	}
	if r := byID["given-1"]; r.StreamID != "cam-s" || r.Sequence != 5 {
		t.Errorf("headers: %+v", r)
	}
	for name, m := range map[string]kafka.Message{
		"traversal key":   {Key: []byte("a/../b"), Value: f.dog},
		"control bytes":   {Key: []byte("cam\x00"), Value: f.dog},
		"1 KiB frame id":  {Key: []byte("cam-1"), Value: f.dog, Headers: with("ce_id", strings.Repeat("i", 1024))},
		"subject escapes": {Key: []byte("cam-1"), Value: f.dog, Headers: with("ce_subject", "../etc")},
	} {
		if r := reason(f.in.HandleRaw(ctx, m)); r != contract.ReasonInvalidID {
			t.Errorf("%s: reason %q", name, r)
		}
	}
	if r := reason(f.in.HandleRaw(ctx, kafka.Message{Key: []byte("cam-1"), Value: []byte("junk")})); r != contract.ReasonUnsupportedFormat {
		t.Errorf("junk: %q", r)
	}
}

func TestHandleEvent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.store.Put(ctx, "uploads", "gate-cam/0001.jpg", f.dog, "image/jpeg"); err != nil {
		t.Fatal(err)
	}
	event := func(name, bucket, key string, size int) kafka.Message {
		return kafka.Message{Value: []byte(fmt.Sprintf(`{"Records":[{"eventName":%q,"eventTime":"2026-11-30T12:00:00Z","s3":{"bucket":{"name":%q},"object":{"key":%q,"size":%d,"eTag":"e1"}}}]}`, name, bucket, key, size))}
	}
	if err := f.in.HandleEvent(ctx, event("s3:ObjectCreated:Put", "uploads", "gate-cam/0001.jpg", len(f.dog))); err != nil {
		t.Fatal(err)
	}
	if err := f.in.HandleEvent(ctx, event("s3:ObjectRemoved:Delete", "uploads", "gate-cam/0001.jpg", 0)); err != nil {
		t.Fatal(err) // ignored
	}
	refs := f.refs(t, 1)
	if len(refs) != 1 || refs[0].StreamID != "gate-cam" || !strings.HasPrefix(refs[0].FrameID, "s3-") {
		t.Fatalf("references %+v", refs)
	}
	for _, tc := range []struct {
		name string
		m    kafka.Message
		want contract.Reason
	}{
		{"not JSON", kafka.Message{Value: []byte("{")}, contract.ReasonSchemaViolation},
		{"no records", kafka.Message{Value: []byte(`{"Records":[]}`)}, contract.ReasonSchemaViolation},
		{"a bucket ingest may not read", event("s3:ObjectCreated:Put", "frames", "x/1.jpg", 10), contract.ReasonForbidden},
		{"key escapes", event("s3:ObjectCreated:Put", "uploads", "..%2F..%2Fetc/passwd", 10), contract.ReasonInvalidID},
		{"object gone", event("s3:ObjectCreated:Put", "uploads", "gate-cam/gone.jpg", 10), contract.ReasonMissingObject},
		{"over the limit", event("s3:ObjectCreated:Put", "uploads", "gate-cam/big.jpg", 2_000_000), contract.ReasonTooLarge},
	} {
		if r := reason(f.in.HandleEvent(ctx, tc.m)); r != tc.want && pipeline.Classify(f.in.HandleEvent(ctx, tc.m)).Reason != tc.want {
			t.Errorf("%s: reason %q, want %q", tc.name, r, tc.want)
		}
	}
}

func TestConfig(t *testing.T) {
	c := DefaultConfig()
	if c.Server.Addr != ":8081" || c.Concurrency != 8 || c.Limits.MaxBytes != 8<<20 || c.Server.Auth != service.AuthToken || c.DrainTimeout != 20*time.Second ||
		c.CPUPolicy != service.CPUBatch {
		t.Fatalf("defaults: %+v", c)
	}
	good := map[string]string{"STREAMDET_KAFKA_BROKERS": "127.0.0.1:9092", "STREAMDET_MINIO_ENDPOINT": "127.0.0.1:9000",
		"STREAMDET_MINIO_ACCESS_KEY": "access", "STREAMDET_MINIO_SECRET_KEY": "secret-key", "STREAMDET_INGEST_AUTH": "none"}
	if _, err := ConfigFromEnv(envconf.Map(good)); err != nil {
		t.Fatalf("a good environment: %v", err)
	}
	_, err := ConfigFromEnv(envconf.Map(map[string]string{"STREAMDET_INGEST_CONCURRENCY": "0", "STREAMDET_MAX_FRAME_BYTES": "x",
		"STREAMDET_INGEST_EVENT_BUCKETS": "frames", "STREAMDET_DRAIN_TIMEOUT": "1h", "STREAMDET_CPU_POLICY": "fifo"}))
	for _, want := range []string{"STREAMDET_INGEST_CONCURRENCY 0", "STREAMDET_MAX_FRAME_BYTES", "frames bucket", "STREAMDET_KAFKA_BROKERS",
		"STREAMDET_MINIO_ENDPOINT", "STREAMDET_INGEST_AUTH=token needs STREAMDET_INGEST_TOKENS_FILE", "STREAMDET_DRAIN_TIMEOUT 1h0m0s",
		`STREAMDET_CPU_POLICY "fifo"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}
