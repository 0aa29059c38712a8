package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakePython puts a python3 on PATH that does what optimizeEnv asks of the real one: -m venv DIR
// makes DIR/bin/python (itself), -m pip install -r REQ records the requirements beside it.
// Every call is counted in calls.
func fakePython(t *testing.T) (calls string) {
	t.Helper()
	bin := t.TempDir()
	calls = filepath.Join(bin, "calls")
	script := `#!/bin/sh
echo "$0 $*" >> ` + calls + `
case "$2" in
venv) mkdir -p "$3/bin" && cp "$0" "$3/bin/python" ;;
pip) sleep 0.2; cp "$7" "$(dirname "$0")/../installed" ;;
esac
`
	if err := os.WriteFile(filepath.Join(bin, "python3"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return calls
}

// TestOptimizeEnvShared: the Python environment is made once in a cache that several detctl
// share (two checkouts' tests on one machine): concurrent first uses all get the one
// environment, complete, and leave no temporary copy behind; an older detctl's half-made
// environment (no ready file) is replaced.
func TestOptimizeEnvShared(t *testing.T) {
	calls := fakePython(t)
	cache := t.TempDir()
	const n = 4
	pys := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pys[i], errs[i] = optimizeEnv(cache, io.Discard)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || pys[i] != pys[0] {
			t.Fatalf("use %d: %q, %v; want %q", i, pys[i], errs[i], pys[0])
		}
	}
	dir := filepath.Dir(filepath.Dir(pys[0]))
	if b, err := os.ReadFile(filepath.Join(dir, "installed")); err != nil || string(b) != string(optimizeRequirements) {
		t.Fatalf("the environment's requirements: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ready")); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(cache)
	if len(ents) != 1 || ents[0].Name() != filepath.Base(dir) {
		t.Fatalf("cache holds %v, want only %s", ents, filepath.Base(dir))
	}
	// Made, it is used as it is: no python run.
	before, _ := os.ReadFile(calls)
	if py, err := optimizeEnv(cache, io.Discard); err != nil || py != pys[0] {
		t.Fatalf("again: %q, %v", py, err)
	}
	if after, _ := os.ReadFile(calls); len(after) != len(before) {
		t.Errorf("a made environment was made again: %s", after[len(before):])
	}

	// An older detctl's half-made environment, made in place, is replaced.
	if err := os.Remove(filepath.Join(dir, "ready")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "installed"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	if py, err := optimizeEnv(cache, io.Discard); err != nil || py != pys[0] {
		t.Fatalf("over a half-made one: %q, %v", py, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "installed")); string(b) != string(optimizeRequirements) {
		t.Errorf("the half-made environment was kept: %q", b)
	}
	if b, _ := os.ReadFile(calls); !strings.Contains(string(b), "-m pip install") {
		t.Errorf("pip not run: %s", b)
	}
}
