// Package auth controls who may call the API: optional bearer-token API keys, a
// separate admin right, and the browser origins allowed through CORS.
//
// Keys holds the configured keys as SHA-256 digests only; a Store holds the current
// Keys behind an atomic pointer, so a configuration reload swaps them without a
// restart. The Store checks calls three ways: a connect interceptor (Interceptor), an
// HTTP middleware that rejects a call before its body is read, in the protocol the
// client speaks (Middleware), and a plain HTTP guard for routes such as /metrics
// (Require, RequireAdmin). Each puts the caller's Principal in the request context.
// A Gate, what the server puts in front of its API, is CORS around the middleware,
// holding keys and origins as one value so that a reload swaps them together.
//
// A Store without keys lets every call through and puts no Principal in the context:
// a server with no keys configured is open, as it was before keys existed.
//
// Status codes follow their definitions: a call without a usable bearer token, or
// with a token that is no key, fails with Unauthenticated (HTTP 401 with a
// WWW-Authenticate: Bearer challenge); a valid key without the admin right on an admin
// procedure fails with PermissionDenied (HTTP 403). While no admin key is configured,
// admin procedures take any key. Error messages never quote the token.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"regexp"
)

// MinKeyLength is the fewest characters a key may have; host/config holds the
// configuration to the same rule.
const MinKeyLength = 16

// tokenSyntax is RFC 6750's b64token, what a bearer token may be made of.
var tokenSyntax = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)

// Principal is the caller a key identifies.
type Principal struct {
	// KeyID names the key without revealing it: the first 8 hex digits of its
	// SHA-256 digest. It is stable across reloads for as long as the key is
	// configured, and is what logs and generation ownership record.
	KeyID string
	// Admin is true for an admin key.
	Admin bool
}

// Keys is a set of API and admin keys, stored as SHA-256 digests: a Keys value holds
// no key in plain text, so a heap dump or a stray %v does not reveal one. The zero
// value and nil hold no keys. A Keys is immutable and safe for concurrent use.
type Keys struct {
	entries []entry
	admins  int // admin keys among entries
}

type entry struct {
	digest [sha256.Size]byte
	p      Principal
}

// New builds Keys from the plain-text API and admin keys, as config.Auth.Resolve
// returns them. An admin key grants everything an API key does. Both lists empty gives
// Keys that hold none (an open server). It fails, naming the list and index but never
// the key, on a key shorter than MinKeyLength, one that is not a valid bearer token
// (RFC 6750: A-Z, a-z, 0-9, - . _ ~ + / and trailing =), or one listed twice.
func New(apiKeys, adminKeys []string) (*Keys, error) {
	k := &Keys{entries: make([]entry, 0, len(apiKeys)+len(adminKeys))}
	where := map[[sha256.Size]byte]string{}
	ids := map[string]string{}
	add := func(list string, keys []string, admin bool) error {
		for i, key := range keys {
			at := fmt.Sprintf("%s[%d]", list, i)
			switch {
			case !tokenSyntax.MatchString(key):
				return fmt.Errorf("auth: %s is not a valid bearer token (A-Z, a-z, 0-9, - . _ ~ + / and trailing =)", at)
			case len(key) < MinKeyLength:
				return fmt.Errorf("auth: %s is shorter than %d characters", at, MinKeyLength)
			}
			d := sha256.Sum256([]byte(key))
			if first, dup := where[d]; dup {
				return fmt.Errorf("auth: %s is the same key as %s", at, first)
			}
			id := hex.EncodeToString(d[:4])
			if first, dup := ids[id]; dup {
				// Two keys whose digests share 32 bits: the ids would mix up their
				// generations, so one must be replaced. Chance: 2⁻³² per pair.
				return fmt.Errorf("auth: %s and %s share the key id %s; replace one of them", first, at, id)
			}
			where[d], ids[id] = at, at
			k.entries = append(k.entries, entry{digest: d, p: Principal{KeyID: id, Admin: admin}})
			if admin {
				k.admins++
			}
		}
		return nil
	}
	if err := add("apiKeys", apiKeys, false); err != nil {
		return nil, err
	}
	if err := add("adminKeys", adminKeys, true); err != nil {
		return nil, err
	}
	return k, nil
}

// Len returns how many keys k holds; 0 for nil.
func (k *Keys) Len() int {
	if k == nil {
		return 0
	}
	return len(k.entries)
}

// Lookup returns the Principal of token, or false when token is no key of k.
//
// It hashes token and compares the digest with every stored digest using
// subtle.ConstantTimeCompare, without stopping at a match, and selects the match
// with subtle.ConstantTimeSelect: the time taken depends on the token's length and the
// number of keys, not on which key matched or how much of one did. Comparing digests
// rather than keys means that even a timing leak in the comparison would tell an
// attacker about a hash, not about a key.
func (k *Keys) Lookup(token string) (Principal, bool) {
	if k.Len() == 0 {
		return Principal{}, false
	}
	d := sha256.Sum256([]byte(token))
	found, at := 0, 0
	for i := range k.entries {
		eq := subtle.ConstantTimeCompare(d[:], k.entries[i].digest[:])
		at = subtle.ConstantTimeSelect(eq, i, at)
		found |= eq
	}
	if found == 0 {
		return Principal{}, false
	}
	return k.entries[at].p, true
}

type principalKey struct{}

// NewContext returns ctx carrying p. The Store's checks call it; tests of code that
// reads the Principal may too.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the Principal the Store put in ctx, and false when there is
// none: auth is off (no keys configured), or the procedure is open to all.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Owner returns the KeyID of the caller in ctx, or "" when there is none (auth off).
// The inference layer records it with each generation it starts, to decide who may
// cancel it (MayCancel).
func Owner(ctx context.Context) string {
	p, _ := FromContext(ctx)
	return p.KeyID
}

// MayCancel reports whether the caller in ctx may cancel a generation that Owner
// returned owner for when it started: an admin key may cancel any generation, any
// other key only those started with it. With auth off both are "", so
// every caller may cancel every generation started with auth off, as before keys
// existed. A generation started before a reload turned keys on or off is left to
// admin keys (or to its own client, which may always disconnect).
//
// A refused Cancel should fail as an unknown generation id does (NotFound), so that
// one key cannot learn which ids another key's generations have.
func MayCancel(ctx context.Context, owner string) bool {
	p, _ := FromContext(ctx)
	return p.Admin || p.KeyID == owner
}
