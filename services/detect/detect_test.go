package detect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/kafkax"
	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/pkg/routing"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/pkg/telemetry"
	"github.com/streamdet/streamdet/pkg/testenv"
	"github.com/streamdet/streamdet/services/detect/engine"
)

type fixture struct {
	d       *Detector
	stage   *pipeline.Stage
	store   *objstore.Store
	brokers []string
	kc      kafkax.Config
	lib     string
}

func newFixture(t *testing.T, models Resolver) fixture {
	t.Helper()
	lib := testenv.ONNXRuntimeLib(t)
	brokers := testenv.FakeKafka(t, "t.frames", "t.detections", "t.detections.shadow", "t.dlq")
	store, _ := testenv.FakeS3(t, "frames", "models")
	kc := kafkax.Config{Brokers: brokers, MaxMessageBytes: 10 << 20}
	dets, _ := kc.Writer("t.detections")
	shadow, _ := kc.Writer("t.detections.shadow")
	t.Cleanup(func() { dets.Close(); shadow.Close() })
	stage, err := pipeline.New("detect", telemetry.Discard(), service.NewHealth(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{stage: stage, store: store, brokers: brokers, kc: kc, lib: lib}
	if models != nil {
		f.d = f.detector(t, models, dets, shadow)
	}
	return f
}

func (f fixture) detector(t *testing.T, models Resolver, dets, shadow *kafka.Writer) *Detector {
	d, err := New(Options{Models: models, Stage: f.stage, Store: f.store, Detections: pipeline.KafkaProducer(dets), Shadow: pipeline.KafkaProducer(shadow), MaxBytes: 8 << 20, FramesBucket: "frames"})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func loadEngine(t *testing.T, lib string) *engine.Engine {
	t.Helper()
	model, err := os.ReadFile(testenv.Shared(t, "models", "yolox_nano.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	names, _ := os.ReadFile(testenv.Shared(t, "models", "coco.names"))
	eng, err := engine.New(model, engine.Config{Format: engine.FormatYOLOX, Names: engine.ReadNames(names), Sessions: 1, IntraOpThreads: 1, LibraryPath: lib})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// storeFrame puts an image where ingest would and returns its reference.
func storeFrame(t *testing.T, st FrameWriter, stream, frame string, data []byte) contract.FrameRef {
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	ref := contract.FrameRef{FrameID: frame, StreamID: stream, CaptureTime: time.Now().UTC(), Bucket: "frames", Key: contract.FrameKey(h, ".jpg"),
		ContentType: "image/jpeg", Width: 768, Height: 576, Size: int64(len(data)), SHA256: h}
	if err := st.Put(context.Background(), "frames", ref.Key, data, "image/jpeg"); err != nil {
		t.Fatal(err)
	}
	return ref
}

func refMessage(ref contract.FrameRef) kafka.Message {
	b, _ := json.Marshal(ref)
	return kafka.Message{Topic: "t.frames", Key: []byte(ref.StreamID), Value: b, Headers: []kafka.Header{{Key: contract.HeaderType, Value: []byte(contract.TypeFrameRef)}}}
}

func TestHandle(t *testing.T) {
	f := newFixture(t, nil)
	eng := loadEngine(t, f.lib)
	dets, _ := f.kc.Writer("t.detections")
	defer dets.Close()
	f.d = f.detector(t, Static{Served: Served{Eng: eng, Model: ModelOf("coco", "1", eng), Arm: routing.ArmPrimary}}, dets, nil)
	dog, _ := os.ReadFile(testenv.Shared(t, "images", "dog.jpg"))
	ctx := context.Background()
	ref := storeFrame(t, f.store, "cam-1", "f-1", dog)
	if err := f.d.Handle(ctx, refMessage(ref)); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	msgs := testenv.ReadTopic(rctx, t, f.brokers, "t.detections", 1)
	if len(msgs) != 1 {
		t.Fatalf("%d detections messages", len(msgs))
	}
	var out contract.Detections
	json.Unmarshal(msgs[0].Value, &out)
	if out.FrameID != "f-1" || out.StreamID != "cam-1" || out.Model.Name != "coco" || out.Route.Arm != "primary" || len(out.Detections) == 0 || out.TimingMS["infer"] <= 0 {
		t.Fatalf("detections %+v", out)
	}

	other := storeFrame(t, f.store, "cam-1", "f-2", append([]byte(nil), dog[:len(dog)-10]...))
	for _, tc := range []struct {
		name string
		m    kafka.Message
		want contract.Reason
	}{
		{"not JSON", kafka.Message{Value: []byte("{"), Headers: refMessage(ref).Headers}, contract.ReasonSchemaViolation},
		{"another type", kafka.Message{Value: refMessage(ref).Value, Headers: []kafka.Header{{Key: contract.HeaderType, Value: []byte("x")}}}, contract.ReasonUnknownSchema},
		{"stream traversal", refMessage(func() contract.FrameRef { r := ref; r.StreamID = "a/../b"; return r }()), contract.ReasonInvalidID},
		{"another bucket", refMessage(func() contract.FrameRef { r := ref; r.Bucket = "models"; return r }()), contract.ReasonForbidden},
		{"another key", refMessage(func() contract.FrameRef { r := ref; r.Key = "coco/1/model.onnx"; return r }()), contract.ReasonForbidden},
		{"object gone", refMessage(func() contract.FrameRef {
			r := ref
			r.SHA256 = "00" + r.SHA256[2:]
			r.Key = contract.FrameKey(r.SHA256, ".jpg")
			return r
		}()), contract.ReasonMissingObject},
		{"bytes not its digest", refMessage(func() contract.FrameRef { r := other; r.SHA256 = ref.SHA256; r.Key = other.Key; return r }()), contract.ReasonForbidden},
		{"truncated image", refMessage(other), contract.ReasonCorruptImage},
	} {
		err := f.d.Handle(ctx, tc.m)
		if c := pipeline.Classify(err); !c.Permanent || c.Reason != tc.want {
			t.Errorf("%s: %v (%+v), want %s", tc.name, err, c, tc.want)
		}
	}
}

// TestManager follows a route in Redis (miniredis) over a registry (gofakes3): a version that
// fails to load is never served and its failure is recorded; a route change moves frames to the
// new version; an unneeded version is unloaded after the grace period while frames keep being
// served.
func TestManager(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mr := miniredis.RunT(t)
	mr.RequireAuth("pw-0123456789")
	routes, err := routing.NewStore(routing.RedisConfig{Addr: mr.Addr(), Password: "pw-0123456789", KeyPrefix: "sd"})
	if err != nil {
		t.Fatal(err)
	}
	defer routes.Close()
	reg, err := registry.New(ctx, f.store, "models")
	if err != nil {
		t.Fatal(err)
	}
	reg = reg.WithLedger(routes)
	model, _ := os.ReadFile(testenv.Shared(t, "models", "yolox_nano.onnx"))
	for _, v := range []string{"1", "3"} {
		if _, err := reg.Push(ctx, registry.Manifest{Name: "coco", Version: v, Format: "yolox", InputWidth: 416, InputHeight: 416}, model); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.Push(ctx, registry.Manifest{Name: "coco", Version: "2", Format: "yolox"}, []byte("not a model")); err != nil {
		t.Fatal(err)
	}
	m := NewManager(ManagerConfig{Name: "coco", Registry: reg, Routes: routes, Engine: engine.Config{Sessions: 1, IntraOpThreads: 1, LibraryPath: f.lib},
		UnloadGrace: 50 * time.Millisecond, Resync: 100 * time.Millisecond, Logger: telemetry.Discard().Logger})
	if _, _, err := m.Resolve("cam-1", "f"); !errors.Is(err, ErrNotRoutable) {
		t.Fatalf("before any route: %v", err)
	}
	go m.Run(ctx)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out: %s", what)
			}
		}
	}
	servedBy := func(stream string) string {
		s, _, err := m.Resolve(stream, "f")
		if err != nil {
			return ""
		}
		return s.Model.Version
	}
	if err := routes.Set(ctx, &routing.Route{Model: "coco", Arms: []routing.Arm{{Version: "1", Weight: 50}, {Version: "2", Weight: 50}}}); err != nil {
		t.Fatal(err)
	}
	waitFor("version 1 ready", func() bool { return servedBy("cam-1") == "1" })
	waitFor("version 2 refused", func() bool {
		st, _ := routes.Statuses(ctx, "coco")
		return st["2"].State == "failed"
	})
	for i := 0; i < 200; i++ {
		if v := servedBy(string(rune('a'+i%26)) + "-cam"); v != "1" {
			t.Fatalf("a stream is served by %q while version 2 failed to load", v)
		}
	}
	first, _, _ := m.Resolve("cam-1", "f")
	if err := routes.Set(ctx, &routing.Route{Model: "coco", Arms: []routing.Arm{{Version: "3", Weight: 100}}}); err != nil {
		t.Fatal(err)
	}
	waitFor("frames move to version 3", func() bool { return servedBy("cam-1") == "3" })
	waitFor("version 1 unloaded", func() bool {
		_, err := first.Eng.Detect(ctx, nil)
		return errors.Is(err, engine.ErrClosed)
	})
	if v := servedBy("cam-2"); v != "3" {
		t.Fatalf("after the unload: %q", v)
	}
}

type pairedResolver struct{ canary, reference Served }

func (p pairedResolver) Resolve(string, string) (Served, *Served, error) {
	r := p.reference
	return p.canary, &r, nil
}

type recorder struct {
	mu   sync.Mutex
	agrs []routing.Agreement
}

func (r *recorder) Record(_ context.Context, _ string, _ routing.Sample, a *routing.Agreement) error {
	if a != nil {
		r.mu.Lock()
		r.agrs = append(r.agrs, *a)
		r.mu.Unlock()
	}
	return nil
}

// TestPairedCanary: a canary frame run beside the primary (Route.Compare) is served by the canary
// on the detections topic, the primary's result goes to the shadow topic only (arm reference),
// and the agreement is recorded for the canary against the primary.
func TestPairedCanary(t *testing.T) {
	f := newFixture(t, nil)
	eng := loadEngine(t, f.lib)
	dets, _ := f.kc.Writer("t.detections")
	shadow, _ := f.kc.Writer("t.detections.shadow")
	defer dets.Close()
	defer shadow.Close()
	rec := &recorder{}
	res := pairedResolver{canary: Served{Eng: eng, Model: ModelOf("coco", "2", eng), Arm: routing.ArmCanary},
		reference: Served{Eng: eng, Model: ModelOf("coco", "1", eng), Arm: routing.ArmReference}}
	d, err := New(Options{Models: res, Stage: f.stage, Store: f.store, Detections: pipeline.KafkaProducer(dets), Shadow: pipeline.KafkaProducer(shadow),
		MaxBytes: 8 << 20, FramesBucket: "frames", Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go d.RunStats(ctx)
	dog, _ := os.ReadFile(testenv.Shared(t, "images", "dog.jpg"))
	if err := d.Handle(ctx, refMessage(storeFrame(t, f.store, "cam-1", "f-1", dog))); err != nil {
		t.Fatal(err)
	}
	var main, side contract.Detections
	json.Unmarshal(testenv.ReadTopic(ctx, t, f.brokers, "t.detections", 1)[0].Value, &main)
	json.Unmarshal(testenv.ReadTopic(ctx, t, f.brokers, "t.detections.shadow", 1)[0].Value, &side)
	if main.Model.Version != "2" || main.Route.Arm != "canary" || side.Model.Version != "1" || side.Route.Arm != "reference" {
		t.Fatalf("main %s/%s, shadow topic %s/%s", main.Model.Version, main.Route.Arm, side.Model.Version, side.Route.Arm)
	}
	for ctx.Err() == nil {
		rec.mu.Lock()
		n := len(rec.agrs)
		rec.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	a := rec.agrs[0]
	if a.Version != "2" || a.Reference != "1" || a.Arm != routing.ArmCanary || a.PrimaryBoxes == 0 || a.PrimaryMatched != a.PrimaryBoxes {
		t.Fatalf("agreement %+v", a)
	}
}
