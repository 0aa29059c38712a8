package service

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/streamdet/streamdet/pkg/envconf"
)

// Healthcheck asks the running service name on this host whether it is ready (GET /readyz on
// the admin listener, else the data listener, as configured in env) and returns the exit code
// for `<binary> healthcheck`: 0 ready, 1 not. Images have no shell or curl; container runtimes
// (compose healthcheck, HEALTHCHECK) run this instead.
func Healthcheck(ctx context.Context, env envconf.Env, name, defAddr string) int {
	c := ServerFromEnv(env, name, defAddr, false)
	addr, scheme := c.Addr, "http"
	if c.AdminAddr != "" {
		addr = c.AdminAddr
	} else if c.TLSCert != "" {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Printf("healthcheck: listener address %q: %v\n", addr, err)
		return 1
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		// The service's own certificate, asked over loopback: its name need not match.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
	}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, port)+"/readyz", nil)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Printf("healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Printf("healthcheck: %s %s\n", resp.Status, strings.TrimSpace(http.StatusText(resp.StatusCode)))
		return 1
	}
	return 0
}
