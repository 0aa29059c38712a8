//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/notification"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/testenv"
)

// TestIntegrationIngestPaths covers ingest's other entry points: HTTP upload (raw body and
// multipart), refusals over HTTP, and bucket notifications for objects uploaded straight to
// object storage.
func TestIntegrationIngestPaths(t *testing.T) {
	st := testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := fmt.Sprintf("ing%d", time.Now().UnixNano()%1e9)
	testenv.Topics(t, st.KafkaBrokers, 1, runTopics(run, "frames.raw", "frames", "dlq")...)
	p := startService(t, "ingest", []string{"STREAMDET_TOPIC_PREFIX=" + run, "STREAMDET_EVENTS_TOPIC=streamdet.frames.events", "STREAMDET_FRAMES_BUCKET=" + run + "-frames",
		"STREAMDET_INGEST_GROUP=" + run, "STREAMDET_MAX_FRAME_BYTES=1000000", "OTEL_TRACES_EXPORTER=none",
		"STREAMDET_INGEST_EVENT_BUCKETS=" + run + "-uploads"})
	frames := follow(ctx, t, st.KafkaBrokers, run+".frames")
	dog, _ := os.ReadFile(testenv.Shared(t, "images", "dog.jpg"))
	url := "http://" + p.addr + "/v1/frames"

	// Raw body with headers.
	req, _ := http.NewRequest("POST", url, bytes.NewReader(dog))
	req.Header.Set("Content-Type", "image/jpeg")
	req.Header.Set("X-Stream-Id", "door-cam")
	req.Header.Set("X-Frame-Id", "upload-1")
	req.Header.Set("X-Capture-Time", "2026-11-27T10:00:00Z")
	resp := do(t, req, http.StatusAccepted)
	if resp["frame_id"] != "upload-1" || resp["stream_id"] != "door-cam" {
		t.Errorf("raw upload: %v", resp)
	}

	// Multipart with fields.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("stream_id", "yard-cam")
	mw.WriteField("sequence", "7")
	fw, _ := mw.CreateFormFile("frame", "dog.jpg")
	fw.Write(dog)
	mw.Close()
	req, _ = http.NewRequest("POST", url, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp = do(t, req, http.StatusAccepted)
	multipartID := resp["frame_id"]
	if multipartID == "" || resp["stream_id"] != "yard-cam" {
		t.Errorf("multipart upload: %v", resp)
	}

	// Refusals, each with its reason and status.
	for _, tc := range []struct {
		body   []byte
		status int
		reason string
	}{
		{[]byte("hello"), http.StatusUnsupportedMediaType, "unsupported_format"},
		{nil, http.StatusBadRequest, "empty"},
		{bytes.Repeat([]byte{0xFF}, 1200000), http.StatusRequestEntityTooLarge, "too_large"},
		{testenv.PNGDeclaring(100000, 100000), http.StatusRequestEntityTooLarge, "too_large"},
		{dog[:300], http.StatusBadRequest, "corrupt_image"},
	} {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(tc.body))
		if r := do(t, req, tc.status); r["reason"] != tc.reason {
			t.Errorf("refusal: %v, want reason %s", r, tc.reason)
		}
	}

	// An object uploaded straight to a bucket whose notifications MinIO publishes natively to
	// Kafka (the local stack configures the target arn:minio:sqs::STREAMDET:kafka, topic
	// streamdet.frames.events, which this ingest instance consumes).
	mc, _ := minio.New(st.MinIOEndpoint, &minio.Options{Creds: credentials.NewStaticV4(st.MinIOAccessKey, st.MinIOSecretKey, "")})
	up := run + "-uploads"
	if err := mc.MakeBucket(ctx, up, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	q := notification.NewConfig(notification.NewArn("minio", "sqs", "", "STREAMDET", "kafka"))
	q.AddEvents(notification.ObjectCreatedAll)
	nc := notification.Configuration{}
	nc.AddQueue(q)
	if err := mc.SetBucketNotification(ctx, up, nc); err != nil {
		t.Fatalf("bucket notification to Kafka: %v", err)
	}
	if _, err := mc.PutObject(ctx, up, "gate-cam/0001.jpg", bytes.NewReader(dog), int64(len(dog)), minio.PutObjectOptions{ContentType: "image/jpeg"}); err != nil {
		t.Fatal(err)
	}

	// Three distinct frames arrive.
	deadline := time.Now().Add(time.Minute)
	for {
		refs := map[string]contract.FrameRef{}
		for _, m := range frames.snapshot() {
			var r contract.FrameRef
			json.Unmarshal(m.Value, &r)
			refs[r.FrameID] = r
		}
		gate := 0
		for id, r := range refs {
			if strings.HasPrefix(id, "s3-") && r.StreamID == "gate-cam" && r.Width == 768 {
				gate++
			}
		}
		if refs["upload-1"].StreamID == "door-cam" && refs[multipartID].Sequence == 7 && gate == 1 {
			if !refs["upload-1"].CaptureTime.Equal(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)) || refs["upload-1"].Width != 768 {
				t.Errorf("upload-1: %+v", refs["upload-1"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("frame references after a minute: %+v", refs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// do sends req (with the e2e bearer token unless it carries an Authorization header already)
// and checks the status.
func do(t *testing.T, req *http.Request, status int) map[string]string {
	t.Helper()
	if req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+e2eToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]string{}
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != status {
		t.Errorf("%s %s: status %d %v, want %d", req.Method, req.URL, resp.StatusCode, out, status)
	}
	return out
}
