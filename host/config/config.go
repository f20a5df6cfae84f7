// Package config loads and validates the ulan server's configuration.
//
// A Config is built in layers, each overriding the one before: the built-in defaults
// (Default), a YAML file, ULAN_* environment variables, then the command-line flags the
// operator set. Load and Parse report every problem they find as Problems, each naming
// its key, and a Config they return without error has passed Validate. Keys lists every
// key with its default and a description, and RestartRequired says which changes between
// two configurations need a restart. ulan.example.yaml beside this file sets every key.
//
// Two keys, plugins and pipelines, are lists of mappings (sdk/ABI.md §8). They come from
// the YAML file only, and a problem within one names its element and field, such as
// plugins[1].failure_policy or pipelines[0].hooks[2]. Validate checks their values and
// references; whether the plugins load is for host/generation to find out.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
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
	// Plugins are the WebAssembly plugins to load (sdk/ABI.md §8). They come from the
	// YAML file only.
	Plugins []Plugin `koanf:"plugins"`
	// Pipelines combine plugins into what a request runs: a tokenizer, a sampler and a
	// chain of hooks. They come from the YAML file only.
	Pipelines []Pipeline `koanf:"pipelines"`
}

// Model configures the model the server loads at start-up.
type Model struct {
	// Path is a GGUF model file; empty serves the built-in demo model
	// (random weights, written to the user's cache directory on first use).
	Path string `koanf:"path"`
	// Threads is the goroutines per engine operation; 0 means one per CPU.
	Threads int `koanf:"threads"`
	// KVCache is the KV-cache memory budget.
	KVCache ByteSize `koanf:"kv_cache"`
	// MaxRunning is how many sequences decode together; later ones wait.
	MaxRunning int `koanf:"max_running"`
	// MaxQueue is how many requests may wait for admission; more are refused
	// with ResourceExhausted.
	MaxQueue int `koanf:"max_queue"`
	// StepTokens is one engine step's token budget: a token of every
	// decoding sequence plus prefill chunks.
	StepTokens int `koanf:"step_tokens"`
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
	Auth        Auth          `koanf:"auth"`
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
// The server re-reads the files when their content changes (host/certs).
type TLS struct {
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
}

// Auth lists the bearer tokens (API keys) that may call the API. Both lists empty, the
// default, leaves the API open to every client that can reach it, as a server without
// keys has always been.
//
// Each entry is either the key itself or env:NAME, which takes the key from the server
// process's environment variable NAME when the configuration is validated (at start-up
// and at each reload). A key is at least 16 characters of A-Z, a-z, 0-9, '-', '.', '_',
// '~', '+', '/' with '=' padding at the end only (RFC 6750's token syntax), and appears
// once across both lists. Use Resolve to obtain the keys themselves; problems never
// quote a key.
type Auth struct {
	// APIKeys may call every inference and model procedure and read plugin state.
	APIKeys []string `koanf:"api_keys"`
	// AdminKeys may do everything APIKeys may, cancel any generation, and alone may
	// reload or validate the plugin configuration (PluginService Reload,
	// ValidateConfig) and read /metrics. With no admin key, any API key may do those.
	AdminKeys []string `koanf:"admin_keys"`
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

// Plugin is one entry of the plugins list: a module file and what the operator grants it.
// Zero values mean the defaults the comments give.
type Plugin struct {
	// ID is the operator's name for the plugin, which pipelines refer to.
	ID string `koanf:"id"`
	// Module is the path of the plugin's .wasm file, relative to the server's working
	// directory unless absolute.
	Module string `koanf:"module"`
	// SHA256 is the module's expected SHA-256 in lowercase hex; when set, a file that
	// differs is refused. Empty checks nothing.
	SHA256 string `koanf:"sha256"`
	// Config is the plugin's own configuration, handed to ulan_init as JSON and
	// validated against its manifest's config_schema. Values are JSON-compatible.
	Config map[string]any `koanf:"config"`
	// Grants are what the plugin may use.
	Grants Grants `koanf:"grants"`
	// FailurePolicy is what a request sees when the plugin fails: fail_closed (the
	// default), fail_open (hooks only) or fallback (tokenizers and samplers only).
	FailurePolicy string `koanf:"failure_policy"`
	// PoolSize is the number of warm instances; 0 means 2. A hook session (or
	// a sampler batch) holds an instance for its stream, and when none is
	// idle it gets one of its own beyond the pool, closed as it ends (up to
	// 64 instances a plugin).
	PoolSize int `koanf:"pool_size"`
}

// Grants are what the operator allows one plugin.
type Grants struct {
	// MemoryPages caps each instance's linear memory in 64 KiB pages; 0 means 1024
	// (64 MiB).
	MemoryPages int `koanf:"memory_pages"`
	// CallTimeout bounds every call into the plugin; 0 means 1s.
	CallTimeout time.Duration `koanf:"call_timeout"`
	// Imports are the host imports granted beyond the ones every plugin has: clock
	// (real clocks and ulan_v1.now_ns). log and set_error are always available and
	// may be listed.
	Imports []string `koanf:"imports"`
	// Trust is sandboxed (the default: calls are interrupted at their deadline) or
	// trusted (no interruption checks; a call that never returns hangs the server).
	Trust string `koanf:"trust"`
}

// Pipeline is one entry of the pipelines list: the plugins a request runs.
type Pipeline struct {
	// Name is how requests select the pipeline.
	Name string `koanf:"name"`
	// Tokenizer is the id of a tokenizer plugin; empty uses the model's own.
	Tokenizer string `koanf:"tokenizer"`
	// Sampler is the id of a sampler plugin; empty uses the built-in sampler.
	Sampler string `koanf:"sampler"`
	// Hooks are the ids of hook plugins, run in this order.
	Hooks []string `koanf:"hooks"`
	// Default marks the pipeline a request that names none runs. Without one, a
	// pipeline named "default" is.
	Default bool `koanf:"default"`
}

// Bounds that Validate enforces.
const (
	minRequestBytes = KiB
	maxRequestBytes = GiB
	maxMaxTokens    = 1 << 24

	maxPoolSize    = 64
	maxMemoryPages = 16384 // 1 GiB: packed guest pointers must stay far below 2 GiB
	maxCallTimeout = time.Minute
	maxHooks       = 16
)

// NamePattern matches plugin ids and pipeline names. The API checks the pipeline names
// requests carry against it too (host/api).
var NamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// The names a plugin entry's values are taken from. ImportNames mirrors host/plugin's
// host module (a test in host/generation keeps them in step) and FailurePolicies the
// policies host/generation enforces per kind (sdk/ABI.md §8).
var (
	FailurePolicies = []string{"fail_closed", "fail_open", "fallback"}
	ImportNames     = []string{"clock", "log", "set_error"}
	TrustLevels     = []string{"sandboxed", "trusted"}
	sha256Hex       = regexp.MustCompile(`^[0-9a-f]{64}$`)
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
		Model: Model{KVCache: 1 * GiB, MaxRunning: 64, MaxQueue: 256, StepTokens: 512},
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
// It stats and opens the TLS files, so it sees the filesystem as it is now, and reads the
// environment variables that server.auth's env:NAME entries name.
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
			add("server.cors.allowed_origins", `%q is not "*" or an origin such as https://app.example.com (scheme and host, no path)`, clip(o))
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
	_, _, authProblems := s.Auth.resolve(os.LookupEnv)
	ps = append(ps, authProblems...)

	m := c.Model
	if m.Path != "" {
		if msg := checkModelPath(m.Path); msg != "" {
			add("model.path", "%s", msg)
		}
	}
	if m.Threads < 0 || m.Threads > 1024 {
		add("model.threads", "%d must be between 0 (one per CPU) and 1024", m.Threads)
	}
	if m.KVCache < MiB {
		add("model.kv_cache", "%v must be at least 1MiB", m.KVCache)
	}
	if m.MaxRunning < 1 || m.MaxRunning > 4096 {
		add("model.max_running", "%d must be between 1 and 4096", m.MaxRunning)
	}
	if m.MaxQueue < 1 || m.MaxQueue > 1<<20 {
		add("model.max_queue", "%d must be between 1 and 1048576", m.MaxQueue)
	}
	if m.StepTokens < 1 || m.StepTokens > 1<<16 {
		add("model.step_tokens", "%d must be between 1 and 65536", m.StepTokens)
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
		add("log.level", "%q is not one of %s", clip(c.Log.Level), strings.Join(logLevels, ", "))
	}
	if !slices.Contains(logFormats, c.Log.Format) {
		add("log.format", "%q is not one of %s", clip(c.Log.Format), strings.Join(logFormats, ", "))
	}
	ps = append(ps, c.pluginProblems()...)
	return ps.err()
}

// ValidatePlugins checks the plugins and pipelines lists alone, as Validate does, and
// returns Problems naming each bad key, or nil. It touches no file: whether a module
// loads, and whether a plugin's kind suits its failure policy and its place in a
// pipeline, only loading it can tell (host/generation).
func (c Config) ValidatePlugins() error {
	return c.pluginProblems().err()
}

// pluginProblems checks the plugins and pipelines lists: each entry's values, unique
// ids and names, and that pipelines name configured plugins.
func (c Config) pluginProblems() Problems {
	var ps Problems
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
	}
	// unique checks list[i]'s key (an id or name): present, well formed and
	// not taken by an earlier entry of seen.
	unique := func(key, what, v, purpose string, seen map[string]int, list string, i int) {
		switch {
		case v == "":
			add(key, "is required: %s", purpose)
		case !NamePattern.MatchString(v):
			add(key, "%q is not a valid %s (%s)", clip(v), what, nameRule)
		default:
			if j, dup := seen[v]; dup {
				add(key, "%q is already the %s of %s[%d]", v, what, list, j)
			} else {
				seen[v] = i
			}
		}
	}
	ids := map[string]int{}
	for i, p := range c.Plugins {
		k := fmt.Sprintf("plugins[%d].", i)
		unique(k+"id", "id", p.ID, "the name pipelines use for the plugin", ids, "plugins", i)
		if p.Module == "" {
			add(k+"module", "is required: the path of the plugin's .wasm file")
		}
		if p.SHA256 != "" && !sha256Hex.MatchString(p.SHA256) {
			add(k+"sha256", "%q is not a SHA-256: use the 64 lowercase hex digits sha256sum prints", clip(p.SHA256))
		}
		if p.FailurePolicy != "" && !slices.Contains(FailurePolicies, p.FailurePolicy) {
			add(k+"failure_policy", "%q is not one of %s", clip(p.FailurePolicy), strings.Join(FailurePolicies, ", "))
		}
		if p.PoolSize < 0 || p.PoolSize > maxPoolSize {
			add(k+"pool_size", "%d must be between 0 (the default, 2) and %d", p.PoolSize, maxPoolSize)
		}
		g := p.Grants
		if g.MemoryPages < 0 || g.MemoryPages > maxMemoryPages {
			add(k+"grants.memory_pages", "%d must be between 0 (the default, 1024 pages of 64KiB) and %d (1GiB)", g.MemoryPages, maxMemoryPages)
		}
		if g.CallTimeout < 0 || g.CallTimeout > maxCallTimeout {
			add(k+"grants.call_timeout", "%v must be between 0 (the default, 1s) and %v", g.CallTimeout, formatDuration(maxCallTimeout))
		}
		for j, imp := range g.Imports {
			if !slices.Contains(ImportNames, imp) {
				add(fmt.Sprintf("%sgrants.imports[%d]", k, j), "%q is not an import the host grants (%s)", clip(imp), strings.Join(ImportNames, ", "))
			}
		}
		if g.Trust != "" && !slices.Contains(TrustLevels, g.Trust) {
			add(k+"grants.trust", "%q is not one of %s", clip(g.Trust), strings.Join(TrustLevels, ", "))
		}
	}

	names := map[string]int{}
	def := -1
	ref := func(key, id string) {
		switch {
		case id == "":
			add(key, "must name a plugin")
		case !NamePattern.MatchString(id):
			add(key, "%q is not a valid plugin id (%s)", clip(id), nameRule)
		default:
			if _, ok := ids[id]; !ok {
				add(key, "no plugin has id %q", id)
			}
		}
	}
	for i, pl := range c.Pipelines {
		k := fmt.Sprintf("pipelines[%d].", i)
		unique(k+"name", "name", pl.Name, "the name requests select the pipeline by", names, "pipelines", i)
		if pl.Tokenizer != "" {
			ref(k+"tokenizer", pl.Tokenizer)
		}
		if pl.Sampler != "" {
			ref(k+"sampler", pl.Sampler)
		}
		if len(pl.Hooks) > maxHooks {
			add(k+"hooks", "has %d hooks; at most %d", len(pl.Hooks), maxHooks)
		}
		seen := map[string]int{}
		for j, h := range pl.Hooks {
			hk := fmt.Sprintf("%shooks[%d]", k, j)
			if first, dup := seen[h]; dup && h != "" {
				add(hk, "%q is already %shooks[%d]; a hook runs once per pipeline", h, k, first)
				continue
			}
			seen[h] = j
			ref(hk, h)
		}
		if pl.Default {
			if def >= 0 {
				add(k+"default", "pipelines[%d] is already the default; at most one pipeline may be", def)
			} else {
				def = i
			}
		}
	}
	return ps
}

// nameRule says what NamePattern accepts, for problems.
const nameRule = "1 to 64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit"

// clip shortens a value quoted in a problem, so a pasted blob does not flood the list.
func clip(s string) string {
	const limit = 80
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "…"
}

// checkListen returns what is wrong with a listen address, or "". The port must be a
// number: net.Listen would also take a service name, which hides typos.
func checkListen(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("%q is not host:port, such as 127.0.0.1:8080 or :8080", clip(addr))
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("%q has port %q, which is not a number from 0 to 65535", clip(addr), clip(port))
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
// checkModelPath is checkReadable for a GGUF file, or a check that a
// directory (a Hugging Face model) holds a readable config.json.
func checkModelPath(path string) string {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		if msg := checkReadable(filepath.Join(path, "config.json")); msg != "" {
			return path + " is a directory without a readable config.json (a Hugging Face model directory needs one): " + msg
		}
		return ""
	}
	return checkReadable(path)
}

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
