package ggufkeys

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/gguf"
)

func file(t *testing.T, keys map[string]any) *gguf.File {
	t.Helper()
	w := &gguf.Writer{}
	w.Add("general.architecture", "arch")
	for k, v := range keys {
		w.Add(k, v)
	}
	var buf bytes.Buffer
	_, err := w.WriteTo(&buf)
	require.NoError(t, err)
	f, err := gguf.Parse(buf.Bytes())
	require.NoError(t, err)
	return f
}

func TestReader(t *testing.T) {
	f := file(t, map[string]any{
		"arch.n": uint32(7), "arch.eps": float32(0.5), "arch.on": true,
		"arch.ratios": []int32{0, 4, 128}, "arch.clamp": []float32{1, 2, 3}, "arch.one": float32(9),
	})
	r := New(f, "arch", "pkg")
	require.Equal(t, 7, r.U32("n", true))
	require.Equal(t, 0, r.U32("absent", false))
	require.Equal(t, float32(0.5), r.F32("eps", -1))
	require.Equal(t, float32(2), r.F32("absent", 2))
	require.True(t, r.Bool("on"))
	require.False(t, r.Bool("absent"))
	require.Equal(t, []int{0, 4}, r.Ints("ratios", 2))
	require.Equal(t, []float32{1, 2}, r.PerLayer("clamp", 2, nil))
	require.Equal(t, []float32{9, 9, 9}, r.PerLayer("one", 3, nil))
	require.Equal(t, []float32{5}, r.PerLayer("absent", 1, []float32{5}))
	require.Equal(t, "arch.eps", r.Key("eps"))
	require.NoError(t, r.Err())

	// The first error sticks and names the key.
	r.U32("missing", true)
	r.Ints("ratios", 4)
	require.EqualError(t, r.Err(), "pkg: key arch.missing: missing")

	for name, read := range map[string]func(r *Reader){
		"short array":    func(r *Reader) { r.Ints("ratios", 4) },
		"not an array":   func(r *Reader) { r.Ints("n", 1) },
		"short floats":   func(r *Reader) { r.PerLayer("clamp", 5, nil) },
		"wrong type":     func(r *Reader) { r.U32("eps", true) },
		"required float": func(r *Reader) { r.F32("absent", -1) },
	} {
		r := New(f, "arch", "pkg")
		read(r)
		require.Error(t, r.Err(), name)
	}
}
