// Package certs serves a TLS certificate from a pair of PEM files and reloads it
// when the files change, so a renewed certificate takes effect without a restart.
//
// A Source loads the pair at New, follows both files with host/watch (which sees
// rename-over writes, delete-and-recreate and Kubernetes secret updates) and, on each
// change, loads the pair again. Certificates are renewed in two writes, so a change
// may find a new certificate beside the old key: a pair that fails to load (a
// mismatch, a half-written file, a missing file) leaves the previous certificate
// serving, is logged and counted, and is retried at the next change of either file.
// Handshakes read the current certificate through an atomic pointer
// (GetCertificate), so a reload never blocks or fails one.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ulan-ai/ulan/host/watch"
)

// Option configures a Source.
type Option func(*options)

type options struct {
	logger   *slog.Logger
	debounce time.Duration
	onReload func(error)
}

// WithLogger sets the logger for reloads and watch problems. The default is
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithDebounce sets how long the files must stay unchanged before they are read
// again. The default is watch.DefaultDebounce (200ms).
func WithDebounce(d time.Duration) Option {
	return func(o *options) { o.debounce = d }
}

// WithOnReload sets a function called after each reload attempt, from the Source's
// goroutine: with nil when a new certificate now serves, or with the error that kept
// the previous one. It suits metrics and tests; it must not block for long. The
// default is none.
func WithOnReload(f func(error)) Option {
	return func(o *options) { o.onReload = f }
}

// Source serves the certificate in a pair of PEM files and follows the files for
// changes. Create one with New and stop it with Close; its methods are safe for
// concurrent use.
type Source struct {
	certFile, keyFile string
	log               *slog.Logger
	onReload          func(error)
	w                 *watch.Watcher
	done              chan struct{}
	closeOnce         sync.Once

	cur      atomic.Pointer[tls.Certificate]
	reloads  atomic.Uint64
	failures atomic.Uint64
}

// New loads the certificate chain in certFile and the private key in keyFile (PEM)
// and starts following both files. It fails when either file cannot be read, naming
// the file, or when they do not make a pair.
func New(certFile, keyFile string, opts ...Option) (*Source, error) {
	o := options{logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	log := o.logger.With("component", "certs")
	// Watch before loading: the watcher fingerprints the files as they are, so a
	// change made while the pair is being loaded is reported, not lost.
	w, werr := watch.New(watch.Options{
		Files:    []string{certFile, keyFile},
		Debounce: o.debounce,
		Logger:   o.logger,
	})
	cert, err := load(certFile, keyFile)
	if err != nil {
		if werr == nil {
			_ = w.Close()
		}
		return nil, err
	}
	if werr != nil {
		return nil, fmt.Errorf("certs: following %s and %s for changes: %w", certFile, keyFile, werr)
	}
	s := &Source{
		certFile: certFile,
		keyFile:  keyFile,
		log:      log,
		onReload: o.onReload,
		w:        w,
		done:     make(chan struct{}),
	}
	s.cur.Store(cert)
	log.Info("certificate loaded", describe(cert)...)
	go s.loop()
	return s, nil
}

// load reads and pairs the two files.
func load(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certs: reading the certificate file: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: reading the key file: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: certificate %s with key %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil { // filled by X509KeyPair unless GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certs: certificate %s: %w", certFile, err)
		}
	}
	return &cert, nil
}

// describe returns log attributes naming a certificate.
func describe(c *tls.Certificate) []any {
	l := c.Leaf
	return []any{"subject", l.Subject.String(), "serial", l.SerialNumber.String(), "not_after", l.NotAfter.UTC().Format(time.RFC3339)}
}

func (s *Source) loop() {
	defer close(s.done)
	for ch := range s.w.Changes() {
		if ch.Err != nil {
			s.log.Warn("following the certificate files", "err", ch.Err)
		}
		if len(ch.Files) > 0 {
			s.reload()
		}
	}
}

// reload loads the pair again; on failure the current certificate stays.
func (s *Source) reload() {
	cert, err := load(s.certFile, s.keyFile)
	if err != nil {
		s.failures.Add(1)
		s.log.Warn("certificate files changed but do not load; the previous certificate keeps serving until they do", "err", err)
	} else {
		s.cur.Store(cert)
		s.reloads.Add(1)
		s.log.Info("certificate reloaded", describe(cert)...)
	}
	if s.onReload != nil {
		s.onReload(err)
	}
}

// GetCertificate returns the current certificate, for tls.Config.GetCertificate.
func (s *Source) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load(), nil
}

// Certificate returns the certificate now serving; its Leaf is set (expiry, serial).
func (s *Source) Certificate() *tls.Certificate { return s.cur.Load() }

// TLSConfig returns a server configuration that serves the current certificate:
// HTTP/2 or HTTP/1.1 negotiated by ALPN, TLS 1.2 or later. Each call returns a new
// value the caller may change.
func (s *Source) TLSConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: s.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
		MinVersion:     tls.VersionTLS12,
	}
}

// Reloads returns how many times a changed pair was loaded and now serves.
func (s *Source) Reloads() uint64 { return s.reloads.Load() }

// Failures returns how many times changed files failed to load, leaving the
// previous certificate serving.
func (s *Source) Failures() uint64 { return s.failures.Load() }

// Close stops following the files; the current certificate keeps being served.
// Calling it again returns nil.
func (s *Source) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.w.Close()
		<-s.done
	})
	return err
}
