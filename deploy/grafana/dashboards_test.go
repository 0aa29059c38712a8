package grafana

//lint:file-ignore SA1019 the classic dashboard model (schemaVersion 42) is what file provisioning and Grafana's dashboard sidecar load on every Grafana in use; the SDK's dashboardv2 is the v2 API of Grafana 12+ only.

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// root is the repository root, from deploy/grafana.
var root = filepath.Join("..", "..")

func TestDashboardsUpToDate(t *testing.T) {
	stale, err := Stale(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) > 0 {
		t.Fatalf("generated files differ from what deploy/grafana renders (run make dashboards): %s", strings.Join(stale, ", "))
	}
}

// TestDashboardsDecode reads the committed JSON back into the SDK's dashboard type, as Grafana's
// schema has it, and checks what provisioning relies on.
func TestDashboardsDecode(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	ds, err := Render()
	if err != nil {
		t.Fatal(err)
	}
	uids := map[string]bool{}
	for _, d := range ds {
		var db dashboard.Dashboard
		if err := json.Unmarshal(d.JSON, &db); err != nil {
			t.Fatalf("%s: %v", d.File, err)
		}
		if db.Uid == nil || *db.Uid == "" || uids[*db.Uid] {
			t.Errorf("%s: uid missing or repeated", d.File)
		} else {
			uids[*db.Uid] = true
		}
		if len(db.Panels) < 5 {
			t.Errorf("%s: %d panels", d.File, len(db.Panels))
		}
	}
}

func TestQueriesParse(t *testing.T) {
	qs, err := Queries(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) < 25 {
		t.Fatalf("found only %d queries", len(qs))
	}
	for _, q := range qs {
		names, err := MetricNames(q)
		if err != nil {
			t.Error(err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: %q selects no metric", q.Source, q.Expr)
		}
	}
}

func TestQueriesParseRejects(t *testing.T) {
	for _, e := range []string{
		`sum by (stage (rate(streamdet_frames_in_total[5m]))`,
		`rate(streamdet_frames_in_total)`,
		`histogram_quantile(0.99, streamdet_message_duration_seconds_bucket{stage=~"("})`,
	} {
		if _, err := Parse(Query{Source: "test", Expr: e}); err == nil {
			t.Errorf("%q parsed", e)
		}
	}
}

func TestRecorded(t *testing.T) {
	rec, err := Recorded(root)
	if err != nil {
		t.Fatal(err)
	}
	if !rec["stage:streamdet_frames_in:rate5m"] || len(rec) != 4 {
		t.Fatalf("recorded: %v", rec)
	}
}
