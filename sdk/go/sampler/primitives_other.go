//go:build !wasip1

package sampler

import (
	"math"

	"github.com/ulan-ai/ulan/sdk/go/sampler/samplemath"
)

// Natively (tests, and the host's own use of policies written with this
// SDK), the primitives are samplemath's functions, the very ones the host
// runs for a plugin's imports, so native and WebAssembly runs agree bit for
// bit.

func topK(vals []float32, k int, ids []int32, out []float32) (int, error) {
	return samplemath.TopK(vals, k, ids, out)
}

func softmax(vals []float32, temp float32, out []float32) error {
	if samplemath.Softmax(vals, temp, out) != nil {
		return errPrimitive("softmax: a temperature that is not positive and finite, a NaN, or only -Inf")
	}
	return nil
}

func draw(probs []float32, u float32) (int, error) {
	i, err := samplemath.Draw(probs, u)
	if err != nil {
		return 0, errPrimitive("draw: a uniform outside [0, 1), or probabilities that are negative, infinite or all 0")
	}
	return i, nil
}

func topPCut(probs []float32, p float32) (int, error) {
	m, err := samplemath.TopPCut(probs, p)
	if err != nil {
		return 0, errPrimitive("top_p_cut: a mass outside (0, 1] or a bad probability")
	}
	return m, nil
}

// TestHost stands in for the host's state when a plugin's logic runs
// natively, in its own tests: the histories History reads (by the handle
// NewTestRow gives a row) and the vocabulary TokenBytes reads. It exists
// only outside wasip1.
type TestHost struct {
	History map[int64][]int32
	Vocab   [][]byte
}

var testHost TestHost

// UseTestHost installs h for History and TokenBytes in native tests.
func UseTestHost(h TestHost) { testHost = h }

// NewTestRow returns a row of sequence handle for native tests, whose
// History reads the TestHost's history of that handle, and which accepts
// KeepAll's answer.
func NewTestRow(handle int64, ids []int32, logits []float32) *Row {
	return &Row{IDs: ids, Logits: logits, Out: append([]float32(nil), logits...), Token: -1, handle: handle, keepAll: true}
}

// KeptAll returns the temperature of a row answered with KeepAll, for
// native tests; ok is false for any other answer.
func (r *Row) KeptAll() (t float32, ok bool) { return r.keepT, r.Token == TokenKeepAll }

// rowLSE: natively there is no host to ask (LoadLSE serves native callers).
func rowLSE(int32) float32 { return float32(math.NaN()) }

func history(h int64, max int) ([]int32, error) {
	hist, ok := testHost.History[h]
	if !ok {
		return nil, errPrimitive("history: the host knows no such sequence")
	}
	if max > 0 && len(hist) > max {
		hist = hist[len(hist)-max:]
	}
	return append([]int32(nil), hist...), nil
}

func tokenBytes(id int32, buf []byte) ([]byte, error) {
	if id < 0 || int(id) >= len(testHost.Vocab) {
		return nil, errPrimitive("token_bytes: no such token, or the host has no vocabulary")
	}
	return append(buf[:0], testHost.Vocab[id]...), nil
}
