package config

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// MinKeyLength is the fewest characters an API or admin key may have. host/auth holds
// keys to the same rule.
const MinKeyLength = 16

// envRefPrefix marks a server.auth entry that names an environment variable. A key
// itself cannot start with it: ':' is not a bearer-token character.
const envRefPrefix = "env:"

var (
	// tokenSyntax is RFC 6750's b64token: what a bearer token may be made of, so a key
	// that passes can be sent in an Authorization header as it is.
	tokenSyntax = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Resolve returns the API and admin keys, each env:NAME entry replaced by the value of
// the environment variable NAME. It checks them as Validate does and returns the same
// Problems (keyed like server.auth.api_keys[1], never quoting a key) with nil lists
// when any is wrong. An env:NAME entry may not name a ULAN_* variable: those set
// configuration keys. The keys are secrets: hand them to host/auth, which keeps only
// their digests, and do not log them.
func (a Auth) Resolve() (apiKeys, adminKeys []string, err error) {
	api, admin, ps := a.resolve(os.LookupEnv)
	if len(ps) > 0 {
		return nil, nil, ps
	}
	return api, admin, nil
}

// resolve reads the keys of both lists through lookup and checks them: each well
// formed and long enough, none listed twice in either list or across them.
func (a Auth) resolve(lookup func(string) (string, bool)) (apiKeys, adminKeys []string, ps Problems) {
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
	}
	seen := map[string]string{} // key → the entry that first held it
	list := func(name string, entries []string) []string {
		var out []string
		for i, e := range entries {
			k := fmt.Sprintf("server.auth.%s[%d]", name, i)
			v, what := e, "is"
			if ref, ok := strings.CutPrefix(e, envRefPrefix); ok {
				switch {
				case !envName.MatchString(ref):
					add(k, "%q does not name an environment variable (use env:NAME, NAME being A-Z, a-z, 0-9 and _)", clip(e))
					continue
				case strings.HasPrefix(ref, envPrefix):
					// Load reads every ULAN_* variable as a configuration key and
					// refuses the ones that name none.
					add(k, "%s: variables named %s* set configuration keys; keep the key in another, such as env:ALICE_API_KEY", e, envPrefix)
					continue
				}
				var set bool
				v, set = lookup(ref)
				if !set || v == "" {
					add(k, "environment variable %s (%s) is not set or empty", ref, e)
					continue
				}
				what = e + " holds a key that is"
			}
			if msg := checkKey(v); msg != "" {
				add(k, "%s %s", what, msg)
				continue
			}
			if first, dup := seen[v]; dup {
				add(k, "%s the same key as %s; list each key once (an admin key also grants everything an API key does)", what, first)
				continue
			}
			seen[v] = k
			out = append(out, v)
		}
		return out
	}
	apiKeys = list("api_keys", a.APIKeys)
	adminKeys = list("admin_keys", a.AdminKeys)
	return apiKeys, adminKeys, ps
}

// checkKey returns what is wrong with a key, as the end of a sentence whose subject is
// the key, or "". It never quotes the key, nor says how long it is.
func checkKey(v string) string {
	switch {
	case v == "":
		return "empty"
	case !tokenSyntax.MatchString(v):
		return "not a valid bearer token: use only A-Z, a-z, 0-9, '-', '.', '_', '~', '+', '/', and '=' at the end (no spaces or commas)"
	case len(v) < MinKeyLength:
		// The length is not given: ValidateConfig checks files sent over the API, and
		// their env:NAME entries must not tell the caller about the server's
		// environment beyond what cannot be avoided.
		return fmt.Sprintf("shorter than %d characters (make a key with openssl rand -hex 32)", MinKeyLength)
	}
	return ""
}
