package plugin

import (
	"context"
	"encoding/binary"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero/api"
)

// withMemory writes float32 values at offset 0 of one instance's memory and
// runs fn with that instance checked out.
func withMemory(t *testing.T, p *Plugin, vals []float32, fn func(inst *instance)) {
	t.Helper()
	inst, err := p.pool.checkout(context.Background())
	require.NoError(t, err)
	defer p.pool.put(inst)
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	require.True(t, inst.mod.Memory().Write(0, b))
	fn(inst)
}

func TestSamplerPrimitivesFromWasm(t *testing.T) {
	t.Parallel()
	p, _ := load(t, "prims", Config{PoolSize: 1})
	vals := []float32{0.5, 3, -1, 2, 3}
	withMemory(t, p, vals, func(inst *instance) {
		res, err := inst.function("topk").Call(context.Background(), 5, 3)
		require.NoError(t, err)
		require.Equal(t, uint64(3), res[0])
		ids, _ := inst.mod.Memory().Read(600000, 12)
		out, _ := inst.mod.Memory().Read(700000, 12)
		require.Equal(t, []uint32{1, 4, 3}, []uint32{binary.LittleEndian.Uint32(ids), binary.LittleEndian.Uint32(ids[4:]), binary.LittleEndian.Uint32(ids[8:])})
		require.Equal(t, float32(3), math.Float32frombits(binary.LittleEndian.Uint32(out)))

		res, err = inst.function("topk_oob").Call(context.Background())
		require.NoError(t, err, "a bad range is an error status, not a trap")
		require.Equal(t, int32(-1), int32(uint32(res[0])))

		res, err = inst.function("softmax_draw").Call(context.Background(), 5, api.EncodeF32(0.99))
		require.NoError(t, err)
		require.Equal(t, uint64(4), res[0], "the top of the CDF falls on the last 3")
	})
}

func TestSamplerPrimitivesAreForSamplers(t *testing.T) {
	t.Parallel()
	module, err := EmbedManifest(wasm(t, "prims"), []byte(`{"abi":1,"name":"x","version":"1","kind":"hook"}`))
	require.NoError(t, err)
	_, err = loadKind(module, KindHook, "{}", nil)
	require.ErrorContains(t, err, "ulan_v1.top_k, which needs a grant the operator did not give (or is not for a hook plugin)")
}
