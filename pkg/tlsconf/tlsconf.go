// Package tlsconf is the one client-side TLS configuration of streamdet's connections to Kafka,
// object storage and Redis: on or off, a custom CA, a client certificate, read from the
// environment under one prefix per dependency (STREAMDET_KAFKA_TLS_*, STREAMDET_MINIO_TLS_*,
// STREAMDET_REDIS_TLS_*).
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/streamdet/streamdet/pkg/envconf"
)

// Config is a client's TLS settings.
type Config struct {
	// Enabled: <PREFIX>_TLS=true.
	Enabled bool
	// CAFile verifies the server (default: the system roots): <PREFIX>_TLS_CA_FILE.
	CAFile string
	// CertFile and KeyFile are the client certificate: <PREFIX>_TLS_CERT_FILE, <PREFIX>_TLS_KEY_FILE.
	CertFile, KeyFile string
	// ServerName overrides the name verified: <PREFIX>_TLS_SERVER_NAME.
	ServerName string
	// InsecureSkipVerify: <PREFIX>_TLS_INSECURE_SKIP_VERIFY=true (testing only).
	InsecureSkipVerify bool

	prefix string
}

// FromEnv reads the Config under prefix (e.g. STREAMDET_MINIO).
func FromEnv(env envconf.Env, prefix string) Config {
	return Config{
		Enabled:            env.Bool(prefix+"_TLS", false),
		CAFile:             env.String(prefix+"_TLS_CA_FILE", ""),
		CertFile:           env.String(prefix+"_TLS_CERT_FILE", ""),
		KeyFile:            env.String(prefix+"_TLS_KEY_FILE", ""),
		ServerName:         env.String(prefix+"_TLS_SERVER_NAME", ""),
		InsecureSkipVerify: env.Bool(prefix+"_TLS_INSECURE_SKIP_VERIFY", false),
		prefix:             prefix,
	}
}

// Validate checks the Config.
func (c Config) Validate() error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, fmt.Errorf("%s_TLS_CERT_FILE and %s_TLS_KEY_FILE go together", c.prefix, c.prefix))
	}
	if !c.Enabled && (c.CAFile != "" || c.CertFile != "") {
		errs = append(errs, fmt.Errorf("%s_TLS_* files are set but %s_TLS is not true", c.prefix, c.prefix))
	}
	return errors.Join(errs...)
}

// Client returns the tls.Config, or nil when TLS is off.
func (c Config) Client() (*tls.Config, error) {
	if !c.Enabled {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // opt-in, for tests
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s TLS CA: %w", c.prefix, err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s TLS CA %s: no certificates", c.prefix, c.CAFile)
		}
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s TLS client certificate: %w", c.prefix, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}
