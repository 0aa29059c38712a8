package manifests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/services/detect"
	"github.com/streamdet/streamdet/services/ingest"
	"github.com/streamdet/streamdet/services/sink"
)

// repo is the repository root, from deploy/manifests.
const repo = "../.."

// secretValue stands for every credential: long enough for any token or password rule, and a
// valid tokens-file line.
const secretValue = "deploy-test deploy-test-token-0123456789abcdef\n"

// checkServiceEnv runs the environment a deployment gives service through the service's own
// ConfigFromEnv and Validate: every required variable set, every value well formed. Paths under
// secretDirs (where secrets are mounted) become files holding secretValue; fromSecret names
// variables whose value a secret supplies at run time.
func checkServiceEnv(t *testing.T, where, service string, env map[string]string, secretDirs ...string) error {
	t.Helper()
	dir := t.TempDir()
	m := map[string]string{}
	for k, v := range env {
		for _, d := range secretDirs {
			if strings.HasPrefix(v, d) {
				p := filepath.Join(dir, strings.NewReplacer("/", "_", "%", "_").Replace(v))
				if err := os.WriteFile(p, []byte(secretValue), 0o600); err != nil {
					t.Fatal(err)
				}
				v = p
			}
		}
		m[k] = v
	}
	var err error
	switch service {
	case "ingest":
		_, err = ingest.ConfigFromEnv(envconf.Map(m))
	case "detect":
		_, err = detect.ConfigFromEnv(envconf.Map(m))
	case "sink":
		_, err = sink.ConfigFromEnv(envconf.Map(m))
	default:
		t.Fatalf("%s: unknown service %q", where, service)
	}
	if err != nil {
		return fmt.Errorf("%s: %s would not start: %w", where, service, err)
	}
	return nil
}
