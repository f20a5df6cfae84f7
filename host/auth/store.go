package auth

import (
	"context"
	"errors"
	"net/http"
	"path"
	"strings"
	"sync/atomic"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"
)

// Level is what a procedure or route asks of its caller.
type Level int

const (
	// Open procedures need no key, even when keys are configured.
	Open Level = iota
	// AnyKey procedures need an API key or an admin key.
	AnyKey
	// AdminKey procedures need an admin key; any key while the Keys hold no admin
	// key, so that configuring API keys alone does not lock every caller out of them.
	AdminKey
)

// String returns the level's name.
func (l Level) String() string {
	switch l {
	case Open:
		return "open"
	case AnyKey:
		return "any key"
	case AdminKey:
		return "admin key"
	}
	return "unknown level"
}

// MetricsPath is the route of the server's metrics, which DefaultPolicy reserves for
// admin keys.
const MetricsPath = "/metrics"

// DefaultPolicy is the level each of the server's procedures and routes needs, by its
// procedure name or URL path (the same thing for Connect, gRPC and gRPC-web):
//
//   - Open: gRPC health checks (Check and Watch), which load balancers and
//     orchestrators probe without credentials and which reveal only whether the server
//     is serving.
//   - AdminKey: PluginService Reload and ValidateConfig, which change or probe the
//     server's configuration, and /metrics. While no admin key is configured these
//     need any key, as AnyKey does.
//   - AnyKey: everything else, including procedures and routes added later, so a new
//     route is closed until someone decides otherwise. ListPlugins and GetStatus are
//     read-only and need any key. gRPC reflection needs one too: no probe needs it,
//     and it is a stream a caller may hold open and ask of at will (RATIONALE.md, "Why
//     does gRPC reflection need a key when health does not?").
func DefaultPolicy(procedure string) Level {
	switch {
	case strings.HasPrefix(procedure, "/"+grpchealth.HealthV1ServiceName+"/"):
		return Open
	case procedure == ulanv1connect.PluginServiceReloadProcedure,
		procedure == ulanv1connect.PluginServiceValidateConfigProcedure,
		procedure == MetricsPath:
		return AdminKey
	}
	return AnyKey
}

// Store holds the current Keys and checks calls against them. Swap replaces the keys
// for every call that starts afterwards, so a configuration reload applies new keys
// without a restart. The zero value holds no keys (everything is let through); a Store
// is safe for concurrent use.
type Store struct {
	keys atomic.Pointer[Keys]
}

// NewStore returns a Store holding k, which may be nil (no keys).
func NewStore(k *Keys) *Store {
	s := &Store{}
	s.keys.Store(k)
	return s
}

// Swap makes k the keys that calls are checked against from now on, and returns the
// keys it replaces. Calls already past their check are not affected. Nil, or Keys
// holding none, turns auth off.
func (s *Store) Swap(k *Keys) *Keys { return s.keys.Swap(k) }

// Keys returns the current keys; nil when none were ever set.
func (s *Store) Keys() *Keys { return s.keys.Load() }

// Enabled reports whether calls currently need keys.
func (s *Store) Enabled() bool { return s.keys.Load().Len() > 0 }

// The WWW-Authenticate challenges of RFC 6750 §3: without an error code when the
// request carried no bearer token, with one when it carried a bad token or too few
// rights.
const (
	challengeMissing      = `Bearer realm="ulan"`
	challengeInvalid      = `Bearer realm="ulan", error="invalid_token"`
	challengeInsufficient = `Bearer realm="ulan", error="insufficient_scope"`
)

// denial is why a call was refused. Its message goes to the client, so it never
// quotes the token.
type denial struct {
	code      connect.Code
	msg       string
	challenge string
}

// connectError returns the error for an RPC, with the challenge in its metadata. Over
// Connect and gRPC-web the client sees it; over gRPC it would be a trailer, which
// net/http does not send, and the code alone tells the client what happened.
func (d *denial) connectError() *connect.Error {
	err := connect.NewError(d.code, errors.New(d.msg))
	err.Meta().Set("WWW-Authenticate", d.challenge)
	return err
}

// writeHTTP answers a plain HTTP request: 401 or 403 with the challenge.
func (d *denial) writeHTTP(w http.ResponseWriter) {
	status := http.StatusUnauthorized
	if d.code == connect.CodePermissionDenied {
		status = http.StatusForbidden
	}
	w.Header().Set("WWW-Authenticate", d.challenge)
	http.Error(w, d.msg, status)
}

// authorize checks the Authorization header values of a call to procedure, which
// needs level, and returns ctx with the caller's Principal, or why the call is
// refused. With no keys, or on an Open procedure, ctx is returned as it is.
func (s *Store) authorize(ctx context.Context, level Level, procedure string, header []string) (context.Context, *denial) {
	if level == Open {
		return ctx, nil
	}
	keys := s.keys.Load()
	if keys.Len() == 0 {
		return ctx, nil
	}
	token, d := bearer(header)
	if d != nil {
		return ctx, d
	}
	p, ok := keys.Lookup(token)
	if !ok {
		return ctx, &denial{connect.CodeUnauthenticated, "the bearer token is not a valid API key", challengeInvalid}
	}
	if level >= AdminKey && !p.Admin && keys.admins > 0 {
		return ctx, &denial{connect.CodePermissionDenied,
			procedure + " needs an admin key; key " + p.KeyID + " is an API key", challengeInsufficient}
	}
	return NewContext(ctx, p), nil
}

// bearer returns the token of an "Authorization: Bearer TOKEN" header, given the
// header's values, or why there is none. The scheme is case-insensitive (RFC 7235).
func bearer(values []string) (string, *denial) {
	const how = "send the header Authorization: Bearer KEY"
	switch {
	case len(values) == 0 || strings.TrimSpace(values[0]) == "":
		return "", &denial{connect.CodeUnauthenticated, "a bearer token is required: " + how, challengeMissing}
	case len(values) > 1:
		return "", &denial{connect.CodeUnauthenticated, "more than one Authorization header: " + how, challengeInvalid}
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", &denial{connect.CodeUnauthenticated, "the Authorization header must use the Bearer scheme: " + how, challengeMissing}
	}
	token = strings.TrimLeft(token, " ")
	if token == "" {
		return "", &denial{connect.CodeUnauthenticated, "the Authorization header holds no bearer token: " + how, challengeInvalid}
	}
	return token, nil
}

// Interceptor returns a connect interceptor that checks each call a handler receives,
// unary and streaming, against the level policy gives its procedure (nil means
// DefaultPolicy), and puts the caller's Principal in the context the handler sees.
// Client-side calls pass untouched.
//
// A unary call reaches interceptors only once its request message has been read and
// decoded, so an unauthenticated client can still make the server decode a message
// of up to the read limit; Middleware refuses calls before reading their body.
func (s *Store) Interceptor(policy func(procedure string) Level) connect.Interceptor {
	if policy == nil {
		policy = DefaultPolicy
	}
	return &interceptor{s: s, policy: policy}
}

type interceptor struct {
	s      *Store
	policy func(string) Level
}

func (i *interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		proc := req.Spec().Procedure
		ctx, d := i.s.authorize(ctx, i.policy(proc), proc, req.Header().Values("Authorization"))
		if d != nil {
			return nil, d.connectError()
		}
		return next(ctx, req)
	}
}

func (i *interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		proc := conn.Spec().Procedure
		ctx, d := i.s.authorize(ctx, i.policy(proc), proc, conn.RequestHeader().Values("Authorization"))
		if d != nil {
			return d.connectError()
		}
		return next(ctx, conn)
	}
}

// Middleware returns next guarded by the level policy gives each request's URL path
// (nil means DefaultPolicy). A path that is not canonical (/grpc.health.v1.Health/../x,
// //x, x/.) is judged by the stricter of what policy gives it as sent and cleaned, and
// is never Open: routers read such paths differently (net/http's ServeMux redirects
// them but leaves a CONNECT request's path alone; connect routes on the exact path),
// so no spelling of a closed route passes as an open one. A refused Connect, gRPC or
// gRPC-web call gets its error in its own protocol (connect.ErrorWriter) before its
// body is read; any other request gets 401 or 403 with a WWW-Authenticate challenge.
// An accepted request reaches next with the caller's Principal in its context.
func (s *Store) Middleware(policy func(path string) Level, next http.Handler) http.Handler {
	if policy == nil {
		policy = DefaultPolicy
	}
	ew := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := path.Clean("/" + r.URL.Path)
		level := policy(p)
		if p != r.URL.Path {
			level = max(level, policy(r.URL.Path), AnyKey)
		}
		ctx, d := s.authorize(r.Context(), level, p, r.Header.Values("Authorization"))
		switch {
		case d == nil && ctx == r.Context():
			next.ServeHTTP(w, r)
		case d == nil:
			next.ServeHTTP(w, r.WithContext(ctx))
		case ew.IsSupported(r):
			_ = ew.Write(w, r, d.connectError()) // the client has gone if this fails
		default:
			d.writeHTTP(w)
		}
	})
}

// Require returns next guarded for plain HTTP routes: a request without a valid key
// gets 401 with WWW-Authenticate: Bearer, one whose key lacks the level's right gets
// 403, and an accepted one reaches next with the caller's Principal in its context.
// With no keys every request passes.
func (s *Store) Require(level Level, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, d := s.authorize(r.Context(), level, r.URL.Path, r.Header.Values("Authorization"))
		if d != nil {
			d.writeHTTP(w)
			return
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// RequireAdmin is Require(AdminKey, next), for routes such as /metrics.
func (s *Store) RequireAdmin(next http.Handler) http.Handler { return s.Require(AdminKey, next) }
