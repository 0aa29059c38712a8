package docs

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/testenv"
	"github.com/streamdet/streamdet/services/detect"
	"github.com/streamdet/streamdet/services/edge"
	"github.com/streamdet/streamdet/services/ingest"
	"github.com/streamdet/streamdet/services/sink"
)

// readByServices is every STREAMDET_* variable the three services read.
func readByServices() map[string]bool {
	env := envconf.Map(nil)
	ingest.ConfigFromEnv(env)
	detect.ConfigFromEnv(env)
	sink.ConfigFromEnv(env)
	out := map[string]bool{"STREAMDET_LOG_LEVEL": true} // read by telemetry, outside the configs
	for _, k := range env.Keys() {
		out[k] = true
	}
	return out
}

var tick = regexp.MustCompile("`([^`]+)`")

// documented is every variable named in the configuration table of the README's "Running the
// pipeline" part, with its shorthands (…_TLS_CA_FILE after STREAMDET_KAFKA_TLS, _DETECT_ADDR,
// STREAMDET_<SERVICE>_…, (_FILE)) expanded against the names the code reads.
func documented(t *testing.T, code map[string]bool) (map[string]bool, []string) {
	f, err := os.Open(filepath.Join(testenv.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	var unknown []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "### Configuration") {
			in = true
			continue
		}
		if in && strings.HasPrefix(line, "#") {
			break
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cell := strings.SplitN(line, "|", 3)[1]
		var full string
		for _, m := range tick.FindAllStringSubmatch(cell, -1) {
			names := expand(m[1], full)
			if len(names) == 0 {
				continue
			}
			if strings.HasPrefix(m[1], "STREAMDET_") {
				full = strings.TrimSuffix(m[1], "(_FILE)")
			}
			found := false
			for _, n := range names {
				if code[n] {
					out[n], found = true, true
				}
			}
			if !found && strings.HasPrefix(names[0], "STREAMDET_") {
				unknown = append(unknown, m[1])
			}
		}
	}
	return out, unknown
}

// expand turns one documented token into the candidate names it stands for.
func expand(tok, full string) []string {
	tok, _, _ = strings.Cut(strings.TrimSpace(tok), "=")
	var base []string
	switch {
	case strings.HasPrefix(tok, "STREAMDET_"):
		base = []string{tok}
	case strings.HasPrefix(tok, "…_") && full != "":
		suffix := tok[len("…"):]
		for i := len(full); i > 0; i-- {
			if i == len(full) || full[i] == '_' {
				base = append(base, full[:i]+suffix)
			}
		}
	case strings.HasPrefix(tok, "_") && full != "":
		base = []string{"STREAMDET" + tok}
	default:
		return nil
	}
	var services []string
	for _, b := range base {
		if strings.Contains(b, "<SERVICE>") {
			for _, s := range []string{"INGEST", "DETECT", "SINK"} {
				services = append(services, strings.Replace(b, "<SERVICE>", s, 1))
			}
		} else {
			services = append(services, b)
		}
	}
	var out []string
	for _, b := range services {
		if strings.HasSuffix(b, "(_FILE)") {
			b = strings.TrimSuffix(b, "(_FILE)")
			out = append(out, b, b+"_FILE")
			continue
		}
		out = append(out, b)
	}
	return out
}

// TestREADMEConfigTable: the README's configuration table and the services' configuration code
// name the same variables.
func TestREADMEConfigTable(t *testing.T) {
	code := readByServices()
	doc, unknown := documented(t, code)
	for _, u := range unknown {
		t.Errorf("README documents %s, which no service reads", u)
	}
	var missing []string
	for k := range code {
		if !doc[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	for _, k := range missing {
		t.Errorf("%s is read by a service but not in the README's configuration table", k)
	}
	t.Logf("%d variables read by the services", len(code))
}

// TestEdgeConfigDocumented: every variable the edge runtime reads beyond the services' own is
// named in docs/edge.md.
func TestEdgeConfigDocumented(t *testing.T) {
	env := envconf.Map(nil)
	edge.ConfigFromEnv(env)
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "edge.md"))
	if err != nil {
		t.Fatal(err)
	}
	services := readByServices()
	n := 0
	for _, k := range env.Keys() {
		if services[k] || strings.HasPrefix(k, "STREAMDET_KAFKA_") || strings.HasPrefix(k, "STREAMDET_MINIO_") || strings.HasPrefix(k, "STREAMDET_REDIS_") {
			continue // documented in the README's table (docs/edge.md points there)
		}
		n++
		if !strings.Contains(string(b), "`"+k+"`") {
			t.Errorf("%s is read by streamdet-edge but not named in docs/edge.md", k)
		}
	}
	t.Logf("%d edge-only variables", n)
}
