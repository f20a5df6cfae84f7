package auth

import (
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	connectcors "connectrpc.com/cors"
	"github.com/rs/cors"
)

// CORSOptions configure a CORS handler.
type CORSOptions struct {
	// AllowedOrigins holds "*" or origins such as https://app.example.com, as
	// config.CORS validates them; empty allows no cross-origin browser requests.
	AllowedOrigins []string
	// MaxAge is how long browsers may cache a preflight response; it is sent in whole
	// seconds.
	MaxAge time.Duration
	// AllowedHeaders are request headers scripts may send beyond those of Connect,
	// gRPC-web and Authorization, which are always allowed (such as X-Request-Id).
	AllowedHeaders []string
	// ExposedHeaders are response headers scripts may read beyond those of gRPC-web
	// and WWW-Authenticate, which are always exposed (such as Ulan-Generation-Id).
	ExposedHeaders []string
}

// CORS serves a handler to browsers on the allowed origins, answering preflight
// requests itself. Swap changes the origins while it serves, so a configuration reload
// applies new origins without a restart. It is safe for concurrent use.
//
// It also refuses a browser's cross-origin GET or HEAD from an origin it does not
// allow. CORS alone cannot: a GET is sent without a preflight and runs on the server,
// only its answer is kept from the page, and Connect serves procedures marked free of
// side effects (Tokenize, GetModel, ValidateConfig …) over GET. Without this, any web
// page a user of a server without API keys visits could have the browser run them,
// ValidateConfig's dry run of plugin builds included.
type CORS struct {
	next    http.Handler
	allowed []string
	exposed []string
	cur     atomic.Pointer[corsState]
}

type corsState struct {
	h http.Handler
	// guard judges a GET or HEAD as if it were a POST (net/http's check lets safe
	// methods through); nil when every origin is allowed.
	guard *http.CrossOriginProtection
}

// NewCORS returns next behind CORS configured by opts. With no allowed origins every
// request goes straight to next, so browsers refuse cross-origin calls.
func NewCORS(next http.Handler, opts CORSOptions) *CORS {
	c := &CORS{
		next: next,
		allowed: slices.Concat(connectcors.AllowedHeaders(), []string{"Authorization"},
			opts.AllowedHeaders),
		exposed: slices.Concat(connectcors.ExposedHeaders(), []string{"WWW-Authenticate"},
			opts.ExposedHeaders),
	}
	c.Swap(opts.AllowedOrigins, opts.MaxAge)
	return c
}

// Swap makes origins and maxAge apply to requests that start from now on; requests
// already being served keep the rules they started with. Empty origins turns CORS off.
func (c *CORS) Swap(origins []string, maxAge time.Duration) {
	st := &corsState{h: c.next}
	if !slices.Contains(origins, "*") {
		st.guard = http.NewCrossOriginProtection()
		for _, o := range origins {
			// config.CORS has checked each is an origin; one the guard could not
			// read would stay untrusted, which refuses rather than allows.
			_ = st.guard.AddTrustedOrigin(o)
		}
	}
	// rs/cors reads empty AllowedOrigins as "*", so no origins means no CORS handler.
	if len(origins) > 0 {
		st.h = cors.New(cors.Options{
			AllowedOrigins: slices.Clone(origins),
			AllowedMethods: connectcors.AllowedMethods(),
			AllowedHeaders: c.allowed,
			ExposedHeaders: c.exposed,
			MaxAge:         int(maxAge / time.Second),
		}).Handler(c.next)
	}
	c.cur.Store(st)
}

// ServeHTTP serves r with the current origins.
func (c *CORS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := c.cur.Load()
	if st.guard != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		asPost := r.WithContext(r.Context())
		asPost.Method = http.MethodPost
		if st.guard.Check(asPost) != nil {
			http.Error(w, "a browser's cross-origin GET is refused: the page's origin is not in server.cors.allowed_origins", http.StatusForbidden)
			return
		}
	}
	st.h.ServeHTTP(w, r)
}
