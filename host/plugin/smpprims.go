package plugin

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/tetratelabs/wazero/api"

	"github.com/ulan-ai/ulan/host/plugin/primitive"
)

// MaxHistory bounds the tokens the host records for one sampler sequence:
// a million-token context (DeepSeek-V4's).
const MaxHistory = 1 << 20

// smpState is one sampler instance's sequence histories, keyed by the
// handles its smp_open returned. The host records them (SamplerBatch.Record)
// and the plugin reads them with the history import.
type smpState struct {
	mu   sync.Mutex
	hist map[int64][]int32
	// step are the rows of the smp_step call in flight (nil between
	// calls), whose log-sum-exps row_lse gives.
	step []SamplerRow
}

// setStep records the rows of the smp_step call about to run (nil once it
// returned).
func (st *smpState) setStep(rows []SamplerRow) {
	st.mu.Lock()
	st.step = rows
	st.mu.Unlock()
}

// rowLSE is row_lse: row i's log-sum-exp in the call in flight, computed
// by its LoadLSE when the caller left it NaN; NaN outside smp_step, for a
// row that is not in the step, or when nothing can give it.
func (st *smpState) rowLSE(i uint32) float32 {
	st.mu.Lock()
	var r *SamplerRow
	if int64(i) < int64(len(st.step)) {
		r = &st.step[i]
	}
	st.mu.Unlock()
	nan := float32(math.NaN())
	switch {
	case r == nil:
		return nan
	case r.LSE == r.LSE || r.LoadLSE == nil:
		return r.LSE
	}
	r.LSE = r.LoadLSE() // once per row and call
	return r.LSE
}

func (p *Plugin) samplerState(m api.Module) *smpState {
	v, _ := p.smpStates.LoadOrStore(m, &smpState{hist: map[int64][]int32{}})
	return v.(*smpState)
}

// SetVocabulary gives the plugin's token_bytes import the model's
// vocabulary: token id → its bytes, as the tokenizer exports it. Until it
// is set, token_bytes answers −1. It may be called at any time; calls in
// flight see the old or the new vocabulary.
func (p *Plugin) SetVocabulary(vocab [][]byte) { p.vocab.Store(&vocab) }

// Record appends ids to the history of sequence h (the prompt when it
// opens, then each token the host chose), which the plugin reads with the
// history import. A history is bounded by MaxHistory.
func (b *SamplerBatch) Record(h int64, ids ...int32) error {
	if b.dead || b.inst == nil {
		return fmt.Errorf("plugin %s: %w", b.p.cfg.ID, errSessionDead)
	}
	st := b.p.samplerState(b.inst.mod)
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.hist[h])+len(ids) > MaxHistory {
		return fmt.Errorf("plugin %s: sequence %d: a history of more than %d tokens", b.p.cfg.ID, h, MaxHistory)
	}
	st.hist[h] = append(st.hist[h], ids...)
	return nil
}

// forgetSequence drops a closed sequence's history.
func (b *SamplerBatch) forgetSequence(h int64) {
	if b.inst == nil {
		return
	}
	st := b.p.samplerState(b.inst.mod)
	st.mu.Lock()
	delete(st.hist, h)
	st.mu.Unlock()
}

// samplerStatePrimitives are the sampler imports that read host state
// (sdk/ABI.md §4): a sequence's history, a token's bytes, and the top-p
// cut, which needs none but belongs with them. Each answers −1 for a bad
// range or argument instead of trapping.
func (p *Plugin) samplerStatePrimitives() map[string]hostFunc {
	i32, i64, f32 := api.ValueTypeI32, api.ValueTypeI64, api.ValueTypeF32
	bad := uint64(0xffffffff) // −1
	return map[string]hostFunc{
		// history(h, buf, cap) → n: writes the last min(n, cap) token ids of
		// sequence h to buf, oldest first, and returns n, the history's length.
		"history": {
			params: []api.ValueType{i64, i32, i32}, results: []api.ValueType{i32}, grant: forSamplers,
			fn: api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
				st := p.samplerState(m)
				st.mu.Lock()
				defer st.mu.Unlock()
				hist, ok := st.hist[int64(s[0])]
				capN := uint32(s[2])
				if !ok || capN > MaxHistory || uint32(s[1])%4 != 0 {
					s[0] = bad
					return
				}
				n := min(uint32(len(hist)), capN)
				buf, ok := m.Memory().Read(uint32(s[1]), 4*n)
				if !ok {
					s[0] = bad
					return
				}
				for i, id := range hist[uint32(len(hist))-n:] {
					binary.LittleEndian.PutUint32(buf[4*i:], uint32(id))
				}
				s[0] = uint64(uint32(len(hist)))
			}),
		},
		// token_bytes(id, buf, cap) → n: writes the first min(n, cap) bytes of
		// token id to buf and returns n, the token's length.
		"token_bytes": {
			params: []api.ValueType{i32, i32, i32}, results: []api.ValueType{i32}, grant: forSamplers,
			fn: api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
				v := p.vocab.Load()
				id := int32(s[0])
				if v == nil || id < 0 || int(id) >= len(*v) {
					s[0] = bad
					return
				}
				tok := (*v)[id]
				n := min(uint32(len(tok)), uint32(s[2]))
				if !m.Memory().Write(uint32(s[1]), tok[:n]) {
					s[0] = bad
					return
				}
				s[0] = uint64(uint32(len(tok)))
			}),
		},
		// row_lse(row) → lse: the log-sum-exp of row (its index in the step
		// arena) of the smp_step call in flight, NaN outside one or for a
		// row it does not have (sdk/ABI.md §4, §6.2).
		"row_lse": {
			params: []api.ValueType{i32}, results: []api.ValueType{f32}, grant: forSamplers,
			fn: api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
				s[0] = uint64(math.Float32bits(p.samplerState(m).rowLSE(uint32(s[0]))))
			}),
		},
		// top_p_cut(probs, n, p) → m: how many leading probs reach mass p.
		"top_p_cut": {
			params: []api.ValueType{i32, i32, f32}, results: []api.ValueType{i32}, grant: forSamplers,
			fn: overProbs(primitive.TopPCut),
		},
	}
}
