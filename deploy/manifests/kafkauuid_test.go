package manifests

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestKafkaUUID draws 3,000 cluster ids from lib.sh's kafka_uuid, which formats every Kafka
// the scripts start, and requires each to be what Kafka's Uuid.randomUuid makes: 22 characters
// of URL-safe base64, distinct, never starting with '-' (kafka-storage's parser takes such an id
// for an option and the broker does not start: one start in 64 before this was checked).
func TestKafkaUUID(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	script := `set -euo pipefail; TAG=test; source "$1"; for ((i = 0; i < ` + "3000" + `; i++)); do kafka_uuid; done`
	out, err := exec.Command("bash", "-c", script, "bash", filepath.Join(root, "deploy/local/lib.sh")).Output()
	if err != nil {
		t.Fatalf("kafka_uuid: %v", err)
	}
	ids := strings.Fields(string(out))
	if len(ids) != n {
		t.Fatalf("got %d ids, want %d", len(ids), n)
	}
	grammar := regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{21}$`)
	seen := make(map[string]bool, n)
	for _, id := range ids {
		if !grammar.MatchString(id) {
			t.Fatalf("cluster id %q: want 22 URL-safe base64 characters, not starting with '-'", id)
		}
		if seen[id] {
			t.Fatalf("cluster id %q drawn twice", id)
		}
		seen[id] = true
	}
}
