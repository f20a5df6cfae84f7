package plugin

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
)

// contain runs bad, a call that misbehaves, and checks that it is
// contained: while it runs, good (a call through the plugin's other
// instance) and a call through another plugin succeed; then the instance
// bad lost is replaced and the plugin stays healthy. If blocking, good
// starts only once bad holds its instance, so the two overlap. It returns
// bad's error.
func contain(t *testing.T, p *Plugin, blocking bool, good, bad func() error) error {
	t.Helper()
	other, _ := load(t, "ok", Config{PoolSize: 1})
	errc := make(chan error, 1)
	go func() { errc <- bad() }()
	if blocking {
		require.Eventually(t, func() bool { s := p.Stats(); return s.Idle < s.Size }, 10*time.Second, time.Millisecond)
	}
	require.NoError(t, good(), "the plugin's other instance serves")
	res, err := other.Call(context.Background(), "add", 2, 3)
	require.NoError(t, err, "another plugin serves")
	require.Equal(t, uint64(5), res[0])
	err = <-errc
	require.Error(t, err)
	require.Eventually(t, func() bool { s := p.Stats(); return s.Idle == s.Size && s.Replacements == 1 }, 10*time.Second, 5*time.Millisecond,
		"the lost instance is replaced")
	require.False(t, p.Stats().Unhealthy, "one failure does not make the plugin unhealthy")
	return err
}

// TestHostilePlugins: each misbehaviour of a bare module fails its own call
// with a clear kind, the instance is replaced, and other instances and
// plugins go on serving.
func TestHostilePlugins(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		export   string
		blocking bool
		kind     ErrorKind
		text     string
	}{
		{"spin", true, KindTimeout, "did not return within its deadline"},       // an infinite loop
		{"fan", true, KindTimeout, "did not return within its deadline"},        // 2^61 calls, no loop
		{"sleep", true, KindTimeout, "did not return within its deadline"},      // poll_oneoff on an hour's clock, forever
		{"wait_stdin", true, KindTimeout, "did not return within its deadline"}, // poll_oneoff and read on stdin, forever
		{"bomb", false, KindTrap, "unreachable"},                                // memory.grow until refused
		{"boom", false, KindTrap, "unreachable"},                                // a trap
		{"deep", false, KindTrap, "stack overflow"},                             // unbounded recursion
		{"exit", false, KindExit, "exit_code(3)"},                               // proc_exit, as after an unrecovered Go panic
	} {
		for _, unmetered := range []bool{false, true} {
			name := tc.export
			if unmetered {
				// The fallback for a module the meter cannot rewrite:
				// wazero's own checks, at loop heads only, so not fan.
				if tc.export == "fan" {
					continue
				}
				name += "/unmetered"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				timeout := 10 * time.Second
				if tc.blocking {
					timeout = 300 * time.Millisecond
				}
				p, logs := load(t, "hostile", Config{PoolSize: 2, MemoryPages: 4, CallTimeout: timeout, unmetered: unmetered})
				require.Equal(t, unmetered, strings.Contains(logs.String(), "plugin not metered"))
				good := func() error {
					res, err := p.Call(context.Background(), "add", 1, 2)
					if err == nil && res[0] != 3 {
						t.Errorf("add(1, 2) = %d", res[0])
					}
					return err
				}
				err := contain(t, p, tc.blocking, good, func() error {
					_, err := p.Call(context.Background(), tc.export)
					return err
				})
				var ce *CallError
				require.ErrorAs(t, err, &ce)
				require.Equal(t, tc.kind, ce.Kind, "%v", err)
				require.ErrorContains(t, err, "plugin hostile: "+tc.export)
				require.ErrorContains(t, err, tc.text)
			})
		}
	}
}

// TestNoFilesystem: a plugin that tries to open a file gets an error, not a
// file: no directory is preopened, so there is nothing to open a path in.
func TestNoFilesystem(t *testing.T) {
	t.Parallel()
	for _, grants := range []Grants{{}, {Clock: true}} {
		p, _ := load(t, "hostile", Config{PoolSize: 1, Grants: grants})
		call := func(export string, args ...uint64) uint32 {
			res, err := p.Call(context.Background(), export, args...)
			require.NoError(t, err, export)
			return uint32(res[0])
		}
		const ebadf = 8 // WASI's errno
		for fd := range uint64(8) {
			for _, abs := range []uint64{0, 1} {
				require.NotZero(t, call("open_at", fd, abs), "path_open in fd %d (absolute: %d) fails", fd, abs)
				require.Equal(t, uint32(0xffffffff), call("opened"), "no descriptor was written")
			}
		}
		require.Equal(t, uint32(ebadf), call("open_at", 3, 0), "fd 3, where wasi-libc looks for the first preopened directory, is not open")
		for fd := uint64(3); fd < 8; fd++ {
			require.Equal(t, uint32(ebadf), call("prestat", fd), "fd %d is no preopened directory", fd)
		}
		require.Equal(t, Stats{Idle: 1, Size: 1}, p.Stats(), "an error from WASI is no failure of the plugin")
	}
}

// badKind loads one of the testdata modules that break a kind's contract,
// with two instances.
func badKind(t *testing.T, name string, kind Kind, timeout time.Duration) *Plugin {
	t.Helper()
	module := withManifest(t, name, `{"abi":1,"name":"`+name+`","version":"0.1.0","kind":"`+string(kind)+`"}`)
	p, err := loadWithLog(module, Config{ID: name, Kind: kind, PoolSize: 2, MemoryPages: 16, CallTimeout: timeout}, &syncBuffer{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// TestHostileHook: a hook's malformed, oversized or invalid UTF-8 record, a
// hang and a trap each fail the delta with a clear error and end the
// session; later calls on it fail cleanly; the instance is replaced.
func TestHostileHook(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		delta, want string
		blocking    bool
	}{
		{"u: invalid UTF-8", "hook_delta returned text that is not valid UTF-8", false},
		{"b: 2 MiB", "hook_delta returned a record of 2097152 bytes", false},
		{"o: outside", "hook_delta returned a record outside its memory", false},
		{"a: action 9", "hook_delta returned a malformed record (action 9", false},
		{"l: length", "hook_delta returned a malformed record (action 1, text 100 of 2 bytes)", false},
		{"s: sleeps", "hook_delta: timeout: did not return within its deadline", true},
		{"t: traps", "hook_delta: trap", false},
	} {
		t.Run(tc.delta[:1], func(t *testing.T) {
			t.Parallel()
			timeout := 10 * time.Second
			if tc.blocking {
				timeout = 300 * time.Millisecond
			}
			p := badKind(t, "badhook", KindHook, timeout)
			good := func() error {
				s, err := p.OpenHook(ctx, []byte(`{}`))
				if err != nil {
					return err
				}
				defer s.Close(ctx)
				r, err := s.Delta(ctx, "fine", nil, ChannelContent)
				if err == nil && r.Action != HookPass {
					t.Errorf("good delta: %+v", r)
				}
				return err
			}
			s, err := p.OpenHook(ctx, []byte(`{}`))
			require.NoError(t, err)
			err = contain(t, p, tc.blocking, good, func() error {
				_, err := s.Delta(ctx, tc.delta, []int32{1}, ChannelContent)
				return err
			})
			require.ErrorContains(t, err, "plugin badhook: ")
			require.ErrorContains(t, err, tc.want)
			_, err = s.Delta(ctx, "more", nil, ChannelContent)
			require.ErrorContains(t, err, "the session's instance failed")
			_, err = s.End(ctx, 1)
			require.ErrorContains(t, err, "the session's instance failed")
			s.Close(ctx)
			require.Equal(t, 1, p.Stats().Replacements, "closing a failed session costs nothing more")
		})
	}
}

// TestHostileSampler: a selector that picks a token outside the row's
// candidates, or writes a NaN logit, or hangs, fails the step with a clear
// error and gives up the batch; the instance is replaced.
func TestHostileSampler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	row := func(h int64, position int32) []SamplerRow {
		return []SamplerRow{{Handle: h, Position: position, IDs: []int32{11, 12, 13}, Logits: []float32{1, 2, 3}}}
	}
	for _, tc := range []struct {
		position int32
		want     string
		blocking bool
	}{
		{1, "smp_step: row 0: token 1000000 is not one of the row's candidates", false},
		{2, "smp_step: row 0: token -7 is not one of the row's candidates", false},
		{3, "smp_step: row 0: NaN logit for candidate 11", false},
		{4, "smp_step: timeout: did not return within its deadline", true},
	} {
		t.Run(tc.want[len("smp_step: "):][:12], func(t *testing.T) {
			t.Parallel()
			timeout := 10 * time.Second
			if tc.blocking {
				timeout = 300 * time.Millisecond
			}
			p := badKind(t, "badsmp", KindSampler, timeout)
			good := func() error {
				b, err := p.OpenSamplerBatch(ctx)
				if err != nil {
					return err
				}
				defer b.Close(ctx)
				h, err := b.Open(ctx, []byte(`{}`))
				if err != nil {
					return err
				}
				out, err := b.Step(ctx, row(h, 0))
				if err == nil && out[0].Token != 11 {
					t.Errorf("good step: %+v", out)
				}
				if err != nil {
					return err
				}
				return b.CloseSequence(ctx, h)
			}
			b, err := p.OpenSamplerBatch(ctx)
			require.NoError(t, err)
			h, err := b.Open(ctx, []byte(`{}`))
			require.NoError(t, err)
			err = contain(t, p, tc.blocking, good, func() error {
				_, err := b.Step(ctx, row(h, tc.position))
				return err
			})
			require.ErrorContains(t, err, "plugin badsmp: ")
			require.ErrorContains(t, err, tc.want)
			_, err = b.Step(ctx, row(h, 0))
			require.ErrorContains(t, err, "the session's instance failed")
			require.ErrorContains(t, b.CloseSequence(ctx, h), "the session's instance failed")
			b.Close(ctx)
			require.Equal(t, 1, p.Stats().Replacements)
		})
	}
}

// TestHostileTokenizer: ids outside the vocabulary, oversized or
// out-of-memory outputs, a partial id and invalid UTF-8 are refused with a
// clear error; the instance is replaced.
func TestHostileTokenizer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		text string // for tok_encode; empty: decode 0xff
		want string
	}{
		{"r", "tok_encode: malformed output: token id 300 outside the vocabulary of 256"},
		{"n", "tok_encode: malformed output: token id -1 outside the vocabulary of 256"},
		{"h", "tok_encode: malformed output: 268435456 bytes"},
		{"o", "tok_encode: malformed output: outside its memory"},
		{"d", "tok_encode: malformed output: 3 bytes"},
		{"F", "ulan_free: trap"}, // the output was fine; the instance is not
		{"", "tok_decode: malformed output: not valid UTF-8"},
	} {
		t.Run("encode "+tc.text, func(t *testing.T) {
			t.Parallel()
			p := badKind(t, "badtok", KindTokenizer, 10*time.Second)
			info, err := p.TokenizerInfo(ctx)
			require.NoError(t, err)
			require.Equal(t, 256, info.VocabSize)
			good := func() error {
				ids, err := p.Encode(ctx, "fine", 0, info.VocabSize)
				if err == nil {
					require.Equal(t, []int32{'f', 'i', 'n', 'e'}, ids)
				}
				return err
			}
			err = contain(t, p, false, good, func() error {
				if tc.text == "" {
					_, err := p.Decode(ctx, []int32{0xff}, 0)
					return err
				}
				_, err := p.Encode(ctx, tc.text, 0, info.VocabSize)
				return err
			})
			require.ErrorContains(t, err, "plugin badtok: ")
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestGarbageTripsTheBreaker: refused outputs count as failed calls, so a
// plugin that keeps answering garbage is marked unhealthy instead of being
// re-instantiated on every call.
func TestGarbageTripsTheBreaker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := badKind(t, "badtok", KindTokenizer, 10*time.Second)
	for range breakerFailures {
		_, err := p.Encode(ctx, "r", 0, 256)
		require.ErrorContains(t, err, "outside the vocabulary")
	}
	_, err := p.Encode(ctx, "fine", 0, 256)
	var ce *CallError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, KindUnhealthy, ce.Kind)
	require.True(t, p.Stats().Unhealthy)
}

// TestChatWithoutTemplate: a tokenizer without tok_chat says so without a
// call, and its instances stay as they were.
func TestChatWithoutTemplate(t *testing.T) {
	t.Parallel()
	p := badKind(t, "badtok", KindTokenizer, 10*time.Second)
	_, err := p.Chat(context.Background(), ChatRequest{Messages: []ChatMessage{{Role: "user", Content: "hi"}}})
	require.ErrorIs(t, err, ErrNoChatTemplate)
	require.Equal(t, Stats{Idle: 2, Size: 2}, p.Stats())
}

// panickyCompiler is a runtime whose compiler panics, as wazero's validator
// did on a call to a function of an undeclared type.
type panickyCompiler struct{}

func (panickyCompiler) CompileModule(context.Context, []byte) (wazero.CompiledModule, error) {
	var types []int
	_ = types[33]
	return nil, nil
}

// TestCompilerPanicIsAnError: a module that makes the compiler panic fails
// its load with an error, and the one that did is refused before it.
func TestCompilerPanicIsAnError(t *testing.T) {
	t.Parallel()
	_, err := compile(context.Background(), panickyCompiler{}, nil)
	require.ErrorContains(t, err, "the WebAssembly compiler failed on it: runtime error: index out of range [33]")

	// A function of type 33 among 6 types, called: wazero 1.12 panics on it.
	raw, err := os.ReadFile("internal/meter/testdata/fuzz/FuzzInstrument/777631706c1c1678")
	require.NoError(t, err)
	line := strings.SplitN(string(raw), "\n", 3)[1]
	wasm, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(line, "[]byte("), ")"))
	require.NoError(t, err)
	_, err = Describe(context.Background(), []byte(wasm))
	require.ErrorContains(t, err, "a function has type 33, and the module declares 6 types")
}
