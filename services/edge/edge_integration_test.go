//go:build integration

package edge_test

import (
	"bufio"
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

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/pkg/routing"
	"github.com/streamdet/streamdet/pkg/testenv"
)

// The edge runtime against real servers: a private Kafka broker the tests stop and start (the
// uplink), the shared MinIO and Redis (the registry), ffmpeg reading video files as cameras, and
// the streamdet-edge binary as a process (so that it can be killed with SIGKILL).

const topic = "streamdet.detections"

type rig struct {
	stack   testenv.Stack
	root    string
	bin     string
	kafka   string // the private broker's address
	aux     *testenv.KafkaAux
	dog     []contract.Detection
	amd64   []contract.Detection // what the amd64 build detected on the video's frames
	schemas *contract.Schemas
}

func newRig(t *testing.T) *rig {
	stack := testenv.Require(t)
	root := testenv.RepoRoot(t)
	r := &rig{stack: stack, root: root, bin: filepath.Join(t.TempDir(), "streamdet-edge")}
	build := exec.Command("go", "build", "-o", r.bin, "./services/edge/cmd/streamdet-edge")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build streamdet-edge: %v\n%s", err, out)
	}
	r.aux, _ = testenv.StartKafkaAux(t)
	r.kafka = r.aux.Addr
	var err error
	if r.schemas, err = contract.LoadSchemas(filepath.Join(root, "schemas", contract.SchemaVersion)); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(testenv.Shared(t, "reference", "yolox_nano.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ref struct {
			Image      string
			Detections []contract.Detection
		}
		json.Unmarshal(sc.Bytes(), &ref)
		if ref.Image == "dog.jpg" {
			r.dog = ref.Detections
		}
	}
	return r
}

// video makes a video of the dog photograph, seconds long at fps (H.264, as a camera sends).
func (r *rig) video(t *testing.T, seconds, fps int) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), fmt.Sprintf("dog-%ds.mp4", seconds))
	cmd := exec.Command("ffmpeg", "-nostdin", "-loglevel", "error", "-loop", "1", "-framerate", strconv.Itoa(fps),
		"-i", testenv.Shared(t, "images", "dog.jpg"), "-t", strconv.Itoa(seconds),
		"-c:v", "libx264", "-crf", "8", "-pix_fmt", "yuv420p", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

type edgeProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	log    *os.File
	exited chan struct{}
	err    error
}

// start runs the edge binary (argv: nil for the amd64 build) with the base environment plus env.
func (r *rig) start(t *testing.T, argv []string, env ...string) *edgeProc {
	t.Helper()
	p := &edgeProc{t: t, addr: testenv.FreeAddr(t)}
	if argv == nil {
		argv = []string{r.bin}
	}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	base := []string{"PATH=" + os.Getenv("PATH"), "ONNXRUNTIME_LIB=" + r.stack.ONNXRuntimeLib,
		"STREAMDET_KAFKA_BROKERS=" + r.kafka, "STREAMDET_EDGE_ADDR=" + p.addr, "STREAMDET_EDGE_HEARTBEAT=1s",
		"STREAMDET_DRAIN_TIMEOUT=5s", "STREAMDET_LOG_LEVEL=debug"}
	p.cmd.Env = append(base, env...)
	var err error
	if p.log, err = os.CreateTemp(t.TempDir(), "edge-*.log"); err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	testenv.KillWithTest(p.cmd)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			b, _ := os.ReadFile(p.log.Name())
			t.Logf("edge log (%s):\n%s", p.log.Name(), tail(string(b), 4000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func (p *edgeProc) status() (contract.DeviceStatus, error) {
	var st contract.DeviceStatus
	resp, err := http.Get("http://" + p.addr + "/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitFor polls the status until ok says so, or fails the test after limit.
func (p *edgeProc) waitFor(what string, limit time.Duration, ok func(contract.DeviceStatus) bool) contract.DeviceStatus {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	var st contract.DeviceStatus
	var err error
	for time.Now().Before(deadline) {
		if st, err = p.status(); err == nil && ok(st) {
			return st
		}
		select {
		case <-p.exited:
			p.t.Fatalf("edge exited (%v) while waiting for %s", p.err, what)
		default:
		}
		time.Sleep(250 * time.Millisecond)
	}
	p.t.Fatalf("edge: %s not within %s (last status %+v, err %v)", what, limit, st, err)
	return st
}

// stop sends SIGTERM and waits for a clean exit.
func (p *edgeProc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			p.t.Fatalf("edge exit: %v", p.err)
		}
	case <-time.After(30 * time.Second):
		p.t.Fatal("edge did not stop within 30s of SIGTERM")
	}
}

func (p *edgeProc) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// rss is the process's resident set in bytes.
func (p *edgeProc) rss() int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func cameraDone(cam string) func(contract.DeviceStatus) bool {
	return func(st contract.DeviceStatus) bool {
		return st.Cameras[cam].State == "ended" && st.Queue.Depth == 0 && st.Uplink == "ok"
	}
}

// central reads stream's detections from the private broker's topic (one partition per key,
// so in the order they were appended), waiting until at least want distinct sequences are in.
func (r *rig) central(t *testing.T, stream string, want int) []contract.Detections {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		var out []contract.Detections
		seen := map[int64]bool{}
		for _, m := range testenv.ReadTopic(ctx, t, []string{r.kafka}, topic, 0) {
			if string(m.Key) != stream {
				continue
			}
			if err := r.schemas.Validate("detections", m.Value); err != nil {
				t.Fatalf("edge detections break the schema: %v\n%s", err, m.Value)
			}
			if v, _ := header(m, contract.HeaderType); v != contract.TypeDetections {
				t.Fatalf("ce_type %q", v)
			}
			if v, ok := header(m, "traceparent"); !ok || len(v) != 55 {
				t.Fatalf("no trace context on an edge message: %q", v)
			}
			var d contract.Detections
			json.Unmarshal(m.Value, &d)
			out = append(out, d)
			seen[d.Edge.Sequence] = true
		}
		if len(seen) >= want || ctx.Err() != nil {
			return out
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func header(m kafka.Message, k string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == k {
			return string(h.Value), true
		}
	}
	return "", false
}

// sameResends checks that every duplicate is an identical resend (same frame id, same content)
// and that there are at most limit of them (one forwarding batch).
func sameResends(t *testing.T, ds []contract.Detections, limit int) {
	t.Helper()
	first := map[string][]byte{}
	dups := 0
	for _, d := range ds {
		b, _ := json.Marshal(d)
		if prev, ok := first[d.FrameID]; ok {
			dups++
			if string(prev) != string(b) {
				t.Fatalf("frame %s sent twice with different content", d.FrameID)
			}
			continue
		}
		first[d.FrameID] = b
	}
	if dups > limit {
		t.Fatalf("%d duplicates, more than one batch (%d) of resends", dups, limit)
	}
}

// sequences checks that the stream's sequences first appear in increasing order and returns
// the distinct ones and the number of duplicates.
func sequences(t *testing.T, ds []contract.Detections) (seqs []int64, dups int) {
	t.Helper()
	seen := map[int64]bool{}
	var last int64
	for _, d := range ds {
		s := d.Edge.Sequence
		if seen[s] {
			dups++
			continue
		}
		if s <= last {
			t.Fatalf("sequence %d after %d: out of order", s, last)
		}
		seen[s], last = true, s
		seqs = append(seqs, s)
	}
	return seqs, dups
}

func contiguous(t *testing.T, seqs []int64, from, to int64) {
	t.Helper()
	if int64(len(seqs)) != to-from+1 || len(seqs) > 0 && (seqs[0] != from || seqs[len(seqs)-1] != to) {
		first, last := int64(0), int64(0)
		if len(seqs) > 0 {
			first, last = seqs[0], seqs[len(seqs)-1]
		}
		t.Fatalf("central has %d distinct sequences %d…%d, want every one of %d…%d", len(seqs), first, last, from, to)
	}
}

func (r *rig) boxes(t *testing.T, d contract.Detections) {
	t.Helper()
	if d.Width != 768 || d.Height != 576 {
		t.Fatalf("frame size %dx%d, want 768x576", d.Width, d.Height)
	}
	for _, o := range d.Detections {
		if o.Label == "" {
			t.Fatalf("frame %s: a detection without its label: %+v", d.FrameID, o)
		}
	}
	if p := testenv.CompareDetections(d.Detections, r.dog, 0.35, 0.8); len(p) > 0 {
		t.Fatalf("frame %s: boxes differ from the reference: %v", d.FrameID, p)
	}
}

func staticModel(t *testing.T) []string {
	return []string{"STREAMDET_MODEL_PATH=" + testenv.Shared(t, "models", "yolox_nano.onnx"), "STREAMDET_MODEL_NAME=yolox-nano", "STREAMDET_MODEL_FORMAT=yolox",
		"STREAMDET_MODEL_NAMES_PATH=" + testenv.Shared(t, "models", "coco.names")}
}

func TestIntegrationEdge(t *testing.T) {
	r := newRig(t)

	// (1) A video file as a camera: detections arrive centrally with correct boxes, numbered
	// without gaps; heartbeats on the devices topic; the bandwidth figure.
	t.Run("video", func(t *testing.T) {
		vid := r.video(t, 12, 10)
		p := r.start(t, nil, append(staticModel(t), "STREAMDET_EDGE_DEVICE_ID=box1", "STREAMDET_EDGE_DATA_DIR="+t.TempDir(),
			"STREAMDET_EDGE_CAMERAS=gate="+vid, "STREAMDET_EDGE_FPS=5")...)
		st := p.waitFor("the video detected and forwarded", 90*time.Second, cameraDone("gate"))
		ds := r.central(t, "box1.gate", int(st.Detected))
		seqs, dups := sequences(t, ds)
		contiguous(t, seqs, 1, st.Detected)
		if dups != 0 || st.Detected < 30 {
			t.Fatalf("%d duplicates, %d detected (12 s at 5 fps)", dups, st.Detected)
		}
		r.amd64 = ds[0].Detections
		for _, d := range ds {
			r.boxes(t, d)
			if d.Model.Version != "1" || d.Route.Arm != "primary" || d.Edge.Device != "box1" || d.Edge.Group != "default" || d.Frame.Key != "" {
				t.Fatalf("labels: %+v", d)
			}
		}
		cam := st.Cameras["gate"]
		t.Logf("bandwidth: %d frames read (%d JPEG bytes, what the central pipeline would receive), %d detected, %d skipped; upstream %d bytes = %.4f of the frames' bytes (1/%.0f)",
			cam.Frames, cam.Bytes, st.Detected, cam.Skipped, st.Upstream, float64(st.Upstream)/float64(cam.Bytes), float64(cam.Bytes)/float64(st.Upstream))
		if st.Upstream <= 0 || st.Upstream*10 > cam.Bytes {
			t.Fatalf("upstream %d bytes against %d bytes of frames", st.Upstream, cam.Bytes)
		}
		p.stop()
		beats := 0
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for _, m := range testenv.ReadTopic(ctx, t, []string{r.kafka}, "streamdet.devices", 1) {
			if string(m.Key) == "box1" {
				if err := r.schemas.Validate("device-status", m.Value); err != nil {
					t.Fatalf("heartbeat: %v\n%s", err, m.Value)
				}
				beats++
			}
		}
		if beats < 3 {
			t.Fatalf("%d heartbeats from box1", beats)
		}
		// The fleet view from those heartbeats.
		detctl := filepath.Join(t.TempDir(), "detctl")
		build := exec.Command("go", "build", "-o", detctl, "./tools/cmd/detctl")
		build.Dir = r.root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build detctl: %v\n%s", err, out)
		}
		lsctx, lscancel := context.WithTimeout(context.Background(), time.Minute)
		defer lscancel()
		ls := exec.CommandContext(lsctx, detctl, "devices", "ls")
		ls.Env = append(os.Environ(), "STREAMDET_KAFKA_BROKERS="+r.kafka)
		out, err := ls.CombinedOutput()
		row := ""
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "box1 ") {
				row = l
			}
		}
		if f := strings.Fields(row); err != nil || len(f) < 4 || f[1] != "default" || f[2] != "yolox-nano" || f[3] != "1" || !strings.Contains(row, "stopping") {
			t.Fatalf("detctl devices ls: %v\n%s", err, out)
		}
		t.Logf("detctl devices ls:\n%s", out)
	})

	// (2) Kafka stopped for 60 s while the camera runs: afterwards every detection made during
	// the outage arrives, once, in order.
	t.Run("uplink down 60s", func(t *testing.T) {
		vid := r.video(t, 90, 10)
		p := r.start(t, nil, append(staticModel(t), "STREAMDET_EDGE_DEVICE_ID=box2", "STREAMDET_EDGE_DATA_DIR="+t.TempDir(),
			"STREAMDET_EDGE_CAMERAS=gate="+vid, "STREAMDET_EDGE_FPS=4")...)
		p.waitFor("forwarding", 60*time.Second, func(st contract.DeviceStatus) bool { return st.Forwarded > 5 })
		r.aux.Stop(t)
		down := time.Now()
		st := p.waitFor("the outage noticed", 30*time.Second, func(st contract.DeviceStatus) bool { return st.Uplink != "ok" && st.Queue.Depth > 0 })
		time.Sleep(time.Until(down.Add(60 * time.Second)))
		st, _ = p.status()
		queued := st.Queue.Depth
		t.Logf("after 60 s without Kafka: %d queued (%d bytes), %d detected, uplink %q", queued, st.Queue.Bytes, st.Detected, tail(st.Uplink, 120))
		if queued < 150 {
			t.Fatalf("only %d detections queued in a 60 s outage at 4 fps", queued)
		}
		r.aux.Start(t)
		st = p.waitFor("the video detected and the queue forwarded", 120*time.Second, cameraDone("gate"))
		ds := r.central(t, "box2.gate", int(st.Detected))
		seqs, dups := sequences(t, ds)
		contiguous(t, seqs, 1, st.Detected)
		t.Logf("%d detections, %d during the outage, all arrived in order; %d duplicates on the topic", st.Detected, queued, dups)
		// A batch in flight when the broker went away may have been stored without its
		// acknowledgement reaching the device (kafka-go has no idempotent producer): it is sent
		// again, as the same message with the same id, which the sink writes once. Nothing else
		// may be duplicated.
		sameResends(t, ds, 256)
		if st.Queue.Dropped != 0 {
			t.Fatalf("dropped %d", st.Queue.Dropped)
		}
		p.stop()
	})

	// (3) kill -9 of the edge process during the outage: what it had queued is forwarded by the
	// next start; sequences continue, so nothing is lost and nothing reused.
	t.Run("kill -9 during outage", func(t *testing.T) {
		data := t.TempDir()
		long, short := r.video(t, 60, 10), r.video(t, 5, 10)
		env := append(staticModel(t), "STREAMDET_EDGE_DEVICE_ID=box3", "STREAMDET_EDGE_DATA_DIR="+data, "STREAMDET_EDGE_FPS=4")
		p := r.start(t, nil, append(env, "STREAMDET_EDGE_CAMERAS=gate="+long)...)
		p.waitFor("forwarding", 60*time.Second, func(st contract.DeviceStatus) bool { return st.Forwarded > 5 })
		r.aux.Stop(t)
		st := p.waitFor("40 detections queued", 60*time.Second, func(st contract.DeviceStatus) bool { return st.Queue.Depth >= 40 })
		p.kill9()
		t.Logf("killed with %d queued, %d detected", st.Queue.Depth, st.Detected)
		p = r.start(t, nil, append(env, "STREAMDET_EDGE_CAMERAS=gate="+short)...)
		st2 := p.waitFor("restarted with the queue", 30*time.Second, func(contract.DeviceStatus) bool { return true })
		if st2.Queue.Depth < 40 {
			t.Fatalf("after kill -9 the queue holds %d, want ≥ 40", st2.Queue.Depth)
		}
		r.aux.Start(t)
		p.waitFor("the short video detected and everything forwarded", 120*time.Second, cameraDone("gate"))
		ds := r.central(t, "box3.gate", 0)
		seqs, dups := sequences(t, ds)
		last := seqs[len(seqs)-1]
		contiguous(t, seqs, 1, last)
		if last <= st.Detected {
			t.Fatalf("the second run's sequences did not continue the first's: last %d, first run detected ≥ %d", last, st.Detected)
		}
		t.Logf("%d distinct detections 1…%d across the kill, %d duplicates (resent after the crash; the sink's ids make them harmless)", len(seqs), last, dups)
		p.stop()
	})

	// (4) The queue's bound reached during an outage: the oldest are dropped and counted, the
	// bytes stay within the bound, and so does the process's memory.
	t.Run("queue bound", func(t *testing.T) {
		vid := r.video(t, 40, 10)
		const bound = 128 << 10
		p := r.start(t, nil, append(staticModel(t), "STREAMDET_EDGE_DEVICE_ID=box4", "STREAMDET_EDGE_DATA_DIR="+t.TempDir(),
			"STREAMDET_EDGE_CAMERAS=gate="+vid, "STREAMDET_EDGE_FPS=8", "STREAMDET_EDGE_QUEUE_MAX_BYTES="+strconv.Itoa(bound))...)
		p.waitFor("forwarding", 60*time.Second, func(st contract.DeviceStatus) bool { return st.Forwarded > 5 })
		r.aux.Stop(t)
		var maxRSS int64
		st := p.waitFor("drops", 60*time.Second, func(st contract.DeviceStatus) bool {
			maxRSS = max(maxRSS, p.rss())
			return st.Queue.Dropped >= 50
		})
		if st.Queue.Bytes > bound {
			t.Fatalf("queue holds %d bytes over its bound %d", st.Queue.Bytes, bound)
		}
		r.aux.Start(t)
		st = p.waitFor("the rest forwarded", 120*time.Second, func(st contract.DeviceStatus) bool {
			maxRSS = max(maxRSS, p.rss())
			return cameraDone("gate")(st)
		})
		ds := r.central(t, "box4.gate", int(st.Detected-st.Queue.Dropped))
		seqs, dups := sequences(t, ds)
		missing := st.Detected - int64(len(seqs))
		t.Logf("bound %d B: %d detected, %d dropped by policy (oldest), %d arrived, %d missing, %d duplicates; peak RSS %d MiB",
			bound, st.Detected, st.Queue.Dropped, len(seqs), missing, dups, maxRSS>>20)
		// Nothing is missing that was not counted as dropped. The count may exceed what is missing
		// by at most one batch: records dropped while their batch was in flight, whose
		// acknowledgement the outage swallowed, may have been stored by Kafka all the same.
		if missing > st.Queue.Dropped || st.Queue.Dropped-missing > 256 {
			t.Fatalf("%d missing centrally but %d counted as dropped", missing, st.Queue.Dropped)
		}
		const memBound = 512 << 20
		if maxRSS > memBound {
			t.Fatalf("peak RSS %d MiB over %d MiB", maxRSS>>20, memBound>>20)
		}
		p.stop()
	})

	// (5) A route change for the device's group is applied within seconds; with Redis and
	// object storage unreachable, a restarted device serves its last good model from disk.
	t.Run("fleet route", func(t *testing.T) {
		ctx := context.Background()
		model := fmt.Sprintf("edge-it-%d", time.Now().UnixNano())
		store, err := objstore.New(objstore.Config{Endpoint: r.stack.MinIOEndpoint, AccessKey: r.stack.MinIOAccessKey, SecretKey: r.stack.MinIOSecretKey, Region: "us-east-1"})
		if err != nil {
			t.Fatal(err)
		}
		routes, err := routing.NewStore(routing.RedisConfig{Addr: r.stack.RedisAddr, Password: r.stack.RedisPassword, KeyPrefix: "streamdet"})
		if err != nil {
			t.Fatal(err)
		}
		defer routes.Close()
		reg, err := registry.New(ctx, store, "models")
		if err != nil {
			t.Fatal(err)
		}
		reg = reg.WithLedger(routes)
		for _, v := range []struct{ version, file, format string }{{"1", "yolox_nano.onnx", "yolox"}, {"2", "yolov8n_int8.onnx", "yolov8"}} {
			b, err := os.ReadFile(testenv.Shared(t, "models", v.file))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := reg.Push(ctx, registry.Manifest{Name: model, Version: v.version, Format: v.format}, b); err != nil {
				t.Fatal(err)
			}
		}
		if err := routes.Set(ctx, &routing.Route{Model: model, Arms: []routing.Arm{{Version: "1", Weight: 100}}}); err != nil {
			t.Fatal(err)
		}
		data := t.TempDir()
		vid := r.video(t, 5, 10)
		env := []string{"STREAMDET_MODEL_NAME=" + model, "STREAMDET_EDGE_DEVICE_ID=box5", "STREAMDET_EDGE_GROUP=yards",
			"STREAMDET_EDGE_DATA_DIR=" + data, "STREAMDET_EDGE_CAMERAS=gate=" + vid, "STREAMDET_EDGE_FPS=4", "STREAMDET_EDGE_LOOP=true",
			"STREAMDET_MINIO_ACCESS_KEY=" + r.stack.MinIOAccessKey, "STREAMDET_MINIO_SECRET_KEY=" + r.stack.MinIOSecretKey,
			"STREAMDET_REDIS_PASSWORD=" + r.stack.RedisPassword}
		central := []string{"STREAMDET_MINIO_ENDPOINT=" + r.stack.MinIOEndpoint, "STREAMDET_REDIS_ADDR=" + r.stack.RedisAddr}
		p := r.start(t, nil, append(env, central...)...)
		p.waitFor("version 1 serving", 60*time.Second, func(st contract.DeviceStatus) bool { return st.Model.Version == "1" && st.Forwarded > 3 })

		// The group pinned to version 2: applied within seconds.
		if err := routes.Set(ctx, &routing.Route{Model: model, Arms: []routing.Arm{{Version: "1", Weight: 100}}, Pins: map[string]string{"yards": "2"}}); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		st := p.waitFor("version 2 serving the group", 30*time.Second, func(st contract.DeviceStatus) bool { return st.Model.Version == "2" })
		applied := time.Since(t0)
		from := st.Detected
		st = p.waitFor("version 2 detections", 30*time.Second, func(st contract.DeviceStatus) bool { return st.Detected > from+3 && st.Queue.Depth == 0 })
		t.Logf("route change for group yards applied in %s", applied.Round(10*time.Millisecond))
		if applied > 10*time.Second {
			t.Fatalf("route change applied in %s, want within seconds", applied)
		}
		ds := r.central(t, "box5.gate", int(st.Detected))
		lastV := ds[len(ds)-1]
		if lastV.Model.Version != "2" || lastV.Route.Arm != "pinned" || !contract.Matches(contract.Detection{ClassID: 16, Box: r.dog[0].Box}, lastV.Detections, 0.7) {
			t.Fatalf("after the change: version %s arm %s, detections %v", lastV.Model.Version, lastV.Route.Arm, lastV.Detections)
		}
		p.stop()

		// Restart with Redis and MinIO unreachable (closed ports): the route and version 2 from
		// disk, verified by digest, serve at once.
		p = r.start(t, nil, append(env, "STREAMDET_MINIO_ENDPOINT="+testenv.FreeAddr(t), "STREAMDET_REDIS_ADDR="+testenv.FreeAddr(t))...)
		st = p.waitFor("version 2 serving from disk", 60*time.Second, func(st contract.DeviceStatus) bool {
			return st.Model.Version == "2" && st.Detected > 3 && st.Forwarded >= st.Detected-1
		})
		ds = r.central(t, "box5.gate", 0)
		seqs, _ := sequences(t, ds)
		contiguous(t, seqs, 1, seqs[len(seqs)-1])
		if last := ds[len(ds)-1]; last.Model.Version != "2" || last.Model.Digest != lastV.Model.Digest {
			t.Fatalf("offline restart serves %s %s", last.Model.Version, last.Model.Digest)
		}
		t.Logf("offline restart: version %s (%s) from disk, %d frames detected", st.Model.Version, st.Model.Digest[:19], st.Detected)
		p.stop()
	})

	// (6) The arm64 build (make edge-arm64) under qemu-user: test (1) again, and the same boxes
	// as the amd64 build on the same frames.
	t.Run("arm64 under qemu", func(t *testing.T) {
		dir, root := os.Getenv("STREAMDET_EDGE_ARM64"), os.Getenv("STREAMDET_EDGE_ARM64_SYSROOT")
		if dir == "" || root == "" {
			if os.Getenv("STREAMDET_EDGE_ARM64_REQUIRED") == "1" {
				t.Fatal("STREAMDET_EDGE_ARM64 and STREAMDET_EDGE_ARM64_SYSROOT unset: make test builds them with make edge-arm64")
			}
			t.Skip("arm64 package not built: run `make edge-arm64` and set STREAMDET_EDGE_ARM64, STREAMDET_EDGE_ARM64_SYSROOT (make test does)")
		}
		if r.amd64 == nil {
			t.Fatal("needs the amd64 run's detections (subtest video)")
		}
		qemu, err := exec.LookPath("qemu-aarch64-static")
		if err != nil {
			t.Fatal("qemu-aarch64-static not installed (Debian's qemu-user-static; deploy/images/build.sh installs it)")
		}
		vid := r.video(t, 20, 10) // emulated inference takes seconds: enough frames for a few
		p := r.start(t, []string{qemu, "-L", root, filepath.Join(dir, "bin", "streamdet-edge")}, append(staticModel(t),
			"ONNXRUNTIME_LIB="+filepath.Join(dir, "lib", "libonnxruntime.so.1"), "LD_LIBRARY_PATH="+filepath.Join(dir, "lib"),
			"STREAMDET_EDGE_DEVICE_ID=box6", "STREAMDET_EDGE_DATA_DIR="+t.TempDir(), "STREAMDET_EDGE_CAMERAS=gate="+vid, "STREAMDET_EDGE_FPS=1")...)
		// Emulation is slow, and slower still on a busy machine: a generous bound.
		st := p.waitFor("the video detected and forwarded by the arm64 build", 10*time.Minute, cameraDone("gate"))
		if st.Arch != "arm64" {
			t.Fatalf("status says arch %q", st.Arch)
		}
		ds := r.central(t, "box6.gate", int(st.Detected))
		seqs, dups := sequences(t, ds)
		contiguous(t, seqs, 1, st.Detected)
		if dups != 0 || st.Detected < 2 {
			t.Fatalf("%d duplicates, %d detected", dups, st.Detected)
		}
		for _, d := range ds {
			r.boxes(t, d)
			if len(d.Detections) != len(r.amd64) {
				t.Fatalf("arm64 found %d boxes, amd64 %d", len(d.Detections), len(r.amd64))
			}
			for i, a := range d.Detections {
				b := r.amd64[i]
				if a.ClassID != b.ClassID || contract.IoU(a.Box, b.Box) < 0.99 || a.Score-b.Score > 0.01 || b.Score-a.Score > 0.01 {
					t.Fatalf("box %d: arm64 %+v, amd64 %+v", i, a, b)
				}
			}
		}
		cam := st.Cameras["gate"]
		t.Logf("arm64 under qemu: %d frames read, %d detected (%d skipped: latest frame wins), infer %.0f ms per frame under emulation",
			cam.Frames, st.Detected, cam.Skipped, ds[len(ds)-1].TimingMS["infer"])
		p.stop()
	})

	// (7) Event snapshots: frames matching a rule (label, score, zone, cooldown) are uploaded
	// with an annotated copy and referenced by their detections; with object storage
	// unreachable they wait on disk, across a restart.
	t.Run("snapshots", func(t *testing.T) {
		ctx := context.Background()
		store, err := objstore.New(objstore.Config{Endpoint: r.stack.MinIOEndpoint, AccessKey: r.stack.MinIOAccessKey, SecretKey: r.stack.MinIOSecretKey, Region: "us-east-1"})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range []string{"frames", "annotated"} {
			if err := store.EnsureBucket(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		rules := filepath.Join(t.TempDir(), "rules.json")
		os.WriteFile(rules, []byte(`{"rules":[
			{"name":"car-in-doorway","labels":["car"],"min_score":0.5,"zones":[[[0,0],[100,0],[100,100],[0,100]]],"cooldown":"0s"},
			{"name":"dog-on-path","labels":["dog"],"min_score":0.5,"zones":[[[100,400],[400,400],[400,576],[100,576]]],"cooldown":"2s"}]}`), 0o600)
		data := t.TempDir()
		env := append(staticModel(t), "STREAMDET_EDGE_DEVICE_ID=box7", "STREAMDET_EDGE_DATA_DIR="+data, "STREAMDET_EDGE_FPS=5",
			"STREAMDET_EDGE_SNAPSHOT_RULES="+rules, "STREAMDET_MINIO_ACCESS_KEY="+r.stack.MinIOAccessKey, "STREAMDET_MINIO_SECRET_KEY="+r.stack.MinIOSecretKey)
		p := r.start(t, nil, append(env, "STREAMDET_EDGE_CAMERAS=gate="+r.video(t, 6, 10), "STREAMDET_MINIO_ENDPOINT="+testenv.FreeAddr(t))...)
		st := p.waitFor("the video detected, snapshots waiting for storage", 90*time.Second, cameraDone("gate"))
		taken := st.Snapshots.Taken
		if taken < 2 || taken > 4 || st.Snapshots.Queued != 2*taken || st.Snapshots.Uploaded != 0 {
			t.Fatalf("6 s with a 2 s cooldown, storage down: %+v", *st.Snapshots)
		}
		p.stop()
		p = r.start(t, nil, append(env, "STREAMDET_EDGE_CAMERAS=gate="+r.video(t, 2, 10), "STREAMDET_MINIO_ENDPOINT="+r.stack.MinIOEndpoint)...)
		st = p.waitFor("every snapshot uploaded", 60*time.Second, func(st contract.DeviceStatus) bool {
			return cameraDone("gate")(st) && st.Snapshots.Queued == 0
		})
		total := taken + st.Snapshots.Taken
		if st.Snapshots.Uploaded != 2*total {
			t.Fatalf("uploaded %d objects for %d snapshots", st.Snapshots.Uploaded, total)
		}
		p.stop()
		var snaps []contract.Detections
		for _, d := range r.central(t, "box7.gate", 0) {
			if d.Edge.Snapshot != "" {
				snaps = append(snaps, d)
			} else if d.Frame != (contract.FrameRef{}) {
				t.Fatalf("frame %s references a frame without a snapshot", d.FrameID)
			}
		}
		if int64(len(snaps)) != total {
			t.Fatalf("%d snapshot detections centrally, %d taken", len(snaps), total)
		}
		for _, d := range snaps {
			if d.Edge.Snapshot != "dog-on-path" {
				t.Fatalf("rule %q fired", d.Edge.Snapshot)
			}
			if err := contract.ValidateFrameRef(d.Frame, "frames"); err != nil || d.Frame.FrameID != d.FrameID {
				t.Fatalf("snapshot reference %+v: %v", d.Frame, err)
			}
			b, err := store.Get(ctx, d.Frame.Bucket, d.Frame.Key, 16<<20)
			sum := sha256.Sum256(b)
			if err != nil || hex.EncodeToString(sum[:]) != d.Frame.SHA256 || int64(len(b)) != d.Frame.Size {
				t.Fatalf("snapshot object %s: %v", d.Frame.Key, err)
			}
			if a, err := store.Get(ctx, "annotated", contract.AnnotatedKey(d), 16<<20); err != nil || len(a) < 1000 {
				t.Fatalf("annotated copy %s: %v", contract.AnnotatedKey(d), err)
			}
		}
		t.Logf("%d snapshots (%d while storage was unreachable, uploaded after a restart), each with its annotated copy", total, taken)
	})
}

// TestIntegrationEdgeFPS measures (make edge-fps; no assertion): frames per second the amd64
// build detects, and its CPU per frame, with 1 and 2 cameras of 1080p H.264 at 30 fps, yolox_nano
// at 416, the default engine layout for this machine's cores.
func TestIntegrationEdgeFPS(t *testing.T) {
	if os.Getenv("STREAMDET_EDGE_FPS_MEASURE") != "1" {
		t.Skip("a measurement, not a check: make edge-fps")
	}
	r := newRig(t)
	vid := filepath.Join(t.TempDir(), "dog-1080p.mp4")
	cmd := exec.Command("ffmpeg", "-nostdin", "-loglevel", "error", "-loop", "1", "-framerate", "30", "-i", testenv.Shared(t, "images", "dog.jpg"),
		"-t", "40", "-vf", "scale=1920:1080", "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", vid)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	for _, n := range []int{1, 2} {
		cams := []string{}
		for i := 0; i < n; i++ {
			cams = append(cams, fmt.Sprintf("cam%d=%s", i, vid))
		}
		p := r.start(t, nil, append(staticModel(t), fmt.Sprintf("STREAMDET_EDGE_DEVICE_ID=fps%d", n), "STREAMDET_EDGE_DATA_DIR="+t.TempDir(),
			"STREAMDET_EDGE_CAMERAS="+strings.Join(cams, ","), "STREAMDET_EDGE_FPS=30")...)
		p.waitFor("detecting", 60*time.Second, func(st contract.DeviceStatus) bool { return st.Detected > 30 })
		pid := p.cmd.Process.Pid
		st0, cpu0, ff0, t0 := mustStatus(t, p), cpuSeconds(pid), childrenCPU(pid), time.Now()
		time.Sleep(20 * time.Second)
		st1, cpu1, ff1, t1 := mustStatus(t, p), cpuSeconds(pid), childrenCPU(pid), time.Now()
		frames := float64(st1.Detected - st0.Detected)
		var read, skipped int64
		for id, c := range st1.Cameras {
			read += c.Frames - st0.Cameras[id].Frames
			skipped += c.Skipped - st0.Cameras[id].Skipped
		}
		t.Logf("%d camera(s) of 1080p at 30 fps: %.1f frames/s detected (%.1f per camera), %d read, %d skipped; CPU-ms per detected frame: edge process %.1f, its ffmpeg readers %.1f",
			n, frames/t1.Sub(t0).Seconds(), frames/t1.Sub(t0).Seconds()/float64(n), read, skipped, 1000*(cpu1-cpu0)/frames, 1000*(ff1-ff0)/frames)
		p.stop()
	}
}

func mustStatus(t *testing.T, p *edgeProc) contract.DeviceStatus {
	st, err := p.status()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// childrenCPU is the CPU time of pid's running children (the ffmpeg readers).
func childrenCPU(pid int) float64 {
	total := 0.0
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		child, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
			total += cpuSeconds(child)
		}
	}
	return total
}

// cpuSeconds is a process's user+system CPU time from /proc.
func cpuSeconds(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // USER_HZ
}
