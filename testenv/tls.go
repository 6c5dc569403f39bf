package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jetkit/jetkit/framework"
)

// TLSServerName is the DNS name in the server certificate NewTLS makes.
// The certificate deliberately has no IP address, so a client dialing
// 127.0.0.1 must set framework.Config.TLSServerName to this name.
const TLSServerName = "nats.jetkit.test"

// TLSFiles are PEM files generated for one test in t.TempDir(): a CA, a
// server certificate for TLSServerName and a client certificate, all
// signed by the CA. Nothing is committed; keys live only for the test.
type TLSFiles struct {
	// CAFile is the CA certificate that verifies both sides.
	CAFile string
	// ServerCertFile and ServerKeyFile are the server's certificate and key.
	ServerCertFile, ServerKeyFile string
	// ClientCertFile and ClientKeyFile are the client certificate for mutual TLS.
	ClientCertFile, ClientKeyFile string

	serverCert tls.Certificate
	pool       *x509.CertPool
}

// NewTLS generates a CA, a server and a client certificate (ECDSA P-256,
// valid for one hour) into t.TempDir().
func NewTLS(t testing.TB) *TLSFiles {
	t.Helper()
	dir := t.TempDir()
	fail := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("testenv: TLS %s: %v", what, err)
		}
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fail("CA key", err)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "jetkit test CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	fail("CA certificate", err)
	caCert, err := x509.ParseCertificate(caDER)
	fail("parse CA", err)

	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, dns []string, ips []net.IP) ([]byte, []byte) {
		t.Helper()
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		fail(cn+" key", err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Minute),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     dns,
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		fail(cn+" certificate", err)
		keyDER, err := x509.MarshalECPrivateKey(key)
		fail(cn+" key encoding", err)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	}
	srvCert, srvKey := issue(2, TLSServerName, x509.ExtKeyUsageServerAuth, []string{TLSServerName}, nil)
	cliCert, cliKey := issue(3, "jetkit test client", x509.ExtKeyUsageClientAuth, nil, nil)

	write := func(name string, data []byte, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		fail("write "+name, os.WriteFile(p, data, mode))
		return p
	}
	f := &TLSFiles{
		CAFile:         write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644),
		ServerCertFile: write("server.pem", srvCert, 0o644),
		ServerKeyFile:  write("server-key.pem", srvKey, 0o600),
		ClientCertFile: write("client.pem", cliCert, 0o644),
		ClientKeyFile:  write("client-key.pem", cliKey, 0o600),
	}
	f.serverCert, err = tls.X509KeyPair(srvCert, srvKey)
	fail("server key pair", err)
	f.pool = x509.NewCertPool()
	f.pool.AddCert(caCert)
	return f
}

// Server makes the server require TLS with the generated certificate; with
// mutual set it also requires a client certificate signed by the CA.
func (f *TLSFiles) Server(mutual bool) func(*server.Options) {
	return func(o *server.Options) {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{f.serverCert}}
		if mutual {
			tc.ClientCAs = f.pool
			tc.ClientAuth = tls.RequireAndVerifyClientCert
			o.TLSVerify = true
		}
		o.TLSConfig = tc
		o.TLS = true
		o.TLSTimeout = 5
	}
}

// Apply sets the CA, the server name and (with clientCert) the client
// certificate on cfg and returns it.
func (f *TLSFiles) Apply(cfg framework.Config, clientCert bool) framework.Config {
	cfg.TLSCAFile, cfg.TLSServerName = f.CAFile, TLSServerName
	if clientCert {
		cfg.TLSCertFile, cfg.TLSKeyFile = f.ClientCertFile, f.ClientKeyFile
	}
	return cfg
}
