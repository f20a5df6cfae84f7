package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// KeyInfo describes one configuration key, for the README's reference and for tests.
type KeyInfo struct {
	// Key is the key's dotted path, such as server.listen.
	Key string
	// Default is the built-in value as it would be written in YAML, such as 30s or [].
	Default string
	// Description is one line saying what the key controls.
	Description string
	// Live is true when a running server picks up a new value without a restart.
	Live bool
}

// keyDoc is what the struct tags cannot say about a key. A test checks that every leaf
// of Config has one.
type keyDoc struct {
	desc string
	live bool
}

var docs = map[string]keyDoc{
	"server.listen":               {desc: "host:port the API listens on; an empty host listens on every interface"},
	"server.drain_timeout":        {desc: "how long shutdown waits for requests in flight before closing them"},
	"server.read_header_timeout":  {desc: "how long a client may take to send its request headers"},
	"server.idle_timeout":         {desc: "how long an idle keep-alive connection stays open"},
	"server.cors.allowed_origins": {desc: `browser origins allowed to call the API, such as https://app.example.com, or "*"; empty allows none`, live: true},
	"server.cors.max_age":         {desc: "how long browsers may cache a CORS preflight response (whole seconds)", live: true},
	"server.tls.cert_file":        {desc: "PEM certificate chain to serve HTTPS with, re-read when the file changes; set with key_file, or neither for plain HTTP"},
	"server.tls.key_file":         {desc: "PEM private key for cert_file, re-read when the file changes"},
	"server.auth.api_keys":        {desc: "bearer tokens allowed to call the API (each the key or env:NAME); with admin_keys empty too, the API is open", live: true},
	"server.auth.admin_keys":      {desc: "bearer tokens that may also cancel any generation and, once one is set, alone may reload or validate plugin configuration and read /metrics (each the key or env:NAME)", live: true},
	"model.path":                  {desc: "GGUF model file or Hugging Face model directory (config.json, *.safetensors, tokenizer.json) to load at start-up; empty serves a built-in demo model with random weights"},
	"model.threads":               {desc: "goroutines per engine operation; 0 means one per CPU"},
	"model.kv_cache":              {desc: "KV-cache memory budget; sequences that do not fit are refused"},
	"model.max_running":           {desc: "sequences decoded together in one step; later requests wait in the admission queue"},
	"model.max_queue":             {desc: "requests that may wait for admission; more are refused with ResourceExhausted"},
	"model.step_tokens":           {desc: "token budget of one engine step: a token per decoding sequence plus prefill chunks"},
	"limits.max_request_bytes":    {desc: "largest request body accepted, from 1KiB to 1GiB"},
	"limits.max_prompt_bytes":     {desc: "largest prompt accepted within a request; at most max_request_bytes"},
	"limits.max_tokens":           {desc: "largest max_tokens a request may ask for, from 1 to 16777216"},
	"log.level":                   {desc: "least severe log level written: debug, info, warn or error"},
	"log.format":                  {desc: "log format: text or json"},
	"plugins":                     {desc: "WebAssembly plugins to load, each with id, module, sha256, config, grants, failure_policy and pool_size (YAML file only)", live: true},
	"pipelines":                   {desc: "pipelines of plugins, each with name, tokenizer, sampler, hooks and default (YAML file only)", live: true},
}

// kind is how a leaf's values are read and written; see normalize in load.go.
type kind int

const (
	kindString kind = iota
	kindInt
	kindDuration
	kindSize
	kindStrings
	// kindList is a list of mappings, each decoded into a struct (Config.Plugins); it
	// comes from the YAML file only.
	kindList
	// kindBool and kindMap appear only as fields of a kindList element: a boolean, and
	// a free-form mapping of JSON-compatible values.
	kindBool
	kindMap
)

// expected names what a value of the kind looks like, for problems.
func (k kind) expected() string {
	switch k {
	case kindInt:
		return "an integer"
	case kindDuration:
		return "a duration such as 30s"
	case kindSize:
		return "a size such as 32MiB"
	case kindStrings:
		return "a list of strings"
	case kindList:
		return "a list of mappings"
	case kindBool:
		return "true or false"
	case kindMap:
		return "a mapping"
	}
	return "a string"
}

// leaf is one key of Config with a value, as opposed to a section such as server.cors.
type leaf struct {
	key   string
	index []int // reflect field index path from Config
	kind  kind
	elem  reflect.Type // a kindList's element struct
}

// leaves lists Config's keys in struct order; sections holds the keys of its nested
// structs; envNames maps ULAN_SERVER_DRAIN_TIMEOUT to server.drain_timeout. Key names
// contain underscores, so an environment variable's name cannot be split into a path
// and has to be looked up.
var (
	leaves   []leaf
	leafKeys = map[string]leaf{}
	sections = map[string]bool{}
	envNames = map[string]string{}
)

const envPrefix = "ULAN_"

func init() {
	walk(reflect.TypeFor[Config](), "", nil)
	for _, l := range leaves {
		leafKeys[l.key] = l
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(l.key, ".", "_"))
		if other, ok := envNames[name]; ok {
			panic(fmt.Sprintf("config: keys %s and %s share environment variable %s", other, l.key, name))
		}
		envNames[name] = l.key
	}
}

// walk records the leaves and sections of struct type t. It panics on a field type it
// cannot read from text, which only a change to Config could bring.
func walk(t reflect.Type, prefix string, index []int) {
	for i := range t.NumField() {
		f := t.Field(i)
		key := prefix + f.Tag.Get("koanf")
		idx := append(slices.Clone(index), i)
		if f.Type.Kind() == reflect.Struct {
			sections[key] = true
			walk(f.Type, key+".", idx)
			continue
		}
		k, ok := kindOf(f.Type)
		if !ok || k == kindBool || k == kindMap {
			panic(fmt.Sprintf("config: key %s has unsupported type %v", key, f.Type))
		}
		lf := leaf{key: key, index: idx, kind: k}
		if k == kindList {
			lf.elem = f.Type.Elem()
			checkElem(key, lf.elem)
		}
		leaves = append(leaves, lf)
	}
}

// kindOf returns the kind of a field of type t; a struct is not a kind but a section
// (or, in a list element, a nested mapping).
func kindOf(t reflect.Type) (kind, bool) {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return kindDuration, true
	case t == reflect.TypeFor[ByteSize]():
		return kindSize, true
	case t.Kind() == reflect.String:
		return kindString, true
	case t.Kind() == reflect.Int:
		return kindInt, true
	case t.Kind() == reflect.Bool:
		return kindBool, true
	case t == reflect.TypeFor[[]string]():
		return kindStrings, true
	case t == reflect.TypeFor[map[string]any]():
		return kindMap, true
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		return kindList, true
	}
	return 0, false
}

// checkElem panics on a list element field that decodeStruct cannot fill, which only a
// change to Config could bring.
func checkElem(key string, t reflect.Type) {
	for f := range t.Fields() {
		fk := key + "[]." + f.Tag.Get("koanf")
		if f.Type.Kind() == reflect.Struct {
			checkElem(fk, f.Type)
			continue
		}
		if k, ok := kindOf(f.Type); !ok || k == kindList {
			panic(fmt.Sprintf("config: key %s has unsupported type %v", fk, f.Type))
		}
	}
}

// Keys returns every key of Config in struct order, with its default and description.
func Keys() []KeyInfo {
	def := reflect.ValueOf(Default())
	out := make([]KeyInfo, len(leaves))
	for i, l := range leaves {
		out[i] = KeyInfo{
			Key:         l.key,
			Default:     formatValue(def.FieldByIndex(l.index).Interface()),
			Description: docs[l.key].desc,
			Live:        docs[l.key].live,
		}
	}
	return out
}

// RestartRequired returns, sorted, the keys whose values differ between running and next
// and that a running server cannot pick up live: those need a restart to take effect.
func RestartRequired(running, next Config) []string {
	a, b := reflect.ValueOf(running), reflect.ValueOf(next)
	var out []string
	for _, l := range leaves {
		if docs[l.key].live || sameValue(a.FieldByIndex(l.index), b.FieldByIndex(l.index)) {
			continue
		}
		out = append(out, l.key)
	}
	slices.Sort(out)
	return out
}

// sameValue compares two leaf values, taking a nil slice and an empty one as equal: both
// mean "none".
func sameValue(a, b reflect.Value) bool {
	if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// formatValue writes a leaf value as it would appear in YAML, in its canonical form (see
// normalize): 2m rather than 2m0s, 32MiB rather than 33554432.
func formatValue(v any) string {
	switch v := v.(type) {
	case string:
		if v == "" {
			return `""`
		}
		return v
	case []string:
		// Quoted, as "*" alone would be a YAML alias.
		q := make([]string, len(v))
		for i, e := range v {
			q[i] = strconv.Quote(e)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case int:
		return strconv.Itoa(v)
	case time.Duration:
		return formatDuration(v)
	case ByteSize:
		return v.String()
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.Len() == 0 {
		return "[]"
	}
	return fmt.Sprint(v)
}

// formatDuration drops the zero minutes and seconds that time.Duration.String writes.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
