package manifests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

var composeDir = filepath.Join(repo, "deploy/compose")

// loadCompose parses and validates file with the Compose specification's own library, as
// `docker compose config` would, with every secret file present (init.sh makes them).
func loadCompose(t *testing.T, file string) (*types.Project, error) {
	t.Helper()
	dir := t.TempDir()
	// A copy beside generated secrets, so the test neither needs nor touches the real ones.
	for _, f := range []string{"prometheus.yml", "minio-init.sh"} {
		b, err := os.ReadFile(filepath.Join(composeDir, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "compose.yaml"), b, 0o644)
	os.MkdirAll(filepath.Join(dir, "models"), 0o755)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "compose.yaml")}, cli.WithWorkingDirectory(dir), cli.WithName("streamdet"), cli.WithInterpolation(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		return nil, err
	}
	// The secret files, as init.sh makes them.
	for _, s := range p.Secrets {
		os.MkdirAll(filepath.Dir(s.File), 0o700)
		os.WriteFile(s.File, []byte(secretValue), 0o600)
	}
	return p, nil
}

// checkCompose holds the project to what streamdet needs: each service's environment passes its
// own validation, every secret it names is one the service mounts, healthchecks on /readyz
// through the binary, non-root, read-only, dropped capabilities, a stop grace over the drain.
func checkCompose(t *testing.T, p *types.Project) []string {
	var problems []string
	for _, name := range []string{"ingest", "detect", "sink"} {
		s, ok := p.Services[name]
		if !ok {
			problems = append(problems, name+": missing")
			continue
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			if v == nil {
				problems = append(problems, name+": "+k+" has no value")
				continue
			}
			env[k] = *v
		}
		mounted := map[string]bool{}
		for _, sec := range s.Secrets {
			target := sec.Target
			if target == "" {
				target = sec.Source
			}
			if !strings.HasPrefix(target, "/") {
				target = "/run/secrets/" + target
			}
			mounted[target] = true
			if _, ok := p.Secrets[sec.Source]; !ok {
				problems = append(problems, name+": secret "+sec.Source+" is not declared")
			}
		}
		for k, v := range env {
			if strings.HasPrefix(v, "/run/secrets/") && !mounted[v] {
				problems = append(problems, name+": "+k+" names "+v+", a secret the service does not mount")
			}
		}
		if err := checkServiceEnv(t, "compose", name, env, "/run/secrets/"); err != nil {
			problems = append(problems, err.Error())
		}
		if s.HealthCheck == nil || len(s.HealthCheck.Test) != 3 || s.HealthCheck.Test[2] != "healthcheck" {
			problems = append(problems, name+": healthcheck must run `"+name+" healthcheck` (the image has no shell)")
		}
		if s.User != "65532:65532" || !s.ReadOnly || len(s.CapDrop) == 0 || s.CapDrop[0] != "ALL" {
			problems = append(problems, name+": must run as 65532, read-only, with every capability dropped")
		}
		if s.StopGracePeriod == nil || *s.StopGracePeriod <= types.Duration(20e9) {
			problems = append(problems, name+": stop_grace_period must exceed the 20s drain")
		}
		for _, port := range s.Ports {
			if port.HostIP == "" || port.HostIP == "0.0.0.0" {
				problems = append(problems, name+": published on every interface by default")
			}
		}
	}
	return problems
}

func TestCompose(t *testing.T) {
	p, err := loadCompose(t, filepath.Join(composeDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kafka", "minio", "redis", "jaeger", "prometheus", "grafana"} {
		if _, ok := p.Services[want]; !ok {
			t.Errorf("no %s service", want)
		}
	}
	for _, pr := range checkCompose(t, p) {
		t.Error(pr)
	}
}

// TestComposeRefusesBrokenFiles: a required variable dropped, a secret not mounted, an unknown
// key — each is reported.
func TestComposeRefusesBrokenFiles(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(composeDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"required variable dropped", "  STREAMDET_KAFKA_BROKERS: kafka:9092\n", "", "STREAMDET_KAFKA_BROKERS: at least one broker is required"},
		{"secret not mounted", "    secrets: [minio-password, redis-password]\n", "    secrets: [minio-password]\n", "a secret the service does not mount"},
		{"unknown key", "  stop_signal: SIGTERM\n", "  stop_signall: SIGTERM\n", "stop_signall"},
	} {
		if !strings.Contains(string(orig), tc.old) {
			t.Fatalf("%s: the compose file no longer has %q", tc.name, tc.old)
		}
		f := filepath.Join(t.TempDir(), "compose.yaml")
		os.WriteFile(f, []byte(strings.Replace(string(orig), tc.old, tc.new, 1)), 0o644)
		p, err := loadCompose(t, f)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = strings.Join(checkCompose(t, p), "\n")
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: got %q, want it to say %q", tc.name, got, tc.want)
		}
	}
}

// mountOf returns the host path (relative to the compose file) mounted at target in service s.
func mountOf(s types.ServiceConfig, target string) string {
	for _, v := range s.Volumes {
		if v.Target == target {
			return v.Source
		}
	}
	return ""
}

// TestComposeObservability: Prometheus evaluates the rules file it mounts and labels every
// target with its service; Grafana is provisioned with the generated dashboards, a Prometheus
// whose exemplars link to the Jaeger data source, and an admin password from a secret.
func TestComposeObservability(t *testing.T) {
	p, err := loadCompose(t, filepath.Join(composeDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rel := func(src string) string { // compose-go made bind sources absolute against the temp copy
		r, err := filepath.Rel(p.WorkingDir, src)
		if err != nil {
			return src
		}
		return filepath.Join(composeDir, r)
	}

	var prom struct {
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string          `json:"targets"`
				Labels  map[string]string `json:"labels"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	readYAML(t, filepath.Join(composeDir, "prometheus.yml"), &prom)
	if len(prom.RuleFiles) != 1 {
		t.Fatalf("rule_files: %v", prom.RuleFiles)
	}
	if src := mountOf(p.Services["prometheus"], prom.RuleFiles[0]); src == "" || !sameFile(rel(src), filepath.Join(repo, "deploy/prometheus/streamdet.rules.yml")) {
		t.Errorf("prometheus mounts %q at %s, want deploy/prometheus/streamdet.rules.yml", src, prom.RuleFiles[0])
	}
	services := map[string]bool{}
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if st.Labels["service"] == "" {
				t.Errorf("targets %v have no service label (the alert rules select on it)", st.Targets)
			}
			services[st.Labels["service"]] = true
		}
	}
	if !services["ingest"] || !services["detect"] || !services["sink"] {
		t.Errorf("scraped services: %v", services)
	}

	g := p.Services["grafana"]
	if g.Environment["GF_SECURITY_ADMIN_PASSWORD__FILE"] == nil || len(g.Secrets) != 1 {
		t.Error("grafana: the admin password must come from a secret file")
	}
	var ds struct {
		Datasources []struct {
			UID      string `json:"uid"`
			Type     string `json:"type"`
			URL      string `json:"url"`
			JSONData struct {
				Exemplars []struct {
					Name          string `json:"name"`
					DatasourceUID string `json:"datasourceUid"`
				} `json:"exemplarTraceIdDestinations"`
			} `json:"jsonData"`
		} `json:"datasources"`
	}
	prov := rel(mountOf(g, "/etc/grafana/provisioning"))
	readYAML(t, filepath.Join(prov, "datasources", "streamdet.yaml"), &ds)
	uids := map[string]string{}
	for _, d := range ds.Datasources {
		uids[d.Type] = d.UID
	}
	for _, d := range ds.Datasources {
		if d.Type == "prometheus" && (len(d.JSONData.Exemplars) != 1 || d.JSONData.Exemplars[0].Name != "trace_id" || d.JSONData.Exemplars[0].DatasourceUID != uids["jaeger"] || uids["jaeger"] == "") {
			t.Errorf("prometheus data source: exemplars must link trace_id to the jaeger data source: %+v", d.JSONData)
		}
	}
	var dp struct {
		Providers []struct {
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	readYAML(t, filepath.Join(prov, "dashboards", "streamdet.yaml"), &dp)
	if len(dp.Providers) != 1 {
		t.Fatalf("dashboard providers: %+v", dp)
	}
	dir := mountOf(g, dp.Providers[0].Options.Path)
	if dir == "" || !sameFile(rel(dir), filepath.Join(repo, "deploy/grafana")) {
		t.Errorf("grafana mounts %q at the provider's path %s, want deploy/grafana", dir, dp.Providers[0].Options.Path)
	}
	if js, _ := filepath.Glob(filepath.Join(repo, "deploy/grafana/*.json")); len(js) < 2 {
		t.Errorf("deploy/grafana has %d dashboards", len(js))
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err == nil {
		err = yaml.Unmarshal(b, v)
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
