//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/streamdet/streamdet/pkg/testenv"
)

// chromium runs headless Chromium on url with the flags this machine needs.
func chromium(t *testing.T, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not installed (deploy/local/stack.sh install puts Debian's chromium there)")
	}
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--no-first-run", "--disable-quic", "--user-data-dir=" + t.TempDir(), "--window-size=1280,1000"}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append(base, args...)...).Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return out
}

var imgRE = regexp.MustCompile(`<div class="stream" data-stream="([^"]+)"><img[^>]*?data-frame="([^"]+)"[^>]*?data-loaded="([^"]*)"`)

// TestIntegrationLiveView loads the sink's live view in headless Chromium while frames flow and
// checks that each stream's annotated image appears and is replaced by newer ones; a screenshot
// is kept in .cache/artifacts/live-view.png.
func TestIntegrationLiveView(t *testing.T) {
	env, vars := devStack(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prod := exec.CommandContext(ctx, filepath.Join(binaries(t), "detctl"), "produce", "--stream", "live", "--streams", "2", "--loop", "0", "--fps", "2",
		testenv.Shared(t, "images", "dog.jpg"), testenv.Shared(t, "images", "person.jpg"))
	prod.Env = append(os.Environ(), env...)
	testenv.KillWithTest(prod)
	if err := prod.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); prod.Wait() }()
	url := "http://" + vars["STREAMDET_SINK_ADDR"] + "/"
	deadline := time.Now().Add(90 * time.Second)
	for {
		var v struct {
			Streams []map[string]any `json:"streams"`
		}
		if resp, err := http.Get(url + "api/view"); err == nil {
			json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
		}
		if len(v.Streams) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live view shows %d streams after 90s", len(v.Streams))
		}
		time.Sleep(500 * time.Millisecond)
	}
	snapshot := func() map[string][2]string {
		dom := chromium(t, "--virtual-time-budget=5000", "--dump-dom", url)
		out := map[string][2]string{}
		for _, m := range imgRE.FindAllStringSubmatch(string(dom), -1) {
			out[m[1]] = [2]string{m[2], m[3]}
		}
		if len(out) < 2 {
			t.Fatalf("the page shows %d stream images:\n%.3000s", len(out), dom)
		}
		return out
	}
	first := snapshot()
	time.Sleep(3 * time.Second)
	second := snapshot()
	for _, s := range []string{"live-0", "live-1"} {
		a, b := first[s], second[s]
		if a[0] == "" || a[1] != a[0] || b[1] != b[0] {
			t.Errorf("stream %s: image not loaded (frame %q loaded %q; later frame %q loaded %q)", s, a[0], a[1], b[0], b[1])
		}
		if a[0] == b[0] {
			t.Errorf("stream %s: the image did not update (frame %s both times)", s, a[0])
		}
	}
	art := filepath.Join(testenv.RepoRoot(t), ".cache", "artifacts")
	os.MkdirAll(art, 0o755)
	shot := filepath.Join(art, "live-view.png")
	chromium(t, "--virtual-time-budget=5000", "--screenshot="+shot, url)
	if st, err := os.Stat(shot); err != nil || st.Size() < 20000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("live view: %v then %v; screenshot %s", first, second, shot)
}
