package manifests

import (
	"os"
	"testing"
)

// TestMain removes the Helm binary built once per test binary (~100 MB per run otherwise left
// in the temporary directory).
func TestMain(m *testing.M) {
	code := m.Run()
	if helmDir != "" {
		os.RemoveAll(helmDir)
	}
	os.Exit(code)
}
