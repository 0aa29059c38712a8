//go:build integration

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/deploy/grafana"
	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/testenv"
	"github.com/streamdet/streamdet/tools/jaeger"
)

// TestIntegrationOps runs 50 frames (and two poison messages) through ingest, detect (a route
// with a shadow version) and sink with the local stack's Jaeger and Prometheus, then checks what
// an operator works from: one trace per frame across the three services, in parent order, found
// by frame id (detctl trace) and by a dead letter's trace id; non-zero series in Prometheus for
// the pipeline and per-version metrics, exemplars that lead to traces, the alert rules evaluated
// without error; and every query in the dashboards and rules names a metric the services export.
func TestIntegrationOps(t *testing.T) {
	st := testenv.Require(t)
	ops := testenv.RequireOps(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	run := fmt.Sprintf("ops%d", time.Now().UnixNano()%1e9)
	model := "coco" + run
	testenv.Topics(t, st.KafkaBrokers, 3, runTopics(run, "frames.raw", "frames", "detections", "detections.shadow", "dlq", "devices")...)
	env := []string{
		"STREAMDET_TOPIC_PREFIX=" + run, "STREAMDET_FRAMES_BUCKET=" + run + "-frames", "STREAMDET_DETECTIONS_BUCKET=" + run + "-detections",
		"STREAMDET_INGEST_GROUP=" + run + "-ingest", "STREAMDET_DETECT_GROUP=" + run + "-detect", "STREAMDET_SINK_GROUP=" + run + "-sink",
		"STREAMDET_INGEST_EVENTS=false", "STREAMDET_MODEL_NAME=" + model, "STREAMDET_ROUTE_RESYNC=500ms",
		"OTEL_BSP_SCHEDULE_DELAY=100", "STREAMDET_SINK_FLUSH_INTERVAL=500ms", "STREAMDET_LOG_LEVEL=warn",
		// Small drift windows so that 50 frames give streamdet_drift values (reference 20, windows of 10).
		"STREAMDET_DRIFT_REFERENCE_FRAMES=20", "STREAMDET_DRIFT_WINDOW_FRAMES=10",
	}
	// Version 1 serves, version 2 (the same network) runs as shadow on every frame.
	shared := testenv.Shared(t, "models")
	for _, v := range []string{"1", "2"} {
		mustDetctl(t, env, "model", "push", "--name", model, "--version", v, "--format", "yolox", "--names", filepath.Join(shared, "coco.names"), filepath.Join(shared, "yolox_nano.onnx"))
	}
	mustDetctl(t, env, "route", "set", model, "--weights", "1=100", "--shadow", "2")

	procs := map[string]*proc{}
	for _, s := range []string{"ingest", "detect", "sink"} {
		procs[s] = startService(t, s, env)
	}
	// Prometheus scrapes what its file_sd directory lists: these three, labelled with the run.
	var sd []map[string]any
	for _, s := range []string{"ingest", "detect", "sink"} {
		sd = append(sd, map[string]any{"targets": []string{procs[s].addr}, "labels": map[string]string{"service": s, "run": run}})
	}
	sdFile := filepath.Join(ops.PrometheusTargets, run+".json")
	b, _ := json.Marshal(sd)
	if err := os.WriteFile(sdFile+".tmp", b, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Rename(sdFile+".tmp", sdFile)
	t.Cleanup(func() { os.Remove(sdFile) })

	dets, dlq := follow(ctx, t, st.KafkaBrokers, run+".detections"), follow(ctx, t, st.KafkaBrokers, run+".dlq")
	w := &kafka.Writer{Addr: kafka.TCP(st.KafkaBrokers...), Topic: run + ".frames.raw", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	var images [][]byte
	for _, n := range []string{"person.jpg", "dog.jpg", "horses.jpg"} {
		b, err := os.ReadFile(testenv.Shared(t, "images", n))
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, b)
	}
	const frames = 50
	for i := 0; i < frames; i++ {
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(fmt.Sprintf("cam-%d", i%5)), Value: images[i%len(images)],
			Headers: []kafka.Header{{Key: "ce_id", Value: []byte(fmt.Sprintf("%s-%d", run, i))}}}); err != nil {
			t.Fatal(err)
		}
	}
	// An edge device's heartbeat: the sink exports when it was last seen (the offline alert).
	device := run + "-edge"
	hb, _ := json.Marshal(contract.DeviceStatus{Device: device, Group: "dock", State: "running", At: time.Now().UTC(), Started: time.Now().UTC()})
	dw := &kafka.Writer{Addr: kafka.TCP(st.KafkaBrokers...), Topic: run + ".devices", RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	if err := dw.WriteMessages(ctx, kafka.Message{Key: []byte(device), Value: hb}); err != nil {
		t.Fatal(err)
	}
	dw.Close()
	// Poison: garbage (ingest refuses it) and a truncated JPEG (passes ingest, detect fails on it).
	for i, v := range [][]byte{[]byte("not an image at all"), images[0][:len(images[0])/3]} {
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("cam-bad"), Value: v,
			Headers: []kafka.Header{{Key: "ce_id", Value: []byte(fmt.Sprintf("%s-bad-%d", run, i))}}}); err != nil {
			t.Fatal(err)
		}
	}
	var got map[string]contract.Detections
	for deadline := time.Now().Add(3 * time.Minute); ; {
		got = decodeDetections(dets.snapshot())
		if len(got) >= frames && len(dlq.snapshot()) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 3 minutes: %d of %d frames detected, %d of 2 dead letters", len(got), frames, len(dlq.snapshot()))
		}
		time.Sleep(200 * time.Millisecond)
	}

	jc := jaeger.Client{URL: ops.JaegerURL}
	t.Run("a frame's trace in Jaeger", func(t *testing.T) {
		frame := run + "-7"
		det := got[frame]
		var tr jaeger.Trace
		for deadline := time.Now().Add(30 * time.Second); ; {
			ts, err := jc.FindFrame(ctx, jaeger.FrameQuery{FrameID: frame, StreamID: det.StreamID})
			if err == nil && len(ts) == 1 && hasSpan(ts[0], "sink", "sink write") && hasSpan(ts[0], "detect", "inference") {
				tr = ts[0]
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Jaeger: frame %s: %d traces, err %v", frame, len(ts), err)
			}
			time.Sleep(500 * time.Millisecond)
		}
		if tr.ID != det.TraceID {
			t.Errorf("Jaeger's trace %s, the detection carries %s", tr.ID, det.TraceID)
		}
		var spans []span
		for _, s := range tr.Spans {
			spans = append(spans, span{Service: s.Service, Name: s.Name, TraceID: tr.ID, SpanID: s.ID, Parent: s.Parent})
		}
		checkSpans(t, spans, tr.ID, run)
		if s := strings.Join(tr.Services(), ","); s != "ingest,detect,sink" {
			t.Errorf("services in start order: %s", s)
		}

		// detctl trace prints it as a waterfall, from the frame id alone or from the trace id.
		for _, args := range [][]string{{"trace", "--stream", det.StreamID, frame}, {"trace", tr.ID}} {
			out := mustDetctl(t, nil, args...)
			for _, want := range []string{"trace " + tr.ID, "ingest → detect → sink", "process " + run + ".frames.raw", "inference", "sink write", "█",
				strings.ReplaceAll(ops.TraceURL, "{trace_id}", tr.ID)} {
				if !strings.Contains(out, want) {
					t.Errorf("detctl %s: no %q in\n%s", strings.Join(args, " "), want, out)
				}
			}
			t.Logf("detctl %s:\n%s", strings.Join(args, " "), out)
		}
		if out, code := detctl(t, nil, "trace", run+"-nosuchframe"); code != 1 || !strings.Contains(out, "no trace") {
			t.Errorf("detctl trace of an unknown frame: exit %d: %s", code, out)
		}
	})

	t.Run("a frame's trace in the trace UI", func(t *testing.T) {
		// The trace a detection carries, as Zipkin (fed by Jaeger through Kafka) has it: spans of
		// the three services, then its page in Zipkin's UI, rendered by headless Chromium.
		det := got[run+"-7"]
		var services map[string]bool
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			services = zipkinServices(t, ops.ZipkinURL, det.TraceID)
			if services["ingest"] && services["detect"] && services["sink"] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Zipkin: trace %s has the services %v, want ingest, detect and sink", det.TraceID, services)
			}
		}
		page := strings.ReplaceAll(ops.TraceURL, "{trace_id}", det.TraceID)
		if !strings.HasPrefix(page, ops.ZipkinURL+"/zipkin/traces/") {
			t.Fatalf("STREAMDET_TRACE_URL %s does not open Zipkin's UI at %s", ops.TraceURL, ops.ZipkinURL)
		}
		dom := string(chromium(t, "--virtual-time-budget=15000", "--dump-dom", page))
		for _, want := range []string{det.TraceID, "ingest", "detect", "sink", "inference", "sink write"} {
			if !strings.Contains(strings.ToLower(dom), strings.ToLower(want)) {
				t.Errorf("the trace page %s as rendered has no %q", page, want)
			}
		}
		art := filepath.Join(testenv.RepoRoot(t), ".cache", "artifacts")
		os.MkdirAll(art, 0o755)
		shot := filepath.Join(art, "trace-ui.png")
		os.Remove(shot)
		chromium(t, "--virtual-time-budget=15000", "--window-size=1400,900", "--screenshot="+shot, page)
		if fi, err := os.Stat(shot); err != nil || fi.Size() < 10000 {
			t.Fatalf("screenshot %s: %v", shot, err)
		}
		t.Logf("trace %s in the trace UI: %s; screenshot %s", det.TraceID, page, shot)
	})

	t.Run("dead letters carry their trace", func(t *testing.T) {
		for _, m := range dlq.snapshot() {
			var dl contract.DeadLetter
			json.Unmarshal([]byte(header(m, contract.HeaderDeadLetter)), &dl)
			if !jaeger.IsTraceID(dl.TraceID) {
				t.Fatalf("dead letter without a trace id: %+v", dl)
			}
			// The trace appears in Jaeger as soon as its first span (ingest's) is stored; the failed
			// span of the stage that dead-lettered it may be exported a batch later, so wait for it.
			var err error
			failed := false
			for deadline := time.Now().Add(20 * time.Second); ; {
				var tr jaeger.Trace
				if tr, err = jc.Get(ctx, dl.TraceID); err == nil {
					for _, s := range tr.Spans {
						failed = failed || (s.Service == dl.Stage && s.Error && s.Tags["streamdet.deadletter.reason"] == string(dl.Reason))
					}
				}
				if failed || time.Now().After(deadline) {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("dead letter's trace %s: %v", dl.TraceID, err)
			}
			if !failed {
				t.Errorf("trace %s of a %s dead letter (%s) has no failed %s span", dl.TraceID, dl.Stage, dl.Reason, dl.Stage)
			}
		}
	})

	t.Run("metrics in Prometheus", func(t *testing.T) {
		sel := `run="` + run + `"`
		checks := []struct{ what, query string }{
			{"frames in at each stage", `count(sum by (stage) (streamdet_frames_in_total{` + sel + `}) > 0) == 3`},
			{"frames out at each stage", `count(sum by (stage) (streamdet_frames_out_total{` + sel + `}) > 0) == 3`},
			{"step durations", `count(sum by (stage, step) (streamdet_step_duration_seconds_count{` + sel + `}) > 0) >= 8`},
			{"message durations", `sum(streamdet_message_duration_seconds_count{` + sel + `}) > 0`},
			{"primary version frames", `sum(streamdet_model_frames_total{` + sel + `, version="1", arm!="shadow"}) >= 50`},
			// the shadow runs once it is loaded (frames before that go without it)
			{"shadow version frames", `sum(streamdet_model_frames_total{` + sel + `, version="2", arm="shadow"}) > 0`},
			{"per-version latency", `sum(streamdet_model_latency_seconds_count{` + sel + `}) > 0`},
			{"shadow agreement", `sum(streamdet_shadow_agreement_count{` + sel + `}) > 0`},
			{"drift per version and feature", `count(streamdet_drift{` + sel + `, version="1"}) > 0`},
			{"model errors", `sum(streamdet_model_errors_total{` + sel + `}) > 0`},
			{"dead letters by stage", `count(sum by (stage) (streamdet_errors_total{` + sel + `, reason!~"transient_.*"}) > 0) == 2`},
			{"edge device last seen", `streamdet_device_last_seen_timestamp_seconds{` + sel + `, device="` + device + `", group="dock"} > 0`},
			{"consumer lag", `count(streamdet_consumer_lag{` + sel + `}) >= 3`},
			{"targets up", `count(up{` + sel + `} == 1) == 3`},
		}
		deadline := time.Now().Add(60 * time.Second)
		for _, c := range checks {
			for {
				n, err := promQuery(ctx, ops.PrometheusURL, c.query)
				if err == nil && n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%s: %s returned nothing (err %v)", c.what, c.query, err)
					break
				}
				time.Sleep(time.Second)
			}
		}
		// Exemplars: a latency sample links to a trace Jaeger has.
		var traceID string
		for {
			traceID, _ = promExemplar(ctx, ops.PrometheusURL, `streamdet_message_duration_seconds_bucket{`+sel+`}`)
			if traceID != "" || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		if traceID == "" {
			t.Error("no exemplar with a trace_id on streamdet_message_duration_seconds")
		} else {
			// The exemplar is scraped from the service; its span reaches Jaeger with the next export.
			var err error
			for deadline := time.Now().Add(20 * time.Second); ; {
				if _, err = jc.Get(ctx, traceID); err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			if err != nil {
				t.Errorf("exemplar's trace %s: %v", traceID, err)
			}
		}
		// The alert rules are loaded and evaluate on these series without error.
		rules, err := promRules(ctx, ops.PrometheusURL)
		if err != nil {
			t.Fatal(err)
		}
		if rules["StreamdetServiceDown"] != "ok" || len(rules) < 9 {
			t.Errorf("rules: %v", rules)
		}
		for name, health := range rules {
			if health != "ok" && health != "unknown" {
				t.Errorf("rule %s: health %s", name, health)
			}
		}
	})

	t.Run("dashboards and rules query exported metrics", func(t *testing.T) {
		exported := map[string]bool{"up": true} // up is Prometheus' own
		for _, s := range []string{"ingest", "detect", "sink"} {
			for n := range scrapeNames(t, procs[s].addr) {
				exported[n] = true
			}
		}
		root := testenv.RepoRoot(t)
		recorded, err := grafana.Recorded(root)
		if err != nil {
			t.Fatal(err)
		}
		qs, err := grafana.Queries(root)
		if err != nil {
			t.Fatal(err)
		}
		used := map[string]bool{}
		for _, q := range qs {
			names, err := grafana.MetricNames(q)
			if err != nil {
				t.Error(err)
				continue
			}
			for _, n := range names {
				used[n] = true
				if !exported[n] && !recorded[n] {
					t.Errorf("%s: %s is not a metric the services export", q.Source, n)
				}
			}
		}
		t.Logf("%d queries use %d metric names, all exported (the services export %d names)", len(qs), len(used), len(exported))
	})
}

func hasSpan(t jaeger.Trace, service, name string) bool {
	for _, s := range t.Spans {
		if s.Service == service && s.Name == name {
			return true
		}
	}
	return false
}

// scrapeNames reads a service's /metrics (text format) and returns the sample names in it.
func scrapeNames(t *testing.T, addr string) map[string]bool {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		if i := strings.IndexAny(l, "{ "); i > 0 {
			names[l[:i]] = true
		}
	}
	return names
}

// promGet asks Prometheus' HTTP API and decodes data into v.
func promGet(ctx context.Context, base, path string, q url.Values, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path+"?"+q.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return err
	}
	if env.Status != "success" {
		return fmt.Errorf("prometheus %s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, v)
}

// promQuery runs an instant query and returns how many series it returned.
func promQuery(ctx context.Context, base, query string) (int, error) {
	var data struct {
		Result []json.RawMessage `json:"result"`
	}
	err := promGet(ctx, base, "/api/v1/query", url.Values{"query": {query}}, &data)
	return len(data.Result), err
}

// promExemplar returns the trace_id of an exemplar of query's series in the last 10 minutes.
func promExemplar(ctx context.Context, base, query string) (string, error) {
	now := time.Now()
	var data []struct {
		Exemplars []struct {
			Labels map[string]string `json:"labels"`
		} `json:"exemplars"`
	}
	err := promGet(ctx, base, "/api/v1/query_exemplars", url.Values{"query": {query},
		"start": {strconv.FormatInt(now.Add(-10*time.Minute).Unix(), 10)}, "end": {strconv.FormatInt(now.Unix(), 10)}}, &data)
	for _, s := range data {
		for _, e := range s.Exemplars {
			if id := e.Labels["trace_id"]; id != "" {
				return id, nil
			}
		}
	}
	return "", err
}

// promRules returns each streamdet rule's health.
func promRules(ctx context.Context, base string) (map[string]string, error) {
	var data struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name   string `json:"name"`
				Health string `json:"health"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := promGet(ctx, base, "/api/v1/rules", nil, &data); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, g := range data.Groups {
		if strings.HasPrefix(g.Name, "streamdet.") {
			for _, r := range g.Rules {
				out[r.Name] = r.Health
			}
		}
	}
	return out, nil
}

// zipkinServices is the set of services with spans in trace id, as Zipkin's API has it (none
// while Zipkin has not collected the trace yet).
func zipkinServices(t *testing.T, base, id string) map[string]bool {
	t.Helper()
	resp, err := http.Get(base + "/zipkin/api/v2/trace/" + url.PathEscape(id))
	if err != nil {
		t.Fatalf("Zipkin: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]bool{}
	if resp.StatusCode != http.StatusOK {
		return out
	}
	var spans []struct {
		LocalEndpoint struct {
			ServiceName string `json:"serviceName"`
		} `json:"localEndpoint"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&spans); err != nil {
		t.Fatalf("Zipkin: trace %s: %v", id, err)
	}
	for _, s := range spans {
		out[s.LocalEndpoint.ServiceName] = true
	}
	return out
}
