package plugin

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"go.opentelemetry.io/otel/trace"
)

// SamplerRow is one sequence's row of a sampler step: its handle, the
// candidates after the host's own stages and the row's randomness.
type SamplerRow struct {
	Handle   int64
	Position int32
	U0, U1   float32
	// LSE is the log-sum-exp of the whole row; NaN when the caller has not
	// computed it, which it may leave for a plugin whose LSEOnDemand is
	// true (any other plugin must get it).
	LSE float32
	// LoadLSE, when not nil, gives the row's log-sum-exp when the plugin
	// asks for it with the row_lse import (sdk/ABI.md §4) and LSE is NaN.
	// It runs on the goroutine that called Step, during the call.
	LoadLSE func() float32
	IDs     []int32
	Logits  []float32
	// Span, when it records, is the span of the request the row belongs to:
	// the step's call gets a span of its own, under the first row's Span and
	// linked to the others' (one call serves many requests). Nil for none.
	Span trace.Span
}

// SamplerOutput is what the plugin made of a row: adjusted logits
// (processor mode) or a chosen token (selector mode; −1 in processor mode),
// or a request for more candidates (Widen).
type SamplerOutput struct {
	Logits []float32
	Token  int32
	// Widen is the plugin's out_token −2 (sdk/ABI.md §6.2): the candidates
	// are too few for its policy, so the caller repeats the step for this
	// row with a wider set (up to the whole vocabulary) and draws nothing
	// now. Token is then −1 and Logits nil. A row that already holds the
	// whole vocabulary cannot be widened; the caller, which knows the
	// vocabulary, treats such an answer as the plugin's failure.
	Widen bool
	// KeepAll is the plugin's out_token −3 (sdk/ABI.md §6.2): keep every
	// token of the whole row — not only the candidates — with its logit
	// divided by Temperature (positive and finite), and draw from that.
	// Token is then −1 and Logits nil.
	KeepAll     bool
	Temperature float32
}

// MaxSamplerCandidates bounds the candidates per row of one step: room for
// a whole vocabulary (DeepSeek's has 129,280 tokens), since a policy that
// needs mass beyond its candidates makes the host widen a row up to that.
const MaxSamplerCandidates = 1 << 18

// maxSamplerArena bounds one step's arena (rows × candidates × 12 bytes,
// 3 MiB for one row of MaxSamplerCandidates), so that the arena's size
// cannot overflow and a step cannot ask for more than a plugin's memory
// could hold. A step's arena is sized by its widest row: a caller that
// widens a few rows steps them on their own, not with the whole batch.
const maxSamplerArena = 1 << 30

// withRowSpans returns ctx under the first recording span of the rows, with
// links to the other rows' spans for the call's span (see Plugin.span).
func withRowSpans(ctx context.Context, rows []SamplerRow) context.Context {
	var parent trace.Span
	var links []trace.Link
	for _, r := range rows {
		switch {
		case r.Span == nil || !r.Span.IsRecording():
		case parent == nil:
			parent = r.Span
		default:
			links = append(links, trace.Link{SpanContext: r.Span.SpanContext()})
		}
	}
	if parent == nil {
		return ctx
	}
	ctx = trace.ContextWithSpan(ctx, parent)
	if len(links) > 0 {
		ctx = context.WithValue(ctx, spanLinksKey{}, links)
	}
	return ctx
}

// The out_tokens that are not a processor's −1 or a selector's token.
const (
	widenToken   = -2 // more candidates, please
	keepAllToken = -3 // keep the whole row, at a temperature
)

// Step header flags (sdk/ABI.md §6.2): what the host tells the plugin.
const (
	// smpFlagKeepAll says the host accepts out_token −3.
	smpFlagKeepAll = 1
)

// SamplerBatch is a sampler instance pinned to the sequences of one engine
// shard: every sequence it opens lives in that instance, so a step covers
// all of them with one call.
type SamplerBatch struct {
	*pinned
	// live holds the handles of the sequences open in the instance: a
	// handle smp_open gives twice would mix two sequences' histories
	// (history) and close both at once.
	live map[int64]bool
}

// Arena layout (sdk/ABI.md §6.2).
const (
	smpHeader = 16
	smpRow    = 32
)

// OpenSamplerBatch checks out an instance for a batch of sequences.
func (p *Plugin) OpenSamplerBatch(ctx context.Context) (*SamplerBatch, error) {
	if err := p.requireKind(KindSampler); err != nil {
		return nil, err
	}
	start := p.started()
	x, err := p.pin(ctx, KindSampler, "smp_open")
	if err != nil {
		p.observe("smp_open", start, &err)
		return nil, err
	}
	return &SamplerBatch{pinned: x, live: map[int64]bool{}}, nil
}

// Open starts a sequence with the request's sampling parameters (JSON).
func (b *SamplerBatch) Open(ctx context.Context, params []byte) (_ int64, err error) {
	defer b.p.observe("smp_open", b.p.started(), &err)
	ctx, cancel := context.WithTimeout(ctx, b.p.cfg.CallTimeout)
	defer cancel()
	ptr, err := b.write(ctx, params, nil)
	if err != nil {
		return 0, err
	}
	res, err := b.call(ctx, "smp_open", uint64(ptr), uint64(len(params)))
	if err != nil {
		return 0, err
	}
	h := int64(res[0])
	if b.live[h] {
		return 0, b.reject(fmt.Errorf("plugin %s: smp_open returned handle %d, which an open sequence already has", b.p.cfg.ID, h))
	}
	b.ok()
	if h < 0 {
		return 0, b.statusError("smp_open", -h)
	}
	b.live[h] = true
	return h, nil
}

// Refuse gives up the batch's instance after an answer the caller found
// breaks the ABI's contract where the plugin cannot see it (a row that holds
// the whole vocabulary asking to widen): it counts as the plugin's failure,
// as the answers Step refuses do, and later calls on the batch fail. It
// returns err, marked as a refused output.
func (b *SamplerBatch) Refuse(err error) error { return b.reject(err) }

// Step runs the plugin over every row at once and returns its outputs. The
// output logits are copies; a selector's token is checked to be one of the
// row's candidates, and NaN logits are refused; a row the plugin asked to
// widen has Widen set and no logits. A refused output, like a failed call,
// gives up the batch's instance: its sequences are lost and later calls on
// the batch fail.
func (b *SamplerBatch) Step(ctx context.Context, rows []SamplerRow) (_ []SamplerOutput, err error) {
	k := 0
	for i, r := range rows {
		if len(r.IDs) != len(r.Logits) || len(r.IDs) > MaxSamplerCandidates {
			return nil, fmt.Errorf("plugin %s: row %d: %d ids and %d logits (at most %d)", b.p.cfg.ID, i, len(r.IDs), len(r.Logits), MaxSamplerCandidates)
		}
		k = max(k, len(r.IDs))
	}
	if total := uint64(smpHeader) + uint64(len(rows))*(smpRow+12*uint64(k)); total > maxSamplerArena {
		return nil, fmt.Errorf("plugin %s: a step of %d rows × %d candidates needs a %d-byte arena, more than %d", b.p.cfg.ID, len(rows), k, total, maxSamplerArena)
	}
	defer b.p.observe("smp_step", b.p.started(), &err)
	ctx, cancel := context.WithTimeout(ctx, b.p.cfg.CallTimeout)
	defer cancel()
	size := uint32(smpHeader + len(rows)*smpRow + 3*4*len(rows)*k)
	if err := b.reserve(ctx, size); err != nil {
		return nil, err
	}
	arena, ok := b.inst.mod.Memory().Read(b.arena, size)
	if !ok {
		return nil, b.reject(fmt.Errorf("plugin %s: its arena is outside its memory", b.p.cfg.ID))
	}
	le := binary.LittleEndian
	le.PutUint32(arena, uint32(len(rows)))
	le.PutUint32(arena[4:], uint32(k))
	le.PutUint32(arena[8:], smpFlagKeepAll)
	le.PutUint32(arena[12:], 0)
	base := smpHeader + len(rows)*smpRow
	ids, logits, outs := base, base+4*len(rows)*k, base+8*len(rows)*k
	for i, r := range rows {
		rec := arena[smpHeader+i*smpRow:]
		le.PutUint64(rec, uint64(r.Handle))
		le.PutUint32(rec[8:], uint32(len(r.IDs)))
		le.PutUint32(rec[12:], uint32(r.Position))
		le.PutUint32(rec[16:], math.Float32bits(r.U0))
		le.PutUint32(rec[20:], math.Float32bits(r.U1))
		le.PutUint32(rec[24:], math.Float32bits(r.LSE))
		le.PutUint32(rec[28:], uint32(0xffffffff))
		for j, id := range r.IDs {
			le.PutUint32(arena[ids+4*(i*k+j):], uint32(id))
			bits := math.Float32bits(r.Logits[j])
			le.PutUint32(arena[logits+4*(i*k+j):], bits)
			le.PutUint32(arena[outs+4*(i*k+j):], bits)
		}
	}
	st := b.p.samplerState(b.inst.mod)
	st.setStep(rows)
	res, err := b.call(withRowSpans(ctx, rows), "smp_step", uint64(b.arena), uint64(size))
	st.setStep(nil)
	if err != nil {
		return nil, err
	}
	if status := int32(res[0]); status != 0 {
		b.ok()
		return nil, b.statusError("smp_step", int64(status))
	}
	// The guest may have grown its memory: read the arena again.
	arena, ok = b.inst.mod.Memory().Read(b.arena, size)
	if !ok {
		return nil, b.reject(fmt.Errorf("plugin %s: its arena is outside its memory", b.p.cfg.ID))
	}
	out := make([]SamplerOutput, len(rows))
	for i, r := range rows {
		rec := arena[smpHeader+i*smpRow:]
		o, err := samplerOutput(r, le.Uint32(rec[28:]), le.Uint32(rec[24:]), arena[outs+4*i*k:])
		if err != nil {
			return nil, b.reject(fmt.Errorf("plugin %s: smp_step: row %d: %w", b.p.cfg.ID, i, err))
		}
		out[i] = o
	}
	b.ok()
	return out, nil
}

// samplerOutput checks and decodes a row's answer: its out_token, the
// word in its lse field (a keep-all temperature) and its output logits
// (outs, little-endian f32, at least len(r.IDs) of them). The host's own
// stage (banned and disallowed tokens, min_tokens, at −Inf) holds whatever
// the plugin does (sdk/ABI.md §6.2): a candidate at −Inf stays at −Inf in
// a processor's answer, and a selector may not choose one. An answer that
// would leave the host nothing to draw from — a +Inf logit, every candidate
// dropped, a keep-all temperature so small that the row's best logit
// divided by it overflows — is refused like a NaN, so that it counts as the
// plugin's failure instead of failing the choice in the draw.
func samplerOutput(r SamplerRow, token, temp uint32, outs []byte) (SamplerOutput, error) {
	le := binary.LittleEndian
	best := float32(math.Inf(-1)) // the row's best candidate logit
	for _, v := range r.Logits {
		best = max(best, v)
	}
	live := best > float32(math.Inf(-1)) // the row has a candidate to draw
	switch tok := int32(token); tok {
	case widenToken:
		return SamplerOutput{Token: -1, Widen: true}, nil
	case keepAllToken:
		t := math.Float32frombits(temp)
		if !(t > 0) || math.IsInf(float64(t), 1) {
			return SamplerOutput{}, fmt.Errorf("keep-all temperature %v (want positive and finite)", t)
		}
		if s := best / t; live && math.IsInf(float64(s), 0) {
			return SamplerOutput{}, fmt.Errorf("keep-all temperature %v takes the best logit %v to %v", t, best, s)
		}
		return SamplerOutput{Token: -1, KeepAll: true, Temperature: t}, nil
	}
	o := SamplerOutput{Token: int32(token), Logits: make([]float32, len(r.IDs))}
	finite := false
	for j := range o.Logits {
		v := math.Float32frombits(le.Uint32(outs[4*j:]))
		switch {
		case v != v:
			return SamplerOutput{}, fmt.Errorf("NaN logit for candidate %d", r.IDs[j])
		case math.IsInf(float64(v), 1):
			return SamplerOutput{}, fmt.Errorf("+Inf logit for candidate %d", r.IDs[j])
		case math.IsInf(float64(r.Logits[j]), -1):
			v = float32(math.Inf(-1)) // banned by the host's stage, whatever the plugin says
		}
		o.Logits[j] = v
		finite = finite || !math.IsInf(float64(v), -1)
	}
	if o.Token != -1 {
		j := slices.Index(r.IDs, o.Token)
		switch {
		case j < 0:
			return SamplerOutput{}, fmt.Errorf("token %d is not one of the row's candidates", o.Token)
		case math.IsInf(float64(r.Logits[j]), -1):
			return SamplerOutput{}, fmt.Errorf("token %d is a candidate the host's stage dropped (its logit is -Inf)", o.Token)
		case math.IsInf(float64(o.Logits[j]), -1):
			return SamplerOutput{}, fmt.Errorf("token %d was selected with an output logit of -Inf", o.Token)
		}
	}
	if live && !finite {
		return SamplerOutput{}, errors.New("every candidate's output logit is -Inf: nothing is left to draw")
	}
	return o, nil
}

// CloseSequence ends a sequence (smp_close).
func (b *SamplerBatch) CloseSequence(ctx context.Context, h int64) (err error) {
	defer b.p.observe("smp_close", b.p.started(), &err)
	ctx, cancel := context.WithTimeout(ctx, b.p.cfg.CallTimeout)
	defer cancel()
	_, err = b.call(ctx, "smp_close", uint64(h))
	b.forgetSequence(h)
	delete(b.live, h)
	if err == nil {
		b.ok()
	}
	return err
}

// Close returns the instance (after its sequences were closed), once it
// freed its arena (ulan_free).
func (b *SamplerBatch) Close(ctx context.Context) {
	if b.dead || b.inst == nil {
		return
	}
	var err error
	defer b.p.observe("ulan_free", b.p.started(), &err)
	err = b.release(ctx)
}
