// Package config loads and validates the ulan server's configuration.
//
// A Config is built in layers, each overriding the one before: the built-in defaults
// (Default), a YAML file, ULAN_* environment variables, then the command-line flags the
// operator set. Load and Parse report every problem they find as Problems, each naming
// its key, and a Config they return without error has passed Validate. Keys lists every
// key with its default and a description, and RestartRequired says which changes between
// two configurations need a restart. ulan.example.yaml beside this file sets every key.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the ulan server's configuration. The koanf tags are the key names used in
// the YAML file; a key's path joins them with dots, such as server.drain_timeout.
type Config struct {
	Server Server `koanf:"server"`
	Model  Model  `koanf:"model"`
	Limits Limits `koanf:"limits"`
	Log    Log    `koanf:"log"`
}

// Model configures the model the server loads at start-up.
type Model struct {
	// Path is a GGUF model file; empty serves without a model.
	Path string `koanf:"path"`
	// Threads is the goroutines per engine operation; 0 means one per CPU.
	Threads int `koanf:"threads"`
	// KVCache is the KV-cache memory budget.
	KVCache ByteSize `koanf:"kv_cache"`
}

// Server configures the HTTP listener that serves the API.
type Server struct {
	// Listen is the host:port to listen on; an empty host listens on every interface.
	Listen string `koanf:"listen"`
	// DrainTimeout bounds how long shutdown waits for requests in flight.
	DrainTimeout time.Duration `koanf:"drain_timeout"`
	// ReadHeaderTimeout bounds how long a client may take to send request headers.
	ReadHeaderTimeout time.Duration `koanf:"read_header_timeout"`
	// IdleTimeout bounds how long an idle keep-alive connection stays open.
	IdleTimeout time.Duration `koanf:"idle_timeout"`
	CORS        CORS          `koanf:"cors"`
	TLS         TLS           `koanf:"tls"`
}

// CORS says which browser origins may call the API.
type CORS struct {
	// AllowedOrigins holds "*" or origins such as https://app.example.com; empty allows
	// no cross-origin browser requests.
	AllowedOrigins []string `koanf:"allowed_origins"`
	// MaxAge is how long browsers may cache a preflight response, in whole seconds.
	MaxAge time.Duration `koanf:"max_age"`
}

// TLS names the certificate and key to serve HTTPS with; both empty serves plain HTTP.
type TLS struct {
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
}

// Limits bounds what one request may ask of the server.
type Limits struct {
	// MaxRequestBytes bounds a request body.
	MaxRequestBytes ByteSize `koanf:"max_request_bytes"`
	// MaxPromptBytes bounds the prompt text within a request.
	MaxPromptBytes ByteSize `koanf:"max_prompt_bytes"`
	// MaxTokens is the largest max_tokens a request may ask for.
	MaxTokens int `koanf:"max_tokens"`
}

// Log configures the server's log.
type Log struct {
	// Level is the least severe level written: debug, info, warn or error.
	Level string `koanf:"level"`
	// Format is text or json.
	Format string `koanf:"format"`
}

// Bounds that Validate enforces.
const (
	minRequestBytes = KiB
	maxRequestBytes = GiB
	maxMaxTokens    = 1 << 24
)

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
)

// Default returns the built-in configuration: listen on 127.0.0.1:8080 over plain HTTP
// with no cross-origin access, 32MiB requests and 16MiB prompts, text logs at info.
func Default() Config {
	return Config{
		Server: Server{
			Listen:            "127.0.0.1:8080",
			DrainTimeout:      30 * time.Second,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
			CORS:              CORS{MaxAge: 2 * time.Hour},
		},
		Model: Model{KVCache: 1 * GiB},
		Limits: Limits{
			MaxRequestBytes: 32 * MiB,
			MaxPromptBytes:  16 * MiB,
			MaxTokens:       1 << 20,
		},
		Log: Log{Level: "info", Format: "text"},
	}
}

// Problem is one thing wrong with a configuration. Key is the key's path, such as
// server.listen, or an environment variable's name; it is empty for a problem with the
// file as a whole, such as a YAML syntax error.
type Problem struct {
	Key, Message string
}

// Error returns "key: message", or the message alone when there is no key.
func (p Problem) Error() string {
	if p.Key == "" {
		return p.Message
	}
	return p.Key + ": " + p.Message
}

// Problems is every problem found in a configuration, in the order found. Load, Parse and
// Validate return it as their error; use errors.As to reach the list.
type Problems []Problem

// Error returns one problem a line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// err returns ps as an error, or a nil error when there are none: a nil Problems in an
// error interface would not compare equal to nil.
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// Validate checks every key's value and returns Problems naming each bad key, or nil.
// It stats and opens the TLS files, so it sees the filesystem as it is now.
func (c Config) Validate() error {
	var ps Problems
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
	}

	s := c.Server
	if msg := checkListen(s.Listen); msg != "" {
		add("server.listen", "%s", msg)
	}
	if s.DrainTimeout < 0 {
		add("server.drain_timeout", "%v must not be negative", s.DrainTimeout)
	}
	if s.ReadHeaderTimeout <= 0 {
		add("server.read_header_timeout", "%v must be greater than 0", s.ReadHeaderTimeout)
	}
	if s.IdleTimeout <= 0 {
		add("server.idle_timeout", "%v must be greater than 0", s.IdleTimeout)
	}
	for _, o := range s.CORS.AllowedOrigins {
		if !isOrigin(o) {
			add("server.cors.allowed_origins", `%q is not "*" or an origin such as https://app.example.com (scheme and host, no path)`, o)
		}
	}
	switch {
	case s.CORS.MaxAge < 0:
		add("server.cors.max_age", "%v must not be negative", s.CORS.MaxAge)
	case s.CORS.MaxAge%time.Second != 0:
		// Access-Control-Max-Age is a count of seconds.
		add("server.cors.max_age", "%v must be a whole number of seconds", s.CORS.MaxAge)
	}
	switch {
	case s.TLS.CertFile == "" && s.TLS.KeyFile != "":
		add("server.tls.cert_file", "must be set when server.tls.key_file is")
	case s.TLS.CertFile != "" && s.TLS.KeyFile == "":
		add("server.tls.key_file", "must be set when server.tls.cert_file is")
	}
	if msg := checkReadable(s.TLS.CertFile); msg != "" {
		add("server.tls.cert_file", "%s", msg)
	}
	if msg := checkReadable(s.TLS.KeyFile); msg != "" {
		add("server.tls.key_file", "%s", msg)
	}

	m := c.Model
	if m.Path != "" {
		if msg := checkReadable(m.Path); msg != "" {
			add("model.path", "%s", msg)
		}
	}
	if m.Threads < 0 || m.Threads > 1024 {
		add("model.threads", "%d must be between 0 (one per CPU) and 1024", m.Threads)
	}
	if m.KVCache < MiB {
		add("model.kv_cache", "%v must be at least 1MiB", m.KVCache)
	}
	l := c.Limits
	if l.MaxRequestBytes < minRequestBytes || l.MaxRequestBytes > maxRequestBytes {
		add("limits.max_request_bytes", "%v must be between %v and %v", l.MaxRequestBytes, minRequestBytes, maxRequestBytes)
	}
	switch {
	case l.MaxPromptBytes <= 0:
		add("limits.max_prompt_bytes", "%v must be greater than 0", l.MaxPromptBytes)
	case l.MaxPromptBytes > l.MaxRequestBytes:
		// The prompt travels inside the request, so a larger bound could never be reached.
		add("limits.max_prompt_bytes", "%v must not exceed limits.max_request_bytes (%v)", l.MaxPromptBytes, l.MaxRequestBytes)
	}
	if l.MaxTokens < 1 || l.MaxTokens > maxMaxTokens {
		add("limits.max_tokens", "%d must be between 1 and %d", l.MaxTokens, maxMaxTokens)
	}

	if !slices.Contains(logLevels, c.Log.Level) {
		add("log.level", "%q is not one of %s", c.Log.Level, strings.Join(logLevels, ", "))
	}
	if !slices.Contains(logFormats, c.Log.Format) {
		add("log.format", "%q is not one of %s", c.Log.Format, strings.Join(logFormats, ", "))
	}
	return ps.err()
}

// checkListen returns what is wrong with a listen address, or "". The port must be a
// number: net.Listen would also take a service name, which hides typos.
func checkListen(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("%q is not host:port, such as 127.0.0.1:8080 or :8080", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("%q has port %q, which is not a number from 0 to 65535", addr, port)
	}
	return ""
}

// isOrigin reports whether o is "*" or an origin as browsers send it in the Origin
// header: scheme and host, no path, query or credentials. A trailing slash would never
// match that header, so it is refused rather than silently ignored.
func isOrigin(o string) bool {
	if o == "*" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return u.Host != "" && u.Hostname() != "" && !strings.Contains(u.Host, "*") &&
		u.User == nil && u.Path == "" && u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" &&
		!strings.HasSuffix(o, "#")
}

// checkReadable returns what stops path being read, or "" (also for an empty path).
// Only regular files are opened: opening a FIFO would block until a writer came.
func checkReadable(path string) string {
	if path == "" {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "cannot read " + path + ": " + pathErr(err)
	}
	if !fi.Mode().IsRegular() {
		return path + " is not a regular file"
	}
	f, err := os.Open(path)
	if err != nil {
		return "cannot read " + path + ": " + pathErr(err)
	}
	f.Close()
	return ""
}

// pathErr drops the operation and path that *fs.PathError repeats.
func pathErr(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
