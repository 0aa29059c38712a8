package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/testenv"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want float64
		err  bool
	}{
		{"1234 (detect) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 0 0", 3.0, false},
		{"42 (a (weird) name) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0", 0.1, false},
		{"42 no parens", 0, true},
		{"42 (x) R 1 2", 0, true},
		{"42 (x) R 1 42 42 0 -1 0 0 0 0 0 x y 0 0", 0, true},
	} {
		got, err := ParseStat([]byte(tc.stat))
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("%q: %v, %v; want %v (error %v)", tc.stat, got, err, tc.want, tc.err)
		}
	}
	// The start time (field 22) tells a reused pid from the process that had it.
	if _, start, err := parseStat([]byte("1234 (detect) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 98765 0 0")); err != nil || start != 98765 {
		t.Errorf("start %d, %v; want 98765", start, err)
	}
	if _, _, err := parseStat([]byte("1234 (detect) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 soon 0 0")); err == nil {
		t.Error("a start time that is not a number gave no error")
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		comm    string
		cmdline []string
		want    Group
	}{
		{"detect", []string{"/usr/local/bin/detect"}, Detect},
		{"ingest", []string{"bin/ingest"}, Ingest},
		{"sink", []string{"./sink"}, Sink},
		{"detctl", []string{"detctl", "dev"}, Detctl},
		{"detctl", []string{"detctl", "bench", "x.jpg"}, Load}, // the load generator: reported apart
		{"java", []string{"java", "-Xmx768m", "-cp", "libs/*", "kafka.Kafka", "server.properties"}, Kafka},
		{"java", []string{"java", "-jar", "other.jar"}, Unknown},
		{"minio", []string{"/cache/bin/minio", "server"}, MinIO},
		{"redis-server", []string{"redis-server 127.0.0.1:6379"}, Redis},
		{"bash", []string{"bash"}, Unknown},
	} {
		if got := Classify(tc.comm, tc.cmdline); got != tc.want {
			t.Errorf("%s %v: %q, want %q", tc.comm, tc.cmdline, got, tc.want)
		}
	}
}

// TestSample reads a /proc laid out as the kernel does, with processes of several groups.
func TestSample(t *testing.T) {
	dir := t.TempDir()
	proc := func(pid, comm, cmdline, stat string) {
		d := filepath.Join(dir, pid)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "comm"), []byte(comm+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "cmdline"), []byte(strings.ReplaceAll(cmdline, " ", "\x00")+"\x00"), 0o644)
		os.WriteFile(filepath.Join(d, "stat"), []byte(stat), 0o644)
	}
	proc("10", "detect", "/bin/detect", "10 (detect) S 1 10 10 0 -1 0 0 0 0 0 300 100 0 0 20 0 9 0")
	proc("11", "detect", "/bin/detect", "11 (detect) S 1 11 11 0 -1 0 0 0 0 0 100 0 0 0 20 0 9 0") // a second replica
	proc("12", "java", "java -cp x kafka.Kafka p", "12 (java) S 1 12 12 0 -1 0 0 0 0 0 50 50 0 0 20 0 9 0")
	proc("13", "bash", "bash", "13 (bash) S 1 13 13 0 -1 0 0 0 0 0 999 999 0 0 20 0 9 0")
	proc("14", "detctl", "bin/detctl bench --rate max frames", "14 (detctl) S 1 14 14 0 -1 0 0 0 0 0 150 50 0 0 20 0 9 0")
	os.MkdirAll(filepath.Join(dir, "self"), 0o755)
	procs, err := Sample(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := procs.CPU()
	if c[Detect] != 5 || c[Kafka] != 1 || c[Load] != 2 || len(c) != 3 || c.Own() != 5 || c.Total() != 6 {
		t.Fatalf("%v (the load generator is reported, not counted in own or total)", c)
	}
	if gs := c.Groups(); len(gs) != 3 || gs[0] != Detect || gs[1] != Kafka || gs[2] != Load {
		t.Fatalf("groups %v, want detect, kafka, load", gs)
	}
	// A step's CPU, process by process: detect 10 used 2 s more; Kafka's broker 12 exited and a
	// second one (pid 15) started, all of whose 0.5 s counts; pid 11 was reused by a sink
	// (another start time), whose 1 s counts whole, and detect 11's end takes nothing away.
	later := Procs{
		{10, 0}: {Detect, 6}, {11, 777}: {Sink, 1}, {15, 900}: {Kafka, 0.5}, {14, 0}: {Load, 2.5},
	}
	if d := later.Since(procs); len(d) != 4 || d[Detect] != 2 || d[Sink] != 1 || d[Kafka] != 0.5 || d[Load] != 0.5 {
		t.Fatalf("since %v, want detect 2, sink 1, kafka 0.5, load 0.5", d)
	}
	if _, err := Sample(filepath.Join(dir, "nope")); err == nil {
		t.Error("a missing /proc gave no error")
	}
}

func TestPercentileAndKnee(t *testing.T) {
	var xs []time.Duration
	for i := 1; i <= 100; i++ {
		xs = append(xs, time.Duration(i)*time.Millisecond)
	}
	if Percentile(xs, 50) != 50*time.Millisecond || Percentile(xs, 99) != 99*time.Millisecond || Percentile(xs, 100) != 100*time.Millisecond || Percentile(nil, 50) != 0 {
		t.Fatal("percentiles")
	}
	steps := []Step{
		{Offered: 10, Achieved: 10, P99: 80},
		{Offered: 20, Achieved: 19.8, P99: 95},
		{Offered: 30, Achieved: 29, P99: 150},  // keeps up, p99 under 2 × 80: the knee
		{Offered: 40, Achieved: 33, P99: 900},  // does not keep up
		{Offered: 50, Achieved: 33, P99: 3000}, // saturated
	}
	if k := MarkKnee(steps); k != 2 || !steps[2].Knee || steps[1].Knee {
		t.Fatalf("knee %d", k)
	}
	if k := MarkKnee([]Step{{Offered: 10, Achieved: 5, P99: 10}}); k != -1 {
		t.Fatalf("a step that does not keep up is no knee: %d", k)
	}
	path := filepath.Join(t.TempDir(), "curve.png")
	if err := Plot(steps, "test", path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 1000 || string(b[1:4]) != "PNG" {
		t.Fatalf("plot: %d bytes, %v", len(b), err)
	}
}

// TestRunner drives a fake pipeline on kfake: it answers each raw frame with a detections
// message, except one it drops and one it answers twice. The runner counts both, and measures
// latency from produce to detections.
func TestRunner(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	brokers := testenv.FakeKafka(t, "raw", "det") // three partitions each
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "raw", BatchTimeout: time.Millisecond}
	defer w.Close()
	out := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "det", BatchTimeout: time.Millisecond}
	defer out.Close()
	var readers []*kafka.Reader
	for p := 0; p < 3; p++ {
		go fakePipeline(ctx, brokers, p, out)
		rd := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: "det", Partition: p, MaxWait: 10 * time.Millisecond})
		defer rd.Close()
		readers = append(readers, rd)
	}
	r := &Runner{Writer: w, Readers: readers, Frames: [][]byte{[]byte("jpeg")}, Streams: 3, Run: "b1", Window: 4,
		ProcDir: t.TempDir(), Wait: 2 * time.Second}
	r.Start(ctx)
	s, err := r.Measure(ctx, 40, 0, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s.Sent < 30 || s.Lost != 1 || s.Duplicates != 1 || s.Received != s.Sent-1 {
		t.Fatalf("%+v", s)
	}
	if s.P50 <= 0 || s.P99 < s.P50 || s.StageMS["infer"] != 20 || s.Achieved < 20 || s.Achieved > 60 {
		t.Fatalf("%+v", s)
	}
	if s.TailFrames < 1 || s.TailBursts < 1 || s.TailBursts > s.TailFrames {
		t.Fatalf("tail of the p99: %d frames in %d bursts", s.TailFrames, s.TailBursts)
	}
	// As fast as it goes, one frame in flight: the frame lost in the first step holds no place.
	r.Window = 1
	s, err = r.Measure(ctx, 0, 0, 500*time.Millisecond)
	if err != nil || s.Lost != 0 || s.Received == 0 {
		t.Fatalf("max rate: %+v %v", s, err)
	}
}

// fakePipeline answers each raw frame of one partition with a detections message, except frame
// 7 of the first step, which it drops, and frame 9, which it answers twice.
func fakePipeline(ctx context.Context, brokers []string, partition int, out *kafka.Writer) {
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: "raw", Partition: partition, MaxWait: 10 * time.Millisecond})
	defer rd.Close()
	for {
		m, err := rd.ReadMessage(ctx)
		if err != nil {
			return
		}
		id := ""
		for _, h := range m.Headers {
			if h.Key == contract.HeaderID {
				id = string(h.Value)
			}
		}
		if strings.HasSuffix(id, "-1-7") {
			continue
		}
		b, _ := json.Marshal(contract.Detections{FrameID: id, StreamID: string(m.Key), TimingMS: map[string]float64{"infer": 20}})
		n := 1
		if strings.HasSuffix(id, "-1-9") {
			n = 2
		}
		for i := 0; i < n; i++ {
			out.WriteMessages(ctx, kafka.Message{Key: m.Key, Value: b})
		}
	}
}

// fakeInferer sleeps for each "inference".
type fakeInferer struct{ d time.Duration }

func (f fakeInferer) InferOnly(ctx context.Context) (time.Duration, error) {
	select {
	case <-time.After(f.d):
		return f.d, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
func (fakeInferer) Sessions() int { return 2 }

func TestMeasureBaseline(t *testing.T) {
	b, err := MeasureBaseline(context.Background(), fakeInferer{10 * time.Millisecond}, 300*time.Millisecond, "")
	if err != nil {
		t.Fatal(err)
	}
	// two sessions of 10 ms each: about 200 per second
	if b.FPS < 100 || b.FPS > 210 || b.LatencyMS < 10 || b.LatencyMS > 30 || b.CPUms < 0 {
		t.Fatalf("%+v", b)
	}
	if _, err := MeasureBaseline(context.Background(), fakeInferer{time.Second}, 50*time.Millisecond, ""); err == nil {
		t.Error("no inference finished, yet no error")
	}
}

func TestSamplesAndSlowest(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	r := &Runner{got: map[string]int{}, gotAt: map[string]time.Time{}, sentAt: map[string]time.Time{}, traceOf: map[string]string{}}
	for i, ms := range []int{30, 90, 40, 70, 20, 80} { // frame 6 is lost, frame 7 came back without a trace
		id := fmt.Sprint("f", i)
		r.lastMeasured = append(r.lastMeasured, id)
		r.sentAt[id], r.got[id] = t0.Add(time.Duration(i)*time.Second), 1
		r.gotAt[id] = r.sentAt[id].Add(time.Duration(ms) * time.Millisecond)
		r.traceOf[id] = fmt.Sprintf("%032x", i+1)
	}
	r.lastMeasured = append(r.lastMeasured, "f6", "f7")
	r.sentAt["f6"], r.sentAt["f7"], r.got["f7"], r.gotAt["f7"] = t0, t0, 1, t0.Add(time.Second)
	lat := func(s []Sampled) (out []int) {
		for _, x := range s {
			out = append(out, int(x.Back.Sub(x.Sent)/time.Millisecond))
		}
		return out
	}
	if got := lat(r.Slowest(3)); fmt.Sprint(got) != "[90 80 70]" {
		t.Errorf("Slowest(3) = %v, want [90 80 70]", got)
	}
	if got := lat(r.Slowest(10)); len(got) != 6 || got[5] != 20 {
		t.Errorf("Slowest(10) = %v, want all six traced frames", got)
	}
	if got := lat(r.Samples(3)); fmt.Sprint(got) != "[30 40 20]" {
		t.Errorf("Samples(3) = %v, want every other frame in order of sending", got)
	}
	if r.Slowest(0) != nil || r.Samples(0) != nil {
		t.Error("n = 0 must give none")
	}
	// Back: every frame that came back, traced or not, in order of sending; the lost one left out.
	if got := lat(r.Back()); fmt.Sprint(got) != "[30 90 40 70 20 80 1000]" {
		t.Errorf("Back() = %v, want the seven frames back in order of sending", got)
	}
}

func TestBursts(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	at := func(ms ...int) (out []time.Time) {
		for _, m := range ms {
			out = append(out, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return out
	}
	for _, tc := range []struct {
		at   []time.Time
		want int
	}{
		{nil, 0},
		{at(0), 1},
		{at(0, 100, 300, 799), 1},         // each within 500 ms of the one before
		{at(0, 500, 1000), 3},             // exactly the gap apart: separate
		{at(2000, 0, 2100, 100, 9000), 3}, // any order
	} {
		if got := Bursts(tc.at, BurstGap); got != tc.want {
			t.Errorf("Bursts(%v) = %d, want %d", tc.at, got, tc.want)
		}
	}
}
