package manifests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
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
	for _, want := range []string{"kafka", "minio", "redis", "jaeger", "prometheus"} {
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
