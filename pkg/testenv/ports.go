package testenv

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Ports handed to the servers tests start come from [PortsLow, PortsHigh): below Linux's
// ephemeral range (32768–60999), so that no outgoing connection of any process can be given one
// as its local port, and above the local stack's fixed ports (9000–16686).
const (
	PortsLow  = 20000
	PortsHigh = 32000
)

// portLocks is where the reservations of every test process on the machine meet: one file per
// reserved port, held under flock(2) by the process that reserved it. The kernel drops a lock
// when its holder dies, so a test killed half-way leaves no port reserved.
func portLocks() string { return filepath.Join(os.TempDir(), "streamdet-ports") }

// ReservePorts reserves n consecutive loopback ports for the rest of the test (released in its
// cleanup) and returns the first. A reserved port is one that no other test process (of any
// package: go test runs them side by side) has reserved, and that could be bound on 127.0.0.1
// when reserved; servers started on it are then never raced by another test for it, also across
// a stop and a restart on the same port. Servers that can bind port 0 and report what they got
// need none of this; the others (Kafka's advertised listeners and controller quorum, MinIO,
// Redis, the services' addresses handed to them by environment) take a reserved port, and their
// start is retried on a bind failure all the same (StartRetry), for processes that are not
// tests.
func ReservePorts(t testing.TB, n int) int {
	t.Helper()
	if n < 1 || n > 64 {
		t.Fatalf("ReservePorts(%d): 1 to 64 ports", n)
	}
	if err := os.MkdirAll(portLocks(), 0o1777); err != nil {
		t.Fatalf("reserving ports: %v", err)
	}
	for try := 0; try < 200; try++ {
		base := PortsLow + rand.IntN(PortsHigh-PortsLow-n)
		var held []*os.File
		ok := true
		for p := base; p < base+n && ok; p++ {
			f, err := lockPort(p)
			if err != nil {
				ok = false
				break
			}
			held = append(held, f)
			ok = bindable(p)
		}
		if !ok {
			for _, f := range held {
				f.Close()
			}
			continue
		}
		t.Cleanup(func() {
			for _, f := range held {
				f.Close() // closing the descriptor drops its lock
			}
		})
		return base
	}
	t.Fatalf("reserving %d ports in [%d, %d): none free after 200 tries", n, PortsLow, PortsHigh)
	return 0
}

// lockPort takes the reservation of port p, or fails at once when another process holds it.
func lockPort(p int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(portLocks(), strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// bindable reports whether 127.0.0.1:p can be listened on now (nothing outside the tests holds it).
func bindable(p int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// FreeAddr is a loopback address on a port reserved for the rest of the test (ReservePorts).
func FreeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(ReservePorts(t, 1))
}

// FreePort is FreeAddr's port alone.
func FreePort(t testing.TB) string {
	t.Helper()
	return strconv.Itoa(ReservePorts(t, 1))
}

// ErrAddrInUse marks a start that failed because its port was taken (see AddrInUse).
var ErrAddrInUse = errors.New("address already in use")

// AddrInUse reports whether err, or a server's output, says that a port it was to listen on
// was taken: Go's "bind: address already in use", Kafka's and Redis' "Address already in use",
// and errors wrapping syscall.EADDRINUSE or ErrAddrInUse.
func AddrInUse(err error, output string) bool {
	if errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, ErrAddrInUse) {
		return true
	}
	s := strings.ToLower(output)
	if err != nil {
		s += " " + strings.ToLower(err.Error())
	}
	return strings.Contains(s, "address already in use")
}

// StartRetry runs start with a fresh set of n reserved consecutive ports (the first is passed)
// until it succeeds, or fails for another reason than a taken port, at most attempts times.
// start returns the server's output with its error, so that a bind failure reported only in a
// log ("Socket server failed to bind … Address already in use") is recognised too; it must
// leave nothing running when it fails. It returns the port the server got and how many starts
// failed on a taken port (the test of the reservations requires none).
func StartRetry(t testing.TB, attempts, n int, start func(port int) (output string, err error)) (port, bindFailures int) {
	t.Helper()
	for i := 1; ; i++ {
		port = ReservePorts(t, n)
		out, err := start(port)
		if err == nil {
			return port, bindFailures
		}
		if !AddrInUse(err, out) || i >= attempts {
			t.Fatalf("starting a server on port %d (attempt %d of %d): %v\n%s", port, i, attempts, err, out)
		}
		bindFailures++
		t.Logf("port %d was taken (attempt %d of %d), starting again on fresh ports", port, i, attempts)
	}
}
