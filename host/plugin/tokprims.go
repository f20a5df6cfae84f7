package plugin

import (
	"context"
	"encoding/binary"

	"github.com/tetratelabs/wazero/api"

	"github.com/ulan-ai/ulan/host/plugin/primitive"
)

// Tokenizer primitives (sdk/ABI.md §6.1). Patterns and rank tables are
// registered once per instance, usually from ulan_init, and referred to by
// small ids; compiled patterns are shared by every instance of a plugin.
// Each table or pattern counts against a per-instance limit so a plugin
// cannot make the host hold unbounded state.
const (
	maxPatterns   = 16
	maxRankTables = 4
	maxEncoders   = 4
	maxMerges     = 1 << 20
	maxPatternLen = 4096
)

// tokState is one instance's registered patterns and rank tables.
type tokState struct {
	patterns []primitive.Splitter // patterns and sequences of them
	ranks    []*primitive.Ranks
	encoders []*primitive.ByteEncoder
}

// tokenizerPrimitives returns the imports; state lives in a map keyed by
// the instance's module, filled as the instance registers.
func (p *Plugin) tokenizerPrimitives() map[string]hostFunc {
	i32 := api.ValueTypeI32
	bad := uint64(0xffffffff) // −1
	state := func(m api.Module) *tokState {
		v, _ := p.tokStates.LoadOrStore(m, &tokState{})
		return v.(*tokState)
	}
	forTokenizers := func(c *Config) bool { return c.Kind == KindTokenizer || c.Kind == "" }
	return map[string]hostFunc{
		// regex_compile(ptr, len) → pattern id, or −1
		"regex_compile": {
			params: []api.ValueType{i32, i32}, results: []api.ValueType{i32}, grant: forTokenizers,
			fn: api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
				st := state(m)
				expr, ok := m.Memory().Read(uint32(s[0]), uint32(s[1]))
				if !ok || len(expr) > maxPatternLen || len(st.patterns) >= maxPatterns {
					s[0] = bad
					return
				}
				pat, err := p.compilePattern(string(expr))
				if err != nil {
					p.errText.Store(m, err.Error())
					s[0] = bad
					return
				}
				st.patterns = append(st.patterns, pat)
				s[0] = uint64(len(st.patterns) - 1)
			}),
		},
		// regex_split(id, text, len, out, cap) → pieces (as [start, end) u32
		// byte offsets in out, written only if they fit), or −1
		"regex_split": {
			params: []api.ValueType{i32, i32, i32, i32, i32}, results: []api.ValueType{i32}, grant: forTokenizers,
			fn: api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
				st := state(m)
				id := int(int32(s[0]))
				text, ok := m.Memory().Read(uint32(s[1]), uint32(s[2]))
				if !ok || id < 0 || id >= len(st.patterns) {
					s[0] = bad
					return
				}
				spans, err := st.patterns[id].Split(string(text))
				if err != nil {
					p.errText.Store(m, err.Error())
					s[0] = bad
					return
				}
				if uint32(len(spans)) <= uint32(s[4]) {
					out, ok := m.Memory().Read(uint32(s[3]), uint32(8*len(spans)))
					if !ok {
						s[0] = bad
						return
					}
					for i, sp := range spans {
						binary.LittleEndian.PutUint32(out[8*i:], uint32(sp[0]))
						binary.LittleEndian.PutUint32(out[8*i+4:], uint32(sp[1]))
					}
				}
				s[0] = uint64(len(spans))
			}),
		},
		// regex_sequence(ids, n) → pattern id, or −1: the n registered
		// patterns applied in turn, each to every piece of the one before.
		"regex_sequence": {
			params: []api.ValueType{i32, i32}, results: []api.ValueType{i32}, grant: forTokenizers,
			fn: api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
				st := state(m)
				n := uint32(s[1])
				ids, ok := readI32s(m.Memory(), uint32(s[0]), min(n, primitive.MaxSequence+1))
				if !ok || n > primitive.MaxSequence || len(st.patterns) >= maxPatterns {
					s[0] = bad
					return
				}
				parts := make([]primitive.Splitter, len(ids))
				for i, id := range ids {
					if id < 0 || int(id) >= len(st.patterns) {
						s[0] = bad
						return
					}
					parts[i] = st.patterns[id]
				}
				seq, err := primitive.NewSequence(parts...)
				if err != nil {
					p.errText.Store(m, err.Error())
					s[0] = bad
					return
				}
				st.patterns = append(st.patterns, seq)
				s[0] = uint64(len(st.patterns) - 1)
			}),
		},
		// bpe_register(left, right, result, n) → table id, or −1; three i32
		// arrays of n merges in priority order.
		"bpe_register": {
			params: []api.ValueType{i32, i32, i32, i32}, results: []api.ValueType{i32}, grant: forTokenizers,
			fn: api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
				st := state(m)
				n := uint32(s[3])
				if n > maxMerges || len(st.ranks) >= maxRankTables {
					s[0] = bad
					return
				}
				arrays := make([][]int32, 3)
				for a := range arrays {
					var ok bool
					if arrays[a], ok = readI32s(m.Memory(), uint32(s[a]), n); !ok {
						s[0] = bad
						return
					}
				}
				r, err := primitive.NewRanks(arrays[0], arrays[1], arrays[2])
				if err != nil {
					s[0] = bad
					return
				}
				st.ranks = append(st.ranks, r)
				s[0] = uint64(len(st.ranks) - 1)
			}),
		},
		// bpe_merge(table, symbols, n, out, cap) → merged count (ids written
		// only if they fit), or −1
		"bpe_merge": {
			params: []api.ValueType{i32, i32, i32, i32, i32}, results: []api.ValueType{i32}, grant: forTokenizers,
			fn: api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
				st := state(m)
				id, n := int(int32(s[0])), uint32(s[2])
				if id < 0 || id >= len(st.ranks) || n > primitive.MaxMergeSymbols {
					s[0] = bad
					return
				}
				syms, ok := readI32s(m.Memory(), uint32(s[1]), n)
				if !ok {
					s[0] = bad
					return
				}
				merged, err := st.ranks[id].Merge(syms)
				if err != nil {
					s[0] = bad
					return
				}
				if uint32(len(merged)) <= uint32(s[4]) {
					out, ok := m.Memory().Read(uint32(s[3]), uint32(4*len(merged)))
					if !ok {
						s[0] = bad
						return
					}
					for i, v := range merged {
						binary.LittleEndian.PutUint32(out[4*i:], uint32(v))
					}
				}
				s[0] = uint64(len(merged))
			}),
		},
		// bpe_encoder(table, pattern, bytemap) → encoder id, or −1: a byte-level
		// encoder over a rank table and a pattern, where bytemap holds 256
		// i32 symbols, one per byte.
		"bpe_encoder": {
			params: []api.ValueType{i32, i32, i32}, results: []api.ValueType{i32}, grant: forTokenizers,
			fn: api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
				st := state(m)
				table, pat := int(int32(s[0])), int(int32(s[1]))
				syms, ok := readI32s(m.Memory(), uint32(s[2]), 256)
				if !ok || table < 0 || table >= len(st.ranks) || pat < 0 || pat >= len(st.patterns) || len(st.encoders) >= maxEncoders {
					s[0] = bad
					return
				}
				enc, err := primitive.NewByteEncoder(st.ranks[table], st.patterns[pat], [256]int32(syms))
				if err != nil {
					p.errText.Store(m, err.Error())
					s[0] = bad
					return
				}
				st.encoders = append(st.encoders, enc)
				s[0] = uint64(len(st.encoders) - 1)
			}),
		},
		// bpe_encode(encoder, text, len, out, cap) → id count, or −1: the ids
		// of text (split, bytes to symbols, merged), written if they fit.
		"bpe_encode": {
			params: []api.ValueType{i32, i32, i32, i32, i32}, results: []api.ValueType{i32}, grant: forTokenizers,
			fn: api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
				st := state(m)
				id := int(int32(s[0]))
				text, ok := m.Memory().Read(uint32(s[1]), uint32(s[2]))
				if !ok || id < 0 || id >= len(st.encoders) {
					s[0] = bad
					return
				}
				ids, err := st.encoders[id].Encode(string(text))
				if err != nil {
					p.errText.Store(m, err.Error())
					s[0] = bad
					return
				}
				if uint32(len(ids)) <= uint32(s[4]) {
					out, ok := m.Memory().Read(uint32(s[3]), uint32(4*len(ids)))
					if !ok {
						s[0] = bad
						return
					}
					for i, v := range ids {
						binary.LittleEndian.PutUint32(out[4*i:], uint32(v))
					}
				}
				s[0] = uint64(len(ids))
			}),
		},
		// bpe_merge_batch(table, symbols, n, lens, pieces, out, cap) → merged
		// count, or −1: the pieces' symbols one after another (lens gives
		// each piece's count); when the merged ids fit in cap, they are
		// written to out one piece after another and lens is overwritten
		// with each piece's merged count.
		"bpe_merge_batch": {
			params: []api.ValueType{i32, i32, i32, i32, i32, i32, i32}, results: []api.ValueType{i32}, grant: forTokenizers,
			fn: api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
				st := state(m)
				id, n, pieces := int(int32(s[0])), uint32(s[2]), uint32(s[4])
				if id < 0 || id >= len(st.ranks) || n > primitive.MaxMergeSymbols || pieces > n+1 {
					s[0] = bad
					return
				}
				syms, ok := readI32s(m.Memory(), uint32(s[1]), n)
				lens, ok2 := readI32s(m.Memory(), uint32(s[3]), pieces)
				if !ok || !ok2 {
					s[0] = bad
					return
				}
				merged, err := st.ranks[id].MergeBatch(syms, lens)
				if err != nil {
					s[0] = bad
					return
				}
				if uint32(len(merged)) <= uint32(s[6]) {
					out, ok := m.Memory().Read(uint32(s[5]), uint32(4*len(merged)))
					lensOut, ok2 := m.Memory().Read(uint32(s[3]), 4*pieces)
					if !ok || !ok2 {
						s[0] = bad
						return
					}
					for i, v := range merged {
						binary.LittleEndian.PutUint32(out[4*i:], uint32(v))
					}
					for i, v := range lens {
						binary.LittleEndian.PutUint32(lensOut[4*i:], uint32(v))
					}
				}
				s[0] = uint64(len(merged))
			}),
		},
	}
}

// compilePattern compiles a pattern once per plugin.
func (p *Plugin) compilePattern(expr string) (*primitive.Pattern, error) {
	if v, ok := p.patterns.Load(expr); ok {
		return v.(*primitive.Pattern), nil
	}
	pat, err := primitive.Compile(expr)
	if err != nil {
		return nil, err
	}
	v, _ := p.patterns.LoadOrStore(expr, pat)
	return v.(*primitive.Pattern), nil
}

// readI32s copies n little-endian int32 values from guest memory at ptr;
// ok is false when the range lies outside it.
func readI32s(m api.Memory, ptr, n uint32) ([]int32, bool) {
	raw, ok := m.Read(ptr, 4*n)
	if !ok {
		return nil, false
	}
	v := make([]int32, n)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return v, true
}
