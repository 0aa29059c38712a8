package envconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEnv(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(secret, []byte("s3cret\n"), 0o600)
	e := Map(map[string]string{
		"A": "12", "B": "x", "C": "true", "D": "250ms", "E": "a, b,,c", "P_FILE": secret, "F": "nope", "G": "-1s",
	})
	if e.Int("A", 0) != 12 || e.Int("MISSING", 7) != 7 || !e.Bool("C", false) || e.Duration("D", 0) != 250*time.Millisecond {
		t.Fatal("typed getters")
	}
	if got := e.List("E", nil); strings.Join(got, "|") != "a|b|c" {
		t.Fatalf("list %v", got)
	}
	if e.Secret("P") != "s3cret" {
		t.Fatal("secret from file")
	}
	if e.Err() != nil {
		t.Fatalf("no error yet: %v", e.Err())
	}
	e.Int("B", 0)
	e.Bool("F", false)
	e.Duration("G", 0)
	err := e.Err()
	for _, want := range []string{`B="x": want an integer`, `F="nope": want true or false`, `G="-1s"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %s", err, want)
		}
	}
}
