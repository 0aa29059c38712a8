//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/testenv"
)

// tcpProxy forwards a loopback port to target until cut, and again after restore.
type tcpProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{addr: freePort(t), target: target, conns: map[net.Conn]bool{}}
	p.restore(t)
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) restore(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
}

// cut refuses new connections and breaks the open ones.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// TestIntegrationShutdownUnreachable: with object storage unreachable, ingest and the sink
// report not ready, and SIGTERM still ends them within their drain timeout; what was in flight
// is written exactly once after they restart with storage back.
func TestIntegrationShutdownUnreachable(t *testing.T) {
	st := testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	run := fmt.Sprintf("down%d", time.Now().UnixNano()%1e9)
	testenv.Topics(t, st.KafkaBrokers, 1, runTopics(run, "frames.raw", "frames", "detections", "dlq", "frames.events")...)
	proxy := newProxy(t, st.MinIOEndpoint)
	env := []string{
		"STREAMDET_TOPIC_PREFIX=" + run, "STREAMDET_FRAMES_BUCKET=" + run + "-frames", "STREAMDET_DETECTIONS_BUCKET=" + run + "-detections",
		"STREAMDET_INGEST_GROUP=" + run + "-ingest", "STREAMDET_SINK_GROUP=" + run + "-sink", "STREAMDET_MINIO_ENDPOINT=" + proxy.addr,
		"STREAMDET_DRAIN_TIMEOUT=3s", "STREAMDET_SINK_FLUSH_INTERVAL=200ms", "OTEL_TRACES_EXPORTER=none", "STREAMDET_LOG_LEVEL=error",
	}
	ingest, sink := startService(t, "ingest", env), startService(t, "sink", env)
	w := &kafka.Writer{Addr: kafka.TCP(st.KafkaBrokers...), Topic: run + ".detections", RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	send := func(from, to int) {
		for i := from; i < to; i++ {
			b, _ := json.Marshal(contract.Detections{FrameID: fmt.Sprintf("f-%d", i), StreamID: "cam-1", CaptureTime: time.Now(),
				Model: contract.Model{Name: "coco", Version: "1"}, Detections: []contract.Detection{}})
			if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("cam-1"), Value: b}); err != nil {
				t.Fatal(err)
			}
		}
	}
	mc, _ := minio.New(st.MinIOEndpoint, &minio.Options{Creds: credentials.NewStaticV4(st.MinIOAccessKey, st.MinIOSecretKey, "")})
	waitRows := func(n int) {
		for deadline := time.Now().Add(time.Minute); len(sinkRows(ctx, t, mc, run+"-detections")) < n; time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d rows written", len(sinkRows(ctx, t, mc, run+"-detections")), n)
			}
		}
	}
	send(0, 10)
	waitRows(10)

	proxy.cut()
	send(10, 20)
	// An upload while storage is gone: it waits, retrying, and is answered when ingest stops.
	dog, _ := os.ReadFile(testenv.Shared(t, "images", "dog.jpg"))
	go func() {
		req, _ := http.NewRequest("POST", "http://"+ingest.addr+"/v1/frames", bytes.NewReader(dog))
		req.Header.Set("Authorization", "Bearer "+e2eToken)
		http.DefaultClient.Do(req)
	}()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get("http://" + sink.addr + "/readyz")
		if err == nil && resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sink still ready 20s into a storage outage")
		}
	}
	for _, p := range []*proc{ingest, sink} {
		t0 := time.Now()
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			t.Logf("%s stopped %s after SIGTERM with storage unreachable (drain timeout 3s), exit %d", p.name, time.Since(t0).Round(10*time.Millisecond), p.cmd.ProcessState.ExitCode())
		case <-time.After(10 * time.Second):
			t.Errorf("%s still running 10s after SIGTERM with a drain timeout of 3s", p.name)
			p.kill()
		}
	}

	proxy.restore(t)
	startService(t, "sink", env)
	waitRows(20)
	time.Sleep(time.Second)
	for k, n := range sinkRows(ctx, t, mc, run+"-detections") {
		if n != 1 {
			t.Errorf("row %s written %d times", k, n)
		}
	}
}
