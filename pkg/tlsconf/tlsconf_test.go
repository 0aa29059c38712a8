package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamdet/streamdet/pkg/envconf"
)

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "c"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "c.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
	os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("junk"), 0o600)

	off := FromEnv(envconf.Map(nil), "X")
	if c, err := off.Client(); c != nil || err != nil || off.Validate() != nil {
		t.Fatalf("off: %v %v", c, err)
	}
	on := FromEnv(envconf.Map(map[string]string{"X_TLS": "true", "X_TLS_CA_FILE": filepath.Join(dir, "ca.pem"),
		"X_TLS_CERT_FILE": filepath.Join(dir, "ca.pem"), "X_TLS_KEY_FILE": filepath.Join(dir, "c.key"), "X_TLS_SERVER_NAME": "broker"}), "X")
	c, err := on.Client()
	if err != nil || c.RootCAs == nil || len(c.Certificates) != 1 || c.ServerName != "broker" || on.Validate() != nil {
		t.Fatalf("on: %+v %v", c, err)
	}
	for name, env := range map[string]map[string]string{
		"cert without key":  {"X_TLS": "true", "X_TLS_CERT_FILE": "a"},
		"files without TLS": {"X_TLS_CA_FILE": "a"},
	} {
		if err := FromEnv(envconf.Map(env), "X").Validate(); err == nil || !strings.Contains(err.Error(), "X_TLS") {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, env := range map[string]map[string]string{
		"missing CA": {"X_TLS": "true", "X_TLS_CA_FILE": filepath.Join(dir, "none.pem")},
		"junk CA":    {"X_TLS": "true", "X_TLS_CA_FILE": filepath.Join(dir, "junk.pem")},
		"bad pair":   {"X_TLS": "true", "X_TLS_CERT_FILE": filepath.Join(dir, "junk.pem"), "X_TLS_KEY_FILE": filepath.Join(dir, "c.key")},
	} {
		if _, err := FromEnv(envconf.Map(env), "X").Client(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
