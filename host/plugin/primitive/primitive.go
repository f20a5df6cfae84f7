// Package primitive holds the loops that plugins call the host for instead of
// running them in WebAssembly (sdk/ABI.md §6): selection, softmax and the
// draw for samplers. Each is plain Go, bounded in its inputs, and usable
// natively, so a built-in fallback composes the same functions a plugin
// calls and gives the same answers.
package primitive

import (
	"errors"
	"fmt"

	"github.com/ulan-ai/ulan/sdk/go/sampler/samplemath"
)

// MaxValues bounds the length of a vector a plugin may hand one primitive
// (a little above the largest vocabularies, 256k).
const MaxValues = 1 << 19

// MaxTopK bounds the k of TopK.
const MaxTopK = 4096

// ErrBounds reports an input over a primitive's bounds.
var ErrBounds = errors.New("primitive: input out of bounds")

// The sampler primitives are sdk/go/sampler/samplemath's functions, which
// the Go SDK's native primitives call too, so a plugin's tests, a plugin
// in WebAssembly and the host's fallback compute the same bits. Here they
// only gain the host's bounds, and ErrBounds.

// TopK writes the k largest values of vals, largest first, with their
// indices; ties go to the lower index, and NaN counts as smallest. It
// returns how many it wrote: min(k, len(vals)). See samplemath.TopK.
func TopK(vals []float32, k int, ids []int32, out []float32) (int, error) {
	if len(vals) > MaxValues || k < 0 || k > MaxTopK {
		return 0, fmt.Errorf("%w: top %d of %d values", ErrBounds, k, len(vals))
	}
	return bounded(samplemath.TopK(vals, k, ids, out))
}

// Softmax writes softmax(vals / temp) to out (which may be vals). The sum
// is taken in float64. temp must be positive and finite; −Inf values get
// probability 0; a vector of all −Inf is an error. See samplemath.Softmax.
func Softmax(vals []float32, temp float32, out []float32) error {
	if len(vals) > MaxValues {
		return fmt.Errorf("%w: softmax of %d values", ErrBounds, len(vals))
	}
	_, err := bounded(0, samplemath.Softmax(vals, temp, out))
	return err
}

// Draw picks an index by inverse CDF: the first i where the running sum of
// probs exceeds u·Σprobs, for u in [0, 1). Rounding can leave u·Σ beyond
// the last partial sum; the last index with non-zero probability is then
// drawn, never one with probability 0. See samplemath.Draw.
func Draw(probs []float32, u float32) (int, error) {
	if len(probs) > MaxValues {
		return 0, fmt.Errorf("%w: draw from %d values", ErrBounds, len(probs))
	}
	return bounded(samplemath.Draw(probs, u))
}

// TopPCut returns how many of the leading probs reach the mass p: the
// smallest m ≥ 1 whose first m probabilities sum (in float64, in order) to
// at least p·Σprobs, or len(probs) if rounding leaves the sum short. With
// probs sorted largest first (as TopK and Softmax leave them), the first m
// are the nucleus of top-p sampling. p must be in (0, 1]; a probability
// that is negative, NaN or infinite is an error. See samplemath.TopPCut.
func TopPCut(probs []float32, p float32) (int, error) {
	if len(probs) > MaxValues {
		return 0, fmt.Errorf("%w: top-p over %d values", ErrBounds, len(probs))
	}
	return bounded(samplemath.TopPCut(probs, p))
}

// bounded marks samplemath's input errors as ErrBounds.
func bounded(n int, err error) (int, error) {
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrBounds, err)
	}
	return n, nil
}
