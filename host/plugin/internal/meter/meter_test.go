package meter

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// errDeadline is what the tests' tick panics with once its deadline passed.
var errDeadline = errors.New("deadline passed")

// runtime is a wazero runtime without wazero's own termination checks,
// with env.double, globals.g0 (= 5) and a tick that counts its calls,
// answers next and, past deadline (if set), stops the call.
type runtime struct {
	wazero.Runtime
	ticks    atomic.Int64
	deadline atomic.Pointer[time.Time]
	next     atomic.Int32 // what tick answers; 0 means 1
}

func newRuntime(t testing.TB) *runtime {
	ctx := context.Background()
	r := &runtime{Runtime: wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(false))}
	t.Cleanup(func() { r.Close(ctx) })
	_, err := r.NewHostModuleBuilder("env").
		NewFunctionBuilder().WithFunc(func(x int32) int32 { return 2 * x }).Export("double").
		Instantiate(ctx)
	require.NoError(t, err)
	_, err = r.NewHostModuleBuilder(Module).
		NewFunctionBuilder().WithGoFunction(api.GoFunc(func(_ context.Context, stack []uint64) {
		r.ticks.Add(1)
		if d := r.deadline.Load(); d != nil && time.Now().After(*d) {
			panic(errDeadline)
		}
		stack[0] = uint64(max(r.next.Load(), 1))
	}), nil, []api.ValueType{api.ValueTypeI32}).Export(Tick).
		Instantiate(ctx)
	require.NoError(t, err)
	return r
}

// instantiate compiles and instantiates wasm, globals.g0 provided by a
// module of its own.
func (r *runtime) instantiate(t testing.TB, wasm []byte) api.Module {
	ctx := context.Background()
	if r.Module("globals") == nil {
		// globals.g0: a global from a wasm module (host modules export none).
		g := []byte{0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
			6, 6, 1, 0x7f, 0, 0x41, 5, 0x0b, // global i32 = 5
			7, 6, 1, 2, 'g', '0', 3, 0} // export "g0" global 0
		_, err := r.InstantiateWithConfig(ctx, g, wazero.NewModuleConfig().WithName("globals"))
		require.NoError(t, err)
	}
	m, err := r.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
	require.NoError(t, err)
	return m
}

func testModule(t testing.TB) []byte {
	wasm, err := os.ReadFile("testdata/meter.wasm")
	require.NoError(t, err)
	return wasm
}

// TestInstrumentKeepsResults: every export of the test module gives the
// same results before and after, and the loops and calls tick.
func TestInstrumentKeepsResults(t *testing.T) {
	t.Parallel()
	orig := testModule(t)
	metered, err := Instrument(orig, 1)
	require.NoError(t, err)
	ctx := context.Background()
	r0, r1 := newRuntime(t), newRuntime(t)
	m0, m1 := r0.instantiate(t, orig), r1.instantiate(t, metered)
	require.Zero(t, r0.ticks.Load())
	f32 := func(v float32) uint64 { return uint64(math.Float32bits(v)) }
	for _, c := range []struct {
		export string
		args   []uint64
	}{
		{"sum", []uint64{100}}, {"fib", []uint64{15}}, {"indirect", []uint64{0, 9}}, {"indirect", []uint64{1, 9}},
		{"via_passive", []uint64{12}}, {"via_global", []uint64{7}}, {"via_ref", []uint64{10}}, {"imported", []uint64{4}},
		{"switch", []uint64{0}}, {"switch", []uint64{1}}, {"switch", []uint64{5}}, {"count", []uint64{50}},
		{"triangle", []uint64{30}}, {"simd", []uint64{f32(1.5)}}, {"fill", []uint64{9}}, {"fill", []uint64{3}},
		{"started", nil}, {"fan", []uint64{10}},
	} {
		want, err := m0.ExportedFunction(c.export).Call(ctx, c.args...)
		require.NoError(t, err, c.export)
		before := r1.ticks.Load()
		got, err := m1.ExportedFunction(c.export).Call(ctx, c.args...)
		require.NoError(t, err, c.export)
		require.Equal(t, want, got, "%s%v", c.export, c.args)
		require.Positive(t, r1.ticks.Load()-before, "%s ticks (quantum 1: every check)", c.export)
	}
	require.Zero(t, r0.ticks.Load())
	// With quantum 1, the sum of 100 ticks once at entry and once per turn
	// of its loop (101 turns, the last leaving by $done).
	before := r1.ticks.Load()
	_, err = m1.ExportedFunction("sum").Call(ctx, 100)
	require.NoError(t, err)
	require.Equal(t, int64(1+101), r1.ticks.Load()-before)
	// fib(10) makes 177 calls, each a check.
	before = r1.ticks.Load()
	_, err = m1.ExportedFunction("fib").Call(ctx, 10)
	require.NoError(t, err)
	require.Equal(t, int64(177), r1.ticks.Load()-before)
	// The names moved with the functions: a trap's trace names fan.
	r1.deadline.Store(&time.Time{})
	_, err = m1.ExportedFunction("fan").Call(ctx, 3)
	require.ErrorContains(t, err, ".fan(i32)")
	require.ErrorIs(t, err, errDeadline)
}

// TestInstrumentStopsUnboundedCalls: a loop and a tree of calls with no
// loop in it both stop at the tick's deadline.
func TestInstrumentStopsUnboundedCalls(t *testing.T) {
	t.Parallel()
	metered, err := Instrument(testModule(t), 1024)
	require.NoError(t, err)
	r := newRuntime(t)
	r.next.Store(1024)
	m := r.instantiate(t, metered)
	for _, c := range []struct {
		export string
		args   []uint64
	}{{"spin", nil}, {"fan", []uint64{60}}} {
		d := time.Now().Add(50 * time.Millisecond)
		r.deadline.Store(&d)
		start := time.Now()
		_, err := m.ExportedFunction(c.export).Call(context.Background(), c.args...)
		require.ErrorIs(t, err, errDeadline, c.export)
		require.Less(t, time.Since(start), 5*time.Second, c.export)
	}
	// The tick that stopped them left the counter at 0, and the checks
	// still tick: every 1024th now.
	r.deadline.Store(nil)
	before := r.ticks.Load()
	_, err = m.ExportedFunction("fib").Call(context.Background(), 20) // 21,891 calls
	require.NoError(t, err)
	require.InDelta(t, 21891/1024, r.ticks.Load()-before, 1)
}

// TestInstrumentPlugins: every committed module — test modules and
// first-party plugins, Go and C and WAT — instruments and compiles.
func TestInstrumentPlugins(t *testing.T) {
	t.Parallel()
	var files []string
	for _, pattern := range []string{"../../testdata/*.wasm", "../../../../plugins/*/*.wasm", "../../../generation/testdata/*.wasm"} {
		m, err := filepath.Glob(pattern)
		require.NoError(t, err)
		files = append(files, m...)
	}
	require.Greater(t, len(files), 10)
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(false))
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	for _, f := range files {
		wasm, err := os.ReadFile(f)
		require.NoError(t, err)
		if _, err := rt.CompileModule(ctx, wasm); err != nil {
			continue // a test module that is invalid on purpose
		}
		require.NoError(t, CheckCounts(wasm), f)
		metered, err := Instrument(wasm, 4096)
		require.NoError(t, err, f)
		_, err = rt.CompileModule(ctx, metered)
		require.NoError(t, err, f)
	}
}

// TestInstrumentRefuses: what Instrument does not take.
func TestInstrumentRefuses(t *testing.T) {
	t.Parallel()
	wasm := testModule(t)
	_, err := Instrument(wasm, 0)
	require.ErrorContains(t, err, "quantum")
	_, err = Instrument([]byte("hello"), 1)
	require.ErrorContains(t, err, "not a WebAssembly")
	_, err = Instrument(wasm[:len(wasm)-3], 1)
	require.Error(t, err)
	metered, err := Instrument(wasm, 1)
	require.NoError(t, err)
	_, err = Instrument(metered, 1)
	require.ErrorContains(t, err, "imports from ulan_meter")
	// A try block (exception handling, which wazero does not run): an
	// opcode Instrument does not know. Type () → (), one function whose
	// body is try, end, end.
	eh := append(append([]byte(nil), header...),
		1, 4, 1, 0x60, 0, 0, // type section
		3, 2, 1, 0, // function section
		10, 7, 1, 5, 0, 0x06, 0x40, 0x0b, 0x0b) // code: no locals, try (empty) end end
	_, err = Instrument(eh, 1)
	require.ErrorContains(t, err, "opcode 0x6")
	// A module of nothing gains the import, type and counter.
	empty, err := Instrument(header, 1)
	require.NoError(t, err)
	rt := newRuntime(t)
	_, err = rt.CompileModule(context.Background(), empty)
	require.NoError(t, err)
}

// FuzzInstrument: any input is refused or gives a module Instrument can
// read again (which it then refuses only because it is metered already)
// and, if wazero accepted the input, that wazero accepts; never a panic.
// Inputs go to wazero only once CheckCounts passes them, as in Load (the
// first version of this target, without it, found wazero allocating 46 GB
// for a 700-byte module).
func FuzzInstrument(f *testing.F) {
	f.Add(testModule(f))
	f.Add([]byte(header))
	if hook, err := os.ReadFile("../../testdata/hook.wasm"); err == nil {
		f.Add(hook)
	}
	ctx := context.Background()
	// The interpreter decodes and validates as the compiler does, faster.
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	f.Cleanup(func() { rt.Close(ctx) })
	valid := func(wasm []byte) error {
		if err := CheckCounts(wasm); err != nil {
			return err
		}
		m, err := rt.CompileModule(ctx, wasm)
		if err == nil {
			m.Close(ctx)
		}
		return err
	}
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := Instrument(wasm, 7)
		if err != nil {
			return
		}
		_, err = Instrument(out, 7)
		require.ErrorContains(t, err, "imports from ulan_meter")
		if valid(wasm) == nil {
			require.NoError(t, valid(out))
		}
	})
}

// TestCheckCounts: the declarations wazero would allocate by, each a few
// bytes that ask for gigabytes, are refused; committed modules pass
// (TestInstrumentPlugins).
func TestCheckCounts(t *testing.T) {
	t.Parallel()
	mod := func(secs ...[]byte) []byte {
		out := append([]byte(nil), header...)
		for _, s := range secs {
			out = append(out, s...)
		}
		return out
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff, 0x0f} // 2³² − 1
	sec := func(id byte, payload ...byte) []byte {
		return append([]byte{id, byte(len(payload))}, payload...)
	}
	for name, c := range map[string]struct {
		wasm []byte
		want string
	}{
		"a table section of 2³² tables":    {mod(sec(secTable, huge...)), "entries declared"},
		"a section longer than the module": {append(append([]byte(nil), header...), secType, 0xff, 0xff, 0x03, 0), "declares"},
		"a type of 2³² parameters":         {mod(sec(secType, append([]byte{1, 0x60}, huge...)...)), "entries declared"},
		"a data segment of 2 GB":           {mod(sec(secData, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x07)), "entries declared"},
		"a function of 10⁹ locals": {mod(sec(secType, 1, 0x60, 0, 0), sec(secFunction, 1, 0),
			sec(secCode, 1, 7, 1, 0x80, 0x94, 0xeb, 0xdc, 0x03, 0x7f)), "locals"},
		"element init expressions": {mod(sec(secElement, append([]byte{1, 5, 0x70}, huge...)...)), "entries declared"},
		"a name map of 2³² names":  {mod(sec(secCustom, append([]byte{4, 'n', 'a', 'm', 'e', 1, 5}, huge...)...)), "entries declared"},
		// wazero 1.12 panics validating a call to such a function.
		"a function of an undeclared type": {mod(sec(secType, 1, 0x60, 0, 0), sec(secFunction, 2, 0, 33)),
			"a function has type 33, and the module declares 1 types"},
		"an imported function of an undeclared type": {mod(sec(secImport, 1, 1, 'm', 1, 'f', 0x00, 1)),
			"a function has type 1, and the module declares 0 types"},
	} {
		require.ErrorContains(t, CheckCounts(c.wasm), c.want, name)
	}
	require.NoError(t, CheckCounts([]byte("not wasm")), "not a module: the decoder's to judge")
	require.NoError(t, CheckCounts(testModule(t)))
}

func BenchmarkInstrument(b *testing.B) {
	wasm, err := os.ReadFile("../../../../plugins/tokenizer/tokenizer.wasm")
	require.NoError(b, err)
	b.SetBytes(int64(len(wasm)))
	for b.Loop() {
		if _, err := Instrument(wasm, 4096); err != nil {
			b.Fatal(err)
		}
	}
}
