package manifests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var unitsDir = filepath.Join(repo, "deploy/systemd")

// verifyUnit runs systemd-analyze verify on a copy of unit whose ExecStart is a binary that
// exists here, and its offline security analysis; it returns what they complained about and
// the exposure level (0 best, 10 worst).
func verifyUnit(t *testing.T, name, unit string) (string, float64) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed (Debian's systemd package)")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, name)
	unit = regexp.MustCompile(`(?m)^ExecStart=\S+`).ReplaceAllString(unit, "ExecStart=/bin/true")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	complaints := strings.TrimSpace(string(out))
	if err != nil {
		complaints += "\n" + err.Error()
	}
	sec, _ := exec.Command("systemd-analyze", "security", "--offline=yes", path).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(sec)
	if m == nil {
		t.Fatalf("%s: no exposure level in:\n%s", name, sec)
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	return complaints, level
}

// TestSystemdUnits: the units (the three services and the edge runtime) verify cleanly, run the binary the README installs, are
// hardened (exposure ≤ 2.0 of 10 by systemd-analyze security), and pass secrets as credentials.
func TestSystemdUnits(t *testing.T) {
	for _, svc := range []string{"ingest", "detect", "sink", "edge"} {
		name := "streamdet-" + svc + ".service"
		b, err := os.ReadFile(filepath.Join(unitsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		unit := string(b)
		complaints, level := verifyUnit(t, name, unit)
		if complaints != "" {
			t.Errorf("%s: systemd-analyze verify: %s", name, complaints)
		}
		if level > 2.0 {
			t.Errorf("%s: exposure level %.1f, want ≤ 2.0", name, level)
		}
		t.Logf("%s: exposure %.1f", name, level)
		for _, want := range []string{"ExecStart=/usr/local/bin/" + "streamdet-" + svc, "DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
			"EnvironmentFile=/etc/streamdet/" + svc + ".env", "LoadCredential=minio-secret-key:", "STREAMDET_MINIO_SECRET_KEY_FILE=%d/minio-secret-key", "KillSignal=SIGTERM"} {
			if !strings.Contains(unit, want) {
				t.Errorf("%s: missing %q", name, want)
			}
		}
		if m := regexp.MustCompile(`TimeoutStopSec=(\d+)`).FindStringSubmatch(unit); m == nil || atoi(m[1]) <= 20 {
			t.Errorf("%s: TimeoutStopSec must exceed the 20 s drain", name)
		}
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// TestSystemdRefusesBrokenUnits: a misspelt directive or a bad value is reported.
func TestSystemdRefusesBrokenUnits(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(unitsDir, "streamdet-ingest.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ old, new, want string }{
		{"NoNewPrivileges=yes", "NoNewPrivilege=yes", "Unknown key"},
		{"ProtectSystem=strict", "ProtectSystem=stricter", "Failed to parse"},
	} {
		complaints, _ := verifyUnit(t, "broken.service", strings.Replace(string(b), tc.old, tc.new, 1))
		if !strings.Contains(complaints, tc.want) {
			t.Errorf("%s → %s: got %q, want %q", tc.old, tc.new, complaints, tc.want)
		}
	}
}
