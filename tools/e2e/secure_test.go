//go:build integration

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/kafkax"
	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/routing"
	"github.com/streamdet/streamdet/pkg/testenv"
)

// secureStack starts deploy/local/secure.sh on free ports in a directory of the test's own and
// returns each principal's environment (ingest, detect, sink, producer, admin).
func secureStack(t *testing.T) map[string][]string {
	t.Helper()
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	script := filepath.Join(root, "deploy", "local", "secure.sh")
	var env []string
	down := func() {
		cmd := exec.Command(script, "down")
		cmd.Env = env
		cmd.Run()
	}
	// Kafka, its controller, MinIO and Redis on four reserved ports; again on fresh ones (after
	// down) when one was taken.
	testenv.StartRetry(t, 3, 4, func(base int) (string, error) {
		port := func(i int) string { return strconv.Itoa(base + i) }
		env = append(os.Environ(), "STREAMDET_SECURE_STATE="+dir, "STREAMDET_SECURE_KAFKA_PORT="+port(0),
			"STREAMDET_SECURE_KAFKA_CONTROLLER_PORT="+port(1), "STREAMDET_SECURE_MINIO_PORT="+port(2), "STREAMDET_SECURE_REDIS_PORT="+port(3))
		cmd := exec.Command(script, "up")
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			down()
		}
		return string(out), err
	})
	t.Cleanup(down)
	out := map[string][]string{}
	for _, who := range []string{"ingest", "detect", "sink", "producer", "admin"} {
		b, err := os.ReadFile(filepath.Join(dir, who+".env"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				out[who] = append(out[who], l)
			}
		}
	}
	return out
}

func envMap(lines []string) envconf.Env {
	m := map[string]string{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return envconf.Map(m)
}

// TestIntegrationSecure runs the whole pipeline on the secure stack (Kafka SASL_SSL + SCRAM +
// ACLs, MinIO over TLS with a policy per service, Redis over TLS with ACL users) with detect
// serving a registry version by route, and shows that each service is refused what it has no
// right to — including a service started with another's credentials.
func TestIntegrationSecure(t *testing.T) {
	testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	envs := secureStack(t)
	common := []string{"OTEL_TRACES_EXPORTER=none", "STREAMDET_LOG_LEVEL=warn", "STREAMDET_SINK_FLUSH_INTERVAL=300ms",
		// Clear what the plain local stack's environment would otherwise lend the services.
		"STREAMDET_MINIO_SECRET_KEY=", "STREAMDET_REDIS_PASSWORD=",
		"STREAMDET_KAFKA_SASL_PASSWORD="}
	with := func(who string, extra ...string) []string {
		return append(append(append([]string(nil), common...), envs[who]...), extra...)
	}
	shared := filepath.Dir(testenv.Shared(t, "models", "yolox_nano.onnx"))

	// The operator registers and routes a model (admin credentials).
	admin := with("admin")
	mustDetctl(t, admin, "model", "push", "--name", "coco", "--version", "1", "--format", "yolox", "--names", filepath.Join(shared, "coco.names"), filepath.Join(shared, "yolox_nano.onnx"))
	mustDetctl(t, admin, "route", "set", "coco", "--weights", "1=100")

	ingest := startService(t, "ingest", with("ingest", "STREAMDET_INGEST_EVENTS=false"))
	startService(t, "detect", with("detect", "STREAMDET_MODEL_NAME=coco", "STREAMDET_ENGINE_SESSIONS=2"))
	startService(t, "sink", with("sink", "STREAMDET_SINK_ANNOTATE=true"))

	// Frames: 20 from a producer over SASL_SSL, 5 uploaded over HTTP with a token.
	pc := kafkax.FromEnv(envMap(envs["producer"]))
	w, err := pc.Writer("streamdet.frames.raw")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	dog, _ := os.ReadFile(testenv.Shared(t, "images", "dog.jpg"))
	for i := 0; i < 20; i++ {
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(fmt.Sprintf("cam-%d", i%4)), Value: dog,
			Headers: []kafka.Header{{Key: "ce_id", Value: []byte(fmt.Sprintf("s-%d", i))}}}); err != nil {
			t.Fatalf("producer over SASL_SSL: %v", err)
		}
	}
	for i := 0; i < 5; i++ {
		req, _ := http.NewRequest("POST", "http://"+ingest.addr+"/v1/frames", bytes.NewReader(dog))
		req.Header.Set("Authorization", "Bearer "+e2eToken)
		req.Header.Set("X-Stream-Id", "cam-http")
		req.Header.Set("X-Frame-Id", fmt.Sprintf("h-%d", i))
		do(t, req, http.StatusAccepted)
	}
	root := envMap(admin)
	rootStore, err := objstore.New(objstore.FromEnv(root))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		rows := sinkRows(ctx, t, rootStore.Client(), "detections")
		if len(rows) == 25 {
			for k, n := range rows {
				if n != 1 {
					t.Errorf("row %s written %d times", k, n)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 3 minutes %d of 25 frames in the sink's files", len(rows))
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Log("25 frames through ingest → detect (routed, model digest checked against Redis) → sink over TLS with per-service credentials")

	// Kafka: each principal reads and writes only its own topics.
	denied := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: allowed", what)
			return
		}
		var ke kafka.Error
		var we kafka.WriteErrors
		if !errors.As(err, &ke) && !errors.As(err, &we) && !strings.Contains(err.Error(), "Authorization") && !strings.Contains(err.Error(), "AccessDenied") && !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("%s: refused with an unexpected error %v", what, err)
		}
		t.Logf("%s: refused (%v)", what, err)
	}
	ic := kafkax.FromEnv(envMap(envs["ingest"]))
	iw, _ := ic.Writer("streamdet.detections")
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	denied("ingest writes to the detections topic", iw.WriteMessages(wctx, kafka.Message{Value: []byte("{}")}))
	wcancel()
	iw.Close()
	sc := kafkax.FromEnv(envMap(envs["sink"]))
	sw, _ := sc.Writer("streamdet.frames")
	wctx, wcancel = context.WithTimeout(ctx, 20*time.Second)
	denied("sink writes to the frames topic", sw.WriteMessages(wctx, kafka.Message{Value: []byte("{}")}))
	wcancel()
	sw.Close()
	d, _ := pc.Dialer()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: pc.Brokers, Topic: "streamdet.detections", GroupID: "streamdet-producer-snoop", Dialer: d, MaxWait: 200 * time.Millisecond})
	rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
	_, rerr := r.ReadMessage(rctx)
	rcancel()
	r.Close()
	if rerr == nil {
		t.Error("the producer read the detections topic")
	} else {
		t.Logf("producer reads the detections topic: refused (%v)", rerr)
	}

	// MinIO: each service's policy.
	for _, tc := range []struct {
		who, op, bucket, key string
	}{
		{"ingest", "get", "models", "coco/1/model.onnx"},
		{"ingest", "put", "detections", "dt=x/evil.ndjson"},
		{"detect", "put", "detections", "dt=x/evil.ndjson"},
		{"detect", "put", "models", "coco/1/model.onnx"},
		{"sink", "get", "models", "coco/1/model.onnx"},
		{"sink", "put", "frames", "sha256/00/evil.jpg"},
	} {
		st, err := objstore.New(objstore.FromEnv(envMap(envs[tc.who])))
		if err != nil {
			t.Fatal(err)
		}
		if tc.op == "get" {
			_, err = st.Get(ctx, tc.bucket, tc.key, 1<<30)
		} else {
			err = st.Put(ctx, tc.bucket, tc.key, []byte("x"), "")
		}
		if minio.ToErrorResponse(errors.Unwrap(err)).Code != "AccessDenied" && !strings.Contains(fmt.Sprint(err), "Access Denied") {
			t.Errorf("%s %s %s/%s: %v, want AccessDenied", tc.who, tc.op, tc.bucket, tc.key, err)
		}
	}

	// Redis: detect reads routes and digests, writes only status and statistics.
	rs, err := routing.NewStore(routing.RedisFromEnv(envMap(envs["detect"])))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if _, err := rs.Get(ctx, "coco"); err != nil {
		t.Errorf("detect reads its route: %v", err)
	}
	denied("detect changes the route", rs.Set(ctx, &routing.Route{Model: "coco", Arms: []routing.Arm{{Version: "1", Weight: 1}}}))
	denied("detect records a digest", rs.RecordDigest(ctx, "coco", "9", strings.Repeat("0", 64)))

	// A service started with another service's credentials is refused and stops.
	cmd := exec.Command(filepath.Join(binaries(t), "sink"))
	cmd.Env = append(append(os.Environ(), with("ingest", "STREAMDET_SINK_ADDR=127.0.0.1:0", "STREAMDET_DRAIN_TIMEOUT=2s")...), "STREAMDET_SINK_AUTH=none")
	done := make(chan error, 1)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	testenv.KillWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(out.String(), "Access Denied") {
			t.Errorf("sink with ingest's credentials: %v\n%s", err, out.String())
		} else {
			t.Logf("sink with ingest's credentials: refused and stopped (%v)", err)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Errorf("sink with ingest's credentials still running after 60s:\n%s", out.String())
	}

	// SASL is refused without TLS.
	cmd = exec.Command(filepath.Join(binaries(t), "ingest"))
	cmd.Env = append(append(os.Environ(), with("ingest")...), "STREAMDET_KAFKA_TLS=false", "STREAMDET_MINIO_TLS_CA_FILE=", "STREAMDET_MINIO_TLS=false")
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "without STREAMDET_KAFKA_TLS") {
		t.Errorf("ingest with SASL over plaintext: %v\n%s", err, b)
	}
}
