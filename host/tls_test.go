package host_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host"
	"github.com/ulan-ai/ulan/host/api/apitest"
	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
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
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	var pool *x509.CertPool
	cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile, pool = selfSigned(t, t.TempDir())
	r := start(t, cfg, host.WithInference(&apitest.Echo{}))
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}}
	url := "https://" + r.addr
	for name, opts := range map[string][]connect.ClientOption{
		"connect":  nil,
		"grpc":     {connect.WithGRPC()},
		"grpc-web": {connect.WithGRPCWeb()},
	} {
		c := ulanv1connect.NewInferenceServiceClient(client, url, opts...)
		res, err := c.Tokenize(context.Background(), connect.NewRequest(&ulanv1.TokenizeRequest{Text: "ok"}))
		require.NoError(t, err, name)
		require.Equal(t, []uint32{'o', 'k'}, res.Msg.TokenIds, name)
	}
	res, err := client.Get(url + "/")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 2, res.ProtoMajor, "TLS negotiates HTTP/2 through ALPN")
}
