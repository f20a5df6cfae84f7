package plugin

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/ulan-ai/ulan/host/plugin/internal/meter"
)

// ManifestSection is the custom section that carries a plugin's manifest
// (sdk/ABI.md §7).
const ManifestSection = "ulan.manifest"

// Kind is what a plugin does.
type Kind string

// The plugin kinds.
const (
	KindTokenizer Kind = "tokenizer"
	KindSampler   Kind = "sampler"
	KindHook      Kind = "hook"
)

// Manifest is a plugin's description of itself.
type Manifest struct {
	ABI          int             `json:"abi"`
	Name         string          `json:"name"`
	Version      string          `json:"version"`
	Kind         Kind            `json:"kind"`
	ConfigSchema json.RawMessage `json:"config_schema,omitempty"`
	Needs        Needs           `json:"needs"`
	// Hook says more about a hook (kind hook only).
	Hook *HookSpec `json:"hook,omitempty"`
	// Sampler says more about a sampler (kind sampler only).
	Sampler *SamplerSpec `json:"sampler,omitempty"`
}

// SamplerSpec is a sampler manifest's own section (sdk/ABI.md §7).
type SamplerSpec struct {
	// LSE says when the plugin reads a row's full log-sum-exp: "eager" (or
	// absent), the host computes it for every row and writes it to the
	// step arena; "on_demand", the host may leave the arena's lse NaN and
	// the plugin asks for it with the row_lse import when it needs it
	// (sdk/ABI.md §6.2).
	LSE string `json:"lse,omitempty"`
}

// The values of SamplerSpec.LSE.
const (
	LSEEager    = "eager"
	LSEOnDemand = "on_demand"
)

// HookSpec is a hook manifest's own section (sdk/ABI.md §7).
type HookSpec struct {
	// Channels are the channels whose deltas the hook sees: content,
	// reasoning, tool_arguments; empty means all.
	Channels []string `json:"channels,omitempty"`
	// MaxHoldbackBytes bounds the text the hook may hold back at once:
	// the bytes it may answer in a row with no text (HoldbackBound).
	MaxHoldbackBytes int `json:"max_holdback_bytes,omitempty"`
	// Class is "safety" for a hook whose failure or stop is a content
	// filter, or "" for any other.
	Class string `json:"class,omitempty"`
}

// HookChannelNames are the channel names a hook manifest may list, in
// HookChannel order.
var HookChannelNames = []string{"content", "reasoning", "tool_arguments"}

// Sees reports whether a hook with this spec sees deltas of channel ch.
func (h *HookSpec) Sees(ch HookChannel) bool {
	if h == nil || len(h.Channels) == 0 {
		return true
	}
	return int(ch) >= 0 && int(ch) < len(HookChannelNames) && slices.Contains(h.Channels, HookChannelNames[ch])
}

// HoldbackBound is how many bytes in a row the hook may answer with no text
// before the host counts it a failure: the manifest's max_holdback_bytes, or
// MaxHookText when it declares none.
func (h *HookSpec) HoldbackBound() int {
	if h == nil || h.MaxHoldbackBytes == 0 {
		return MaxHookText
	}
	return h.MaxHoldbackBytes
}

// Safety reports whether the hook is a safety hook.
func (h *HookSpec) Safety() bool { return h != nil && h.Class == "safety" }

// Needs are what a plugin asks the operator for.
type Needs struct {
	MemoryPages   uint32   `json:"memory_pages,omitempty"`
	CallTimeoutMS int      `json:"call_timeout_ms,omitempty"`
	Imports       []string `json:"imports,omitempty"`
	Trust         string   `json:"trust,omitempty"`
}

// export is a required export's signature.
type export struct {
	name            string
	params, results []api.ValueType
}

var (
	i32, i64 = api.ValueTypeI32, api.ValueTypeI64
	vt       = func(t ...api.ValueType) []api.ValueType { return t }
	// common are the exports every kind needs (sdk/ABI.md §3, §5).
	common = []export{
		{"ulan_alloc", vt(i32), vt(i32)},
		{"ulan_free", vt(i32), nil},
		{"ulan_init", vt(i32, i32), vt(i32)},
	}
	// kindExports are each kind's required exports (sdk/ABI.md §6).
	kindExports = map[Kind][]export{
		KindTokenizer: {
			{"tok_info", nil, vt(i64)},
			{"tok_vocab", vt(i32, i32), vt(i64)},
			{"tok_encode", vt(i32, i32, i32), vt(i64)},
			{"tok_decode", vt(i32, i32, i32), vt(i64)},
		},
		KindSampler: {
			{"smp_open", vt(i32, i32), vt(i64)},
			{"smp_step", vt(i32, i32), vt(i32)},
			{"smp_close", vt(i64), nil},
		},
		KindHook: {
			{"hook_open", vt(i32, i32), vt(i64)},
			{"hook_delta", vt(i64, i32, i32, i32, i32, i32), vt(i64)},
			{"hook_end", vt(i64, i32), vt(i64)},
			{"hook_close", vt(i64), nil},
		},
	}
)

// optionalExports are exports a kind may have; when present, their
// signatures are checked.
var optionalExports = map[Kind][]export{
	KindTokenizer: {{"tok_chat", vt(i32, i32), vt(i64)}},
}

// ReadManifest parses the manifest section of a compiled module (compiled by
// a runtime with custom sections kept).
func ReadManifest(m wazero.CompiledModule) (Manifest, error) {
	var raw []byte
	for _, s := range m.CustomSections() {
		if s.Name() == ManifestSection {
			if raw != nil {
				return Manifest{}, fmt.Errorf("two %s sections", ManifestSection)
			}
			raw = s.Data()
		}
	}
	if raw == nil {
		return Manifest{}, fmt.Errorf("no %s custom section", ManifestSection)
	}
	return parseManifest(raw)
}

// parseManifest decodes and validates a manifest's JSON.
func parseManifest(raw []byte) (Manifest, error) {
	var man Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&man); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	return man, man.validate()
}

func (m Manifest) validate() error {
	var errs []error
	if m.ABI != 1 {
		errs = append(errs, fmt.Errorf("manifest: abi %d, but this host speaks ABI 1", m.ABI))
	}
	if _, ok := kindExports[m.Kind]; !ok {
		errs = append(errs, fmt.Errorf("manifest: kind %q is not tokenizer, sampler or hook", m.Kind))
	}
	if m.Name == "" || m.Version == "" {
		errs = append(errs, errors.New("manifest: name and version are required"))
	}
	if m.Needs.Trust != "" && m.Needs.Trust != "sandboxed" && m.Needs.Trust != "trusted" {
		errs = append(errs, fmt.Errorf("manifest: needs.trust %q is not sandboxed or trusted", m.Needs.Trust))
	}
	if h := m.Hook; h != nil {
		if m.Kind != KindHook {
			errs = append(errs, fmt.Errorf("manifest: a hook section in a %s's manifest", m.Kind))
		}
		for i, c := range h.Channels {
			if !slices.Contains(HookChannelNames, c) {
				errs = append(errs, fmt.Errorf("manifest: hook.channels[%d] %q is not content, reasoning or tool_arguments", i, c))
			}
		}
		if h.MaxHoldbackBytes < 0 || h.MaxHoldbackBytes > MaxHookText {
			errs = append(errs, fmt.Errorf("manifest: hook.max_holdback_bytes %d is not in [0, %d]", h.MaxHoldbackBytes, MaxHookText))
		}
		if h.Class != "" && h.Class != "safety" {
			errs = append(errs, fmt.Errorf("manifest: hook.class %q is not safety (or absent)", h.Class))
		}
	}
	if sm := m.Sampler; sm != nil {
		if m.Kind != KindSampler {
			errs = append(errs, fmt.Errorf("manifest: a sampler section in a %s's manifest", m.Kind))
		}
		if sm.LSE != "" && sm.LSE != LSEEager && sm.LSE != LSEOnDemand {
			errs = append(errs, fmt.Errorf("manifest: sampler.lse %q is not eager or on_demand (or absent)", sm.LSE))
		}
	}
	return errors.Join(errs...)
}

// checkExports checks that a module exports what its kind requires, and
// any optional export it has, with the right signatures.
func checkExports(m wazero.CompiledModule, kind Kind) error {
	have := m.ExportedFunctions()
	var errs []error
	for _, e := range append(slices.Clone(common), kindExports[kind]...) {
		f, ok := have[e.name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("a %s must export %s", kind, e.name))
		case !slices.Equal(f.ParamTypes(), e.params) || !slices.Equal(f.ResultTypes(), e.results):
			errs = append(errs, fmt.Errorf("export %s has signature %s, want %s", e.name, signature(f.ParamTypes(), f.ResultTypes()), signature(e.params, e.results)))
		}
	}
	for _, e := range optionalExports[kind] {
		if f, ok := have[e.name]; ok && (!slices.Equal(f.ParamTypes(), e.params) || !slices.Equal(f.ResultTypes(), e.results)) {
			errs = append(errs, fmt.Errorf("export %s has signature %s, want %s", e.name, signature(f.ParamTypes(), f.ResultTypes()), signature(e.params, e.results)))
		}
	}
	return errors.Join(errs...)
}

func signature(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	return "(" + names(params) + ") → (" + names(results) + ")"
}

// checkConfig validates a plugin's config against its manifest's schema and
// names the offending field.
func checkConfig(schema, config json.RawMessage) error {
	if len(schema) == 0 {
		return nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return fmt.Errorf("manifest: config_schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("config.json", doc); err != nil {
		return fmt.Errorf("manifest: config_schema: %w", err)
	}
	s, err := c.Compile("config.json")
	if err != nil {
		return fmt.Errorf("manifest: config_schema: %w", err)
	}
	if len(config) == 0 {
		config = json.RawMessage("{}")
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(config))
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := s.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return fmt.Errorf("config: %s", describeViolation(ve))
		}
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// describeViolation names the deepest offending field and what is wrong.
func describeViolation(ve *jsonschema.ValidationError) string {
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	path := "/" + strings.Join(ve.InstanceLocation, "/")
	msg := ve.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return fmt.Sprintf("at %s: %s", path, msg)
}

// checkNeeds refuses a plugin whose needs exceed the operator's grants,
// naming each missing grant.
func checkNeeds(n Needs, cfg Config) error {
	var errs []error
	if n.MemoryPages > cfg.MemoryPages {
		errs = append(errs, fmt.Errorf("needs %d memory pages, the operator grants %d", n.MemoryPages, cfg.MemoryPages))
	}
	if n.CallTimeoutMS > 0 && time.Duration(n.CallTimeoutMS)*time.Millisecond > cfg.CallTimeout {
		errs = append(errs, fmt.Errorf("needs calls of up to %d ms, the operator grants %v", n.CallTimeoutMS, cfg.CallTimeout))
	}
	for _, imp := range n.Imports {
		switch imp {
		case "log", "set_error":
		case "clock":
			if !cfg.Grants.Clock {
				errs = append(errs, errors.New(`needs the "clock" grant`))
			}
		default:
			errs = append(errs, fmt.Errorf("needs import %q, which the operator did not grant", imp))
		}
	}
	if n.Trust == "trusted" && cfg.Tier != Trusted {
		errs = append(errs, errors.New("asks for the trusted tier, which the operator did not grant"))
	}
	return errors.Join(errs...)
}

// EmbedManifest appends the manifest as a ulan.manifest custom section to a
// WebAssembly binary (custom sections may follow every other section and do
// not change the code). A module that already has one is refused.
func EmbedManifest(wasm []byte, manifest []byte) ([]byte, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, errors.New("not a WebAssembly binary")
	}
	if bytes.Contains(wasm, []byte(ManifestSection)) {
		return nil, fmt.Errorf("the module already has a %s section", ManifestSection)
	}
	var man Manifest
	if err := json.Unmarshal(manifest, &man); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var payload []byte
	payload = binary.AppendUvarint(payload, uint64(len(ManifestSection)))
	payload = append(payload, ManifestSection...)
	payload = append(payload, manifest...)
	out := slices.Clone(wasm)
	out = append(out, 0) // custom section id
	out = binary.AppendUvarint(out, uint64(len(payload)))
	return append(out, payload...), nil
}

// Description is what `ulan plugin inspect` shows of a module.
type Description struct {
	// ABI is the major version the marker export declares, 0 without one.
	ABI int
	// Reactor reports an _initialize export.
	Reactor bool
	// Manifest is the embedded manifest, if any; ManifestErr says why it
	// could not be read.
	Manifest    *Manifest
	ManifestErr error
	// Exports and Imports are function signatures by name ("module.name"
	// for imports), sorted.
	Exports []string
	Imports []string
}

// toolCache is an in-memory compilation cache for the tools (Describe,
// Conform), so that a module they look at more than once is compiled once.
var toolCache = wazero.NewCompilationCache()

// Describe compiles a module (without instantiating it) and describes it,
// as the module is: what the sandboxed tier compiles is its metered copy.
func Describe(ctx context.Context, wasm []byte) (*Description, error) {
	if err := meter.CheckCounts(wasm); err != nil {
		return nil, fmt.Errorf("not a valid WebAssembly module: %w", err)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCustomSections(true).
		WithCompilationCache(toolCache))
	defer rt.Close(ctx)
	m, err := compile(ctx, rt, wasm)
	if err != nil {
		return nil, fmt.Errorf("not a valid WebAssembly module: %w", err)
	}
	d := &Description{}
	for name, f := range m.ExportedFunctions() {
		d.Exports = append(d.Exports, name+signature(f.ParamTypes(), f.ResultTypes()))
		if name == MarkerExport {
			d.ABI = 1
		}
		if name == "_initialize" {
			d.Reactor = true
		}
	}
	for _, f := range m.ImportedFunctions() {
		mod, name, _ := f.Import()
		d.Imports = append(d.Imports, mod+"."+name+signature(f.ParamTypes(), f.ResultTypes()))
	}
	slices.Sort(d.Exports)
	slices.Sort(d.Imports)
	if man, err := ReadManifest(m); err != nil {
		d.ManifestErr = err
	} else {
		d.Manifest = &man
	}
	return d, nil
}
