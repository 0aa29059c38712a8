//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
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

// TestIntegrationChaos is the fault-injection suite (docs/reliability.md): a three-node Kafka
// cluster (3 replicas, min.insync.replicas=2), a MinIO and a Redis of its own, and the three
// services; a steady load over many streams while faults are injected; a checker that accounts
// for every acknowledged frame on the detections topic and in the sink's files.
//
// By default (make test) it runs the short suite: one load with one fault per component in
// sequence. STREAMDET_CHAOS=full (make chaos) runs every case on its own, each twice at random
// moments. The report is a table in the log and JSON in STREAMDET_CHAOS_REPORT (default
// .cache/chaos/report.json).
func TestIntegrationChaos(t *testing.T) {
	longRunning(t)
	testenv.Require(t)
	h := newChaos(t)
	var cases []chaosCase
	if os.Getenv("STREAMDET_CHAOS") == "full" {
		// STREAMDET_CHAOS_CASES: a regular expression choosing cases by name (default: all).
		only := regexp.MustCompile(os.Getenv("STREAMDET_CHAOS_CASES"))
		for _, c := range chaosCases(h) {
			if only.MatchString(c.name) {
				cases = append(cases, c, c)
			}
		}
	} else {
		cases = []chaosCase{shortChaos(h)}
	}
	var results []chaosResult
	for i, c := range cases {
		t.Run(fmt.Sprintf("%02d %s", i+1, c.name), func(t *testing.T) {
			r, s := h.run(t, c)
			results = append(results, r)
			r.check(t, c)
			if t.Failed() {
				for _, n := range s.names() {
					t.Logf("%s log (without kafka-go's per-partition read retries):\n%s", n, logLines(s.get(n).log, 40))
				}
			}
		})
	}
	h.report(t, results)
}

// chaosCase is one fault (or a sequence of them) injected while the load runs.
type chaosCase struct {
	name string
	// load: how long frames are produced; the faults start at a random moment in the first half.
	load time.Duration
	// registry: detect follows a route in Redis (needed when Redis is the fault).
	registry bool
	// faults run one after the other; each returns when its fault has ended.
	faults []fault
	// graceful: the fault only stops processes with SIGTERM; no duplicate is allowed anywhere.
	graceful bool
	// gap: pause between consecutive faults.
	gap time.Duration
	// diskMiB > 0: the case's own MinIO, on a tmpfs of this size (the disk-full case).
	diskMiB int
	// detects: detect instances at the start (a rebalance case starts with one and adds one).
	detects int
}

type fault struct {
	name string
	run  func(t *testing.T, s *chaosServices)
	// disruptions: how many times the fault interrupts the pipeline (a rolling restart stops
	// three brokers in turn: 3); 0 counts as 1.
	disruptions int
}

// chaosResult is one row of the report.
type chaosResult struct {
	Case            string             `json:"case"`
	Faults          []string           `json:"faults"`
	Produced        int                `json:"produced"` // acknowledged by Kafka (acks=all)
	Detected        int                `json:"detected"` // distinct frames on the detections topic
	Written         int                `json:"written"`  // distinct frames in the sink's files
	Lost            int                `json:"lost"`
	TopicDuplicates int                `json:"topic_duplicates"`
	FileDuplicates  int                `json:"file_duplicates"`
	DeadLettered    int                `json:"dead_lettered"`
	MaxLatencyFault float64            `json:"max_latency_during_fault_s"`
	MaxLatencyAfter float64            `json:"max_latency_after_fault_s"`
	Recovery        float64            `json:"recovery_s"` // fault ended → backlog gone (latency back under 2 s)
	ReadyAfter      float64            `json:"ready_after_s"`
	PeakRSSMiB      map[string]float64 `json:"peak_rss_mib"`
	Seconds         float64            `json:"seconds"`
}

// The services' windows in flight in the suite: ingest's default and detect's setting.
const ingestConcurrency, detectConcurrency = 8, 4

// commitWindow is what a consumer may have handled since its last offset commit: the load's 10
// frames/s over the services' default STREAMDET_KAFKA_COMMIT_INTERVAL of 200 ms.
const commitWindow = 2

// rssBound is each service's documented memory bound: the Helm chart's limits.
var rssBound = map[string]float64{"ingest": 512, "detect": 2048, "sink": 512}

func (r chaosResult) check(t *testing.T, c chaosCase) {
	t.Helper()
	t.Logf("%s: produced %d, detected %d, written %d, lost %d, duplicates topic %d / files %d, dead letters %d, latency max %.1f s during / %.1f s after, recovered in %.1f s, ready after %.1f s, RSS %v",
		r.Case, r.Produced, r.Detected, r.Written, r.Lost, r.TopicDuplicates, r.FileDuplicates, r.DeadLettered, r.MaxLatencyFault, r.MaxLatencyAfter, r.Recovery, r.ReadyAfter, r.PeakRSSMiB)
	if r.Lost != 0 {
		t.Errorf("%d acknowledged frames lost", r.Lost)
	}
	if r.FileDuplicates != 0 {
		t.Errorf("%d duplicate rows in the sink's files", r.FileDuplicates)
	}
	if r.DeadLettered != 0 {
		t.Errorf("%d good frames dead-lettered", r.DeadLettered)
	}
	// Duplicates on the topic are bounded by what can be redone per fault: ingest's and detect's
	// windows in flight (their concurrency) and what each handled since its last commit, each
	// possibly resent once more after a produce whose acknowledgement was lost.
	disruptions := 0
	for _, f := range c.faults {
		disruptions += max(1, f.disruptions)
	}
	if limit := 2 * (ingestConcurrency + detectConcurrency + 2*commitWindow) * disruptions; r.TopicDuplicates > limit {
		t.Errorf("%d duplicates on the detections topic, over the in-flight bound %d", r.TopicDuplicates, limit)
	}
	if c.graceful && r.TopicDuplicates != 0 {
		t.Errorf("%d duplicates on the topic after SIGTERM only (a drain must commit what it published)", r.TopicDuplicates)
	}
	if r.ReadyAfter > 30 {
		t.Errorf("services ready %.1f s after the fault ended, over 30 s", r.ReadyAfter)
	}
	for s, v := range r.PeakRSSMiB {
		if b := rssBound[strings.TrimRight(s, "0123456789")]; b > 0 && v > b {
			t.Errorf("%s peak RSS %.0f MiB over its bound %.0f MiB", s, v, b)
		}
	}
}

// chaos holds what the cases share: the cluster, MinIO, Redis and the images.
type chaos struct {
	root, stack          string
	dir                  string
	base                 int
	kafkaDir             string // the cluster's state (stack.sh kafka-cluster DIR)
	brokers              []string
	minio                *aux
	minioBin             string
	redis                *aux
	minioUser, minioPass string
	redisPass            string
	images               [][]byte
}

// aux is a server the suite owns (MinIO, Redis), to kill and restart.
type aux struct {
	name, addr string
	mount      string // a tmpfs in the process's own mount namespace (MinIO on a small disk)
	args       []string
	env        []string
	ready      func() error
	cmd        *exec.Cmd
	done       chan struct{}
	log        string
}

// start starts a (again) on its address, failing the test when it does not come up.
func (a *aux) start(t *testing.T) {
	t.Helper()
	if err := a.launch(t); err != nil {
		t.Fatalf("%v\n%s", err, tail(a.log))
	}
}

// startOnFreshPort starts a for the first time on a reserved port that configure gives it
// (args, ready), and again on a fresh one when the port was taken (testenv.StartRetry).
func (a *aux) startOnFreshPort(t *testing.T, configure func(addr string)) {
	t.Helper()
	testenv.StartRetry(t, 3, 1, func(port int) (string, error) {
		a.addr = "127.0.0.1:" + strconv.Itoa(port)
		configure(a.addr)
		if err := a.launch(t); err != nil {
			return tail(a.log), err
		}
		return "", nil
	})
}

// launch starts a and waits until it is ready; when it is not, a is left stopped.
func (a *aux) launch(t *testing.T) error {
	t.Helper()
	a.cmd = exec.Command(a.args[0], a.args[1:]...)
	a.cmd.Env = append(os.Environ(), a.env...)
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL} // gone with the test
	f, err := os.OpenFile(a.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	a.cmd.Stdout, a.cmd.Stderr = f, f
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", a.name, err)
	}
	a.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); f.Close(); close(done) }(a.cmd, a.done)
	for deadline := time.Now().Add(60 * time.Second); a.ready() != nil; time.Sleep(200 * time.Millisecond) {
		select {
		case <-a.done:
			return fmt.Errorf("%s exited during start-up", a.name)
		default:
		}
		if time.Now().After(deadline) {
			err := fmt.Errorf("%s not ready after 60 s: %v", a.name, a.ready())
			a.kill()
			return err
		}
	}
	return nil
}

func (a *aux) kill() {
	if a.cmd != nil && a.cmd.Process != nil {
		syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.done
	}
}

func newChaos(t *testing.T) *chaos {
	t.Helper()
	root := testenv.RepoRoot(t)
	cache := os.Getenv("STREAMDET_CACHE")
	if cache == "" {
		cache = filepath.Join(root, ".cache")
	}
	h := &chaos{root: root, stack: filepath.Join(root, "deploy", "local", "stack.sh"), dir: t.TempDir()}
	// Ports: the cluster takes base…base+5, reserved for the test; a start that finds one taken
	// (by a process that is not a test) is made again, in a new directory, on fresh ports.
	attempt := 0
	h.base, _ = testenv.StartRetry(t, 3, 6, func(base int) (string, error) {
		attempt++
		h.base, h.kafkaDir = base, filepath.Join(h.dir, fmt.Sprintf("kafka-%d", attempt))
		out, err := h.clusterCmd("start", 0).CombinedOutput()
		if err != nil {
			h.clusterCmd("stop", 0).Run()
		}
		return string(out), err
	})
	for i := 0; i < 3; i++ {
		h.brokers = append(h.brokers, fmt.Sprintf("127.0.0.1:%d", h.base+2*i))
	}
	t.Cleanup(func() { h.clusterCtl(t, "stop", 0) })
	h.warm(t)

	h.minioBin = filepath.Join(cache, "bin", "minio")
	h.minioUser, h.minioPass = "chaos-"+strconv.Itoa(rand.IntN(1e6)), fmt.Sprintf("%x", rand.Uint64())
	h.minio = h.newMinIO(t, filepath.Join(h.dir, "minio-data"), 0)

	h.redisPass = fmt.Sprintf("%x", rand.Uint64())
	// No persistence: a restart is an empty Redis, the worst case for routes.
	h.redis = &aux{name: "redis", log: filepath.Join(h.dir, "redis.log")}
	h.redis.startOnFreshPort(t, func(addr string) {
		_, rport, _ := strings.Cut(addr, ":")
		h.redis.args = []string{"redis-server", "--bind", "127.0.0.1", "--port", rport, "--requirepass", h.redisPass, "--save", "", "--appendonly", "no"}
		h.redis.ready = func() error {
			out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", rport, "--no-auth-warning", "-a", h.redisPass, "ping").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "PONG") {
				return fmt.Errorf("redis ping: %v %s", err, out)
			}
			return nil
		}
	})
	t.Cleanup(h.redis.kill)

	for _, n := range []string{"dog.jpg", "horses.jpg", "person.jpg"} {
		b, err := os.ReadFile(testenv.Shared(t, "images", n))
		if err != nil {
			t.Fatal(err)
		}
		h.images = append(h.images, b)
	}
	return h
}

// newMinIO starts a MinIO on dir. With sizeMiB > 0 dir is a tmpfs of that size in a mount
// namespace of MinIO's own (unshare), so that the suite can fill its disk; the filesystem is
// reached from outside through /proc/<pid>/root.
func (h *chaos) newMinIO(t *testing.T, dir string, sizeMiB int) *aux {
	t.Helper()
	if sizeMiB > 0 {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	m := &aux{name: "minio", log: filepath.Join(h.dir, fmt.Sprintf("minio-%s.log", filepath.Base(dir))),
		env: []string{"MINIO_ROOT_USER=" + h.minioUser, "MINIO_ROOT_PASSWORD=" + h.minioPass, "MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CALLHOME_ENABLE=off"}}
	if sizeMiB > 0 {
		m.mount = dir
	}
	m.startOnFreshPort(t, func(addr string) {
		m.args = []string{h.minioBin, "server", "--quiet", "--address", addr, dir}
		if sizeMiB > 0 {
			// sh -c SCRIPT $0 $@: mount the tmpfs on $0, then exec MinIO on a directory in it.
			m.args = []string{"unshare", "-Urm", "sh", "-c", fmt.Sprintf(`mount -t tmpfs -o size=%dm tmpfs "$0" && exec "$@"`, sizeMiB), dir, h.minioBin, "server", "--quiet", "--address", addr, dir + "/data"}
		}
		m.ready = func() error {
			resp, err := http.Get("http://" + addr + "/minio/health/ready")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return errors.New(resp.Status)
			}
			return nil
		}
	})
	t.Cleanup(m.kill)
	return m
}

// warm makes a fresh cluster ready for groups before the first case: a group commits once, so
// that __consumer_offsets exists with its replicas in sync (the first case would otherwise pay
// for its creation: slow joins, commits refused while its leaders are elected).
func (h *chaos) warm(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(h.brokers...), Timeout: 30 * time.Second}
	if _, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: "warm", NumPartitions: 1, ReplicationFactor: 3}}}); err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(h.brokers...), Topic: "warm", RequiredAcks: kafka.RequireAll}
	defer w.Close()
	for w.WriteMessages(ctx, kafka.Message{Value: []byte("x")}) != nil && ctx.Err() == nil {
		time.Sleep(500 * time.Millisecond)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: h.brokers, Topic: "warm", GroupID: "warm", StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	m, err := r.FetchMessage(ctx)
	if err == nil {
		err = r.CommitMessages(ctx, m)
	}
	if err != nil {
		t.Fatalf("warming the cluster: %v", err)
	}
	h.waitISR(t, "__consumer_offsets")
}

// clusterCtl runs stack.sh kafka-cluster ACTION (start, stop, start-node, stop-node, kill-node).
func (h *chaos) clusterCtl(t *testing.T, action string, node int) {
	t.Helper()
	cmd := h.clusterCmd(action, node)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
}

// clusterCmd is the stack.sh kafka-cluster command of ACTION on the suite's cluster.
func (h *chaos) clusterCmd(action string, node int) *exec.Cmd {
	args := []string{"kafka-cluster", action, h.kafkaDir, strconv.Itoa(h.base)}
	if node > 0 {
		args = append(args, strconv.Itoa(node))
	}
	return exec.Command(h.stack, args...)
}

// brokerPID is the process of cluster node n (1…3).
func (h *chaos) brokerPID(t *testing.T, n int) int {
	b, err := os.ReadFile(filepath.Join(h.kafkaDir, fmt.Sprintf("kafka-%d.pid", n)))
	if err != nil {
		t.Fatalf("node %d: %v", n, err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// leader is the node leading partition 0 of topic.
func (h *chaos) leader(t *testing.T, topic string) int {
	t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(h.brokers...), Timeout: 10 * time.Second}
	md, err := c.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 || len(md.Topics[0].Partitions) == 0 {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	for _, p := range md.Topics[0].Partitions {
		if p.ID == 0 {
			return p.Leader.ID
		}
	}
	t.Fatalf("%s has no partition 0", topic)
	return 0
}

// follow reads every partition of topic from its start, without a consumer group (nothing to
// commit, so nothing the checker itself reads twice), and keeps reading across broker faults
// until ctx ends.
func (h *chaos) follow(ctx context.Context, topic string, partitions int) *collector {
	c := &collector{}
	for p := 0; p < partitions; p++ {
		go func(p int) {
			var next int64 = kafka.FirstOffset
			for ctx.Err() == nil {
				r := kafka.NewReader(kafka.ReaderConfig{Brokers: h.brokers, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond, MaxBytes: 12 << 20})
				r.SetOffset(next)
				for {
					m, err := r.ReadMessage(ctx)
					if err != nil {
						break // a broker lost: a new reader finds the partition's new leader
					}
					c.mu.Lock()
					c.msgs = append(c.msgs, m)
					c.mu.Unlock()
					next = m.Offset + 1
				}
				r.Close()
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
		}(p)
	}
	return c
}

// waitISR waits until every partition of the run's topics (or of the topic named run) has its
// three replicas in sync again.
func (h *chaos) waitISR(t *testing.T, run string) {
	t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(h.brokers...), Timeout: 10 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	for {
		md, err := c.Metadata(context.Background(), &kafka.MetadataRequest{})
		short := 0
		if err == nil {
			for _, tp := range md.Topics {
				if tp.Name != run && !strings.HasPrefix(tp.Name, run+".") {
					continue
				}
				for _, p := range tp.Partitions {
					if len(p.Isr) < 3 {
						short++
					}
				}
			}
		}
		if err == nil && short == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas not back in sync after 90 s: %d partitions short (%v)", short, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// chaosServices are one case's services and what it needs to restart them.
type chaosServices struct {
	h       *chaos
	minio   *aux // h's, or the case's own (a small disk)
	run     string
	env     []string
	mu      sync.Mutex
	procs   map[string]*proc // ingest, sink, detect1, detect2…
	detEnv  []string
	model   string
	routeOK func(t *testing.T)
}

func (s *chaosServices) get(name string) *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[name]
}

func (s *chaosServices) start(t *testing.T, name string) {
	env := s.env
	if strings.HasPrefix(name, "detect") {
		env = s.detEnv
	}
	p := startService(t, strings.TrimRight(name, "0123456789"), env)
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
}

func (s *chaosServices) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.procs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// allReady: every running service answers /readyz with 200.
func (s *chaosServices) allReady() bool {
	for _, n := range s.names() {
		p := s.get(n)
		select {
		case <-p.done:
			continue // stopped on purpose (a member that left)
		default:
		}
		resp, err := http.Get("http://" + p.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
	}
	return true
}

func (h *chaos) services(t *testing.T, c chaosCase) *chaosServices {
	t.Helper()
	run := fmt.Sprintf("chaos%d", time.Now().UnixNano()%1e9)
	c2 := &kafka.Client{Addr: kafka.TCP(h.brokers...), Timeout: 30 * time.Second}
	var want []kafka.TopicConfig
	for _, tp := range []struct {
		s string
		n int
	}{{"frames.raw", 6}, {"frames", 6}, {"detections", 6}, {"detections.shadow", 6}, {"dlq", 3}, {"frames.events", 3}, {"rollouts", 1}} {
		want = append(want, kafka.TopicConfig{Topic: run + "." + tp.s, NumPartitions: tp.n, ReplicationFactor: 3})
	}
	resp, err := c2.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: want})
	if err != nil {
		t.Fatal(err)
	}
	for n, e := range resp.Errors {
		if e != nil {
			t.Fatalf("topic %s: %v", n, e)
		}
	}
	s := &chaosServices{h: h, minio: h.minio, procs: map[string]*proc{}}
	if c.diskMiB > 0 {
		s.minio = h.newMinIO(t, filepath.Join(t.TempDir(), "small-disk"), c.diskMiB)
	}
	env := []string{
		"STREAMDET_KAFKA_BROKERS=" + strings.Join(h.brokers, ","),
		"STREAMDET_MINIO_ENDPOINT=" + s.minio.addr, "STREAMDET_MINIO_ACCESS_KEY=" + h.minioUser, "STREAMDET_MINIO_SECRET_KEY=" + h.minioPass,
		"STREAMDET_REDIS_ADDR=" + h.redis.addr, "STREAMDET_REDIS_PASSWORD=" + h.redisPass,
		"STREAMDET_TOPIC_PREFIX=" + run, "STREAMDET_FRAMES_BUCKET=" + run + "-frames", "STREAMDET_DETECTIONS_BUCKET=" + run + "-detections",
		"STREAMDET_DEADLETTER_BUCKET=" + run + "-deadletters", "STREAMDET_ANNOTATED_BUCKET=" + run + "-annotated",
		"STREAMDET_INGEST_GROUP=" + run + "-ingest", "STREAMDET_DETECT_GROUP=" + run + "-detect", "STREAMDET_SINK_GROUP=" + run + "-sink",
		"STREAMDET_INGEST_EVENTS=false", "STREAMDET_SINK_FLUSH_INTERVAL=500ms", "STREAMDET_SINK_BATCH_ROWS=64",
		"OTEL_TRACES_EXPORTER=none", "STREAMDET_LOG_LEVEL=warn", "STREAMDET_ROUTE_RESYNC=1s",
	}
	s.run, s.env = run, env
	s.detEnv = append(append([]string(nil), env...), "STREAMDET_ENGINE_SESSIONS=1", "STREAMDET_DETECT_CONCURRENCY="+strconv.Itoa(detectConcurrency))
	if c.registry {
		s.model = "chaos-" + run
		shared := testenv.Shared(t, "models")
		mustDetctl(t, env, "model", "push", "--name", s.model, "--version", "1", "--format", "yolox", "--names", filepath.Join(shared, "coco.names"), filepath.Join(shared, "yolox_nano.onnx"))
		s.routeOK = func(t *testing.T) { mustDetctl(t, env, "route", "set", s.model, "--weights", "1=100") }
		s.routeOK(t)
		s.detEnv = append(s.detEnv, "STREAMDET_MODEL_NAME="+s.model)
	} else {
		s.detEnv = append(s.detEnv, "STREAMDET_MODEL_PATH="+testenv.Shared(t, "models", "yolox_nano.onnx"), "STREAMDET_MODEL_FORMAT=yolox",
			"STREAMDET_MODEL_NAMES_PATH="+testenv.Shared(t, "models", "coco.names"), "STREAMDET_MODEL_NAME=coco")
	}
	for _, n := range []string{"ingest", "sink"} {
		s.start(t, n)
	}
	for i := 1; i <= max(c.detects, 1); i++ {
		s.start(t, fmt.Sprintf("detect%d", i))
	}
	return s
}

// run executes one case: load, faults, drain, accounting.
func (h *chaos) run(t *testing.T, c chaosCase) (chaosResult, *chaosServices) {
	t.Helper()
	began := time.Now()
	s := h.services(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), c.load+8*time.Minute)
	defer cancel()

	// The checker: first arrival of each frame on the detections topic, and the dead letters.
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	topicCount := map[string]int{}
	dets := h.follow(ctx, s.run+".detections", 6)
	dlq := h.follow(ctx, s.run+".dlq", 3)
	seen := 0
	scan := func() {
		msgs := dets.snapshot()
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		for _, m := range msgs[seen:] {
			var d contract.Detections
			if json.Unmarshal(m.Value, &d) != nil {
				continue
			}
			k := d.StreamID + "/" + d.FrameID
			if _, ok := arrived[k]; !ok {
				arrived[k] = now
			}
			topicCount[k]++
		}
		seen = len(msgs)
	}

	// RSS of every service, sampled each second.
	rss := map[string]float64{}
	sample := func() {
		for _, n := range s.names() {
			p := s.get(n)
			if v := procRSS(p.cmd.Process.Pid); v > 0 {
				mu.Lock()
				rss[n] = max(rss[n], v)
				mu.Unlock()
			}
		}
	}
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopWatch:
				scan()
				return
			case <-tick.C:
				scan()
				if i%5 == 0 {
					sample()
				}
			}
		}
	}()

	// The load: one frame every 100 ms over 16 streams, each with a unique id; a frame counts as
	// produced once Kafka acknowledged it (acks=all); a refused write is retried with the same id.
	acked := map[string]time.Time{}
	w := &kafka.Writer{Addr: kafka.TCP(h.brokers...), Topic: s.run + ".frames.raw", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, WriteTimeout: 10 * time.Second, MaxAttempts: 3}
	defer w.Close()
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < int(c.load/(100*time.Millisecond)) && ctx.Err() == nil; i++ {
			<-tick.C
			stream, id := fmt.Sprintf("cam-%02d", i%16), fmt.Sprintf("%s-%d", s.run, i)
			for ctx.Err() == nil {
				err := w.WriteMessages(ctx, kafka.Message{Key: []byte(stream), Value: h.images[i%len(h.images)],
					Headers: []kafka.Header{{Key: "ce_id", Value: []byte(id)}}})
				if err == nil {
					mu.Lock()
					acked[stream+"/"+id] = time.Now()
					mu.Unlock()
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()

	// Faults at a random moment in the first half of the load, one after the other.
	loadStart := time.Now()
	time.Sleep(c.load/6 + time.Duration(rand.Int64N(int64(c.load/6))))
	faultStart := time.Now()
	var names []string
	var readyAfter float64
	for i, f := range c.faults {
		if i > 0 {
			time.Sleep(c.gap)
		}
		t.Logf("fault at +%.1f s: %s", time.Since(loadStart).Seconds(), f.name)
		f.run(t, s)
		names = append(names, f.name)
		// Every service ready again: how long after this fault ended.
		ended := time.Now()
		for !s.allReady() && time.Since(ended) < 60*time.Second {
			time.Sleep(100 * time.Millisecond)
		}
		readyAfter = max(readyAfter, time.Since(ended).Seconds())
	}
	faultEnd := time.Now()
	<-loadDone

	// Drain: wait until every acknowledged frame is in the sink's files (or 4 minutes).
	mc, err := minio.New(s.minio.addr, &minio.Options{Creds: credentials.NewStaticV4(h.minioUser, h.minioPass, "")})
	if err != nil {
		t.Fatal(err)
	}
	var rows map[string]int
	for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(time.Second) {
		rows = sinkRows(ctx, t, mc, s.run+"-detections")
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if len(rows) >= n || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(3 * time.Second) // let a duplicate land, if one were coming
	rows = sinkRows(ctx, t, mc, s.run+"-detections")
	close(stopWatch)
	<-watchDone

	mu.Lock()
	defer mu.Unlock()
	r := chaosResult{Case: c.name, Faults: names, Produced: len(acked), Detected: len(arrived), PeakRSSMiB: rss, ReadyAfter: round1(readyAfter)}
	// Recovery: the last frame (produced after the fault began) whose detection took over 2 s
	// marks when the backlog was gone.
	var recovered time.Time
	for k, at := range acked {
		if rows[k] == 0 {
			r.Lost++
		}
		if n := rows[k]; n > 1 {
			r.FileDuplicates += n - 1
		}
		if n := topicCount[k]; n > 1 {
			r.TopicDuplicates += n - 1
		}
		a, ok := arrived[k]
		if !ok {
			continue
		}
		lat := a.Sub(at).Seconds()
		if at.Before(faultEnd) && !at.Before(faultStart.Add(-10*time.Second)) {
			r.MaxLatencyFault = max(r.MaxLatencyFault, lat)
		} else if at.After(faultEnd) {
			r.MaxLatencyAfter = max(r.MaxLatencyAfter, lat)
		}
		if at.After(faultStart) && lat > 2 && a.After(recovered) {
			recovered = a
		}
	}
	for k := range rows {
		r.Written++
		if _, ok := acked[k]; !ok {
			t.Errorf("row for %s, a frame never acknowledged to the producer", k)
		}
	}
	if !recovered.IsZero() && recovered.After(faultEnd) {
		r.Recovery = round1(recovered.Sub(faultEnd).Seconds())
	}
	r.DeadLettered = len(dlq.snapshot())
	r.MaxLatencyFault, r.MaxLatencyAfter = round1(r.MaxLatencyFault), round1(r.MaxLatencyAfter)
	r.Seconds = round1(time.Since(began).Seconds())
	if r.Lost > 0 {
		var lost []string
		for k := range acked {
			if rows[k] == 0 {
				lost = append(lost, fmt.Sprintf("%s (on topic: %v)", k, topicCount[k] > 0))
			}
		}
		sort.Strings(lost)
		t.Logf("lost: %s", strings.Join(lost[:min(len(lost), 20)], ", "))
	}
	return r, s
}

// logLines is the last n lines of a service log, leaving out kafka-go's per-partition retry noise.
func logLines(path string, n int) string {
	b, _ := os.ReadFile(path)
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.Contains(l, "got an unknown error reading partition") && !strings.Contains(l, "initializing the kafka reader") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep[max(0, len(keep)-n):], "\n")
}

func round1(v float64) float64 { return float64(int(v*10+0.5)) / 10 }

// procRSS is a process's resident set in MiB (0 if it is gone).
func procRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// report prints the table and writes the JSON artefact.
func (h *chaos) report(t *testing.T, rs []chaosResult) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n| case | produced | detected | written | lost | dup topic | dup files | dead letters | max latency during / after (s) | recovery (s) | ready after (s) | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		var rss []string
		for _, n := range sortedKeys(r.PeakRSSMiB) {
			rss = append(rss, fmt.Sprintf("%s %.0f", n, r.PeakRSSMiB[n]))
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %.1f / %.1f | %.1f | %.1f | %s |\n", r.Case, r.Produced, r.Detected, r.Written,
			r.Lost, r.TopicDuplicates, r.FileDuplicates, r.DeadLettered, r.MaxLatencyFault, r.MaxLatencyAfter, r.Recovery, r.ReadyAfter, strings.Join(rss, ", "))
	}
	t.Log(b.String())
	path := os.Getenv("STREAMDET_CHAOS_REPORT")
	if path == "" {
		path = filepath.Join(h.root, ".cache", "chaos", "report.json")
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	js, _ := json.MarshalIndent(map[string]any{"date": time.Now().UTC().Format(time.RFC3339), "cases": rs}, "", "  ")
	if err := os.WriteFile(path, js, 0o644); err != nil {
		t.Error(err)
	}
	t.Logf("report: %s", path)
}

func sortedKeys[V any](m map[string]V) []string {
	out := keys(m)
	sort.Strings(out)
	return out
}

// The faults.

func kill9(name string) fault {
	return fault{name: "kill -9 " + strings.TrimRight(name, "0123456789"), run: func(t *testing.T, s *chaosServices) {
		s.get(name).kill()
		s.start(t, name)
	}}
}

func sigterm(name string) fault {
	return fault{name: "SIGTERM " + strings.TrimRight(name, "0123456789"), run: func(t *testing.T, s *chaosServices) {
		s.get(name).stop(t)
		s.start(t, name)
	}}
}

// killLeader: kill -9 of the broker leading the frames topic's partition 0, restarted 10 s later.
func killLeader() fault {
	return fault{name: "kill -9 leader broker", run: func(t *testing.T, s *chaosServices) {
		n := s.h.leader(t, s.run+".frames")
		s.h.clusterCtl(t, "kill-node", n)
		time.Sleep(10 * time.Second)
		s.h.clusterCtl(t, "start-node", n)
		s.h.waitISR(t, s.run)
	}}
}

// rollingRestart: each broker in turn stopped (SIGTERM) and started, as an upgrade does.
func rollingRestart() fault {
	return fault{name: "rolling restart of 3 brokers", run: func(t *testing.T, s *chaosServices) {
		for n := 1; n <= 3; n++ {
			s.h.clusterCtl(t, "stop-node", n)
			s.h.clusterCtl(t, "start-node", n)
			s.h.waitISR(t, s.run) // the next goes only once this one caught up, as an operator would
		}
	}, disruptions: 3}
}

// freezeBroker: the leader frozen (SIGSTOP) for 20 s, as a partitioned or stalled node looks to
// its peers and clients, then resumed.
func freezeBroker() fault {
	return fault{name: "leader broker frozen 20 s", run: func(t *testing.T, s *chaosServices) {
		pid := s.h.brokerPID(t, s.h.leader(t, s.run+".frames"))
		syscall.Kill(-pid, syscall.SIGSTOP)
		time.Sleep(20 * time.Second)
		syscall.Kill(-pid, syscall.SIGCONT)
		s.h.waitISR(t, s.run)
	}}
}

func minioDown(d time.Duration) fault {
	return fault{name: fmt.Sprintf("MinIO down %s", d), run: func(t *testing.T, s *chaosServices) {
		s.minio.kill()
		time.Sleep(d)
		s.minio.start(t)
	}}
}

// redisLost: Redis killed, restarted empty after d, routes re-applied by detctl.
func redisLost(d time.Duration) fault {
	return fault{name: fmt.Sprintf("Redis down %s, back empty", d), run: func(t *testing.T, s *chaosServices) {
		s.h.redis.kill()
		time.Sleep(d)
		s.h.redis.start(t)
		if s.routeOK != nil {
			s.routeOK(t)
		}
	}}
}

// diskFull: MinIO's disk filled to the last byte (a filler file next to its data) for d, then
// freed, as an operator would once alerted.
func diskFull(d time.Duration) fault {
	return fault{name: fmt.Sprintf("MinIO disk full %s", d), run: func(t *testing.T, s *chaosServices) {
		if s.minio.mount == "" {
			t.Fatal("the disk-full case needs its MinIO on a tmpfs (diskMiB)")
		}
		path := fmt.Sprintf("/proc/%d/root%s/filler", s.minio.cmd.Process.Pid, s.minio.mount)
		f, err := os.Create(path)
		if err != nil {
			t.Fatalf("filling MinIO's disk: %v", err)
		}
		buf := make([]byte, 1<<20)
		for n := len(buf); ; {
			if _, err := f.Write(buf[:n]); err != nil {
				if n == 1 {
					break // full to the byte
				}
				n /= 2
			}
		}
		f.Close()
		time.Sleep(d)
		if err := os.Remove(path); err != nil {
			t.Fatalf("freeing MinIO's disk: %v", err)
		}
	}}
}

// rebalance: a second detect joins the group, leaves with SIGTERM, joins again and is killed.
func rebalance() fault {
	return fault{name: "detect members join and leave", run: func(t *testing.T, s *chaosServices) {
		s.start(t, "detect2")
		time.Sleep(8 * time.Second)
		s.get("detect2").stop(t)
		time.Sleep(4 * time.Second)
		s.start(t, "detect2")
		time.Sleep(8 * time.Second)
		s.get("detect2").kill()
	}}
}

// slowSink: the sink frozen 30 s (a slow consumer), then resumed.
func slowSink() fault {
	return fault{name: "sink paused 30 s", run: func(t *testing.T, s *chaosServices) {
		pid := s.get("sink").cmd.Process.Pid
		syscall.Kill(pid, syscall.SIGSTOP)
		time.Sleep(30 * time.Second)
		syscall.Kill(pid, syscall.SIGCONT)
	}}
}

func chaosCases(h *chaos) []chaosCase {
	one := func(name string, f fault, opts ...func(*chaosCase)) chaosCase {
		c := chaosCase{name: name, load: 45 * time.Second, faults: []fault{f}, detects: 1}
		for _, o := range opts {
			o(&c)
		}
		return c
	}
	graceful := func(c *chaosCase) { c.graceful = true }
	registry := func(c *chaosCase) { c.registry = true }
	return []chaosCase{
		one("kill -9 ingest", kill9("ingest")),
		one("kill -9 detect", kill9("detect1")),
		one("kill -9 sink", kill9("sink")),
		one("SIGTERM ingest", sigterm("ingest"), graceful),
		one("SIGTERM detect", sigterm("detect1"), graceful),
		one("SIGTERM sink", sigterm("sink"), graceful),
		one("kill -9 leader broker", killLeader()),
		one("rolling restart", rollingRestart()),
		one("broker frozen", freezeBroker()),
		one("MinIO down 30 s", minioDown(30*time.Second), registry),
		one("Redis lost 30 s", redisLost(30*time.Second), registry),
		one("rebalances", rebalance()),
		one("slow sink", slowSink()),
		one("MinIO disk full 30 s", diskFull(30*time.Second), func(c *chaosCase) { c.diskMiB = 512 }),
	}
}

// shortChaos is make test's version: one load, one fault per component in sequence.
func shortChaos(h *chaos) chaosCase {
	return chaosCase{name: "one fault per component", load: 90 * time.Second, gap: 4 * time.Second, registry: true, detects: 1, faults: []fault{
		kill9("detect1"), sigterm("ingest"), kill9("sink"), killLeader(), minioDown(10 * time.Second), redisLost(10 * time.Second),
	}}
}
