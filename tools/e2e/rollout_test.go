//go:build integration

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/routing"
	"github.com/streamdet/streamdet/pkg/testenv"
)

// ownRedis starts a Redis of the test's own (password required, nothing persisted), so that the
// test can make it unreachable without disturbing anything else.
func ownRedis(t *testing.T) (addr, password string, cmd *exec.Cmd) {
	t.Helper()
	r, _ := testenv.StartRedis(t, fmt.Sprintf("pw-%d", time.Now().UnixNano()))
	return r.Addr, r.Password, r.Cmd
}

func detctl(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "detctl"), args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if err != nil {
		code = cmd.ProcessState.ExitCode()
	}
	return out.String(), code
}

func mustDetctl(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, code := detctl(t, env, args...)
	if code != 0 {
		t.Fatalf("detctl %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func decodeDetections(msgs []kafka.Message) map[string]contract.Detections {
	out := map[string]contract.Detections{}
	for _, m := range msgs {
		var d contract.Detections
		if json.Unmarshal(m.Value, &d) == nil {
			out[d.FrameID] = d
		}
	}
	return out
}

func TestIntegrationRollout(t *testing.T) {
	longRunning(t)
	st := testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	run := fmt.Sprintf("ro%d", time.Now().UnixNano()%1e9)
	model := "coco" + run
	testenv.Topics(t, st.KafkaBrokers, 3, runTopics(run, "frames.raw", "frames", "detections", "detections.shadow", "dlq")...)
	redisAddr, redisPW, redisCmd := ownRedis(t)
	env := []string{"STREAMDET_TOPIC_PREFIX=" + run, "STREAMDET_FRAMES_BUCKET=" + run + "-frames",
		"STREAMDET_REDIS_ADDR=" + redisAddr, "STREAMDET_REDIS_PASSWORD=" + redisPW, "OTEL_TRACES_EXPORTER=none", "STREAMDET_LOG_LEVEL=warn"}
	shared := testenv.Shared(t, "models")

	// Registry: coco/1 = YOLOX-Nano, coco/2 = YOLOv8n int8; versions are never overwritten.
	mustDetctl(t, env, "model", "push", "--name", model, "--version", "1", "--format", "yolox", "--names", filepath.Join(shared, "coco.names"), filepath.Join(shared, "yolox_nano.onnx"))
	mustDetctl(t, env, "model", "push", "--name", model, "--version", "2", filepath.Join(shared, "yolov8n_int8.onnx"))
	if out, code := detctl(t, env, "model", "push", "--name", model, "--version", "2", filepath.Join(shared, "yolov8n_int8.onnx")); code == 0 || !strings.Contains(out, "already exists") {
		t.Fatalf("overwriting a version: exit %d %s", code, out)
	}
	if out, code := detctl(t, env, "model", "push", "--name", model, "--version", "9", "--format", "end2end", filepath.Join(shared, "yolox_nano.onnx")); code == 0 || !strings.Contains(out, "refused") {
		t.Fatalf("a model that does not fit its declared family: exit %d %s", code, out)
	}
	if out := mustDetctl(t, env, "model", "ls", model); !strings.Contains(out, "yolox") || !strings.Contains(out, "yolov8") {
		t.Fatalf("model ls:\n%s", out)
	}
	mustDetctl(t, env, "route", "set", model, "--weights", "1=80,2=20")
	schemas, err := contract.LoadSchemas(filepath.Join(testenv.RepoRoot(t), "schemas", contract.SchemaVersion))
	if err != nil {
		t.Fatal(err)
	}
	var shown struct {
		Manifest json.RawMessage `json:"manifest"`
	}
	json.Unmarshal([]byte(mustDetctl(t, env, "model", "show", model, "2")), &shown)
	if err := schemas.Validate("manifest", shown.Manifest); err != nil {
		t.Fatalf("pushed manifest: %v", err)
	}
	var got struct {
		Route json.RawMessage `json:"route"`
	}
	json.Unmarshal([]byte(mustDetctl(t, env, "route", "get", model, "--json")), &got)
	if err := schemas.Validate("route", got.Route); err != nil {
		t.Fatalf("stored route: %v", err)
	}
	if out, code := detctl(t, env, "model", "rm", model, "2"); code == 0 || !strings.Contains(out, "used by the route") {
		t.Fatalf("removing a routed version: exit %d %s", code, out)
	}

	startService(t, "ingest", append(env, "STREAMDET_INGEST_GROUP="+run+"-ingest", "STREAMDET_INGEST_EVENTS=false"))
	detect := startService(t, "detect", append(env, "STREAMDET_DETECT_GROUP="+run+"-detect", "STREAMDET_MODEL_NAME="+model,
		"STREAMDET_UNLOAD_GRACE=2s", "STREAMDET_ROUTE_RESYNC=500ms", "STREAMDET_DETECT_CONCURRENCY=6"))
	dets := follow(ctx, t, st.KafkaBrokers, run+".detections")
	shadows := follow(ctx, t, st.KafkaBrokers, run+".detections.shadow")
	w := &kafka.Writer{Addr: kafka.TCP(st.KafkaBrokers...), Topic: run + ".frames.raw", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	var images [][]byte
	for _, n := range []string{"person.jpg", "dog.jpg", "horses.jpg"} {
		b, _ := os.ReadFile(testenv.Shared(t, "images", n))
		images = append(images, b)
	}
	produce := func(id, stream string, i int) {
		t.Helper()
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(stream), Value: images[i%len(images)],
			Headers: []kafka.Header{{Key: "ce_id", Value: []byte(id)}}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, ids []string, timeout time.Duration) map[string]contract.Detections {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			got := decodeDetections(dets.snapshot())
			missing := 0
			for _, id := range ids {
				if _, ok := got[id]; !ok {
					missing++
				}
			}
			if missing == 0 {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d frames without detections after %s (lost or unanswered)", what, missing, len(ids), timeout)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	routeNow := func() *routing.Route {
		out := mustDetctl(t, env, "route", "get", model, "--json")
		var v struct {
			Route  routing.Route             `json:"route"`
			Status map[string]routing.Status `json:"status"`
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("route get --json: %v\n%s", err, out)
		}
		return &v.Route
	}

	t.Run("weighted 80/20, sticky per stream", func(t *testing.T) {
		var ids []string
		for f := 0; f < 10; f++ {
			for s := 0; s < 50; s++ {
				id := fmt.Sprintf("%s-w-%d-%d", run, s, f)
				ids = append(ids, id)
				produce(id, fmt.Sprintf("cam-%d", s), s+f)
			}
		}
		got := waitFor("80/20", ids, 3*time.Minute)
		version := map[string]string{}
		for _, id := range ids {
			d := got[id]
			if d.Model.Name != model || d.Model.Version == "" || d.Route.Arm == "" || !strings.HasPrefix(d.Model.Digest, "sha256:") {
				t.Fatalf("frame %s does not name its version and arm: %+v %+v", id, d.Model, d.Route)
			}
			if v, ok := version[d.StreamID]; ok && v != d.Model.Version {
				t.Fatalf("stream %s served by versions %s and %s", d.StreamID, v, d.Model.Version)
			}
			version[d.StreamID] = d.Model.Version
			if want := map[string]string{"1": routing.ArmPrimary, "2": routing.ArmCanary}[d.Model.Version]; d.Route.Arm != want {
				t.Errorf("frame %s: version %s served as %s", id, d.Model.Version, d.Route.Arm)
			}
		}
		onTwo := 0
		for _, v := range version {
			if v == "2" {
				onTwo++
			}
		}
		share := float64(onTwo) / float64(len(version))
		t.Logf("streams on version 2: %d of %d (%.0f%%)", onTwo, len(version), 100*share)
		if share < 0.10 || share > 0.30 {
			t.Errorf("share of streams on version 2: %.2f, want 0.20 ± 0.10", share)
		}
	})

	t.Run("pin and weight change while frames flow", func(t *testing.T) {
		// Frames flow on 12 streams for 8 s; after 3 s a stream on version 1 is pinned to 2 and
		// the weights change. Frames detected 2 s after the change must follow the new route.
		cur := routeNow()
		pinned := ""
		for s := 0; s < 50 && pinned == ""; s++ {
			if d, _ := cur.Choose(fmt.Sprintf("cam-%d", s), "", func(string) routing.State { return routing.Ready }); d.Version == "1" {
				pinned = fmt.Sprintf("cam-%d", s)
			}
		}
		var ids []string
		var changed time.Time
		start := time.Now()
		for i := 0; time.Since(start) < 8*time.Second; i++ {
			if changed.IsZero() && time.Since(start) > 3*time.Second {
				mustDetctl(t, env, "route", "set", model, "--weights", "1=40,2=60", "--pin", pinned+"=2")
				changed = time.Now()
			}
			stream := fmt.Sprintf("cam-%d", i%12)
			if i%3 == 0 {
				stream = pinned
			}
			id := fmt.Sprintf("%s-p-%d", run, i)
			ids = append(ids, id)
			produce(id, stream, i)
			time.Sleep(40 * time.Millisecond)
		}
		got := waitFor("pin/weights", ids, 2*time.Minute)
		next := routeNow()
		late, wrong := 0, 0
		for _, id := range ids {
			d := got[id]
			if d.DetectedAt.Before(changed.Add(2 * time.Second)) {
				continue
			}
			late++
			want, _ := next.Choose(d.StreamID, d.FrameID, func(string) routing.State { return routing.Ready })
			if d.Model.Version != want.Version || d.Route.Arm != want.Arm {
				wrong++
				t.Errorf("frame %s of %s detected %s after the change: version %s/%s, want %s/%s",
					id, d.StreamID, d.DetectedAt.Sub(changed).Round(time.Millisecond), d.Model.Version, d.Route.Arm, want.Version, want.Arm)
			}
		}
		if late < 20 {
			t.Fatalf("only %d frames detected more than 2 s after the change", late)
		}
		t.Logf("%d frames, %d detected ≥ 2 s after the route change, %d misrouted; pinned %s", len(ids), late, wrong, pinned)
	})

	t.Run("shadow", func(t *testing.T) {
		mustDetctl(t, env, "route", "set", model, "--weights", "1=100", "--shadow", "2", "--shadow-sample", "1.0")
		time.Sleep(2 * time.Second)
		var ids []string
		for i := 0; i < 20; i++ {
			id := fmt.Sprintf("%s-s-%d", run, i)
			ids = append(ids, id)
			produce(id, fmt.Sprintf("cam-%d", i%5), i)
		}
		got := waitFor("shadow", ids, 2*time.Minute)
		deadline := time.Now().Add(time.Minute)
		for {
			sh := decodeDetections(shadows.snapshot())
			missing := 0
			for _, id := range ids {
				if d, ok := sh[id]; !ok {
					missing++
				} else if d.Model.Version != "2" || d.Route.Arm != routing.ArmShadow {
					t.Fatalf("shadow result %s: %+v %+v", id, d.Model, d.Route)
				}
				if p := got[id]; p.Model.Version != "1" || p.Route.Arm != routing.ArmPrimary {
					t.Fatalf("primary result %s: %+v %+v", id, p.Model, p.Route)
				}
			}
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d frames without a shadow result", missing)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// Shadow results never reach the main topic.
		for _, m := range dets.snapshot() {
			var d contract.Detections
			json.Unmarshal(m.Value, &d)
			if d.Route.Arm == routing.ArmShadow {
				t.Fatalf("a shadow result on the detections topic: %s", d.FrameID)
			}
		}
		time.Sleep(time.Second) // stats are recorded asynchronously
		out := mustDetctl(t, env, "route", "stats", model)
		t.Logf("route stats:\n%s", out)
		if !strings.Contains(out, "agreement of shadow 2 with the primary over") {
			t.Fatalf("route stats without the shadow's agreement:\n%s", out)
		}
	})

	t.Run("tampered model never serves", func(t *testing.T) {
		mustDetctl(t, env, "model", "push", "--name", model, "--version", "3", "--format", "yolox", filepath.Join(shared, "yolox_nano.onnx"))
		mc, _ := minio.New(st.MinIOEndpoint, &minio.Options{Creds: credentials.NewStaticV4(st.MinIOAccessKey, st.MinIOSecretKey, "")})
		b, _ := os.ReadFile(filepath.Join(shared, "yolox_nano.onnx"))
		b = bytes.Clone(b)
		b[len(b)/2] ^= 0x01 // one byte changed after upload
		if _, err := mc.PutObject(ctx, "models", model+"/3/model.onnx", bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		// ... and the manifest replaced to match it: the bucket alone is consistent again, but
		// the digest recorded at push time (in Redis) is not the model's.
		obj, err := mc.GetObject(ctx, "models", model+"/3/manifest.json", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var man map[string]any
		if err := json.NewDecoder(obj).Decode(&man); err != nil {
			t.Fatal(err)
		}
		obj.Close()
		sum := sha256.Sum256(b)
		man["sha256"] = hex.EncodeToString(sum[:])
		mb, _ := json.Marshal(man)
		if _, err := mc.PutObject(ctx, "models", model+"/3/manifest.json", bytes.NewReader(mb), int64(len(mb)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		mustDetctl(t, env, "route", "set", model, "--weights", "1=50,3=50")
		var ids []string
		for i := 0; i < 30; i++ {
			id := fmt.Sprintf("%s-t-%d", run, i)
			ids = append(ids, id)
			produce(id, fmt.Sprintf("cam-%d", i), i)
		}
		got := waitFor("tampered", ids, 2*time.Minute)
		for _, id := range ids {
			if v := got[id].Model.Version; v != "1" {
				t.Fatalf("frame %s served by version %s", id, v)
			}
		}
		out := mustDetctl(t, env, "route", "get", model)
		t.Logf("route get:\n%s", out)
		if !strings.Contains(out, "failed") || !strings.Contains(out, "digest does not match") {
			t.Fatalf("route get does not show version 3 refused:\n%s", out)
		}
	})

	t.Run("redis unreachable for 30 s", func(t *testing.T) {
		mustDetctl(t, env, "route", "set", model, "--weights", "1=70,2=30")
		time.Sleep(2 * time.Second)
		r := routeNow()
		var ids []string
		start := time.Now()
		stopped, resumed := false, false
		sawDegraded := false
		for i := 0; time.Since(start) < 42*time.Second; i++ {
			el := time.Since(start)
			if !stopped && el > 4*time.Second {
				redisCmd.Process.Signal(syscall.SIGSTOP)
				stopped = true
			}
			if stopped && !resumed && el > 34*time.Second {
				redisCmd.Process.Signal(syscall.SIGCONT)
				resumed = true
			}
			if stopped && !resumed && el > 10*time.Second && !sawDegraded {
				resp, err := http.Get("http://" + detect.addr + "/readyz")
				if err == nil {
					var v struct {
						Ready  bool              `json:"ready"`
						Checks map[string]string `json:"checks"`
					}
					json.NewDecoder(resp.Body).Decode(&v)
					resp.Body.Close()
					if resp.StatusCode != 200 || !v.Ready {
						t.Errorf("detect not ready while Redis is unreachable: %d %v", resp.StatusCode, v.Checks)
					}
					sawDegraded = strings.HasPrefix(v.Checks["routes"], "degraded")
				}
			}
			id := fmt.Sprintf("%s-r-%d", run, i)
			ids = append(ids, id)
			produce(id, fmt.Sprintf("cam-%d", i%20), i)
			time.Sleep(150 * time.Millisecond)
		}
		if !sawDegraded {
			t.Error("detect never reported routes as degraded while Redis was unreachable")
		}
		got := waitFor("redis outage", ids, 2*time.Minute)
		for _, id := range ids {
			d := got[id]
			want, _ := r.Choose(d.StreamID, d.FrameID, func(string) routing.State { return routing.Ready })
			if d.Model.Version != want.Version {
				t.Fatalf("frame %s of %s: version %s, want %s (routing changed during the outage)", id, d.StreamID, d.Model.Version, want.Version)
			}
		}
		// Recovery without restart: a route change applies again.
		mustDetctl(t, env, "route", "set", model, "--weights", "2=100")
		time.Sleep(2500 * time.Millisecond)
		id := run + "-r-after"
		produce(id, "cam-0", 0)
		if d := waitFor("after recovery", []string{id}, time.Minute)[id]; d.Model.Version != "2" {
			t.Fatalf("after Redis came back, a route change did not apply: version %s", d.Model.Version)
		}
		t.Logf("%d frames through a 30 s Redis outage, none lost, routing unchanged", len(ids))
	})

	t.Run("promote keeps the old version warm, rollback restores", func(t *testing.T) {
		mustDetctl(t, env, "route", "set", model, "--weights", "1=100")
		mustDetctl(t, env, "route", "promote", model, "2", "--keep-warm", "1m")
		r := routeNow()
		if len(r.Arms) != 1 || r.Arms[0].Version != "2" || r.Arms[0].Weight != 100 || r.Warm["1"].IsZero() {
			t.Fatalf("after promote: arms %+v warm %v", r.Arms, r.Warm)
		}
		time.Sleep(4 * time.Second) // past the 2 s unload grace: version 1 must still be loaded (warm)
		id := run + "-promoted"
		produce(id, "cam-3", 0)
		if d := waitFor("promote", []string{id}, time.Minute)[id]; d.Model.Version != "2" {
			t.Fatalf("after promote: served by %s", d.Model.Version)
		}
		out := mustDetctl(t, env, "route", "get", model, "--json")
		var v struct {
			Status map[string]routing.Status `json:"status"`
		}
		json.Unmarshal([]byte(out), &v)
		if v.Status["1"].State != "ready" {
			t.Fatalf("version 1 should stay loaded for rollback, is %+v", v.Status["1"])
		}
		mustDetctl(t, env, "route", "rollback", model)
		if r := routeNow(); len(r.Arms) != 1 || r.Arms[0].Version != "1" {
			t.Fatalf("after rollback: %+v", r.Arms)
		}
		time.Sleep(1500 * time.Millisecond)
		id = run + "-rolledback"
		produce(id, "cam-3", 1)
		if d := waitFor("rollback", []string{id}, time.Minute)[id]; d.Model.Version != "1" {
			t.Fatalf("after rollback: served by %s", d.Model.Version)
		}
	})

	t.Run("hot swap 20 times, memory settles", func(t *testing.T) {
		rss := func() int64 {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", detect.cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "VmRSS:") {
					n, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
					return n / 1024
				}
			}
			return 0
		}
		var samples []int64
		for i := 0; i < 20; i++ {
			v := []string{"1", "2"}[i%2]
			mustDetctl(t, env, "route", "set", model, "--weights", v+"=100")
			// Served by the new version, then the old one unloaded (grace 2 s).
			id := fmt.Sprintf("%s-h-%d", run, i)
			time.Sleep(1500 * time.Millisecond)
			produce(id, "cam-0", i)
			if d := waitFor("swap", []string{id}, time.Minute)[id]; d.Model.Version != v {
				t.Fatalf("swap %d: served by %s, want %s", i, d.Model.Version, v)
			}
			time.Sleep(3 * time.Second)
			samples = append(samples, rss())
		}
		t.Logf("resident memory after each swap (MiB): %v", samples)
		// Settled: the last five swaps use no more than the middle five did (plus slack for one
		// version's sessions); growth per swap would show as a steady climb across the run.
		mid, late := int64(0), int64(0)
		for _, s := range samples[5:10] {
			mid = max(mid, s)
		}
		for _, s := range samples[15:] {
			late = max(late, s)
		}
		if late > mid+48 {
			t.Errorf("resident memory still grows with swaps: %d MiB at most after swaps 6-10, %d MiB after swaps 16-20", mid, late)
		}
		if out := mustDetctl(t, env, "route", "get", model); !strings.Contains(out, "unloaded") {
			t.Errorf("no version reported unloaded after 20 swaps:\n%s", out)
		}
	})
}
