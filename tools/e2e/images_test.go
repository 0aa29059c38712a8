//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/testenv"
)

// buildah is a buildah command on the storage deploy/images/build.sh builds into.
func buildah(args ...string) *exec.Cmd {
	cmd := exec.Command("buildah", args...)
	if os.Getenv("STORAGE_DRIVER") == "" {
		cmd.Env = append(os.Environ(), "STORAGE_DRIVER=vfs")
	}
	return cmd
}

// startImage runs service name from its built image (localhost/streamdet-<name>:<tag>) with
// buildah (chroot isolation, the host's network: the image's entrypoint, user and variables, as
// a container runtime would), with env and the given host:container read-only mounts, and waits
// until /readyz says ready.
func startImage(t *testing.T, tag, name string, env []string, mounts ...string) *proc {
	t.Helper()
	image := "localhost/streamdet-" + name + ":" + tag
	out, err := buildah("from", "--pull=never", image).Output()
	if err != nil {
		t.Fatalf("buildah from %s: %v (run `make images` first)", image, err)
	}
	ctr := strings.TrimSpace(string(out))
	t.Cleanup(func() { buildah("rm", ctr).Run() })
	addr := freePort(t)
	args := []string{"run", "--isolation", "chroot"}
	for _, e := range append(env, "STREAMDET_"+strings.ToUpper(name)+"_ADDR="+addr) {
		args = append(args, "--env", e)
	}
	for _, m := range mounts {
		args = append(args, "--volume", m+":ro")
	}
	// The image's own entrypoint, as its user (buildah run wants the command spelt out).
	ep, err := buildah("inspect", "--type", "image", "--format", "{{range .OCIv1.Config.Entrypoint}}{{.}}\n{{end}}", image).Output()
	if err != nil {
		t.Fatalf("inspect %s: %v", image, err)
	}
	entrypoint := strings.Fields(string(ep))
	if len(entrypoint) == 0 {
		t.Fatalf("%s: no entrypoint", image)
	}
	args = append(append(args, ctr, "--"), entrypoint...)
	logf := filepath.Join(t.TempDir(), name+".log")
	f, err := os.OpenFile(logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := buildah(args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, addr: addr, log: logf, done: make(chan struct{})}
	// What a container runtime does on stop: SIGTERM to the container's process (buildah run
	// itself would SIGKILL it), then its exit status is buildah's.
	p.term = func() {
		if pid := descendant(cmd.Process.Pid, filepath.Base(entrypoint[0])); pid > 0 {
			// The image's user, not root.
			if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil && !regexp.MustCompile(`(?m)^Uid:\s+65532\s`).Match(st) {
				t.Errorf("%s runs as another user than the image's 65532:\n%s", name, st)
			}
			syscall.Kill(pid, syscall.SIGTERM)
		} else {
			t.Errorf("%s: no process %s under buildah", name, entrypoint[0])
		}
	}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s (image) exited during start-up:\n%s", name, tail(logf))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (image) not ready after 90s:\n%s", name, tail(logf))
		}
	}
}

// descendant returns the pid of the process named comm among root's descendants, or 0.
func descendant(root int, comm string) int {
	parents := map[int]int{}
	names := map[int]string{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if i < 0 || j < i {
			continue
		}
		names[pid] = s[i+1 : j]
		if f := strings.Fields(s[j+1:]); len(f) > 1 {
			parents[pid], _ = strconv.Atoi(f[1])
		}
	}
	for pid, n := range names {
		if n != comm {
			continue
		}
		for p := parents[pid]; p > 1; p = parents[p] {
			if p == root {
				return pid
			}
		}
	}
	return 0
}

// TestIntegrationImages runs ingest, detect and sink from the images `make images` built
// (STREAMDET_IMAGE_TAG names them) against the local stack: frames produced to the raw topic come
// out as detections that match the model's boxes on those images, the sink writes them to the
// detections bucket, and each container stops cleanly on SIGTERM.
func TestIntegrationImages(t *testing.T) {
	st := testenv.Require(t)
	tag := os.Getenv("STREAMDET_IMAGE_TAG")
	if tag == "" {
		t.Skip("needs the built images: `make images` then STREAMDET_IMAGE_TAG=test-amd64 (make test does both)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := fmt.Sprintf("img%d", time.Now().UnixNano()%1e9)
	testenv.Topics(t, st.KafkaBrokers, 3, runTopics(run, "frames.raw", "frames", "detections", "detections.shadow", "dlq", "frames.events")...)

	// Secrets as files, readable by the images' user (65532), mounted read-only.
	secrets := t.TempDir()
	os.Chmod(secrets, 0o755)
	write := func(name, value string) string {
		p := filepath.Join(secrets, name)
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			t.Fatal(err)
		}
		return "/run/secrets/streamdet/" + name
	}
	tokens := write("tokens", "e2e "+e2eToken+"\n")
	minioSecret := write("minio-secret-key", st.MinIOSecretKey)
	env := []string{
		"STREAMDET_KAFKA_BROKERS=" + strings.Join(st.KafkaBrokers, ","), "STREAMDET_MINIO_ENDPOINT=" + st.MinIOEndpoint,
		"STREAMDET_MINIO_ACCESS_KEY=" + st.MinIOAccessKey, "STREAMDET_MINIO_SECRET_KEY_FILE=" + minioSecret,
		"STREAMDET_TOPIC_PREFIX=" + run, "STREAMDET_FRAMES_BUCKET=" + run + "-frames", "STREAMDET_DETECTIONS_BUCKET=" + run + "-detections",
		"STREAMDET_INGEST_GROUP=" + run + "-ingest", "STREAMDET_DETECT_GROUP=" + run + "-detect", "STREAMDET_SINK_GROUP=" + run + "-sink",
		"STREAMDET_INGEST_TOKENS_FILE=" + tokens, "STREAMDET_SINK_FLUSH_INTERVAL=500ms", "STREAMDET_LOG_LEVEL=warn",
	}
	models := filepath.Dir(testenv.Shared(t, "models", "yolox_nano.onnx"))
	mounts := []string{secrets + ":/run/secrets/streamdet", models + ":/models"}
	startImage(t, tag, "ingest", env, mounts...)
	startImage(t, tag, "detect", append(env, "STREAMDET_MODEL_PATH=/models/yolox_nano.onnx", "STREAMDET_MODEL_FORMAT=yolox",
		"STREAMDET_MODEL_NAMES_PATH=/models/coco.names", "STREAMDET_MODEL_NAME=coco", "STREAMDET_MODEL_VERSION=1",
		"STREAMDET_ENGINE_SESSIONS=1"), mounts...)
	startImage(t, tag, "sink", env, mounts...)

	dets := follow(ctx, t, st.KafkaBrokers, run+".detections")
	w := &kafka.Writer{Addr: kafka.TCP(st.KafkaBrokers...), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	const frames = 12
	for i := 0; i < frames; i++ {
		img := []string{"dog.jpg", "horses.jpg", "person.jpg"}[i%3]
		b, err := os.ReadFile(testenv.Shared(t, "images", img))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteMessages(ctx, kafka.Message{Topic: run + ".frames.raw", Key: []byte(fmt.Sprintf("cam-%d", i%4)), Value: b}); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(3 * time.Minute); len(dets.snapshot()) < frames; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d frames came out as detections", len(dets.snapshot()), frames)
		}
	}
	boxes := 0
	for _, m := range dets.snapshot() {
		var d contract.Detections
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatal(err)
		}
		if d.Model.Name != "coco" || d.Model.Version != "1" {
			t.Errorf("detections from %+v", d.Model)
		}
		boxes += len(d.Detections)
	}
	if boxes < frames {
		t.Errorf("%d boxes on %d frames of dogs, horses and people", boxes, frames)
	}
	mc, err := minio.New(st.MinIOEndpoint, &minio.Options{Creds: credentials.NewStaticV4(st.MinIOAccessKey, st.MinIOSecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for deadline := time.Now().Add(time.Minute); rows < frames; time.Sleep(300 * time.Millisecond) {
		rows = 0
		for o := range mc.ListObjects(ctx, run+"-detections", minio.ListObjectsOptions{Prefix: "dt=", Recursive: true}) {
			if o.Err == nil {
				if r, err := mc.GetObject(ctx, run+"-detections", o.Key, minio.GetObjectOptions{}); err == nil {
					b, _ := io.ReadAll(r)
					r.Close()
					rows += bytes.Count(b, []byte("\n"))
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sink wrote %d rows of %d", rows, frames)
		}
	}
	t.Logf("%d frames → %d detections messages with %d boxes → %d rows in %s-detections", frames, len(dets.snapshot()), boxes, rows, run)
	// The Cleanup of each proc sends SIGTERM and fails the test unless the container exits 0.
}
