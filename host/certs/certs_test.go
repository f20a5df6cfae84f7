package certs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/certs"
)

// pair is a self-signed certificate for 127.0.0.1 and its key, in PEM.
type pair struct {
	cert, key []byte
	x509      *x509.Certificate
}

func newPair(t *testing.T, serial int64) pair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "ulan test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return pair{
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		x509: c,
	}
}

// replace writes data to a temporary file beside path and renames it over path, as
// careful writers (editors, cert-manager, kubelet) replace files.
func replace(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, data, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestNewErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := newPair(t, 1), newPair(t, 2)
	cert, key, otherKey := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "other-key.pem")
	require.NoError(t, os.WriteFile(cert, a.cert, 0o600))
	require.NoError(t, os.WriteFile(key, a.key, 0o600))
	require.NoError(t, os.WriteFile(otherKey, b.key, 0o600))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name, cert, key string
		want            []string // parts of the error
	}{
		{"missing certificate", missing, key, []string{"certs: reading the certificate file", missing, "no such file"}},
		{"missing key", cert, missing, []string{"certs: reading the key file", missing, "no such file"}},
		{"missing directory", filepath.Join(dir, "nope", "cert.pem"), key, []string{"certs: reading the certificate file", "no such file"}},
		{"key of another certificate", cert, otherKey, []string{"certs: certificate " + cert + " with key " + otherKey, "private key does not match public key"}},
		{"key given as certificate", key, key, []string{"certs: certificate " + key}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := certs.New(tt.cert, tt.key, certs.WithLogger(quiet))
			require.Error(t, err)
			require.Nil(t, s)
			for _, w := range tt.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestTLSConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := newPair(t, 7)
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(cert, p.cert, 0o600))
	require.NoError(t, os.WriteFile(key, p.key, 0o600))
	s, err := certs.New(cert, key, certs.WithLogger(quiet))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	c := s.TLSConfig()
	require.Equal(t, []string{"h2", "http/1.1"}, c.NextProtos)
	require.Equal(t, uint16(tls.VersionTLS12), c.MinVersion)
	got, err := c.GetCertificate(&tls.ClientHelloInfo{})
	require.NoError(t, err)
	require.Equal(t, big.NewInt(7), got.Leaf.SerialNumber)
	require.Same(t, got, s.Certificate())
	require.Zero(t, s.Reloads())
	require.Zero(t, s.Failures())

	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "a second Close is harmless")
	got, _ = s.GetCertificate(nil)
	require.NotNil(t, got, "a closed Source still serves its certificate")
}

// TestReload serves TLS from a Source, replaces the files under it and checks which
// certificate new connections get: a mismatched or half-written pair keeps the
// previous one, a complete pair takes over.
func TestReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	p1, p2, p3 := newPair(t, 1), newPair(t, 2), newPair(t, 3)
	require.NoError(t, os.WriteFile(cert, p1.cert, 0o600))
	require.NoError(t, os.WriteFile(key, p1.key, 0o600))

	reloaded := make(chan error, 16)
	s, err := certs.New(cert, key,
		certs.WithLogger(quiet),
		certs.WithDebounce(20*time.Millisecond),
		certs.WithOnReload(func(err error) { reloaded <- err }))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // served() hangs up after the handshake
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })

	pool := x509.NewCertPool()
	for _, p := range []pair{p1, p2, p3} {
		pool.AddCert(p.x509)
	}
	// served opens a new connection and returns the serial it was shown.
	served := func() int64 {
		t.Helper()
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}})
		require.NoError(t, err)
		defer conn.Close()
		st := conn.ConnectionState()
		require.Equal(t, "h2", st.NegotiatedProtocol, "HTTP/2 by ALPN")
		return st.PeerCertificates[0].SerialNumber.Int64()
	}
	// next waits for the next reload attempt and returns its error.
	next := func() error {
		t.Helper()
		select {
		case err := <-reloaded:
			return err
		case <-time.After(20 * time.Second): // a failure guard, not a timing assertion
			t.Fatal("no reload after the files changed")
			return nil
		}
	}
	require.Equal(t, int64(1), served())

	// The new certificate lands before its key: the pair does not match.
	replace(t, cert, p2.cert)
	err = next()
	require.ErrorContains(t, err, "private key does not match public key")
	require.Equal(t, int64(1), served(), "a mismatched pair keeps the previous certificate")
	require.Equal(t, uint64(1), s.Failures())
	require.Zero(t, s.Reloads())

	replace(t, key, p2.key)
	require.NoError(t, next())
	require.Equal(t, int64(2), served())
	require.Equal(t, uint64(1), s.Reloads())

	// A half-written certificate file.
	replace(t, cert, p3.cert[:len(p3.cert)/2])
	require.Error(t, next())
	require.Equal(t, int64(2), served(), "a half-written file keeps the previous certificate")

	// Both files replaced in one go (a Kubernetes secret update, say).
	replace(t, key, p3.key)
	replace(t, cert, p3.cert)
	for err := next(); err != nil; err = next() {
		// The key may be seen before the certificate (beside the half-written
		// one): that attempt fails, and the one after the certificate succeeds.
		require.Equal(t, int64(2), served())
	}
	require.Equal(t, int64(3), served())
	require.Equal(t, uint64(2), s.Reloads())

	// The server keeps serving through a removed file, and picks the pair up again.
	require.NoError(t, os.Remove(key))
	err = next()
	require.True(t, errors.Is(err, os.ErrNotExist), "%v", err)
	require.Equal(t, int64(3), served())
	replace(t, key, p3.key)
	require.NoError(t, next())
	require.Equal(t, int64(3), served())
}
