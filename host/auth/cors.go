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
type CORS struct {
	next    http.Handler
	allowed []string
	exposed []string
	cur     atomic.Pointer[http.Handler]
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
	h := c.next
	// rs/cors reads empty AllowedOrigins as "*", so no origins means no CORS handler.
	if len(origins) > 0 {
		h = cors.New(cors.Options{
			AllowedOrigins: slices.Clone(origins),
			AllowedMethods: connectcors.AllowedMethods(),
			AllowedHeaders: c.allowed,
			ExposedHeaders: c.exposed,
			MaxAge:         int(maxAge / time.Second),
		}).Handler(c.next)
	}
	c.cur.Store(&h)
}

// ServeHTTP serves r with the current origins.
func (c *CORS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*c.cur.Load()).ServeHTTP(w, r)
}
