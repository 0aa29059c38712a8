//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/drift"
	"github.com/streamdet/streamdet/pkg/routing"
	"github.com/streamdet/streamdet/pkg/testenv"
)

// controller is a `detctl rollout run` process.
type controller struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{}
}

func startController(t *testing.T, env []string, model string) *controller {
	t.Helper()
	c := &controller{out: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	c.cmd = exec.Command(filepath.Join(binaries(t), "detctl"), "rollout", "run", model, "--interval", "500ms")
	c.cmd.Env = append(os.Environ(), env...)
	w := &lockedWriter{b: c.out, mu: c.mu}
	c.cmd.Stdout, c.cmd.Stderr = w, w
	testenv.KillWithTest(c.cmd)
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.cmd.Process.Kill(); <-c.done })
	return c
}

func (c *controller) output() string { c.mu.Lock(); defer c.mu.Unlock(); return c.out.String() }

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestIntegrationProgressiveRollout runs the real pipeline (ingest, detect, the registry, Redis,
// Kafka) with frames flowing on 20 streams while the rollout controller works: (1) a good
// candidate (the same model re-pushed) walks every step and is promoted, (3) its controller
// killed with SIGKILL mid-rollout is replaced by another that resumes from the recorded step;
// (2) a bad candidate (the same network declared as another family, so its boxes are wrong) is
// rolled back at the first step, within a few frames over its minimum, and no stream stays on it.
func TestIntegrationProgressiveRollout(t *testing.T) {
	longRunning(t)
	st := testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run := fmt.Sprintf("pr%d", time.Now().UnixNano()%1e9)
	model := "coco" + run
	testenv.Topics(t, st.KafkaBrokers, 3, runTopics(run, "frames.raw", "frames", "detections", "detections.shadow", "dlq", "rollouts")...)
	redisAddr, redisPW, _ := ownRedis(t)
	env := []string{"STREAMDET_TOPIC_PREFIX=" + run, "STREAMDET_FRAMES_BUCKET=" + run + "-frames",
		"STREAMDET_REDIS_ADDR=" + redisAddr, "STREAMDET_REDIS_PASSWORD=" + redisPW, "OTEL_TRACES_EXPORTER=none", "STREAMDET_LOG_LEVEL=warn"}
	shared := testenv.Shared(t, "models")
	names := filepath.Join(shared, "coco.names")
	nano := filepath.Join(shared, "yolox_nano.onnx")
	mustDetctl(t, env, "model", "push", "--name", model, "--version", "1", "--format", "yolox", "--names", names, nano)
	mustDetctl(t, env, "model", "push", "--name", model, "--version", "2", "--format", "yolox", "--names", names, nano)
	// The bad candidate: the same network with its class head rotated by one — the same boxes,
	// scores and detections per frame, every class wrong. Only the agreement gate can see it.
	nanoBytes, err := os.ReadFile(nano)
	if err != nil {
		t.Fatal(err)
	}
	swappedBytes, err := swapClasses(nanoBytes)
	if err != nil {
		t.Fatal(err)
	}
	swapped := filepath.Join(t.TempDir(), "yolox_nano_swapped.onnx")
	if err := os.WriteFile(swapped, swappedBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	mustDetctl(t, env, "model", "push", "--name", model, "--version", "3", "--format", "yolox", "--names", names, swapped)
	mustDetctl(t, env, "route", "set", model, "--weights", "1=100")

	startService(t, "ingest", append(env, "STREAMDET_INGEST_GROUP="+run+"-ingest", "STREAMDET_INGEST_EVENTS=false"))
	detectEnv := append(env, "STREAMDET_DETECT_GROUP="+run+"-detect", "STREAMDET_MODEL_NAME="+model,
		"STREAMDET_UNLOAD_GRACE=5s", "STREAMDET_ROUTE_RESYNC=500ms", "STREAMDET_DRIFT_REFERENCE_FRAMES=20", "STREAMDET_DRIFT_WINDOW_FRAMES=20")
	detect := startService(t, "detect", detectEnv)
	// The sink stores detections files: dataset export samples the drifting streams' frames.
	sinkEnv := append(env, "STREAMDET_SINK_GROUP="+run+"-sink", "STREAMDET_DETECTIONS_BUCKET="+run+"-detections", "STREAMDET_SINK_FLUSH_INTERVAL=500ms")
	startService(t, "sink", sinkEnv)
	dets := follow(ctx, t, st.KafkaBrokers, run+".detections")
	events := follow(ctx, t, st.KafkaBrokers, run+".rollouts")

	// Frames flow on 20 streams, about 8 a second, the three photographs in turn.
	w := &kafka.Writer{Addr: kafka.TCP(st.KafkaBrokers...), Topic: run + ".frames.raw", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	var images [][]byte
	for _, n := range []string{"person.jpg", "dog.jpg", "horses.jpg"} {
		b, _ := os.ReadFile(testenv.Shared(t, "images", n))
		images = append(images, b)
	}
	fctx, stopFrames := context.WithCancel(ctx)
	framesDone := make(chan struct{})
	go func() {
		defer close(framesDone)
		for i := 0; fctx.Err() == nil; i++ {
			w.WriteMessages(fctx, kafka.Message{Key: []byte(fmt.Sprintf("cam-%d", i%20)), Value: images[(i/20+i)%3],
				Headers: []kafka.Header{{Key: "ce_id", Value: []byte(fmt.Sprintf("%s-%d", run, i))}}})
			time.Sleep(120 * time.Millisecond)
		}
	}()
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { stopFrames(); <-framesDone }) }
	defer stop()

	rollout := func(t *testing.T) *routing.Rollout {
		var r routing.Rollout
		out := mustDetctl(t, env, "rollout", "status", model, "--json")
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("rollout status: %v\n%s", err, out)
		}
		return &r
	}
	route := func(t *testing.T) *routing.Route {
		var v struct {
			Route routing.Route `json:"route"`
		}
		json.Unmarshal([]byte(mustDetctl(t, env, "route", "get", model, "--json")), &v)
		return &v.Route
	}
	waitState := func(t *testing.T, c *controller, want string, limit time.Duration) *routing.Rollout {
		t.Helper()
		deadline := time.Now().Add(limit)
		for {
			r := rollout(t)
			if r.State == want {
				return r
			}
			if r.State != routing.RolloutRunning || time.Now().After(deadline) {
				t.Fatalf("rollout %s, want %s (%s)\ncontroller:\n%s", r.Describe(), want, r.Reason, c.output())
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	gates := []string{"--compare", "1", "--min-agreement", "0.8", "--max-p99-ratio", "4", "--detections-band", "0.6"}

	t.Run("good candidate promoted; controller killed mid-rollout resumes", func(t *testing.T) {
		time.Sleep(3 * time.Second) // version 1 serving
		mustDetctl(t, env, append([]string{"rollout", "start", model, "2", "--steps", "20:6s:10,50:6s:10,100:4s:10"}, gates...)...)
		c1 := startController(t, env, model)
		deadline := time.Now().Add(3 * time.Minute)
		for rollout(t).Step < 1 {
			if time.Now().After(deadline) {
				t.Fatalf("step 2 not reached: %s\n%s", rollout(t).Describe(), c1.output())
			}
			time.Sleep(300 * time.Millisecond)
		}
		c1.cmd.Process.Signal(syscall.SIGKILL)
		<-c1.done
		killedAt := rollout(t).Step
		c2 := startController(t, env, model)
		r := waitState(t, c2, routing.RolloutPromoted, 4*time.Minute)
		if !strings.Contains(c2.output(), "another controller holds") {
			t.Errorf("the second controller did not wait for the dead one's lease:\n%s", c2.output())
		}
		if rt := route(t); len(rt.Arms) != 1 || rt.Arms[0].Version != "2" {
			t.Fatalf("route after promotion %+v", rt)
		}
		var acts []string
		for _, e := range r.History {
			acts = append(acts, fmt.Sprintf("%s@%d", e.Action, e.Step))
		}
		t.Logf("killed at step %d; history: %s", killedAt+1, strings.Join(acts, " "))
		if got := strings.Join(acts, " "); got != "start@1 step@1 step@2 step@2 step@3 promote@3" {
			t.Fatalf("history %s", got)
		}
		for _, e := range r.History {
			if e.Action == "step" && e.Reason == "passed" && (e.Figures["agreement_lo"] < 0.8 || e.Figures["compared"] < 1) {
				t.Fatalf("a step passed on %v", e.Figures)
			}
		}
		waitEvents(t, events, "promote")
	})

	t.Run("bad candidate rolled back at the first step", func(t *testing.T) {
		mustDetctl(t, env, append([]string{"rollout", "start", model, "3", "--steps", "20:6s:10,50:6s:10,100:6s:10"}, gates...)...)
		started := time.Now()
		c := startController(t, env, model)
		r := waitState(t, c, routing.RolloutRolledBack, 3*time.Minute)
		t.Logf("rolled back after %s: %s", time.Since(started).Round(time.Second), r.Reason)
		if r.Step != 0 || !strings.Contains(r.Reason, "step 1") || !strings.Contains(r.Reason, "agreement") {
			t.Fatalf("rolled back at step %d: %s", r.Step+1, r.Reason)
		}
		last := r.History[len(r.History)-1]
		if last.Action != "rollback" || last.Figures["frames"] < 10 || last.Figures["frames"] > 40 {
			t.Fatalf("rollback on %v", last.Figures)
		}
		if rt := route(t); rt.Uses("3", time.Now()) || len(rt.Arms) != 1 || rt.Arms[0].Version != "2" {
			t.Fatalf("route after the rollback %+v", rt)
		}
		// No stream stays on 3: frames detected from 3 s after the rollback are all version 2.
		rolled := last.At
		time.Sleep(6 * time.Second)
		late := 0
		for _, d := range decodeDetections(dets.snapshot()) {
			if d.DetectedAt.After(rolled.Add(3 * time.Second)) {
				late++
				if d.Model.Version != "2" {
					t.Fatalf("frame %s detected by %s after the rollback", d.FrameID, d.Model.Version)
				}
			}
		}
		if late < 10 {
			t.Fatalf("only %d frames after the rollback", late)
		}
		waitEvents(t, events, "rollback")
	})

	// (4) Drift: two new streams show the photographs (their reference), then one of them grey,
	// tiny frames: the drift of that stream only rises over 0.25. The reference is version 2's
	// frames since its promotion, kept in Redis: a restarted detect compares with it at once;
	// detctl drift reset starts a new one.
	var grey bytes.Buffer
	img := image.NewGray(image.Rect(0, 0, 96, 64))
	for i := range img.Pix {
		img.Pix[i] = 128
	}
	jpeg.Encode(&grey, img, nil)
	send := func(t *testing.T, tag string, n int, greyFrom map[string]int) {
		for i := 0; i < n; i++ {
			for _, stream := range []string{"drift-a", "drift-b"} {
				frame := images[i%3]
				if from, ok := greyFrom[stream]; ok && i >= from {
					frame = grey.Bytes()
				}
				if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(stream), Value: frame,
					Headers: []kafka.Header{{Key: "ce_id", Value: []byte(fmt.Sprintf("%s-%s-%s-%d", run, tag, stream, i))}}}); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(50 * time.Millisecond) // in order per stream
		}
	}
	// newest waits for values of both streams computed after since on baseline, and returns
	// each stream's largest PSI.
	newest := func(t *testing.T, since time.Time, baseline string) (maxA, maxB float64) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
			var vs []drift.Value
			json.Unmarshal([]byte(mustDetctl(t, env, "drift", model, "--json")), &vs)
			seen := map[string]bool{}
			maxA, maxB = 0, 0
			for _, v := range vs {
				if v.At.Before(since) || v.Baseline != baseline || v.Version != "2" {
					continue
				}
				seen[v.Stream] = true
				switch v.Stream {
				case "drift-a":
					maxA = max(maxA, v.PSI)
				case "drift-b":
					maxB = max(maxB, v.PSI)
				}
			}
			if seen["drift-a"] && seen["drift-b"] {
				return maxA, maxB
			}
			if time.Now().After(deadline) {
				t.Fatalf("no drift values on baseline %s for both streams since %s: %+v", baseline, since.Format(time.RFC3339), vs)
			}
		}
	}
	var baseline string
	t.Run("drift on the changed stream only", func(t *testing.T) {
		stop()
		promotedAt := route(t).DriftReference["2"]
		if promotedAt.IsZero() {
			t.Fatalf("version 2 promoted without a drift reference: %+v", route(t))
		}
		baseline = strconv.FormatInt(promotedAt.UnixMilli(), 10)
		began := time.Now()
		send(t, "ref", 40, map[string]int{"drift-a": 20})
		maxA, maxB := newest(t, began, baseline)
		t.Logf("drift: changed stream max PSI %.2f, unchanged stream %.2f\n%s", maxA, maxB, mustDetctl(t, env, "drift", model, "--threshold", "0.25"))
		if maxA <= 0.25 || maxB > 0.25 {
			t.Fatalf("drift-a %.3f (want > 0.25), drift-b %.3f (want ≤ 0.25)", maxA, maxB)
		}
		// A sample of the drifting stream's stored frames, for relabelling: drift-a's only.
		time.Sleep(3 * time.Second) // the sink's last flush
		out := filepath.Join(t.TempDir(), "dataset")
		mustDetctl(t, sinkEnv, "dataset", "export", "--model", model+"@2", "--drifting", "0.25", "--out", out, "pipeline:30")
		files, _ := os.ReadDir(filepath.Join(out, "images"))
		for _, f := range files {
			if !strings.HasPrefix(f.Name(), "drift-a_") {
				t.Errorf("dataset export --drifting 0.25 exported %s", f.Name())
			}
		}
		// Frames are content-addressed: drift-a's distinct frames are the photographs and the grey one.
		if len(files) < 2 {
			t.Errorf("dataset export --drifting 0.25: %d frames of drift-a, want the photographs and the grey frame", len(files))
		}
		// Kept in Redis for every replica and restart.
		_, port, _ := strings.Cut(redisAddr, ":")
		stored, _ := exec.Command("redis-cli", "-p", port, "--no-auth-warning", "-a", redisPW,
			"hexists", "streamdet:driftref:v1:"+model+"|2|"+baseline, "drift-a").Output()
		if strings.TrimSpace(string(stored)) != "1" {
			t.Fatalf("no stored drift reference of drift-a on baseline %s: %q", baseline, stored)
		}
	})

	t.Run("drift reference kept across a restart, recaptured after a reset", func(t *testing.T) {
		// A new detect process compares its first window with the stored reference: 20 frames
		// per stream give values at once (a capture of its own would need 40).
		detect.kill()
		detect = startService(t, "detect", detectEnv)
		restarted := time.Now()
		send(t, "restart", 20, map[string]int{"drift-a": 0})
		maxA, maxB := newest(t, restarted, baseline)
		t.Logf("after a restart: changed stream %.2f, unchanged stream %.2f", maxA, maxB)
		if maxA <= 0.25 || maxB > 0.25 {
			t.Fatalf("after a restart: drift-a %.3f (want > 0.25), drift-b %.3f (want ≤ 0.25)", maxA, maxB)
		}
		// Reset: the grey frames become drift-a's reference; more grey frames do not drift.
		mustDetctl(t, env, "drift", "reset", model, "2")
		reset := route(t).DriftReference["2"]
		next := strconv.FormatInt(reset.UnixMilli(), 10)
		if next == baseline {
			t.Fatalf("drift reset kept the baseline %s", baseline)
		}
		time.Sleep(2 * time.Second) // detect resyncs its route every 500 ms
		began := time.Now()
		send(t, "reset", 40, map[string]int{"drift-a": 0})
		maxA, maxB = newest(t, began, next)
		t.Logf("after a reset: drift-a %.2f, drift-b %.2f", maxA, maxB)
		if maxA > 0.1 || maxB > 0.25 {
			t.Fatalf("after a reset: drift-a %.3f, drift-b %.3f (want grey against grey ≤ 0.1)", maxA, maxB)
		}
	})
}

// waitEvents waits for a rollout event with action on the rollouts topic.
func waitEvents(t *testing.T, c *collector, action string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for _, m := range c.snapshot() {
			var ev routing.RolloutEvent
			if json.Unmarshal(m.Value, &ev) == nil && ev.Action == action && header(m, contract.HeaderType) == contract.TypeRollout {
				return
			}
		}
	}
	t.Fatalf("no %s event on the rollouts topic", action)
}
