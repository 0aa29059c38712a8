package testenv

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
)

// TestReservePortsConcurrent: reservations made side by side never share a port, and each
// reserved port can be bound.
func TestReservePortsConcurrent(t *testing.T) {
	const workers, n = 40, 6
	var mu sync.Mutex
	seen := map[int]int{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := ReservePorts(t, n)
			mu.Lock()
			defer mu.Unlock()
			for p := base; p < base+n; p++ {
				seen[p]++
			}
		}()
	}
	wg.Wait()
	if len(seen) != workers*n {
		t.Fatalf("%d reservations of %d ports gave %d distinct ports", workers, n, len(seen))
	}
	for p := range seen {
		if p < PortsLow || p >= PortsHigh {
			t.Errorf("port %d outside [%d, %d)", p, PortsLow, PortsHigh)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Errorf("reserved port %d: %v", p, err)
			continue
		}
		l.Close()
	}
}

// TestReservePortsHeld: a port reserved by one test is not handed out again until that test
// ends, and a held lock is refused at once.
func TestReservePortsHeld(t *testing.T) {
	p := ReservePorts(t, 1)
	if _, err := lockPort(p); err == nil {
		t.Fatalf("port %d locked twice", p)
	}
	t.Run("released", func(t *testing.T) {
		q := ReservePorts(t, 1)
		if q == p {
			t.Fatalf("port %d handed out while reserved", p)
		}
	})
}

// TestReservePortsSkipsTaken: a port something outside the tests listens on is never reserved.
func TestReservePortsSkipsTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	if bindable(taken) {
		t.Fatalf("port %d reported bindable while listened on", taken)
	}
}

func TestStartRetry(t *testing.T) {
	var ports []int
	port, failures := StartRetry(t, 3, 2, func(p int) (string, error) {
		ports = append(ports, p)
		if len(ports) == 1 {
			return "ERROR Socket server failed to bind to 127.0.0.1:" + strconv.Itoa(p) + ": Address already in use", errors.New("exit status 1")
		}
		return "", nil
	})
	if failures != 1 || len(ports) != 2 || port != ports[1] || ports[0] == ports[1] {
		t.Fatalf("ports %v, got %d with %d bind failures: want a second start on fresh ports", ports, port, failures)
	}
}

func TestAddrInUse(t *testing.T) {
	for _, tc := range []struct {
		err  error
		out  string
		want bool
	}{
		{&net.OpError{Op: "listen", Err: errors.New("bind: address already in use")}, "", true},
		{errors.New("exit status 1"), "kafka: Socket server failed to bind to 127.0.0.1:34180: Address already in use.", true},
		{errors.New("exit status 1"), "# Warning: Could not create server TCP listening socket 127.0.0.1:6379: bind: Address already in use", true},
		{ErrAddrInUse, "", true},
		{errors.New("exit status 1"), "permission denied", false},
		{nil, "", false},
	} {
		if got := AddrInUse(tc.err, tc.out); got != tc.want {
			t.Errorf("AddrInUse(%v, %q) = %v, want %v", tc.err, tc.out, got, tc.want)
		}
	}
}
