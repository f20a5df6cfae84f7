package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/plugin"
)

// example is one of the plugins under sdk/examples, with a config to run
// the conformance suite with (besides none).
type example struct {
	lang, kind, config string
}

func (e example) name() string { return e.lang + "-" + e.kind }
func (e example) dir() string  { return filepath.Join("../../sdk/examples", e.lang, e.kind) }

var examples = []example{
	{"go", "hook", `{"words": ["wörld", "secret"], "stop": "🌍"}`},
	{"go", "sampler", `{"temperature": 0.7, "top_k": 5, "top_p": 0.9}`},
	{"go", "tokenizer", `{"words": ["naïve", "café", "東京", "spaces"]}`},
	{"c", "hook", `{"words": ["wörld", "secret"], "stop": "🌍"}`},
	{"c", "sampler", `{"temperature": 0.7, "top_k": 5}`},
	{"c", "tokenizer", `{"words": ["naïve", "café", "東京", "spaces"]}`},
}

// haveClang reports whether the C toolchain for wasm32-wasi is installed
// (Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32).
func haveClang() bool {
	_, clang := exec.LookPath("clang")
	_, lld := exec.LookPath("wasm-ld")
	return clang == nil && lld == nil
}

// TestExamplePlugins builds every example plugin with `ulan plugin build`,
// once, and runs `ulan plugin test` on each, without a config and with one:
// each must pass the conformance suite. The C examples are then driven
// through the runtime to check what they do (the Go ones test their logic
// natively, in their own packages).
func TestExamplePlugins(t *testing.T) {
	if testing.Short() {
		t.Skip("builds plugins")
	}
	t.Parallel()
	out := t.TempDir()
	wasm := func(e example) string { return filepath.Join(out, e.name()+".wasm") }
	skipC := func(t *testing.T, e example) {
		if e.lang == "c" && !haveClang() {
			t.Skip("clang or wasm-ld is not installed (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)")
		}
	}
	t.Run("build", func(t *testing.T) {
		for _, e := range examples {
			t.Run(e.name(), func(t *testing.T) {
				skipC(t, e)
				t.Parallel()
				code, stdout, errOut := ulan(t, "", "plugin", "build", e.dir(), "-o", wasm(e))
				require.Equal(t, 0, code, errOut)
				require.Contains(t, stdout, "built "+wasm(e))
			})
		}
	})
	t.Run("test", func(t *testing.T) {
		for _, e := range examples {
			t.Run(e.name(), func(t *testing.T) {
				skipC(t, e)
				t.Parallel()
				if _, err := os.Stat(wasm(e)); err != nil {
					t.Fatalf("not built: %v", err)
				}
				config := filepath.Join(out, e.name()+".json")
				require.NoError(t, os.WriteFile(config, []byte(e.config), 0o600))
				for _, args := range [][]string{{wasm(e)}, {"--config", config, wasm(e)}} {
					code, stdout, errOut := ulan(t, "", append([]string{"plugin", "test"}, args...)...)
					require.Equal(t, 0, code, "ulan plugin test %v:\n%s%s", args, stdout, errOut)
					require.Contains(t, stdout, "PASS")
				}
			})
		}
	})
	if !haveClang() {
		return
	}
	load := func(t *testing.T, kind string, config string) *plugin.Plugin {
		t.Helper()
		b, err := os.ReadFile(wasm(example{lang: "c", kind: kind}))
		require.NoError(t, err)
		p, err := plugin.Load(context.Background(), b, plugin.Config{ID: "c-" + kind, Kind: plugin.Kind(kind),
			PluginConfig: json.RawMessage(config), PoolSize: 1, MemoryPages: 64, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close(context.Background()) })
		return p
	}
	ctx := context.Background()
	t.Run("c-hook masks and stops across deltas", func(t *testing.T) {
		t.Parallel()
		p := load(t, "hook", `{"words": ["secret", "wörld"], "stop": "THE END"}`)
		s, err := p.OpenHook(ctx, []byte(`{}`))
		require.NoError(t, err)
		defer s.Close(ctx)
		for _, step := range []struct {
			delta string
			ch    plugin.HookChannel
			want  plugin.HookResult
		}{
			{"hello ", plugin.ChannelContent, plugin.HookResult{Action: plugin.HookPass}},
			{"a sec", plugin.ChannelContent, plugin.HookResult{Action: plugin.HookReplace, Emit: "a "}},
			{"ret plan", plugin.ChannelContent, plugin.HookResult{Action: plugin.HookRedact, Emit: "****** plan"}},
			{"secret", plugin.ChannelReasoning, plugin.HookResult{Action: plugin.HookPass}},
			{" wör", plugin.ChannelContent, plugin.HookResult{Action: plugin.HookReplace, Emit: " "}},
			{"ld, THE", plugin.ChannelContent, plugin.HookResult{Action: plugin.HookRedact, Emit: "*****, "}},
			{" ENDING", plugin.ChannelContent, plugin.HookResult{Action: plugin.HookStop}},
		} {
			r, err := s.Delta(ctx, step.delta, nil, step.ch)
			require.NoError(t, err)
			require.Equal(t, step.want, r, "delta %q", step.delta)
		}
	})
	t.Run("c-sampler draws from the top k", func(t *testing.T) {
		t.Parallel()
		p := load(t, "sampler", `{"top_k": 2}`)
		b, err := p.OpenSamplerBatch(ctx)
		require.NoError(t, err)
		defer b.Close(ctx)
		// smp_open's JSON as the host writes it (sdk/ABI.md §6.2); the
		// plugin reads the request's sampling parameters from "sampling".
		topk, err := b.Open(ctx, []byte(`{"sampling": {"temperature": 1, "seed": "5"}, "vocab_size": 3}`))
		require.NoError(t, err)
		greedy, err := b.Open(ctx, []byte(`{"sampling": {"temperature": 0, "top_k": 0}, "params": {"top_k": 7}, "vocab_size": 3}`))
		require.NoError(t, err)
		// Candidates as the host sends them: largest first, ties to the lower id.
		row := func(h int64, u float32) plugin.SamplerRow {
			return plugin.SamplerRow{Handle: h, U0: u, IDs: []int32{11, 12, 10}, Logits: []float32{5, 5, 0}}
		}
		outs, err := b.Step(ctx, []plugin.SamplerRow{row(topk, 0.1), row(topk, 0.9), row(greedy, 0.9)})
		require.NoError(t, err)
		require.Equal(t, []int32{11, 12, 11}, []int32{outs[0].Token, outs[1].Token, outs[2].Token})
		_, err = b.Open(ctx, []byte(`{"sampling": {"top_k": -1}, "vocab_size": 3}`))
		require.ErrorContains(t, err, "smp_open: status 1: top_k: an integer from 0 (all) to 4096")
	})
	t.Run("c-tokenizer merges listed words", func(t *testing.T) {
		t.Parallel()
		p := load(t, "tokenizer", `{"words": ["hello", "world"]}`)
		info, err := p.TokenizerInfo(ctx)
		require.NoError(t, err)
		require.Equal(t, plugin.TokenizerInfo{VocabSize: 267, BOS: 256, EOS: []int32{256}, DecodeIsConcat: true}, info,
			"bytes, <|endoftext|>, 4 prefixes and a spaced form per word")
		vocab, err := p.Vocab(ctx, info.VocabSize)
		require.NoError(t, err)
		require.Equal(t, "hello", string(vocab[260]))
		require.Equal(t, " world", string(vocab[266]))
		ids, err := p.Encode(ctx, "hello world<|endoftext|>", 1|2, info.VocabSize) // add and parse special tokens
		require.NoError(t, err)
		require.Equal(t, []int32{256, 260, 266, 256}, ids)
		text, err := p.Decode(ctx, ids, 4) // skip special tokens
		require.NoError(t, err)
		require.Equal(t, "hello world", text)
		_, err = p.Decode(ctx, []int32{999}, 0)
		require.ErrorContains(t, err, "tok_decode: status 1: token id outside the vocabulary")
	})
}
