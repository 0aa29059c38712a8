package service

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/streamdet/streamdet/pkg/envconf"
)

// ServerConfig is how a service serves HTTP: the data listener (authenticated) and, optionally,
// a separate admin listener for /healthz, /readyz and /metrics.
type ServerConfig struct {
	// Addr is the data listener: STREAMDET_<SERVICE>_ADDR.
	Addr string
	// AdminAddr, when set, serves health and metrics instead of Addr: STREAMDET_ADMIN_ADDR.
	AdminAddr string
	// Auth is token (default), mtls or none: STREAMDET_<SERVICE>_AUTH. none must be explicit.
	Auth string
	// TokensFile: STREAMDET_<SERVICE>_TOKENS_FILE, required with Auth=token (see Tokens).
	TokensFile string
	// TLS on the data listener: STREAMDET_<SERVICE>_TLS_CERT_FILE and _TLS_KEY_FILE; with
	// Auth=mtls also STREAMDET_<SERVICE>_TLS_CLIENT_CA_FILE.
	TLSCert, TLSKey, ClientCA string
	// Timeouts: STREAMDET_HTTP_READ_TIMEOUT (30s; the whole request, body included),
	// STREAMDET_HTTP_WRITE_TIMEOUT (60s), STREAMDET_HTTP_IDLE_TIMEOUT (120s); headers must
	// arrive within 10s.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxConcurrent requests per listener; more get 503: STREAMDET_HTTP_MAX_CONCURRENT (64).
	MaxConcurrent int
}

// ServerFromEnv reads the ServerConfig of service name (ingest, detect, sink), whose data
// listener defaults to defAddr. A service that serves no data (data false) has no
// authentication to configure: it reads no AUTH or TOKENS_FILE variable.
func ServerFromEnv(env envconf.Env, name, defAddr string, data bool) ServerConfig {
	p := "STREAMDET_" + strings.ToUpper(name) + "_"
	c := ServerConfig{
		Addr:          env.String(p+"ADDR", defAddr),
		AdminAddr:     env.String("STREAMDET_ADMIN_ADDR", ""),
		Auth:          AuthNone,
		TLSCert:       env.String(p+"TLS_CERT_FILE", ""),
		TLSKey:        env.String(p+"TLS_KEY_FILE", ""),
		ReadTimeout:   env.Duration("STREAMDET_HTTP_READ_TIMEOUT", 30*time.Second),
		WriteTimeout:  env.Duration("STREAMDET_HTTP_WRITE_TIMEOUT", 60*time.Second),
		IdleTimeout:   env.Duration("STREAMDET_HTTP_IDLE_TIMEOUT", 120*time.Second),
		MaxConcurrent: env.Int("STREAMDET_HTTP_MAX_CONCURRENT", 64),
	}
	if data {
		c.Auth = strings.ToLower(env.String(p+"AUTH", AuthToken))
		c.TokensFile = env.String(p+"TOKENS_FILE", "")
		c.ClientCA = env.String(p+"TLS_CLIENT_CA_FILE", "")
	}
	return c
}

// Validate checks the ServerConfig; serves says whether the listener serves data (and so needs
// authentication).
func (c ServerConfig) Validate(name string, serves bool) error {
	p := "STREAMDET_" + strings.ToUpper(name) + "_"
	var errs []error
	if serves {
		switch c.Auth {
		case AuthToken:
			if c.TokensFile == "" {
				errs = append(errs, fmt.Errorf("%sAUTH=token needs %sTOKENS_FILE (or set %sAUTH=none explicitly)", p, p, p))
			}
		case AuthMTLS:
			if c.TLSCert == "" || c.ClientCA == "" {
				errs = append(errs, fmt.Errorf("%sAUTH=mtls needs %sTLS_CERT_FILE, %sTLS_KEY_FILE and %sTLS_CLIENT_CA_FILE", p, p, p, p))
			}
		case AuthNone:
		default:
			errs = append(errs, fmt.Errorf("%sAUTH %q: want token, mtls or none", p, c.Auth))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, fmt.Errorf("%sTLS_CERT_FILE and %sTLS_KEY_FILE go together", p, p))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"STREAMDET_HTTP_READ_TIMEOUT", c.ReadTimeout}, {"STREAMDET_HTTP_WRITE_TIMEOUT", c.WriteTimeout}, {"STREAMDET_HTTP_IDLE_TIMEOUT", c.IdleTimeout}} {
		if d.v < 100*time.Millisecond || d.v > time.Hour {
			errs = append(errs, fmt.Errorf("%s %s: must be in [100ms, 1h]", d.name, d.v))
		}
	}
	if c.MaxConcurrent < 1 || c.MaxConcurrent > 65536 {
		errs = append(errs, fmt.Errorf("STREAMDET_HTTP_MAX_CONCURRENT %d: must be in [1, 65536]", c.MaxConcurrent))
	}
	return errors.Join(errs...)
}

// Authenticator builds the data listener's Authenticator.
func (c ServerConfig) Authenticator() (*Authenticator, error) {
	a := &Authenticator{Mode: c.Auth}
	if c.Auth == AuthToken {
		t, err := LoadTokens(c.TokensFile)
		if err != nil {
			return nil, err
		}
		a.Tokens = t
	}
	return a, nil
}

func (c ServerConfig) tlsConfig() (*tls.Config, error) {
	if c.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if c.ClientCA != "" {
		pem, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("client CA: %w", err)
		}
		t.ClientCAs = x509.NewCertPool()
		if !t.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s: no certificates", c.ClientCA)
		}
		t.ClientAuth = tls.VerifyClientCertIfGiven
		if c.Auth == AuthMTLS {
			t.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return t, nil
}

// WriteError writes a JSON error body: a reason code and a short, fixed text, never an
// internal error.
func WriteError(w http.ResponseWriter, status int, reason, text string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"reason": reason, "error": text})
}

// limit answers 503 (with Retry-After) when n requests are already being served.
func limit(n int, h http.Handler) http.Handler {
	sem := make(chan struct{}, n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
			h.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", strconv.Itoa(1))
			WriteError(w, http.StatusServiceUnavailable, "overloaded", "too many requests in progress")
		}
	})
}

func newHTTPServer(c ServerConfig, h http.Handler) *http.Server {
	return &http.Server{
		Handler: limit(c.MaxConcurrent, h), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: c.ReadTimeout,
		WriteTimeout: c.WriteTimeout, IdleTimeout: c.IdleTimeout, MaxHeaderBytes: 64 << 10,
	}
}

func listen(addr string, t *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if t != nil {
		ln = tls.NewListener(ln, t)
	}
	return ln, nil
}
