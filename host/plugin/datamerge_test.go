package plugin

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/ulan-ai/ulan/plugins"
)

// initialMemory instantiates wasm without running any start function and
// returns its memory as data segments left it. wazero's interpreter sets up
// memory as its compiler does, without compiling every function first.
func initialMemory(t *testing.T, wasm []byte) []byte {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	compiled, err := rt.CompileModule(ctx, wasm)
	require.NoError(t, err)
	// The host's imports, as functions that are never called.
	host := rt.NewHostModuleBuilder(HostModule)
	for _, f := range compiled.ImportedFunctions() {
		if mod, name, _ := f.Import(); mod == HostModule {
			host = host.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}),
				f.ParamTypes(), f.ResultTypes()).Export(name)
		}
	}
	_, err = host.Instantiate(ctx)
	require.NoError(t, err)
	m, err := rt.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithStartFunctions())
	require.NoError(t, err)
	mem, ok := m.Memory().Read(0, m.Memory().Size())
	require.True(t, ok)
	return bytes.Clone(mem)
}

// TestMergeDataSegmentsKeepsMemory: every first-party plugin, merged, starts with
// the same memory, byte for byte, from far fewer segments where Go's linker made
// thousands (a C plugin's one or two stay).
func TestMergeDataSegmentsKeepsMemory(t *testing.T) {
	for name, wasm := range plugins.Builtins() {
		t.Run(name, func(t *testing.T) {
			merged := mergeDataSegments(wasm)
			before, _ := readDataSegments(dataPayload(t, wasm))
			after, _ := readDataSegments(dataPayload(t, merged))
			t.Logf("%d → %d segments, %d → %d bytes", len(before), len(after), len(wasm), len(merged))
			if len(before) > 100 {
				require.Less(t, len(after), len(before)/10)
			}
			require.Equal(t, initialMemory(t, wasm), initialMemory(t, merged))
			require.Equal(t, merged, mergeDataSegments(merged), "merging is idempotent")
		})
	}
}

// dataPayload returns the data section's payload.
func dataPayload(t *testing.T, wasm []byte) []byte {
	t.Helper()
	for i := 8; i < len(wasm); {
		id := wasm[i]
		size, n := uvarint(wasm[i+1:])
		start := i + 1 + n
		if id == sectionData {
			return wasm[start : start+int(size)]
		}
		i = start + int(size)
	}
	t.Fatal("no data section")
	return nil
}

func uvarint(b []byte) (uint64, int) {
	var v uint64
	for i, c := range b {
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

// module builds a module with one memory and the given data section payload, and
// any extra sections after it.
func module(data []byte, extra ...byte) []byte {
	b := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	b = append(b, 5, 3, 1, 0, 1) // memory section: one memory, min 1 page
	b = append(b, extra...)
	b = append(b, sectionData)
	b = appendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// segments encodes active segments at the given offsets with the given bytes.
func segments(segs ...testSegment) []byte {
	b := appendUvarint(nil, uint64(len(segs)))
	for _, s := range segs {
		b = append(b, 0, 0x41)
		b = appendSLEB32(b, int32(uint32(s.start)))
		b = append(b, 0x0b)
		b = appendUvarint(b, uint64(len(s.init)))
		b = append(b, s.init...)
	}
	return b
}

func seg(start uint64, init ...byte) testSegment {
	return testSegment{start, init}
}

// TestMergeDataSegmentsCases: which neighbours join, and what is left alone.
func TestMergeDataSegmentsCases(t *testing.T) {
	t.Parallel()
	count := func(wasm []byte) int {
		segs, ok := readDataSegments(dataPayload(t, wasm))
		require.True(t, ok)
		return len(segs)
	}
	for _, c := range []struct {
		name string
		segs []testSegment
		want int
	}{
		{"adjacent", []testSegment{seg(0, 1, 2), seg(2, 3), seg(3, 4)}, 1},
		{"a gap of zeros", []testSegment{seg(0, 1), seg(1+maxDataGap, 2)}, 1},
		{"a gap too wide", []testSegment{seg(0, 1), seg(2+maxDataGap, 2)}, 2},
		{"out of order", []testSegment{seg(10, 1), seg(0, 2)}, 2},
		{"overlapping", []testSegment{seg(0, 1, 2, 3), seg(1, 9)}, 2},
		// The zeros a join would write over [4, 8) are another segment's.
		{"a gap another segment writes", []testSegment{seg(5, 7), seg(0, 1, 2, 3, 4), seg(8, 9)}, 3},
		{"a gap a later segment writes", []testSegment{seg(0, 1), seg(8, 2), seg(4, 3)}, 3},
		{"high addresses (negative i32.const)", []testSegment{seg(0xffff_fff0, 1), seg(0xffff_fff4, 2)}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			wasm := module(segments(c.segs...))
			require.Equal(t, c.want, count(mergeDataSegments(wasm)))
			if c.want == len(c.segs) {
				require.Equal(t, wasm, mergeDataSegments(wasm), "unchanged")
			}
		})
	}
	// The memory a join leaves: the original bytes, zeros between.
	wasm := module(segments(seg(100, 1, 2), seg(104, 3), seg(8, 5), seg(9, 6)))
	require.Equal(t, initialMemory(t, wasm), initialMemory(t, mergeDataSegments(wasm)))

	// Left alone: a DataCount section, a passive segment, a global offset, garbage.
	datacount := []byte{sectionDataCount, 1, 2}
	for name, wasm := range map[string][]byte{
		"data count":    module(segments(seg(0, 1), seg(1, 2)), datacount...),
		"global offset": module([]byte{2, 0, 0x23, 0, 0x0b, 1, 1, 0, 0x41, 1, 0x0b, 1, 2}),
		"truncated":     module(segments(seg(0, 1), seg(1, 2)))[:20],
		"not wasm":      []byte("hello"),
	} {
		require.Equal(t, wasm, mergeDataSegments(wasm), name)
	}
	passive := append(appendUvarint(nil, 2), 1, 1, 7, 0, 0x41, 4, 0x0b, 1, 8)
	wasm = module(passive)
	require.Equal(t, wasm, mergeDataSegments(wasm), "a passive segment")
}

// FuzzMergeDataSegments: any input comes back unchanged or as a module whose data
// section parses, never a panic; merging twice changes nothing more.
func FuzzMergeDataSegments(f *testing.F) {
	f.Add(module(segments(seg(0, 1), seg(3, 2), seg(40, 3))))
	f.Add(module(segments(seg(0xffff_fff0, 1), seg(0xffff_fff4, 2))))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		merged := mergeDataSegments(wasm)
		if bytes.Equal(merged, wasm) {
			return
		}
		_, ok := readDataSegments(dataPayload(t, merged))
		require.True(t, ok)
		require.Equal(t, merged, mergeDataSegments(merged))
	})
}

func BenchmarkMergeDataSegments(b *testing.B) {
	wasm := plugins.Builtins()["redact"]
	b.SetBytes(int64(len(wasm)))
	for b.Loop() {
		mergeDataSegments(wasm)
	}
}

// testSegment is a data segment to encode.
type testSegment struct {
	start uint64
	init  []byte
}
