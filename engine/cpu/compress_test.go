package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/cpu/internal/kernel"
)

// poolChannel is poolSlots one channel at a time, as Compress pooled
// before it ran slot by slot: the reference whose bits poolSlots keeps.
func poolChannel(dst []float32, slots []poolSlot) {
	e := make([]float32, len(slots))
	for ch := range dst {
		mx := float32(math.Inf(-1))
		for k, sl := range slots {
			e[k] = sl.g[ch]
			mx = max(mx, e[k])
		}
		var sum float64
		for k := range e {
			e[k] = kernel.Exp32(e[k] - mx)
			sum += float64(e[k])
		}
		inv := float32(1 / sum)
		var acc float64
		for k, sl := range slots {
			acc += float64(sl.v[ch] * (e[k] * inv))
		}
		dst[ch] = float32(acc)
	}
}

// TestPoolSlots: the slot-by-slot pooling gives the per-channel loop's
// bits, for CSA's 4 and 8 slots and HCA's 128, channel counts that are
// and are not multiples of eight, scores far apart (exponentials that
// underflow to zero) and tied.
func TestPoolSlots(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(63, 64))
	for _, S := range []int{1, 4, 8, 128} {
		for _, d := range []int{5, 8, 128} {
			for _, spread := range []float64{0, 1, 60} {
				slots := make([]poolSlot, S)
				for k := range slots {
					slots[k] = poolSlot{v: make([]float32, d), g: make([]float32, d)}
					for ch := range d {
						slots[k].v[ch] = float32(r.NormFloat64())
						slots[k].g[ch] = float32(r.NormFloat64() * spread)
					}
				}
				want, got := make([]float32, d), make([]float32, d)
				poolChannel(want, slots)
				poolSlots(got, slots)
				for ch := range want {
					require.Equal(t, math.Float32bits(want[ch]), math.Float32bits(got[ch]), "%d slots, %d channels, spread %v: channel %d", S, d, spread, ch)
				}
			}
		}
	}
}
