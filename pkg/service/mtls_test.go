package service

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T) testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a certificate for cn signed by ca to dir/name.pem and dir/name.key.
func (ca testCA) issue(t *testing.T, dir, name, cn string, server bool) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
	os.WriteFile(filepath.Join(dir, name+".pem"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, name+".key"), keyPEM, 0o600)
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMutualTLS: with auth mtls, only clients with a certificate from the configured CA get in,
// as the certificate's common name.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := newCA(t), newCA(t)
	os.WriteFile(filepath.Join(dir, "ca.pem"), ca.pem, 0o600)
	ca.issue(t, dir, "server", "localhost", true)
	good := ca.issue(t, dir, "client", "cam-gateway", false)
	forged := other.issue(t, dir, "forged", "cam-gateway", false)
	c := ServerConfig{Addr: "127.0.0.1:0", Auth: AuthMTLS, TLSCert: filepath.Join(dir, "server.pem"), TLSKey: filepath.Join(dir, "server.key"),
		ClientCA: filepath.Join(dir, "ca.pem"), ReadTimeout: time.Second, WriteTimeout: time.Second, IdleTimeout: time.Second, MaxConcurrent: 4}
	if err := c.Validate("ingest", true); err != nil {
		t.Fatal(err)
	}
	s := serve(t, c)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	post := func(certs []tls.Certificate) (string, error) {
		cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
		resp, err := cl.Post("https://"+s.Addr()+"/data", "text/plain", nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}
	if body, err := post([]tls.Certificate{good}); err != nil || body != "cam-gateway 0" {
		t.Errorf("client certificate from the CA: %q %v", body, err)
	}
	if _, err := post(nil); err == nil {
		t.Error("no client certificate: accepted")
	}
	if _, err := post([]tls.Certificate{forged}); err == nil {
		t.Error("client certificate from another CA: accepted")
	}
}
