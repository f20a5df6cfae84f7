package auth

import (
	"net/http"
	"sync/atomic"
	"time"
)

// Gate is the access control a server puts in front of its API: the CORS rules around
// the key check (a preflight is answered without credentials, a refused call still
// carries the CORS headers a script needs to read its error). It holds both as one
// value behind one atomic pointer, so Swap changes the keys and the origins together:
// no request is judged by the new keys and the old origins, or the other way round. It
// is safe for concurrent use.
type Gate struct {
	next   http.Handler
	policy func(path string) Level
	cors   CORSOptions
	cur    atomic.Pointer[gateState]
}

type gateState struct {
	keys *Keys
	h    http.Handler
}

// NewGate returns next behind keys (checked by Store.Middleware with policy, nil
// meaning DefaultPolicy) and CORS configured by opts.
func NewGate(next http.Handler, policy func(path string) Level, keys *Keys, opts CORSOptions) *Gate {
	g := &Gate{next: next, policy: policy, cors: opts}
	g.Swap(keys, opts.AllowedOrigins, opts.MaxAge)
	return g
}

// Swap makes keys, origins and maxAge apply together to requests that start from now
// on; requests already past the gate keep the rules they were let in by. Nil keys, or
// Keys holding none, turn the key check off; empty origins turn CORS off.
func (g *Gate) Swap(keys *Keys, origins []string, maxAge time.Duration) {
	opts := g.cors
	opts.AllowedOrigins, opts.MaxAge = origins, maxAge
	h := NewCORS(NewStore(keys).Middleware(g.policy, g.next), opts)
	g.cur.Store(&gateState{keys: keys, h: h})
}

// Keys returns the keys calls are checked against now; nil when none were set.
func (g *Gate) Keys() *Keys { return g.cur.Load().keys }

// ServeHTTP serves r with the current keys and origins, both read at once.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.cur.Load().h.ServeHTTP(w, r)
}
