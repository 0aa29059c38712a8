package detect

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/telemetry"
	"github.com/streamdet/streamdet/pkg/testenv"
	"github.com/streamdet/streamdet/services/detect/engine"
)

// FrameWriter is where tests put frames (a MemStore or an *objstore.Store).
type FrameWriter interface {
	Put(ctx context.Context, bucket, key string, data []byte, contentType string) error
}

// TestRunWithDeps runs the whole service from a Config and Deps — object storage, producers and
// the clock injected; only an in-process Kafka protocol server runs, for the consumer group —
// with a model file: a frame reference becomes a detections message stamped by the injected
// clock, a reference to a missing frame is dead-lettered, and Run returns once ctx ends.
func TestRunWithDeps(t *testing.T) {
	lib := testenv.ONNXRuntimeLib(t)
	model := testenv.Shared(t, "models", "yolox_nano.onnx")
	dog, err := os.ReadFile(testenv.Shared(t, "images", "dog.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	brokers := testenv.FakeKafka(t, "t.frames")
	store := testenv.NewMemStore("frames")
	topics := testenv.NewMemTopics()
	at := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	cfg := DefaultConfig()
	cfg.Kafka.Brokers, cfg.Kafka.TopicPrefix = brokers, "t"
	cfg.Store.Endpoint, cfg.Store.AccessKey, cfg.Store.SecretKey = "unused.invalid:9000", "unused", "unused-secret"
	cfg.Server.Addr = testenv.FreeAddr(t)
	cfg.ModelPath, cfg.NamesPath, cfg.ModelVersion = model, testenv.Shared(t, "models", "coco.names"), "1"
	cfg.Engine.LibraryPath, cfg.Engine.Sessions, cfg.Engine.IntraOpThreads, cfg.Engine.Format = lib, 1, 1, engine.FormatYOLOX
	cfg.ModelName = "coco"
	cfg.DrainTimeout = 5 * time.Second
	deps := Deps{Deps: pipeline.Deps{
		Telemetry: telemetry.Discard(),
		Producer:  func(topic string) (pipeline.Producer, error) { return topics.Open(topic), nil },
		Now:       func() time.Time { return at },
	}, Store: store}
	stop := testenv.RunService(t, cfg.Server.Addr, cfg.DrainTimeout+5*time.Second, func(ctx context.Context) error { return Run(ctx, cfg, deps) })
	ctx := context.Background()

	ref := storeFrame(t, store, "cam-1", "f-1", dog)
	missing := ref
	missing.FrameID, missing.Key = "f-2", contract.FrameKey("00"+ref.SHA256[2:], ".jpg")
	missing.SHA256 = "00" + ref.SHA256[2:]
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "t.frames", BatchTimeout: time.Millisecond}
	defer w.Close()
	m1, m2 := refMessage(ref), refMessage(missing)
	m1.Topic, m2.Topic = "", ""
	if err := w.WriteMessages(ctx, m1, m2); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); len(topics.Messages("t.detections")) < 1 || len(topics.Messages("t.dlq")) < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("detections %d, dead letters %d", len(topics.Messages("t.detections")), len(topics.Messages("t.dlq")))
		}
	}
	var out contract.Detections
	if err := json.Unmarshal(topics.Messages("t.detections")[0].Value, &out); err != nil {
		t.Fatal(err)
	}
	if out.FrameID != "f-1" || len(out.Detections) == 0 || !out.DetectedAt.Equal(at) || out.Model.Version != "1" {
		t.Fatalf("detections %+v (want detected at the injected clock's %s)", out, at)
	}
	stop()
}
