package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/jpeg"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/kafkax"
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/telemetry"
	"github.com/streamdet/streamdet/pkg/testenv"
)

func tinyJPEG(t *testing.T) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, image.NewRGBA(image.Rect(0, 0, 64, 48)), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestRunWithDeps runs the whole service — its Run, from a Config and Deps — with object
// storage, producers and the clock injected: nothing but an in-process Kafka protocol server
// (for the consumer group) is running. HTTP and raw frames are stored and referenced with the
// injected clock's time, a bad frame is dead-lettered, and Run returns once ctx ends.
func TestRunWithDeps(t *testing.T) {
	brokers := testenv.FakeKafka(t, "t.frames.raw")
	store := testenv.NewMemStore()
	topics := testenv.NewMemTopics()
	tokens := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(tokens, []byte("cams tok-cams-0123456789\n"), 0o600)
	cfg := DefaultConfig()
	cfg.Kafka.Brokers, cfg.Kafka.TopicPrefix = brokers, "t"
	cfg.Store.Endpoint, cfg.Store.AccessKey, cfg.Store.SecretKey = "unused.invalid:9000", "unused", "unused-secret"
	cfg.Server.Addr, cfg.Server.TokensFile = testenv.FreeAddr(t), tokens
	cfg.Events, cfg.DrainTimeout = false, 5*time.Second
	at := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	deps := Deps{Deps: pipeline.Deps{
		Telemetry: telemetry.Discard(),
		Producer:  func(topic string) (pipeline.Producer, error) { return topics.Open(topic), nil },
		Now:       func() time.Time { return at },
	}, Store: store}

	stop := testenv.RunService(t, cfg.Server.Addr, cfg.DrainTimeout+5*time.Second, func(ctx context.Context) error { return Run(ctx, cfg, deps) })
	ctx := context.Background()
	base := "http://" + cfg.Server.Addr

	img := tinyJPEG(t)
	req, _ := http.NewRequest("POST", base+"/v1/frames", bytes.NewReader(img))
	req.Header.Set("Authorization", "Bearer tok-cams-0123456789")
	req.Header.Set("X-Stream-Id", "cam-1")
	req.Header.Set("X-Frame-Id", "f-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload: %d", resp.StatusCode)
	}

	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "t.frames.raw", BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("cam-2"), Value: img}, kafka.Message{Key: []byte("cam-2"), Value: []byte("not an image")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two frame references and one dead letter", func() bool {
		return len(topics.Messages("t.frames")) == 2 && len(topics.Messages("t.dlq")) == 1
	})
	for _, m := range topics.Messages("t.frames") {
		var ref contract.FrameRef
		if err := json.Unmarshal(m.Value, &ref); err != nil {
			t.Fatal(err)
		}
		if b, err := store.Get(ctx, ref.Bucket, ref.Key, 1<<20); err != nil || !bytes.Equal(b, img) {
			t.Fatalf("frame %s not stored: %v", ref.Key, err)
		}
		if ref.StreamID == "cam-1" && !ref.CaptureTime.Equal(at) {
			t.Errorf("HTTP frame captured at %s, want the injected clock's %s", ref.CaptureTime, at)
		}
	}
	if r, _ := kafkax.Header(topics.Messages("t.dlq")[0].Headers, "streamdet_deadletter_reason"); r != string(contract.ReasonUnsupportedFormat) {
		t.Errorf("dead letter reason %q", r)
	}

	stop()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
	}
}
