package tokenizer_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
	"github.com/ulan-ai/ulan/host/plugin"
	"github.com/ulan-ai/ulan/host/tokenizer"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"
)

// fuzzTokenizers are the native tokenizer and the one rebuilt from a test
// model's GGUF metadata, loaded once per test process.
var fuzzTokenizers struct {
	once             sync.Once
	native, fromGGUF *hf.Tokenizer
	err              error
}

// fuzzMu serialises the shared tokenizers (Encode is not safe for
// concurrent use).
var fuzzMu sync.Mutex

func loadFuzzTokenizers(t testing.TB) (nat, fromGGUF *hf.Tokenizer) {
	t.Helper()
	fuzzTokenizers.once.Do(func() {
		fuzzTokenizers.native = native(t)
		dir, err := os.MkdirTemp("", "ulan-tokenizer-fuzz")
		if err != nil {
			fuzzTokenizers.err = err
			return
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "tok.gguf")
		if fuzzTokenizers.err = testmodel.WriteTokenizerFile(path, "deepseek-v3"); fuzzTokenizers.err != nil {
			return
		}
		f, err := gguf.Open(path)
		if err != nil {
			fuzzTokenizers.err = err
			return
		}
		defer f.Close()
		fuzzTokenizers.fromGGUF, fuzzTokenizers.err = tokenizer.FromGGUF(f)
	})
	require.NoError(t, fuzzTokenizers.err)
	return fuzzTokenizers.native, fuzzTokenizers.fromGGUF
}

// FuzzPluginMatchesNative: on arbitrary text the sandboxed tokenizer
// plugin, the native fallback and the tokenizer rebuilt from GGUF metadata
// give the same ids under every encode flag (the GGUF one with special
// tokens parsed); on arbitrary ids (the model's [PAD] fillers and ids
// outside every vocabulary among them) the plugin and the native fallback
// decode to the same text or both refuse, under every decode flag, and the
// GGUF tokenizer agrees on the ids both know.
func FuzzPluginMatchesNative(f *testing.F) {
	for _, s := range []string{
		"", "Hello, world!", "中文 日本語 한국어", "👍🏽 e\u0301 \t\n  123456",
		"<｜begin▁of▁sentence｜>hi<｜User｜>x<｜Assistant｜>", "ok\xff\xfe \xe2\x82 end",
	} {
		f.Add(s, []byte(s), uint8(hf.ParseSpecial|hf.SkipSpecial))
	}
	// Byte tokens 0xe2 (161) and 0x82 (227), the BOS, then 0xac (108).
	f.Add("x", []byte{161, 0, 0, 227, 0, 0, 0, 0, 0, 108, 0, 0}, uint8(hf.SkipSpecial))
	f.Add("", []byte{0xff, 0xff, 0xff, 0x7f, 0xf4, 0xf6, 0x01}, uint8(0))
	// Load before fuzzing: a fuzz worker gives one input 10s at most
	// (golang/go#56238), and the first load takes seconds.
	loadPlugin(f, plugin.Sandboxed)
	loadFuzzTokenizers(f)
	f.Fuzz(func(t *testing.T, text string, picks []byte, flagBits uint8) {
		if len(text) > 1<<14 || len(picks) > 1<<14 {
			t.Skip("too long for one execution")
		}
		ctx := context.Background()
		p := loadPlugin(t, plugin.Sandboxed)
		nat, fromGGUF := loadFuzzTokenizers(t)
		fuzzMu.Lock()
		defer fuzzMu.Unlock()

		encFlags := hf.Flags(flagBits) & (hf.AddSpecial | hf.ParseSpecial)
		want, err := nat.Encode(text, encFlags)
		require.NoError(t, err)
		got, err := p.Encode(ctx, text, int32(encFlags), nat.VocabSize())
		require.NoError(t, err)
		requireSame(t, want, got, "plugin encode, flags %d", encFlags)
		// The GGUF tokenizer marks DeepSeek's <｜User｜>-like added tokens
		// special, as llama.cpp's converter does (they look special); the
		// two agree when special tokens are parsed.
		ggufFlags := encFlags | hf.ParseSpecial
		want, err = nat.Encode(text, ggufFlags)
		require.NoError(t, err)
		got, err = fromGGUF.Encode(text, ggufFlags)
		require.NoError(t, err)
		requireSame(t, want, got, "GGUF encode, flags %d", ggufFlags)

		// Ids: three bytes each, little-endian, as a signed 24-bit
		// number, so that negative ids, ids past the native vocabulary
		// (the GGUF model's [PAD] fillers) and past every vocabulary occur.
		var ids []int32
		for i := 0; i+3 <= len(picks); i += 3 {
			v := int32(picks[i]) | int32(picks[i+1])<<8 | int32(int8(picks[i+2]))<<16
			ids = append(ids, v%(int32(fromGGUF.VocabSize())+16))
		}
		decFlags := hf.Flags(flagBits) & hf.SkipSpecial
		wantText, wantErr := nat.Decode(ids, decFlags)
		gotText, gotErr := p.Decode(ctx, ids, int32(decFlags))
		if wantErr != nil {
			require.ErrorContains(t, gotErr, "outside the vocabulary", "native refuses %v (%v)", ids, wantErr)
		} else {
			require.NoError(t, gotErr)
			require.Equal(t, wantText, gotText, "plugin decode, flags %d", decFlags)
		}
		// Without SkipSpecial (which leaves out more of the GGUF
		// tokenizer's tokens, see above), the GGUF tokenizer decodes the
		// ids native knows to the same text.
		if want, err := nat.Decode(ids, 0); err == nil {
			got, err := fromGGUF.Decode(ids, 0)
			require.NoError(t, err, "GGUF decode")
			require.Equal(t, want, got, "GGUF decode")
		}
	})
}

func requireSame(t *testing.T, want, got []int32, msg string, args ...any) {
	t.Helper()
	if len(want) == 0 && len(got) == 0 {
		return
	}
	require.Equal(t, want, got, append([]any{msg}, args...)...)
}
