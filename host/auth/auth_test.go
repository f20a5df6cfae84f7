package auth_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/auth"
)

const (
	apiKey   = "api-key-0123456789abcdef"
	apiKey2  = "api-key-2-0123456789abcdef"
	adminKey = "admin-key-0123456789abcdef"
)

// keyID is the KeyID a key is given: the first 8 hex digits of its SHA-256.
func keyID(key string) string {
	d := sha256.Sum256([]byte(key))
	return hex.EncodeToString(d[:4])
}

func mustKeys(t *testing.T, api, admin []string) *auth.Keys {
	t.Helper()
	k, err := auth.New(api, admin)
	require.NoError(t, err)
	return k
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		api, admin []string
		wantErr    string
		wantLen    int
	}{
		{name: "none"},
		{name: "both", api: []string{apiKey, apiKey2}, admin: []string{adminKey}, wantLen: 3},
		{name: "base64 padding", api: []string{"c2VjcmV0LXNlY3JldC1rZXk="}, wantLen: 1},
		{name: "too short", api: []string{apiKey, "short-1234"},
			wantErr: "auth: apiKeys[1] is shorter than 16 characters"},
		{name: "space", admin: []string{"admin key 0123456789"},
			wantErr: "auth: adminKeys[0] is not a valid bearer token (A-Z, a-z, 0-9, - . _ ~ + / and trailing =)"},
		{name: "empty", api: []string{""},
			wantErr: "auth: apiKeys[0] is not a valid bearer token (A-Z, a-z, 0-9, - . _ ~ + / and trailing =)"},
		{name: "in both lists", api: []string{apiKey}, admin: []string{adminKey, apiKey},
			wantErr: "auth: adminKeys[1] is the same key as apiKeys[0]"},
		{name: "twice in one list", api: []string{apiKey, apiKey2, apiKey},
			wantErr: "auth: apiKeys[2] is the same key as apiKeys[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := auth.New(tt.api, tt.admin)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				for _, key := range append(tt.api, tt.admin...) {
					if key != "" {
						require.NotContains(t, err.Error(), key, "errors never quote a key")
					}
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantLen, k.Len())
		})
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, []string{apiKey, apiKey2}, []string{adminKey})
	tests := []struct {
		token string
		want  auth.Principal
		ok    bool
	}{
		{token: apiKey, want: auth.Principal{KeyID: keyID(apiKey)}, ok: true},
		{token: apiKey2, want: auth.Principal{KeyID: keyID(apiKey2)}, ok: true},
		{token: adminKey, want: auth.Principal{KeyID: keyID(adminKey), Admin: true}, ok: true},
		{token: ""},
		{token: apiKey + "x"},
		{token: apiKey[:len(apiKey)-1]},
		{token: strings.ToUpper(apiKey)},
	}
	for _, tt := range tests {
		got, ok := k.Lookup(tt.token)
		require.Equal(t, tt.ok, ok, "%q", tt.token)
		require.Equal(t, tt.want, got, "%q", tt.token)
	}
	require.Len(t, keyID(apiKey), 8)

	var none *auth.Keys
	_, ok := none.Lookup(apiKey)
	require.False(t, ok)
	require.Zero(t, none.Len())
}

// TestKeysHoldNoPlaintext walks every byte a Keys value holds, through unexported
// fields, and finds no key in it.
func TestKeysHoldNoPlaintext(t *testing.T) {
	t.Parallel()
	keys := []string{apiKey, apiKey2, adminKey}
	k := mustKeys(t, keys[:2], keys[2:])
	var held []byte
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := range v.NumField() {
				walk(v.Field(i))
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Map:
			for _, mk := range v.MapKeys() {
				walk(mk)
				walk(v.MapIndex(mk))
			}
		case reflect.String:
			held = append(held, v.String()...)
			held = append(held, 0)
		case reflect.Uint8:
			held = append(held, byte(v.Uint()))
		case reflect.Bool, reflect.Int, reflect.Int64, reflect.Uint64:
		default:
			t.Fatalf("unexpected kind %v in Keys", v.Kind())
		}
	}
	walk(reflect.ValueOf(k))
	require.NotEmpty(t, held)
	for _, key := range keys {
		require.NotContains(t, string(held), key)
		d := sha256.Sum256([]byte(key))
		require.Contains(t, string(held), string(d[:]), "the digest is what is kept")
	}
}

func TestContext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, ok := auth.FromContext(ctx)
	require.False(t, ok)
	require.Empty(t, auth.Owner(ctx))

	p := auth.Principal{KeyID: "0123abcd"}
	got, ok := auth.FromContext(auth.NewContext(ctx, p))
	require.True(t, ok)
	require.Equal(t, p, got)
	require.Equal(t, "0123abcd", auth.Owner(auth.NewContext(ctx, p)))
}

func TestMayCancel(t *testing.T) {
	t.Parallel()
	off := context.Background()
	alice := auth.NewContext(off, auth.Principal{KeyID: "aaaaaaaa"})
	bob := auth.NewContext(off, auth.Principal{KeyID: "bbbbbbbb"})
	admin := auth.NewContext(off, auth.Principal{KeyID: "cccccccc", Admin: true})
	tests := []struct {
		name  string
		ctx   context.Context
		owner string
		want  bool
	}{
		{"auth off, started with auth off", off, "", true},
		{"owner", alice, "aaaaaaaa", true},
		{"another key", bob, "aaaaaaaa", false},
		{"admin, any owner", admin, "aaaaaaaa", true},
		{"admin, started with auth off", admin, "", true},
		{"key, started with auth off", alice, "", false},
		{"auth off, started with a key", off, "aaaaaaaa", false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, auth.MayCancel(tt.ctx, tt.owner), tt.name)
	}
}
