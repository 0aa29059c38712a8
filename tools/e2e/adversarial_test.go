//go:build integration

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/testenv"
)

// TestIntegrationAdversarial sends hostile input through every entry of the pipeline that takes
// it — HTTP upload, the raw-frames topic (key and headers), bucket notifications, frame
// references, detections — while good frames flow, and checks after it all that every service
// is alive and ready, every good frame's detections are in the sink's files exactly once, and
// every bad input was refused (HTTP) or dead-lettered with its reason.
func TestIntegrationAdversarial(t *testing.T) {
	st := testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	run := fmt.Sprintf("adv%d", time.Now().UnixNano()%1e9)
	testenv.Topics(t, st.KafkaBrokers, 2, runTopics(run, "frames.raw", "frames", "detections", "detections.shadow", "dlq", "frames.events")...)
	mc, _ := minio.New(st.MinIOEndpoint, &minio.Options{Creds: credentials.NewStaticV4(st.MinIOAccessKey, st.MinIOSecretKey, "")})
	uploads := run + "-uploads"
	if err := mc.MakeBucket(ctx, uploads, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"STREAMDET_TOPIC_PREFIX=" + run, "STREAMDET_FRAMES_BUCKET=" + run + "-frames", "STREAMDET_DETECTIONS_BUCKET=" + run + "-detections",
		"STREAMDET_DEADLETTER_BUCKET=" + run + "-deadletters", "STREAMDET_ANNOTATED_BUCKET=" + run + "-annotated",
		"STREAMDET_INGEST_GROUP=" + run + "-ingest", "STREAMDET_DETECT_GROUP=" + run + "-detect", "STREAMDET_SINK_GROUP=" + run + "-sink",
		"STREAMDET_INGEST_EVENT_BUCKETS=" + uploads, "STREAMDET_SINK_ANNOTATE=true",
		"STREAMDET_HTTP_READ_TIMEOUT=3s", "STREAMDET_SINK_FLUSH_INTERVAL=300ms", "OTEL_TRACES_EXPORTER=none", "STREAMDET_LOG_LEVEL=warn",
	}
	ingest := startService(t, "ingest", env)
	detect := startService(t, "detect", append(append([]string(nil), env...), "STREAMDET_MODEL_PATH="+testenv.Shared(t, "models", "yolox_nano.onnx"),
		"STREAMDET_MODEL_FORMAT=yolox", "STREAMDET_MODEL_NAMES_PATH="+testenv.Shared(t, "models", "coco.names"), "STREAMDET_MODEL_NAME=coco",
		"STREAMDET_ENGINE_SESSIONS=2", "STREAMDET_DETECT_CONCURRENCY=4"))
	sink := startService(t, "sink", env)
	dets, dlq := follow(ctx, t, st.KafkaBrokers, run+".detections"), follow(ctx, t, st.KafkaBrokers, run+".dlq")
	dog, _ := os.ReadFile(testenv.Shared(t, "images", "dog.jpg"))
	person, _ := os.ReadFile(testenv.Shared(t, "images", "person.jpg"))

	w := &kafka.Writer{Addr: kafka.TCP(st.KafkaBrokers...), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchBytes: 12 << 20}
	defer w.Close()
	produce := func(topic string, key []byte, value []byte, hs ...kafka.Header) {
		t.Helper()
		if err := w.WriteMessages(ctx, kafka.Message{Topic: topic, Key: key, Value: value, Headers: hs}); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
	}
	hdr := func(k, v string) kafka.Header { return kafka.Header{Key: k, Value: []byte(v)} }
	upload := func(token, stream, frame string, body []byte) (int, map[string]string) {
		req, _ := http.NewRequest("POST", "http://"+ingest.addr+"/v1/frames", bytes.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("X-Stream-Id", stream)
		req.Header.Set("X-Frame-Id", frame)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("upload: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := map[string]string{}
		json.Unmarshal(b, &m)
		if resp.StatusCode >= 300 && (strings.Contains(string(b), "objstore") || strings.Contains(string(b), "sha256/") || strings.Contains(string(b), run)) {
			t.Errorf("error body carries internal detail: %s", b)
		}
		return resp.StatusCode, m
	}

	// Good frames: 300 frames from two streams that number their frames alike (raw topic),
	// plus uploads over HTTP with a scoped token.
	good := map[string]bool{} // "stream/frame"
	for i := 0; i < 150; i++ {
		for _, s := range []string{"cam-a", "cam-b"} {
			id := fmt.Sprintf("f-%d", i)
			produce(run+".frames.raw", []byte(s), [][]byte{dog, person}[i%2], hdr("ce_id", id), hdr("ce_specversion", "1.0"))
			good[s+"/"+id] = true
		}
	}
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("up-%d", i)
		if code, m := upload(e2eCamToken, "cam-up", id, dog); code != http.StatusAccepted {
			t.Fatalf("good upload with the cam-* token: %d %v", code, m)
		}
		good["cam-up/"+id] = true
	}

	// HTTP refusals: credentials, scope, identifiers.
	for _, tc := range []struct {
		name, token, stream, frame string
		status                     int
		reason                     string
	}{
		{"no token", "", "cam-1", "x-1", 401, "unauthenticated"},
		{"wrong token", "not-a-valid-token-at-all", "cam-1", "x-2", 401, "unauthenticated"},
		{"token scoped to other streams", e2eCamToken, "door-1", "x-3", 403, "forbidden"},
		{"path traversal stream", e2eToken, "a/../b", "x-4", 400, "invalid_identifier"},
		{"empty segment stream", e2eToken, "cam/", "x-5", 400, "invalid_identifier"},
		{"1 KiB frame id", e2eToken, "cam-1", strings.Repeat("f", 1024), 400, "invalid_identifier"},
		{"non-UTF-8 stream", e2eToken, "cam\xff\xfe", "x-6", 400, "invalid_identifier"},
		{"script in stream id", e2eToken, "<script>alert(1)</script>", "x-7", 400, "invalid_identifier"},
	} {
		if code, m := upload(tc.token, tc.stream, tc.frame, dog); code != tc.status || m["reason"] != tc.reason {
			t.Errorf("%s: %d %v, want %d %s", tc.name, code, m, tc.status, tc.reason)
		}
	}

	// A body trickled at 1 byte a second: cut off by the read timeout (3s here); meanwhile
	// uploads are served.
	trickled := make(chan time.Duration, 1)
	go func() {
		conn, err := net.Dial("tcp", ingest.addr)
		if err != nil {
			trickled <- -1
			return
		}
		defer conn.Close()
		start := time.Now()
		fmt.Fprintf(conn, "POST /v1/frames HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nX-Stream-Id: cam-slow\r\nContent-Length: 100000\r\n\r\n", e2eToken)
		done := make(chan struct{})
		go func() { io.Copy(io.Discard, conn); close(done) }()
		for i := 0; i < 60; i++ {
			select {
			case <-done:
				trickled <- time.Since(start)
				return
			case <-time.After(time.Second):
			}
			if _, err := conn.Write([]byte{0xFF}); err != nil {
				break
			}
		}
		<-done
		trickled <- time.Since(start)
	}()
	if code, _ := upload(e2eToken, "cam-up", "during-trickle", person); code != http.StatusAccepted {
		t.Errorf("upload during a trickled body: %d", code)
	}
	good["cam-up/during-trickle"] = true
	if d := <-trickled; d < 0 || d > 10*time.Second {
		t.Errorf("a body trickled at 1 byte/s held its connection %s (read timeout 3s)", d)
	}

	// Raw topic: bad keys and headers, each a dead letter with reason invalid_identifier.
	wantDL := map[string]contract.Reason{} // a marker in the key or ce_id → reason
	for i, key := range []string{"a/../b", "cam/", strings.Repeat("k", 1024), "cam\x00\x01", "cam\xff", "<script>alert(1)</script>"} {
		marker := fmt.Sprintf("rawkey-%d", i)
		produce(run+".frames.raw", []byte(key), dog, hdr("ce_id", marker))
		wantDL["raw:"+marker] = contract.ReasonInvalidID
	}
	produce(run+".frames.raw", []byte("cam-h"), dog, hdr("ce_id", strings.Repeat("i", 1024)))
	produce(run+".frames.raw", []byte("cam-h"), dog, hdr("ce_subject", "../../etc"), hdr("ce_id", "subject-traversal"))
	wantDL["raw:subject-traversal"] = contract.ReasonInvalidID

	// Dead letters at and over the topic's message limit (10 MiB): the first goes whole, the
	// second by reference to object storage.
	under := bytes.Repeat([]byte("U"), 5<<20)
	over := bytes.Repeat([]byte("O"), 10<<20-2048)
	produce(run+".frames.raw", []byte("cam-big"), under, hdr("ce_id", "big-under"))
	produce(run+".frames.raw", []byte("cam-big"), over, hdr("ce_id", "big-over"))
	wantDL["raw:big-under"], wantDL["raw:big-over"] = contract.ReasonUnsupportedFormat, contract.ReasonUnsupportedFormat

	// Bucket notifications: a bucket ingest may not read (its own frames bucket), a key whose
	// first segment is not an identifier, and an object that is gone.
	event := func(bucket, key string) []byte {
		return []byte(fmt.Sprintf(`{"Records":[{"eventName":"s3:ObjectCreated:Put","eventTime":"2026-11-30T12:00:00Z","s3":{"bucket":{"name":%q},"object":{"key":%q,"size":100,"eTag":"e"}}}]}`, bucket, key))
	}
	produce(run+".frames.events", []byte("e1"), event(run+"-frames", "sha256/aa/x.jpg"))
	produce(run+".frames.events", []byte("e2"), event(uploads, "..%2F..%2Fetc/passwd"))
	produce(run+".frames.events", []byte("e3"), event(uploads, "cam-gone/1.jpg"))
	wantDL["events:e1"], wantDL["events:e2"], wantDL["events:e3"] = contract.ReasonForbidden, contract.ReasonInvalidID, contract.ReasonMissingObject

	// Frame references: another bucket, a key outside the content-addressed layout, and a frame
	// whose object was deleted.
	ref := func(bucket, key, sum string) []byte {
		b, _ := json.Marshal(contract.FrameRef{FrameID: "r-1", StreamID: "cam-r", CaptureTime: time.Now(), Bucket: bucket, Key: key,
			ContentType: "image/jpeg", Width: 768, Height: 576, Size: 1, SHA256: sum})
		return b
	}
	gone := sha256.Sum256([]byte("never stored"))
	goneHex := hex.EncodeToString(gone[:])
	produce(run+".frames", []byte("r1"), ref("models", "coco/1/model.onnx", goneHex), hdr("ce_type", contract.TypeFrameRef))
	produce(run+".frames", []byte("r2"), ref(run+"-frames", "../"+run+"-detections/x", goneHex), hdr("ce_type", contract.TypeFrameRef))
	produce(run+".frames", []byte("r3"), ref(run+"-frames", contract.FrameKey(goneHex, ".jpg"), goneHex), hdr("ce_type", contract.TypeFrameRef))
	wantDL["frames:r1"], wantDL["frames:r2"], wantDL["frames:r3"] = contract.ReasonForbidden, contract.ReasonForbidden, contract.ReasonMissingObject

	// Detections: identifiers the sink must refuse before they reach an object key.
	for i, s := range []string{"a/../../b", "x\x00y"} {
		b, _ := json.Marshal(contract.Detections{FrameID: "d-1", StreamID: s, Model: contract.Model{Name: "coco", Version: "1"}})
		produce(run+".detections", []byte(fmt.Sprintf("d%d", i)), b)
		wantDL[fmt.Sprintf("detections:d%d", i)] = contract.ReasonInvalidID
	}

	// Wait for every good frame in the sink's files and every dead letter.
	dlFor := func() map[string]contract.DeadLetter {
		out := map[string]contract.DeadLetter{}
		for _, m := range dlq.snapshot() {
			var dl contract.DeadLetter
			json.Unmarshal([]byte(header(m, contract.HeaderDeadLetter)), &dl)
			marker := header(m, "ce_id")
			switch {
			case strings.HasSuffix(dl.Source.Topic, ".frames.raw"):
				out["raw:"+marker] = dl
			case strings.HasSuffix(dl.Source.Topic, ".frames.events"), strings.HasSuffix(dl.Source.Topic, ".frames"), strings.HasSuffix(dl.Source.Topic, ".detections"):
				parts := strings.Split(dl.Source.Topic, ".")
				out[parts[len(parts)-1]+":"+string(m.Key)] = dl
			}
		}
		return out
	}
	rows := func() map[string]int {
		return sinkRows(ctx, t, mc, run+"-detections")
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		r, d := rows(), dlFor()
		missing := 0
		for k := range good {
			if r[k] == 0 {
				missing++
			}
		}
		dlMissing := 0
		for k := range wantDL {
			if _, ok := d[k]; !ok {
				dlMissing++
			}
		}
		if missing == 0 && dlMissing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5 minutes: %d good frames not in the sink's files, %d dead letters missing (have %v)", missing, dlMissing, keys(d))
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // stragglers

	r := rows()
	for k, n := range r {
		if !good[k] {
			t.Errorf("row %s in the sink's files is not a good frame", k)
		}
		if n != 1 {
			t.Errorf("row %s written %d times", k, n)
		}
	}
	if len(r) != len(good) {
		t.Errorf("%d rows in the files, want %d", len(r), len(good))
	}
	d := dlFor()
	for k, want := range wantDL {
		if d[k].Reason != want {
			t.Errorf("dead letter %s: reason %q (%s), want %q", k, d[k].Reason, d[k].Message, want)
		}
	}
	// The dead letter of the message at the limit carries its payload by reference.
	for _, m := range dlq.snapshot() {
		var dl contract.DeadLetter
		json.Unmarshal([]byte(header(m, contract.HeaderDeadLetter)), &dl)
		switch header(m, "ce_id") {
		case "big-under":
			if !bytes.Equal(m.Value, under) || dl.Payload != nil {
				t.Errorf("dead letter under the limit: %d bytes, payload %+v", len(m.Value), dl.Payload)
			}
		case "big-over":
			if len(m.Value) != 0 || dl.Payload == nil || dl.Payload.Size != int64(len(over)) {
				t.Fatalf("dead letter over the limit: %d bytes, payload %+v", len(m.Value), dl.Payload)
			}
			obj, err := mc.GetObject(ctx, dl.Payload.Bucket, dl.Payload.Key, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(obj)
			obj.Close()
			if !bytes.Equal(b, over) {
				t.Errorf("the payload kept for the oversized dead letter differs (%d bytes)", len(b))
			}
		}
	}
	for _, p := range []*proc{ingest, detect, sink} {
		resp, err := http.Get("http://" + p.addr + "/readyz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("%s not ready after the adversarial input: %v %v\n%s", p.name, resp, err, tail(p.log))
		}
	}
	t.Logf("%d good rows exactly once; %d dead letters with their reasons; %d detections messages", len(r), len(d), len(dets.snapshot()))

	// The live view: a label carrying markup is shown as text, no script runs, and the view
	// needs the token.
	if resp, err := http.Get("http://" + sink.addr + "/api/view"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("live view without a token: %v %v", resp, err)
	}
	code, m := upload(e2eToken, "cam-xss", "xss-1", dog)
	if code != http.StatusAccepted {
		t.Fatalf("upload for the live view: %d", code)
	}
	payload := `<img src=x onerror="document.body.setAttribute('data-pwned','1')">`
	xss := contract.Detections{FrameID: "xss-1", StreamID: "cam-xss", CaptureTime: time.Now(), Width: 768, Height: 576,
		Frame: contract.FrameRef{FrameID: "xss-1", StreamID: "cam-xss", Bucket: m["bucket"], Key: m["key"], SHA256: m["sha256"], ContentType: "image/jpeg", Width: 768, Height: 576},
		Model: contract.Model{Name: "coco", Version: "1"}, Route: contract.RouteArm{Arm: payload},
		Detections: []contract.Detection{{ClassID: 0, Label: payload, Score: 0.9, Box: [4]float32{10, 10, 100, 100}}},
		TraceID:    `"><script>document.body.setAttribute('data-pwned','2')</script>`}
	for i := 0; i < 20; i++ { // keep it the newest frame of its stream while the page loads
		xss.FrameID = fmt.Sprintf("xss-%d", i)
		xss.Frame.FrameID = xss.FrameID
		b, _ := json.Marshal(xss)
		produce(run+".detections", []byte("cam-xss"), b)
		time.Sleep(100 * time.Millisecond)
	}
	url := "http://view:" + e2eToken + "@" + sink.addr + "/"
	var dom string
	for i := 0; i < 20; i++ {
		dom = string(chromium(t, "--virtual-time-budget=4000", "--dump-dom", url))
		if strings.Contains(dom, "cam-xss") {
			break
		}
		time.Sleep(time.Second)
	}
	if !strings.Contains(dom, "cam-xss") {
		t.Fatalf("the live view never showed stream cam-xss:\n%s", dom)
	}
	if strings.Contains(dom, "data-pwned") && regexp.MustCompile(`<body[^>]*data-pwned`).MatchString(dom) {
		t.Fatalf("a script from a detections message ran in the live view:\n%s", dom)
	}
	if !strings.Contains(dom, "&lt;img src=x onerror=") {
		t.Errorf("the label was not shown as text:\n%s", dom)
	}
}

// sinkRows counts the rows of the sink's data files by "stream/frame".
func sinkRows(ctx context.Context, t *testing.T, mc *minio.Client, bucket string) map[string]int {
	out := map[string]int{}
	for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "dt=", Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		obj, err := mc.GetObject(ctx, bucket, o.Key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(obj)
		obj.Close()
		for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var d contract.Detections
			if err := json.Unmarshal(line, &d); err != nil {
				t.Fatalf("sink object %s: %v", o.Key, err)
			}
			out[d.StreamID+"/"+d.FrameID]++
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
