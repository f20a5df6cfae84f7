package plugin

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

func u32s(t *testing.T, inst *instance, ptr uint32, n int) []uint32 {
	t.Helper()
	b, ok := inst.mod.Memory().Read(ptr, uint32(4*n))
	require.True(t, ok)
	out := make([]uint32, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}

func TestTokenizerPrimitivesFromWasm(t *testing.T) {
	t.Parallel()
	p, _ := load(t, "tok", Config{PoolSize: 1})
	ctx := context.Background()
	inst, err := p.pool.checkout(ctx)
	require.NoError(t, err)
	defer p.pool.put(inst)
	call := func(name string, args ...uint64) int32 {
		res, err := inst.function(name).Call(ctx, args...)
		require.NoError(t, err, name)
		return int32(uint32(res[0]))
	}
	id := call("compile")
	require.Equal(t, int32(0), id)
	require.Equal(t, int32(-1), call("compile_bad"))
	require.Contains(t, p.takeError(inst), "pattern")

	// "abc12345" splits into "abc", "123", "45".
	require.Equal(t, int32(3), call("split", uint64(id), 1), "too small a buffer still reports the count")
	require.Equal(t, int32(3), call("split", uint64(id), 8))
	require.Equal(t, []uint32{0, 3, 3, 6, 6, 8}, u32s(t, inst, 1024, 6))
	require.Equal(t, int32(-1), call("split", 5, 8), "unknown pattern id")

	table := call("register")
	require.Equal(t, int32(0), table)
	// [1 2 3 1 2]: (1,2)→4 twice, then (4,3)→5: [5 4].
	require.Equal(t, int32(2), call("merge", uint64(table)))
	require.Equal(t, []uint32{5, 4}, u32s(t, inst, 2560, 2))
}

func TestTokenizerPrimitivesAreForTokenizers(t *testing.T) {
	t.Parallel()
	module, err := EmbedManifest(wasm(t, "tok"), []byte(`{"abi":1,"name":"x","version":"1","kind":"hook"}`))
	require.NoError(t, err)
	_, err = loadKind(module, KindHook, "{}", nil)
	require.ErrorContains(t, err, "ulan_v1.regex_compile, which needs a grant")
}
