//go:build integration

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/testenv"
)

const (
	goodFrames = 300
	streams    = 10
)

// collector follows a topic from its beginning in a group of its own.
type collector struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

func follow(ctx context.Context, t *testing.T, brokers []string, topic string) *collector {
	c := &collector{}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, GroupID: topic + ".test", StartOffset: kafka.FirstOffset,
		MaxWait: 100 * time.Millisecond, MaxBytes: 12 << 20}) // room for messages at the broker's 10 MiB limit
	go func() {
		defer r.Close()
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *collector) snapshot() []kafka.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]kafka.Message(nil), c.msgs...)
}

func header(m kafka.Message, k string) string {
	for _, h := range m.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

type detectLine struct {
	Image      string               `json:"image"`
	Detections []contract.Detection `json:"detections"`
}

// sameBoxes applies the shared README's criterion both ways.
func sameBoxes(got, want []contract.Detection) error {
	if p := testenv.CompareDetections(got, want, 0.35, 0.8); len(p) > 0 {
		return errors.New(strings.Join(p, "; "))
	}
	return nil
}

func TestIntegrationPipeline(t *testing.T) {
	st := testenv.Require(t)
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat not installed (deploy/local/stack.sh install puts it there)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	run := fmt.Sprintf("e2e%d", time.Now().UnixNano()%1e9)
	brokers := strings.Join(st.KafkaBrokers, ",")

	// Topics of this run only.
	testenv.Topics(t, st.KafkaBrokers, 3, runTopics(run, "frames.raw", "frames", "detections", "detections.shadow", "dlq", "frames.events")...)

	otlp := newOTLPReceiver(t)
	env := []string{
		"STREAMDET_TOPIC_PREFIX=" + run, "STREAMDET_FRAMES_BUCKET=" + run + "-frames", "STREAMDET_DETECTIONS_BUCKET=" + run + "-detections",
		"STREAMDET_INGEST_GROUP=" + run + "-ingest", "STREAMDET_DETECT_GROUP=" + run + "-detect", "STREAMDET_SINK_GROUP=" + run + "-sink",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp.URL, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_BSP_SCHEDULE_DELAY=100",
		"STREAMDET_SINK_FLUSH_INTERVAL=500ms", "STREAMDET_LOG_LEVEL=warn",
	}
	model, names := testenv.Shared(t, "models", "yolox_nano.onnx"), testenv.Shared(t, "models", "coco.names")
	detectEnv := append(append([]string(nil), env...), "STREAMDET_MODEL_PATH="+model, "STREAMDET_MODEL_FORMAT=yolox",
		"STREAMDET_MODEL_NAMES_PATH="+names, "STREAMDET_MODEL_NAME=coco", "STREAMDET_MODEL_VERSION=1",
		"STREAMDET_ENGINE_SESSIONS=2", "STREAMDET_DETECT_CONCURRENCY=4")
	startService(t, "ingest", env)
	detect := startService(t, "detect", detectEnv)
	startService(t, "sink", env)

	// Six payloads: the shared images and mirrored copies; expected boxes from detctl detect.
	dir := t.TempDir()
	var files []string
	for _, n := range []string{"dog.jpg", "horses.jpg", "person.jpg"} {
		b, err := os.ReadFile(testenv.Shared(t, "images", n))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, filepath.Join(dir, n))
		os.WriteFile(files[len(files)-1], b, 0o644)
		m, _ := jpeg.Decode(bytes.NewReader(b))
		fl := image.NewRGBA(m.Bounds())
		w := m.Bounds().Dx()
		for y := 0; y < m.Bounds().Dy(); y++ {
			for x := 0; x < w; x++ {
				fl.Set(w-1-x, y, m.At(x, y))
			}
		}
		var buf bytes.Buffer
		jpeg.Encode(&buf, fl, &jpeg.Options{Quality: 92})
		files = append(files, filepath.Join(dir, "flipped-"+n))
		os.WriteFile(files[len(files)-1], buf.Bytes(), 0o644)
	}
	out, err := exec.Command(filepath.Join(binaries(t), "detctl"), append([]string{"detect", "--model", model, "--format", "yolox", "--names", names}, files...)...).Output()
	if err != nil {
		t.Fatalf("detctl detect: %v", err)
	}
	expected := map[string][]contract.Detection{} // by sha256 of the payload
	payloads := make([][]byte, len(files))
	sc := bufio.NewScanner(bytes.NewReader(out))
	for i := 0; sc.Scan(); i++ {
		var l detectLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		payloads[i], _ = os.ReadFile(l.Image)
		expected[sha(payloads[i])] = l.Detections
	}
	if len(expected) != 6 {
		t.Fatalf("%d distinct payloads", len(expected))
	}

	raw, frames, dets, dlq := follow(ctx, t, st.KafkaBrokers, run+".frames.raw"), follow(ctx, t, st.KafkaBrokers, run+".frames"),
		follow(ctx, t, st.KafkaBrokers, run+".detections"), follow(ctx, t, st.KafkaBrokers, run+".dlq")

	// Poison: 5 garbage, 3 × 2 MB non-image, 4 PNGs declaring 100000×100000 (raw topic); 4
	// truncated JPEGs (pass ingest's header check, refused by detect); 4 invalid JSON (frames).
	big := bytes.Repeat([]byte("not an image "), 2<<20/13)
	var poisonRaw [][]byte
	for i := 0; i < 5; i++ {
		poisonRaw = append(poisonRaw, []byte(fmt.Sprintf("garbage bytes #%d \x00\x01\x02", i)))
	}
	for i := 0; i < 3; i++ {
		poisonRaw = append(poisonRaw, append([]byte{byte(i)}, big...))
	}
	for i := 0; i < 4; i++ {
		poisonRaw = append(poisonRaw, testenv.PNGDeclaring(100000, 100000+uint32(i)))
	}
	for i := 0; i < 4; i++ {
		poisonRaw = append(poisonRaw, payloads[i][:len(payloads[i])/3+i])
	}

	w := &kafka.Writer{Addr: kafka.TCP(st.KafkaBrokers...), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchBytes: 8 << 20}
	defer w.Close()
	produced := make(chan error, 1)
	go func() {
		produced <- func() error {
			p := 0
			for i := 0; i < goodFrames; i++ {
				stream := fmt.Sprintf("cam-%d", i%streams)
				file := files[i%len(files)]
				if i%3 == 2 { // a third through kcat, as plainly as it gets
					if out, err := exec.CommandContext(ctx, "kcat", "-P", "-b", brokers, "-t", run+".frames.raw", "-k", stream, file).CombinedOutput(); err != nil {
						return fmt.Errorf("kcat: %v %s", err, out)
					}
				} else {
					err := w.WriteMessages(ctx, kafka.Message{Topic: run + ".frames.raw", Key: []byte(stream), Value: payloads[i%len(files)],
						Headers: []kafka.Header{{Key: "ce_id", Value: []byte(fmt.Sprintf("%s-%d", run, i))}, {Key: "ce_specversion", Value: []byte("1.0")},
							{Key: "ce_type", Value: []byte(contract.TypeRawFrame)}, {Key: "ce_time", Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))}}})
					if err != nil {
						return err
					}
				}
				if i%15 == 7 && p < len(poisonRaw) {
					if err := w.WriteMessages(ctx, kafka.Message{Topic: run + ".frames.raw", Key: []byte(stream), Value: poisonRaw[p]}); err != nil {
						return err
					}
					p++
				}
				if i%75 == 40 {
					if err := w.WriteMessages(ctx, kafka.Message{Topic: run + ".frames", Key: []byte(stream), Value: []byte(`{"frame_id": "broken", "stream_id": `)}); err != nil {
						return err
					}
				}
				time.Sleep(15 * time.Millisecond)
			}
			if p != len(poisonRaw) {
				return fmt.Errorf("only %d poison messages placed", p)
			}
			return nil
		}()
	}()

	distinct := func() map[string]contract.Detections {
		out := map[string]contract.Detections{}
		for _, m := range dets.snapshot() {
			var d contract.Detections
			if json.Unmarshal(m.Value, &d) == nil {
				if _, ok := out[d.FrameID]; !ok {
					out[d.FrameID] = d
				}
			}
		}
		return out
	}
	// Kill -9 detect once a third of the frames are through, and start it again.
	for len(distinct()) < goodFrames/3 {
		if ctx.Err() != nil {
			t.Fatalf("only %d detections before the kill", len(distinct()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	killedAt := len(distinct())
	detect.kill()
	t.Logf("detect killed with SIGKILL after %d frames; restarting", killedAt)
	startService(t, "detect", detectEnv)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(4 * time.Minute)
	dlqSources := func() map[string]contract.DeadLetter {
		out := map[string]contract.DeadLetter{}
		for _, m := range dlq.snapshot() {
			var dl contract.DeadLetter
			json.Unmarshal([]byte(header(m, contract.HeaderDeadLetter)), &dl)
			out[fmt.Sprintf("%s/%d/%d", dl.Source.Topic, dl.Source.Partition, dl.Source.Offset)] = dl
		}
		return out
	}
	for len(distinct()) < goodFrames || len(dlqSources()) < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("after 4 minutes: %d of %d frames detected, %d of 20 dead letters", len(distinct()), goodFrames, len(dlqSources()))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // let stragglers (duplicates) and the sink's last flush land

	schemas, err := contract.LoadSchemas(filepath.Join(testenv.RepoRoot(t), "schemas", contract.SchemaVersion))
	if err != nil {
		t.Fatal(err)
	}

	// Every good raw frame has exactly one distinct detections result, boxes as detctl's.
	want := map[string]string{} // frame id → payload sha
	for _, m := range raw.snapshot() {
		id := header(m, "ce_id")
		if id == "" {
			id = contract.DerivedFrameID(m.Topic, m.Partition, m.Offset)
		}
		if s := sha(m.Value); expected[s] != nil {
			want[id] = s
		}
	}
	if len(want) != goodFrames {
		t.Fatalf("%d good frames on the raw topic, want %d", len(want), goodFrames)
	}
	got := distinct()
	perFrame := map[string]int{}
	perStream := map[string]int{}
	for _, m := range dets.snapshot() {
		if err := schemas.Validate("detections", m.Value); err != nil {
			t.Fatalf("detections message breaks its schema: %v", err)
		}
		for _, h := range []string{"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "content-type", "traceparent"} {
			if header(m, h) == "" {
				t.Fatalf("detections message without header %s", h)
			}
		}
		var d contract.Detections
		json.Unmarshal(m.Value, &d)
		perFrame[d.FrameID]++
		if header(m, "ce_subject") != d.StreamID || string(m.Key) != d.StreamID {
			t.Errorf("frame %s: key %q, ce_subject %q, stream %q", d.FrameID, m.Key, header(m, "ce_subject"), d.StreamID)
		}
	}
	dups := 0
	for id, s := range want {
		d, ok := got[id]
		if !ok {
			t.Errorf("frame %s: no detections (lost)", id)
			continue
		}
		dups += perFrame[id] - 1
		perStream[d.StreamID]++
		if d.Frame.SHA256 != s {
			t.Errorf("frame %s: detections for payload %s, want %s", id, d.Frame.SHA256, s)
		}
		if err := sameBoxes(d.Detections, expected[s]); err != nil {
			t.Errorf("frame %s: boxes differ from detctl detect: %v", id, err)
		}
		if d.Model.Name != "coco" || d.Model.Version != "1" || d.Route.Arm != "primary" || !strings.HasPrefix(d.Model.Digest, "sha256:") {
			t.Errorf("frame %s: model %+v route %+v", id, d.Model, d.Route)
		}
	}
	if len(got) != goodFrames {
		t.Errorf("%d distinct frames detected, want %d", len(got), goodFrames)
	}
	for s, n := range perStream {
		if n != goodFrames/streams {
			t.Errorf("stream %s: %d frames, want %d", s, n, goodFrames/streams)
		}
	}
	t.Logf("detections: %d messages for %d frames (%d duplicates after the kill -9 at %d frames)", len(dets.snapshot()), len(got), dups, killedAt)

	// Frame references validate against their schema (the invalid JSON we injected aside).
	for _, m := range frames.snapshot() {
		if header(m, "ce_type") == contract.TypeFrameRef {
			if err := schemas.Validate("frame-ref", m.Value); err != nil {
				t.Fatalf("frame reference breaks its schema: %v", err)
			}
		}
	}

	// Dead letters: each poison message once per source position, with the right reason, the
	// original bytes untouched.
	wantReasons := map[contract.Reason]int{contract.ReasonUnsupportedFormat: 8, contract.ReasonTooLarge: 4, contract.ReasonCorruptImage: 4, contract.ReasonSchemaViolation: 4}
	gotReasons := map[contract.Reason]int{}
	for _, dl := range dlqSources() {
		gotReasons[dl.Reason]++
	}
	for r, n := range wantReasons {
		if gotReasons[r] != n {
			t.Errorf("dead letters with reason %s: %d, want %d (all: %v)", r, gotReasons[r], n, gotReasons)
		}
	}
	poisonSet := map[string]bool{}
	for _, p := range poisonRaw {
		poisonSet[sha(p)] = true
	}
	for _, m := range dlq.snapshot() {
		if err := schemas.Validate("dead-letter", []byte(header(m, contract.HeaderDeadLetter))); err != nil {
			t.Fatalf("dead letter breaks its schema: %v", err)
		}
		var dl contract.DeadLetter
		json.Unmarshal([]byte(header(m, contract.HeaderDeadLetter)), &dl)
		if dl.Stage == "ingest" && !poisonSet[sha(m.Value)] {
			t.Errorf("ingest dead letter (%s) whose value is not one of the poison messages", dl.Reason)
		}
	}

	// The sink's files hold each frame once.
	mc, err := minio.New(st.MinIOEndpoint, &minio.Options{Creds: credentials.NewStaticV4(st.MinIOAccessKey, st.MinIOSecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]int{}
	for o := range mc.ListObjects(ctx, run+"-detections", minio.ListObjectsOptions{Recursive: true}) {
		if strings.HasPrefix(o.Key, "_streamdet/") {
			continue // the sink's journal
		}
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if !strings.HasPrefix(o.Key, "dt=") || !strings.Contains(o.Key, "/stream=cam-") {
			t.Errorf("sink object %s is not date/stream partitioned", o.Key)
		}
		obj, _ := mc.GetObject(ctx, run+"-detections", o.Key, minio.GetObjectOptions{})
		b, _ := io.ReadAll(obj)
		obj.Close()
		for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			var d contract.Detections
			if err := json.Unmarshal(line, &d); err != nil {
				t.Fatalf("sink object %s: %v", o.Key, err)
			}
			rows[d.FrameID]++
		}
	}
	for id := range want {
		if rows[id] != 1 {
			t.Errorf("frame %s: %d rows in the sink's files, want 1", id, rows[id])
		}
	}
	if len(rows) != goodFrames {
		t.Errorf("%d frames in the sink's files, want %d", len(rows), goodFrames)
	}

	// One trace per frame: ingest → detect → sink, linked parent to child.
	first := got[run+"-0"]
	checkTrace(t, otlp, first.TraceID, run)
}

func checkTrace(t *testing.T, otlp *otlpReceiver, traceID, run string) {
	t.Helper()
	var spans []span
	deadline := time.Now().Add(10 * time.Second)
	find := func(service, name string) *span {
		for i := range spans {
			if spans[i].Service == service && spans[i].Name == name {
				return &spans[i]
			}
		}
		return nil
	}
	for {
		spans = otlp.trace(traceID)
		if find("sink", "sink write") != nil && find("detect", "inference") != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	checkSpans(t, spans, traceID, run)
}

// checkSpans checks that a frame's trace has the spans of ingest, detect and sink, each under
// the right parent: one trace from the raw frame to the row written.
func checkSpans(t *testing.T, spans []span, traceID, run string) {
	t.Helper()
	find := func(service, name string) *span {
		for i := range spans {
			if spans[i].Service == service && spans[i].Name == name {
				return &spans[i]
			}
		}
		return nil
	}
	byID := map[string]span{}
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	want := []struct{ service, name, parentService, parentName string }{
		{"ingest", "process " + run + ".frames.raw", "", ""},
		{"ingest", "objstore put", "ingest", "process " + run + ".frames.raw"},
		{"ingest", "send " + run + ".frames", "ingest", "process " + run + ".frames.raw"},
		{"detect", "process " + run + ".frames", "ingest", "send " + run + ".frames"},
		{"detect", "objstore get", "detect", "process " + run + ".frames"},
		{"detect", "decode", "detect", "process " + run + ".frames"},
		{"detect", "preprocess", "detect", "process " + run + ".frames"},
		{"detect", "inference", "detect", "process " + run + ".frames"},
		{"detect", "postprocess", "detect", "process " + run + ".frames"},
		{"detect", "send " + run + ".detections", "detect", "process " + run + ".frames"},
		{"sink", "process " + run + ".detections", "detect", "send " + run + ".detections"},
		{"sink", "sink write", "sink", "process " + run + ".detections"},
	}
	for _, w := range want {
		s := find(w.service, w.name)
		if s == nil {
			t.Errorf("trace %s: no %s span %q (have %d spans)", traceID, w.service, w.name, len(spans))
			continue
		}
		if w.parentName == "" {
			if s.Parent != "" {
				t.Errorf("%s %q should be the root, has parent %s", w.service, w.name, s.Parent)
			}
			continue
		}
		p, ok := byID[s.Parent]
		if !ok || p.Service != w.parentService || p.Name != w.parentName {
			t.Errorf("%s %q: parent is %s %q, want %s %q", w.service, w.name, p.Service, p.Name, w.parentService, w.parentName)
		}
	}
}

func sha(b []byte) string {
	return fmt.Sprintf("%x", sha256Sum(b))
}
