package detect

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/envconf"
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

// TestConfigProvider: the execution provider settings come from the environment; an unknown
// provider or fallback is refused by name, and the fallback is off unless asked for.
func TestConfigProvider(t *testing.T) {
	base := map[string]string{"STREAMDET_KAFKA_BROKERS": "127.0.0.1:9092", "STREAMDET_MINIO_ENDPOINT": "127.0.0.1:9000",
		"STREAMDET_MINIO_ACCESS_KEY": "access", "STREAMDET_MINIO_SECRET_KEY": "secret-key", "STREAMDET_MODEL_PATH": "m.onnx"}
	env := func(kv ...string) envconf.Env {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return envconf.Map(m)
	}
	c, err := ConfigFromEnv(env())
	if err != nil || c.Engine.Provider.Name != engine.ProviderCPU || c.Engine.Provider.FallbackCPU {
		t.Fatalf("defaults: %+v, %v", c.Engine.Provider, err)
	}
	c, err = ConfigFromEnv(env("STREAMDET_ENGINE_PROVIDER", "TensorRT", "STREAMDET_ENGINE_DEVICE_ID", "1", "STREAMDET_ENGINE_TRT_FP16", "true",
		"STREAMDET_ENGINE_TRT_CACHE_DIR", "/var/cache/trt", "STREAMDET_ENGINE_PROVIDER_FALLBACK", "cpu"))
	want := engine.ProviderConfig{Name: engine.ProviderTensorRT, DeviceID: 1, TensorRTFP16: true, TensorRTCacheDir: "/var/cache/trt", OpenVINODevice: "CPU", FallbackCPU: true}
	if err != nil || c.Engine.Provider != want {
		t.Fatalf("tensorrt: %+v, %v; want %+v", c.Engine.Provider, err, want)
	}
	_, err = ConfigFromEnv(env("STREAMDET_ENGINE_PROVIDER", "vulkan", "STREAMDET_ENGINE_PROVIDER_FALLBACK", "gpu", "STREAMDET_ENGINE_DEVICE_ID", "99"))
	for _, w := range []string{`execution provider "vulkan": want one of cpu, cuda, tensorrt, openvino`, `STREAMDET_ENGINE_PROVIDER_FALLBACK "gpu"`, "device id 99"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not name %s", err, w)
		}
	}
}
