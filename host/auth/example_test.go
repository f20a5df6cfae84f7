package auth_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/ulan-ai/ulan/host/auth"
)

func ExampleStore_Middleware() {
	const api, admin = "api-key-0123456789abcdef", "admin-key-0123456789abcdef"
	keys, err := auth.New([]string{api}, []string{admin})
	if err != nil {
		fmt.Println(err)
		return
	}
	store := auth.NewStore(keys)
	h := store.Middleware(nil, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		p, ok := auth.FromContext(r.Context())
		fmt.Println(r.URL.Path, "served; key:", ok, "admin:", p.Admin)
	}))
	for _, c := range []struct{ path, key string }{
		{"/ulan.v1.InferenceService/Tokenize", ""},
		{"/ulan.v1.InferenceService/Tokenize", api},
		{"/ulan.v1.PluginService/Reload", api},
		{"/ulan.v1.PluginService/Reload", admin},
		{"/grpc.health.v1.Health/Check", ""},
	} {
		req := httptest.NewRequest(http.MethodGet, c.path, nil)
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			fmt.Println(c.path, rec.Code, rec.Header().Get("WWW-Authenticate"))
		}
	}
	// Output:
	// /ulan.v1.InferenceService/Tokenize 401 Bearer realm="ulan"
	// /ulan.v1.InferenceService/Tokenize served; key: true admin: false
	// /ulan.v1.PluginService/Reload 403 Bearer realm="ulan", error="insufficient_scope"
	// /ulan.v1.PluginService/Reload served; key: true admin: true
	// /grpc.health.v1.Health/Check served; key: false admin: false
}
