package grafana

//lint:file-ignore SA1019 the classic dashboard model (schemaVersion 42) is what file provisioning and Grafana's dashboard sidecar load on every Grafana in use; the SDK's dashboardv2 is the v2 API of Grafana 12+ only.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// A Dashboard is one rendered dashboard: its file name and JSON.
type Dashboard struct {
	File string
	JSON []byte
}

// Render builds every dashboard and returns its JSON, in a stable order.
func Render() ([]Dashboard, error) {
	var out []Dashboard
	for _, d := range []struct {
		file  string
		build func() *dashboard.DashboardBuilder
	}{
		{"pipeline-overview.json", pipelineOverview},
		{"model-versions.json", modelVersions},
	} {
		db, err := d.build().Build()
		if err != nil {
			return nil, fmt.Errorf("building %s: %w", d.file, err)
		}
		b, err := json.MarshalIndent(db, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", d.file, err)
		}
		out = append(out, Dashboard{File: d.file, JSON: append(b, '\n')})
	}
	return out, nil
}

// Where the generated files live, relative to the repository root.
const (
	Dir        = "deploy/grafana"                   // committed dashboards (compose provisions them)
	ChartDir   = "deploy/helm/streamdet/dashboards" // the chart's copy (ConfigMaps for Grafana's sidecar)
	Rules      = "deploy/prometheus/streamdet.rules.yml"
	ChartRules = "deploy/helm/streamdet/files/streamdet.rules.yml" // the chart's copy (PrometheusRule)
)

// outputs is every generated file under root and its content.
func outputs(root string) (map[string][]byte, error) {
	ds, err := Render()
	if err != nil {
		return nil, err
	}
	rules, err := os.ReadFile(filepath.Join(root, Rules))
	if err != nil {
		return nil, fmt.Errorf("reading the alert rules: %w", err)
	}
	out := map[string][]byte{filepath.Join(root, ChartRules): rules}
	for _, d := range ds {
		out[filepath.Join(root, Dir, d.File)] = d.JSON
		out[filepath.Join(root, ChartDir, d.File)] = d.JSON
	}
	return out, nil
}

// Sync writes the dashboards and the chart's copies under the repository root.
func Sync(root string) error {
	out, err := outputs(root)
	if err != nil {
		return err
	}
	for p, b := range out {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
	}
	return nil
}

// Stale lists the generated files under root that are missing or differ from what Sync writes.
func Stale(root string) ([]string, error) {
	out, err := outputs(root)
	if err != nil {
		return nil, err
	}
	var stale []string
	for p, b := range out {
		if have, err := os.ReadFile(p); err != nil || !bytes.Equal(have, b) {
			stale = append(stale, p)
		}
	}
	sort.Strings(stale)
	return stale, nil
}

// datasource is the dashboards' Prometheus, chosen by the ${datasource} variable.
var datasource = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

func base(uid, title, description string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{"streamdet"}).
		Refresh("30s").
		Time("now-1h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Prometheus").Type("prometheus"))
}

// labelVariable is a multi-value variable over the values of label on metric.
func labelVariable(name, label, metric string) *dashboard.QueryVariableBuilder {
	q := fmt.Sprintf("label_values(%s, %s)", metric, label)
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasource).
		Query(dashboard.StringOrMap{String: cog.ToPtr(q)}).
		Definition(q).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).
		IncludeAll(true).
		AllValue(".*")
}

// query is one PromQL target; exemplars are asked for on latency histograms, so a spike links to
// the trace that caused it (the Prometheus data source's exemplar link goes to Jaeger).
func query(expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(datasource).Expr(expr).LegendFormat(legend).Range()
}

func series(title, unit, description string, w, h uint32, targets ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().Title(title).Description(description).Unit(unit).Datasource(datasource).
		Span(w).Height(h).FillOpacity(8).LineWidth(1).ShowPoints(common.VisibilityModeNever)
	for _, t := range targets {
		p.WithTarget(t)
	}
	return p
}

// Selector fragments shared by the pipeline panels.
const (
	stageSel = `stage=~"$stage"`
	window   = `[$__rate_interval]`
)

func pipelineOverview() *dashboard.DashboardBuilder {
	return base("streamdet-pipeline", "streamdet / pipeline overview",
		"Frames through ingest, detect and sink: throughput, consumer lag, dead letters and latency per stage. Latency panels carry exemplars that open the trace.").
		WithVariable(labelVariable("stage", "stage", "streamdet_frames_in_total")).
		WithRow(dashboard.NewRowBuilder("Health")).
		WithPanel(stat.NewPanelBuilder().Title("Services up").Description("Targets answering /metrics, by service.").
			Datasource(datasource).Span(8).Height(4).
			WithTarget(query(`sum by (service) (up{service=~"ingest|detect|sink"})`, "{{service}}").Instant())).
		WithPanel(stat.NewPanelBuilder().Title("Frames in, last hour").Unit("short").Datasource(datasource).Span(8).Height(4).
			WithTarget(query(`sum by (stage) (increase(streamdet_frames_in_total{`+stageSel+`}[1h]))`, "{{stage}}").Instant())).
		WithPanel(stat.NewPanelBuilder().Title("Dead letters, last hour").Unit("short").Datasource(datasource).Span(8).Height(4).
			WithTarget(query(`sum by (stage) (increase(streamdet_errors_total{`+stageSel+`, reason!~"transient_.*"}[1h]))`, "{{stage}}").Instant())).
		WithRow(dashboard.NewRowBuilder("Throughput and lag")).
		WithPanel(series("Messages in per stage", "ops", "Messages each stage takes in per second (frames at ingest and detect, detections at the sink).", 12, 8,
			query(`sum by (stage) (rate(streamdet_frames_in_total{`+stageSel+`}`+window+`))`, "{{stage}} in"))).
		WithPanel(series("Messages out per stage", "ops", "Messages each stage produces downstream per second (rows written, for the sink).", 12, 8,
			query(`sum by (stage) (rate(streamdet_frames_out_total{`+stageSel+`}`+window+`))`, "{{stage}} out"))).
		WithPanel(series("Consumer lag per group", "short", "Messages behind the end of the topic, per consumer group; KEDA scales on this.", 24, 8,
			query(`sum by (group, topic) (streamdet_consumer_lag)`, "{{group}} on {{topic}}"))).
		WithRow(dashboard.NewRowBuilder("Errors")).
		WithPanel(series("Dead letters by reason", "ops", "Messages refused and sent to streamdet.dlq, per stage and reason (detctl dlq ls lists them, with their trace ids).", 12, 8,
			query(`sum by (stage, reason) (rate(streamdet_errors_total{`+stageSel+`, reason!~"transient_.*"}`+window+`))`, "{{stage}}: {{reason}}"))).
		WithPanel(series("Retried failures", "ops", "Transient failures retried with backoff, per stage and component (kafka, objstore, redis).", 12, 8,
			query(`sum by (stage, reason) (rate(streamdet_errors_total{`+stageSel+`, reason=~"transient_.*"}`+window+`))`, "{{stage}}: {{reason}}"))).
		WithRow(dashboard.NewRowBuilder("Latency")).
		WithPanel(series("Message time p50 / p99 per stage", "s", "Time to handle one message. Exemplars (dots) open the trace of a slow message.", 12, 9,
			query(`histogram_quantile(0.5, sum by (stage, le) (rate(streamdet_message_duration_seconds_bucket{`+stageSel+`}`+window+`)))`, "{{stage}} p50").Exemplar(true),
			query(`histogram_quantile(0.99, sum by (stage, le) (rate(streamdet_message_duration_seconds_bucket{`+stageSel+`}`+window+`)))`, "{{stage}} p99").Exemplar(true))).
		WithPanel(series("Step time p99", "s", "p99 of each step (fetch, decode, preprocess, infer, postprocess, put, produce, write) per stage.", 12, 9,
			query(`histogram_quantile(0.99, sum by (stage, step, le) (rate(streamdet_step_duration_seconds_bucket{`+stageSel+`}`+window+`)))`, "{{stage}} {{step}}").Exemplar(true))).
		WithRow(dashboard.NewRowBuilder("Edge devices")).
		WithPanel(series("Time since each edge device's last heartbeat", "s", "From the heartbeats the sink follows on the devices topic; a device sends one every STREAMDET_EDGE_HEARTBEAT (10 s). Over 5 min, and not stopped on purpose: alert StreamdetDeviceOffline (detctl devices ls shows its last heartbeat).", 24, 8,
			query(`time() - max by (device, group) (streamdet_device_last_seen_timestamp_seconds)`, "{{group}}/{{device}}")))
}

// Selector fragments for the model panels.
const versionSel = `model=~"$model", version=~"$version", arm=~"$arm"`

func modelVersions() *dashboard.DashboardBuilder {
	return base("streamdet-models", "streamdet / model versions",
		"Each model version and routing arm (stable, canary, ab, pinned, shadow) side by side: frames served, latency, detections, agreement with the primary, and drift against the day before.").
		WithVariable(labelVariable("model", "model", "streamdet_model_frames_total")).
		WithVariable(labelVariable("version", "version", `streamdet_model_frames_total{model=~"$model"}`)).
		WithVariable(labelVariable("arm", "arm", `streamdet_model_frames_total{model=~"$model"}`)).
		WithRow(dashboard.NewRowBuilder("Traffic")).
		WithPanel(series("Frames per second by version and arm", "fps", "Frames each version serves, per arm.", 12, 8,
			query(`sum by (model, version, arm) (rate(streamdet_model_frames_total{`+versionSel+`}`+window+`))`, "{{model}}/{{version}} {{arm}}"))).
		WithPanel(series("Error ratio by version", "percentunit", "Share of frames a version failed on.", 12, 8,
			query(`sum by (model, version, arm) (rate(streamdet_model_errors_total{`+versionSel+`}`+window+`)) / (sum by (model, version, arm) (rate(streamdet_model_frames_total{`+versionSel+`}`+window+`)) + sum by (model, version, arm) (rate(streamdet_model_errors_total{`+versionSel+`}`+window+`)))`, "{{model}}/{{version}} {{arm}}"))).
		WithRow(dashboard.NewRowBuilder("Latency")).
		WithPanel(series("Model latency p50 / p99 by version", "s", "Decode to postprocess time per frame. Exemplars open the frame's trace.", 24, 9,
			query(`histogram_quantile(0.5, sum by (model, version, arm, le) (rate(streamdet_model_latency_seconds_bucket{`+versionSel+`}`+window+`)))`, "{{model}}/{{version}} {{arm}} p50").Exemplar(true),
			query(`histogram_quantile(0.99, sum by (model, version, arm, le) (rate(streamdet_model_latency_seconds_bucket{`+versionSel+`}`+window+`)))`, "{{model}}/{{version}} {{arm}} p99").Exemplar(true))).
		WithRow(dashboard.NewRowBuilder("Output")).
		WithPanel(series("Detections per frame", "short", "Mean boxes per frame, by version and arm.", 8, 8,
			query(meanOf("streamdet_model_detections_per_frame", ""), "{{model}}/{{version}} {{arm}}"))).
		WithPanel(series("Mean detection score", "percentunit", "Mean confidence of the boxes a version returns.", 8, 8,
			query(meanOf("streamdet_model_detection_score", ""), "{{model}}/{{version}} {{arm}}"))).
		WithPanel(series("Shadow agreement", "percentunit", "Share of the primary's boxes the shadow version also found (IoU ≥ 0.5, same class), per frame, averaged.", 8, 8,
			query(meanOf("streamdet_shadow_agreement", ""), "{{model}}/{{version}} vs primary"))).
		WithRow(dashboard.NewRowBuilder("Drift")).
		WithPanel(series("Detections per frame vs. a day ago", "percentunit", "Relative change of the mean boxes per frame against the same hour yesterday: a version's output drifting (scene change, camera fault, model regression).", 12, 8,
			query(meanOf("streamdet_model_detections_per_frame", "")+" / "+meanOf("streamdet_model_detections_per_frame", " offset 1d")+" - 1", "{{model}}/{{version}} {{arm}}"))).
		WithPanel(series("Mean score vs. a day ago", "percentunit", "Relative change of the mean detection score against the same hour yesterday.", 12, 8,
			query(meanOf("streamdet_model_detection_score", "")+" / "+meanOf("streamdet_model_detection_score", " offset 1d")+" - 1", "{{model}}/{{version}} {{arm}}"))).
		WithPanel(series("Drift (PSI) by feature, all streams", "short", "Population stability index of each feature's last window of frames against the version's reference — its first frames after promotion (detect's STREAMDET_DRIFT_*; detctl drift reset starts a new one): under 0.1 stable, 0.1–0.25 moving, over 0.25 drifted (alert StreamdetDrift after 15 min).", 12, 8,
			query(`max by (model, version, feature) (streamdet_drift{`+driftSel+`, stream="*"})`, "{{model}}/{{version}} {{feature}}"))).
		WithPanel(series("Streams drifted (PSI > 0.25 on any feature)", "short", "How many streams have drifted from the version's reference on them; `detctl drift MODEL` names them.", 12, 8,
			query(`count by (model, version) (max by (model, version, stream) (streamdet_drift{`+driftSel+`, stream!="*"}) > 0.25)`, "{{model}}/{{version}}")))
}

// driftSel selects drift series (they have no arm: drift is per version and stream).
const driftSel = `model=~"$model", version=~"$version"`

// meanOf is the mean of histogram h per version and arm over the panel's rate window, optionally
// shifted (offset).
func meanOf(h, offset string) string {
	by := "sum by (model, version, arm) "
	sel := "{" + versionSel + "}" + window + offset
	return "(" + by + "(rate(" + h + "_sum" + sel + ")) / " + by + "(rate(" + h + "_count" + sel + ")))"
}
