//go:build integration

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamdet/streamdet/pkg/testenv"
)

// binaries builds the service binaries and detctl once per test binary.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "streamdet-e2e-bin")
		if buildErr != nil {
			return
		}
		root := testenv.RepoRoot(t)
		for name, pkg := range map[string]string{
			"ingest": "./services/ingest/cmd/ingest", "detect": "./services/detect/cmd/detect",
			"sink": "./services/sink/cmd/sink", "detctl": "./tools/cmd/detctl",
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", name, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// runTopics names a test run's topics: <run>.<suffix>, as STREAMDET_TOPIC_PREFIX=<run> makes the
// services use.
func runTopics(run string, suffixes ...string) []string {
	out := make([]string, len(suffixes))
	for i, s := range suffixes {
		out[i] = run + "." + s
	}
	return out
}

// freePort is a loopback address on a port reserved for the test (testenv.ReservePorts).
func freePort(t *testing.T) string { t.Helper(); return testenv.FreeAddr(t) }

// longRunning marks one of the suite's long tests (minutes each, mostly waiting on restarts,
// outages, windows and timers with a core to spare) to run beside another once the short tests
// have run one by one: two at a time (go test's -parallel, GOMAXPROCS by default). Each has its
// own topics, buckets and consumer groups (a run prefix), and a server of its own on reserved
// ports where it takes one away. The short tests, and those that measure (TestIntegrationBench),
// run alone.
func longRunning(t *testing.T) { t.Parallel() }

// e2eToken is the bearer token of every service the tests start (see tokensFile).
const e2eToken = "e2e-token-0123456789abcdef"

var (
	tokensOnce sync.Once
	tokensPath string
)

// tokensFile is a tokens file holding e2eToken for every stream, and a token scoped to cam-*
// streams (e2eCamToken).
func tokensFile(t *testing.T) string {
	tokensOnce.Do(func() {
		dir, err := os.MkdirTemp("", "streamdet-e2e-tokens")
		if err != nil {
			t.Fatal(err)
		}
		tokensPath = filepath.Join(dir, "tokens")
		os.WriteFile(tokensPath, []byte("e2e "+e2eToken+"\ncams "+e2eCamToken+" cam-*\n"), 0o600)
	})
	return tokensPath
}

// e2eCamToken may publish to cam-* streams only.
const e2eCamToken = "e2e-cams-only-0123456789"

// proc is one running service.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string
	log  string
	done chan struct{}
	// term sends SIGTERM to the service (default: to cmd's process).
	term func()
}

// startService runs a service binary with env and waits until /readyz says ready. A start
// that fails because its port was taken is made again on a fresh one (testenv.StartRetry).
func startService(t *testing.T, name string, env []string) *proc {
	t.Helper()
	var p *proc
	testenv.StartRetry(t, 3, 1, func(port int) (string, error) {
		var err error
		p, err = launchService(t, name, env, "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return tail(p.log), err
		}
		return "", nil
	})
	t.Cleanup(func() { p.stop(t) })
	return p
}

// launchService starts one service on addr and waits for it to be ready; when it is not, it
// leaves it stopped and says why.
func launchService(t *testing.T, name string, env []string, addr string) (*proc, error) {
	t.Helper()
	logf := filepath.Join(t.TempDir(), name+".log")
	f, err := os.OpenFile(logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binaries(t), name))
	prefix := "STREAMDET_" + strings.ToUpper(name) + "_"
	cmd.Env = append(append(append(os.Environ(), prefix+"TOKENS_FILE="+tokensFile(t)), env...), prefix+"ADDR="+addr)
	cmd.Stdout, cmd.Stderr = f, f
	testenv.KillWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, addr: addr, log: logf, done: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return p, fmt.Errorf("%s exited during start-up", name)
		default:
		}
		if time.Now().After(deadline) {
			p.kill()
			return p, fmt.Errorf("%s not ready after 60s", name)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a graceful exit.
func (p *proc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	if p.term != nil {
		p.term()
	} else {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("%s exited with %d after SIGTERM:\n%s", p.name, code, tail(p.log))
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop within 30s of SIGTERM", p.name)
		p.kill()
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
