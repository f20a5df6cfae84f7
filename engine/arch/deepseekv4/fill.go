package deepseekv4

import (
	"math/rand/v2"

	"github.com/ulan-ai/ulan/engine"
)

var _ engine.CacheFiller = (*Model)(nil)

// Random streams of one layer, so that each cache tensor draws its own.
const (
	fillRing = iota
	fillEntries
	fillKeys
	fillCompState
	fillIdxState
)

// FillCache writes random but well-formed V4 cache contents for b's tokens
// (spec §4.1), as a prefill of them would leave the cache:
//
//   - every layer's window ring holds the last Window positions of each
//     sequence: normal vectors through kv_norm, rotated at their position;
//   - compressed layers hold one entry per window that completes among
//     b's positions (p+1 ≡ 0 mod ratio): a normal vector through the
//     compressor's norm, rotated at the window's first position w·ratio,
//     and CSA layers an indexer key the same way through the indexer
//     compressor's norm;
//   - the compressors' state holds the last c·ratio positions (CSA: the
//     previous complete window and the pending tail, HCA: the pending
//     tail): normal kv rows and normal scores plus ape, as Compress keeps
//     them.
//
// Rows of earlier positions are not rewritten, so a sequence can be filled
// in chunks of consecutive positions (Runner.Fill). A decode step after it
// reads exactly what it would after a real prefill: the indexer scores
// n/4 keys, picks its top-k, HCA attends to n/128 entries, and the next
// window to complete pools the state's rows. It uses only ops Forward
// uses, so it runs on any backend. b must be consistent (Batch.Validate),
// as Runner.Fill makes it; a batch whose slices differ in length writes
// nothing.
func (m *Model) FillCache(ctx engine.Context, b *engine.Batch, caches []engine.Tensor, seed uint64) {
	p := m.p
	T := len(b.Tokens)
	if T == 0 || len(b.Positions) != T || len(b.Seq) != T || len(b.Slots) != T {
		return
	}
	// last[s] is sequence s's last position in b.
	last := make([]int, len(b.Seqs))
	for s := range last {
		last[s] = -1
	}
	for t := range T {
		s := int(b.Seq[t])
		if s >= 0 && s < len(last) {
			last[s] = max(last[s], int(b.Positions[t]))
		}
	}
	recent := func(t, n int) bool {
		s := int(b.Seq[t])
		return s >= 0 && s < len(last) && int(b.Positions[t]) > last[s]-n
	}
	ringB := subBatch(b, func(t int) bool { return recent(t, p.Window) }, nil)
	for i := range m.layers {
		l := &m.layers[i]
		rng := func(kind uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, uint64(i)<<8|kind)) }
		rope := p.Rope(i)
		if n := len(ringB.Tokens); n > 0 {
			kv := ctx.Rope(ctx.RMSNorm(ctx.Input(normal(rng(fillRing), n*p.HeadDim), n, p.HeadDim), l.kvNorm, p.Eps), ringB, rope)
			ctx.WindowStore(caches[l.ring], kv, ringB, p.Window)
		}
		if l.ratio == 0 {
			continue
		}
		r := l.ratio
		// The windows that complete in b, stored at their first position.
		eb := subBatch(b, func(t int) bool { return (int(b.Positions[t])+1)%r == 0 }, func(t int) (int32, int32) {
			start := int(b.Positions[t]) + 1 - r
			return int32(start), pagedRow(b, int(b.Seq[t]), start, r)
		})
		if n := len(eb.Tokens); n > 0 {
			m.fillEntries(ctx, caches[l.entries], l.compNorm, p.HeadDim, eb, rope, rng(fillEntries))
			if r == 4 {
				m.fillEntries(ctx, caches[l.keys], l.idxNorm, p.IndexHeadDim, eb, rope, rng(fillKeys))
			}
		}
		if r == 4 {
			m.fillState(ctx, caches[l.compState], l.compApe, 2*p.HeadDim, 8, 4, b, recent, rng(fillCompState))
			m.fillState(ctx, caches[l.idxState], l.idxApe, 2*p.IndexHeadDim, 8, 4, b, recent, rng(fillIdxState))
		} else {
			m.fillState(ctx, caches[l.compState], l.compApe, p.HeadDim, r, r, b, recent, rng(fillCompState))
		}
	}
}

// fillEntries stores one compressed entry of width d per token of eb (whose
// positions are the windows' first positions and whose slots are the
// entries' rows): normal, normalised with norm, rotated at its position.
func (m *Model) fillEntries(ctx engine.Context, entries, norm engine.Tensor, d int, eb *engine.Batch, rope engine.RopeSpec, rng *rand.Rand) {
	n := len(eb.Tokens)
	e := ctx.Rope(ctx.RMSNorm(ctx.Input(normal(rng, n*d), n, d), norm, m.p.Eps), eb, rope)
	ctx.CacheStore(entries, e, eb)
}

// fillState stores compressor state rows (rows per sequence, each a kv row
// of width cd then its score row with ape[p mod ratio] added) for the last
// rows positions of each of b's sequences.
func (m *Model) fillState(ctx engine.Context, state, ape engine.Tensor, cd, rows, ratio int, b *engine.Batch, recent func(t, n int) bool, rng *rand.Rand) {
	sb := subBatch(b, func(t int) bool { return recent(t, rows) }, func(t int) (int32, int32) {
		pos := int(b.Positions[t])
		return int32(pos), int32(b.StateRow(int(b.Seq[t]), rows) + pos%rows)
	})
	n := len(sb.Tokens)
	if n == 0 {
		return
	}
	// Embed gathers ape's rows by the tokens, here each position's row.
	for k := range sb.Tokens {
		sb.Tokens[k] = sb.Positions[k] % int32(ratio)
	}
	kv := ctx.Input(normal(rng, n*cd), n, cd)
	score := ctx.Add(ctx.Input(normal(rng, n*cd), n, cd), ctx.Embed(ape, sb))
	ctx.CacheStore(state, ctx.Concat(kv, score), sb)
}

// pagedRow is b.PagedRow, or −1 (which the store ops refuse with an
// error) where b's block table has no block for position p.
func pagedRow(b *engine.Batch, s, p, every int) int32 {
	if s < 0 || s >= len(b.Seqs) || p < 0 || b.BlockSize <= 0 || p/b.BlockSize >= len(b.Seqs[s].Blocks) {
		return -1
	}
	return int32(b.PagedRow(s, p, every))
}

// subBatch is the batch of b's tokens that keep says, with the same
// sequences; at, when not nil, gives each kept token's position and slot
// (by default its own). Its token ids are zero and it has no outputs.
func subBatch(b *engine.Batch, keep func(t int) bool, at func(t int) (pos, slot int32)) *engine.Batch {
	sb := &engine.Batch{Seqs: b.Seqs, BlockSize: b.BlockSize}
	for t := range b.Tokens {
		if !keep(t) {
			continue
		}
		pos, slot := b.Positions[t], b.Slots[t]
		if at != nil {
			pos, slot = at(t)
		}
		sb.Tokens = append(sb.Tokens, 0)
		sb.Positions = append(sb.Positions, pos)
		sb.Seq = append(sb.Seq, b.Seq[t])
		sb.Slots = append(sb.Slots, slot)
	}
	return sb
}

// normal draws n values from N(0, 1).
func normal(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}
