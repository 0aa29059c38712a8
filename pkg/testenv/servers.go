package testenv

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Servers of a test's own, each on a port reserved for the test (ReservePorts) and started again
// on fresh ports when the port turns out to be taken (StartRetry). Each returns how many starts
// failed on a taken port.

// Redis is a redis-server of the test's own: password required, nothing persisted, stopped
// (SIGKILL) at the end of the test and with the test binary.
type Redis struct {
	Addr, Password string
	Cmd            *exec.Cmd
}

// StartRedis starts a Redis on a reserved port and waits until it answers PING.
func StartRedis(t testing.TB, password string) (*Redis, int) {
	t.Helper()
	r := &Redis{Password: password}
	_, failures := StartRetry(t, 3, 1, func(port int) (string, error) {
		p := strconv.Itoa(port)
		r.Addr = "127.0.0.1:" + p
		r.Cmd = exec.Command("redis-server", "-")
		// The password goes through stdin, never on a command line.
		r.Cmd.Stdin = strings.NewReader(fmt.Sprintf("port %s\nbind 127.0.0.1\nrequirepass %s\nsave \"\"\nappendonly no\n", p, password))
		var out strings.Builder
		r.Cmd.Stdout, r.Cmd.Stderr = &out, &out
		return waitStarted(t, r.Cmd, &out, 20*time.Second, func() bool {
			b, _ := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", p, "--no-auth-warning", "-a", password, "ping").Output()
			return strings.TrimSpace(string(b)) == "PONG"
		})
	})
	return r, failures
}

// StartMinIO starts the MinIO binary bin on dir with the given root credentials on a reserved
// port and waits until it says ready.
func StartMinIO(t testing.TB, bin, dir, user, password string) (addr string, failures int) {
	t.Helper()
	_, failures = StartRetry(t, 3, 1, func(port int) (string, error) {
		addr = "127.0.0.1:" + strconv.Itoa(port)
		cmd := exec.Command(bin, "server", "--quiet", "--address", addr, dir)
		cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+user, "MINIO_ROOT_PASSWORD="+password,
			"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CALLHOME_ENABLE=off")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		return waitStarted(t, cmd, &out, 60*time.Second, func() bool {
			resp, err := http.Get("http://" + addr + "/minio/health/ready")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	})
	return addr, failures
}

// KafkaAux is a private Kafka broker (deploy/local/stack.sh kafka-aux) with the project's
// topics, state under Dir: for tests that stop and start a broker without disturbing the
// shared one. Its two ports (broker, controller) stay reserved for the test, so that a Start
// after a Stop finds them free.
type KafkaAux struct {
	Addr, Dir string
	root      string
	port      int
}

// StartKafkaAux starts a private broker of the test's own; it is stopped at the end of the test.
func StartKafkaAux(t testing.TB) (*KafkaAux, int) {
	t.Helper()
	k := &KafkaAux{root: RepoRoot(t)}
	attempt := 0
	base := t.TempDir()
	var failures int
	k.port, failures = StartRetry(t, 3, 2, func(port int) (string, error) {
		attempt++
		// A fresh directory per attempt: a broker formatted for other ports starts from nothing.
		k.port, k.Dir = port, filepath.Join(base, strconv.Itoa(attempt))
		out, err := k.ctl("start")
		if err != nil {
			k.ctl("stop")
		}
		return out, err
	})
	k.Addr = "127.0.0.1:" + strconv.Itoa(k.port)
	t.Cleanup(func() {
		if out, err := k.ctl("stop"); err != nil {
			t.Errorf("kafka-aux stop: %v\n%s", err, out)
		}
	})
	return k, failures
}

// Start starts the broker again on its ports (after Stop).
func (k *KafkaAux) Start(t testing.TB) {
	t.Helper()
	if out, err := k.ctl("start"); err != nil {
		t.Fatalf("kafka-aux start: %v\n%s", err, out)
	}
}

// Stop stops the broker (SIGTERM, then SIGKILL after 20 s); its state is kept.
func (k *KafkaAux) Stop(t testing.TB) {
	t.Helper()
	if out, err := k.ctl("stop"); err != nil {
		t.Fatalf("kafka-aux stop: %v\n%s", err, out)
	}
}

func (k *KafkaAux) ctl(action string) (string, error) {
	out, err := exec.Command(filepath.Join(k.root, "deploy/local/stack.sh"), "kafka-aux", action, k.Dir, strconv.Itoa(k.port)).CombinedOutput()
	return string(out), err
}

// waitStarted starts cmd (killed with the test binary and at the end of the test) and polls
// ready until it holds. When cmd exits first or ready does not hold within limit, cmd is killed
// and the error comes back with what cmd printed.
func waitStarted(t testing.TB, cmd *exec.Cmd, out fmt.Stringer, limit time.Duration, ready func() bool) (string, error) {
	KillWithTest(cmd)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Kill()
		<-done
	}
	for deadline := time.Now().Add(limit); !ready(); time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-done:
			return out.String(), fmt.Errorf("%s exited during start-up: %v", filepath.Base(cmd.Path), err)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return out.String(), fmt.Errorf("%s not ready after %s", filepath.Base(cmd.Path), limit)
		}
	}
	t.Cleanup(stop)
	return "", nil
}
