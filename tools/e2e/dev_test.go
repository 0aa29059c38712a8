//go:build integration

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/testenv"
)

// devStack runs `detctl dev` as a process and returns its exported environment.
func devStack(t *testing.T) ([]string, map[string]string) {
	t.Helper()
	testenv.ONNXRuntimeLib(t)
	cmd := exec.Command(filepath.Join(binaries(t), "detctl"), "dev", "--model", testenv.Shared(t, "models", "yolox_nano.onnx"),
		"--format", "yolox", "--names", testenv.Shared(t, "models", "coco.names"))
	logf, _ := os.Create(filepath.Join(t.TempDir(), "dev.log"))
	cmd.Stderr = logf
	out, _ := cmd.StdoutPipe()
	testenv.KillWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("detctl dev after Ctrl-C: %v\n%s", err, tail(logf.Name()))
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Errorf("detctl dev did not stop within 60s of Ctrl-C")
		}
	})
	vars := map[string]string{}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, out)
	}()
	deadline := time.After(3 * time.Minute)
	for vars["STREAMDET_SINK_ADDR"] == "" || vars["STREAMDET_REDIS_PASSWORD"] == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("detctl dev exited:\n%s", tail(logf.Name()))
			}
			if k, v, ok := strings.Cut(strings.TrimPrefix(l, "export "), "="); ok && strings.HasPrefix(l, "export ") {
				vars[k] = v
			}
		case <-deadline:
			t.Fatalf("detctl dev printed no endpoints in 3 minutes:\n%s", tail(logf.Name()))
		}
	}
	go func() {
		for range lines {
		}
	}()
	var env []string
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env, vars
}

// TestIntegrationDevProduceTail: detctl dev serves a 5-frame video sampled through ffmpeg
// (detctl produce --video) and the shared images sent with kcat; detctl tail --json receives the
// matching detections.
func TestIntegrationDevProduceTail(t *testing.T) {
	env, vars := devStack(t)
	dir := t.TempDir()
	video := filepath.Join(dir, "five.mp4")
	if out, err := exec.Command("ffmpeg", "-nostdin", "-loglevel", "error", "-loop", "1", "-i", testenv.Shared(t, "images", "dog.jpg"),
		"-frames:v", "5", "-r", "5", "-c:v", "libx264", "-pix_fmt", "yuv420p", video).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tailCmd := exec.CommandContext(ctx, filepath.Join(binaries(t), "detctl"), "tail", "--json", "--from-beginning", "-n", "8")
	tailCmd.Env = append(os.Environ(), env...)
	tailOut, _ := tailCmd.StdoutPipe()
	if err := tailCmd.Start(); err != nil {
		t.Fatal(err)
	}
	if out, code := detctl(t, env, "produce", "--stream", "video-cam", "--video", video, "--fps", "5"); code != 0 {
		t.Fatalf("detctl produce --video: %d %s", code, out)
	}
	broker := strings.Split(vars["STREAMDET_KAFKA_BROKERS"], ",")[0]
	for _, img := range []string{"dog.jpg", "horses.jpg", "person.jpg"} {
		if out, err := exec.Command("kcat", "-P", "-b", broker, "-t", "streamdet.frames.raw", "-k", "kcat-"+strings.TrimSuffix(img, ".jpg"),
			testenv.Shared(t, "images", img)).CombinedOutput(); err != nil {
			t.Fatalf("kcat: %v %s", err, out)
		}
	}
	var got []contract.Detections
	sc := bufio.NewScanner(tailOut)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var d contract.Detections
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("tail --json line: %v", err)
		}
		got = append(got, d)
	}
	if err := tailCmd.Wait(); err != nil {
		t.Fatalf("detctl tail: %v (got %d frames)", err, len(got))
	}
	per := map[string][]contract.Detections{}
	for _, d := range got {
		per[d.StreamID] = append(per[d.StreamID], d)
	}
	if len(per["video-cam"]) != 5 {
		t.Errorf("video frames detected: %d, want 5", len(per["video-cam"]))
	}
	want := map[string]string{"video-cam": "dog", "kcat-dog": "dog", "kcat-horses": "horse", "kcat-person": "person"}
	for stream, label := range want {
		for _, d := range per[stream] {
			found := false
			for _, o := range d.Detections {
				found = found || (o.Label == label && o.Score > 0.5)
			}
			if !found {
				t.Errorf("%s frame %s: no %s in %+v", stream, d.FrameID, label, d.Detections)
			}
		}
		if len(per[stream]) == 0 {
			t.Errorf("no detections for %s", stream)
		}
	}
	// The readable form too.
	if out, code := detctl(t, env, "tail", "--from-beginning", "-n", "1", "--stream", "kcat-dog"); code != 0 || !strings.Contains(out, "dog") {
		t.Errorf("detctl tail (text): %d %q", code, out)
	}

	// Dead letters: inspect, then replay after a "fix" (here: none, so it is refused again).
	garbage := filepath.Join(dir, "garbage.bin")
	os.WriteFile(garbage, []byte("definitely not an image"), 0o644)
	if out, err := exec.Command("kcat", "-P", "-b", broker, "-t", "streamdet.frames.raw", "-k", "bad-cam", garbage).CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v %s", err, out)
	}
	count := func() int {
		out, code := detctl(t, env, "dlq", "ls", "--json", "--reason", "unsupported_format")
		if code != 0 {
			t.Fatalf("dlq ls: %s", out)
		}
		return strings.Count(out, `"reason":"unsupported_format"`)
	}
	waitCount := func(n int) {
		deadline := time.Now().Add(time.Minute)
		for count() < n {
			if time.Now().After(deadline) {
				t.Fatalf("dead letters with reason unsupported_format: %d, want %d", count(), n)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	waitCount(1)
	if out, code := detctl(t, env, "dlq", "replay", "--reason", "unsupported_format"); code != 0 || !strings.Contains(out, "replayed 1") {
		t.Fatalf("dlq replay: %d %s", code, out)
	}
	waitCount(2)
	if out, _ := detctl(t, env, "dlq", "ls"); !strings.Contains(out, "ingest") || !strings.Contains(out, "bad-cam") {
		t.Errorf("dlq ls:\n%s", out)
	}
}

// TestIntegrationDemo runs what `make demo` runs, with the shared model and images: it must exit
// 0 within 3 minutes and list the dog, bicycle and car in dog.jpg.
func TestIntegrationDemo(t *testing.T) {
	testenv.ONNXRuntimeLib(t)
	start := time.Now()
	cmd := exec.Command(filepath.Join(binaries(t), "detctl"), "demo", "--out", t.TempDir())
	cmd.Env = append(os.Environ(), "STREAMDET_MODEL="+testenv.Shared(t, "models", "yolox_nano.onnx"), "STREAMDET_MODEL_FORMAT=yolox",
		"STREAMDET_NAMES="+testenv.Shared(t, "models", "coco.names"), "STREAMDET_FRAMES="+testenv.Shared(t, "images"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("detctl demo: %v\n%s", err, out)
	}
	if d := time.Since(start); d > 3*time.Minute {
		t.Errorf("demo took %s", d)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "dog.jpg") {
			for _, want := range []string{"dog 0.", "bicycle 0.", "car 0."} {
				if !strings.Contains(l, want) {
					t.Errorf("demo summary for dog.jpg lacks %q: %s", want, l)
				}
			}
			t.Logf("%s (in %s)", l, time.Since(start).Round(time.Second))
			return
		}
	}
	t.Fatalf("no summary line for dog.jpg:\n%s", out)
}
