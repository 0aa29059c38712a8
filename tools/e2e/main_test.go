//go:build integration

package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain removes what the tests build once per test binary (the service binaries, the
// tokens file): each run left ~170 MB in the temporary directory, enough over a few runs to
// fill a small disk and trip MinIO's free-space threshold.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if tokensPath != "" {
		os.RemoveAll(filepath.Dir(tokensPath))
	}
	os.Exit(code)
}
