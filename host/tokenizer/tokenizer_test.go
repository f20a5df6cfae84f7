package tokenizer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/testmodel"
	"github.com/ulan-ai/ulan/host/plugin"
	"github.com/ulan-ai/ulan/host/tokenizer"
	"github.com/ulan-ai/ulan/plugins"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/chatfmt"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"
)

type corpusCase struct {
	Name string  `json:"name"`
	Text string  `json:"text"`
	IDs  []int32 `json:"ids"`
}

func corpus(t testing.TB) []corpusCase {
	t.Helper()
	raw, err := os.ReadFile("../../sdk/go/tokenizer/hf/testdata/corpus.json")
	require.NoError(t, err)
	var c struct {
		Cases []corpusCase `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(raw, &c))
	return c.Cases
}

func native(t testing.TB) *hf.Tokenizer {
	t.Helper()
	tj, err := testmodel.TokenizerJSON()
	require.NoError(t, err)
	tok, err := tokenizer.Native(tj, testmodel.TokenizerConfigJSON())
	require.NoError(t, err)
	return tok
}

// pluginConfig is the tokenizer plugin's configuration for DeepSeek-V3's
// tokenizer: its bundle.
func pluginConfig(t testing.TB) []byte {
	t.Helper()
	cfg, err := tokenizer.PluginConfig(native(t), "")
	require.NoError(t, err)
	return cfg
}

var loaded sync.Map // tier → *plugin.Plugin

func loadPlugin(t testing.TB, tier plugin.Tier) *plugin.Plugin {
	t.Helper()
	if testing.Short() {
		t.Skip("loads the tokenizer plugin")
	}
	if p, ok := loaded.Load(tier); ok {
		return p.(*plugin.Plugin)
	}
	start := time.Now()
	p, err := plugin.Load(context.Background(), plugins.Tokenizer, plugin.Config{
		ID: "tokenizer", Kind: plugin.KindTokenizer, Tier: tier, PoolSize: 1, MemoryPages: 8192,
		// Generous deadlines: under -race the plugin's host primitives run
		// ~8× slower, and these tests check answers, not speed (deadlines
		// are host/plugin's hostile tests' business).
		CallTimeout: time.Minute, InitTimeout: 2 * time.Minute, PluginConfig: pluginConfig(t),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	t.Logf("loaded the plugin (%v tier) in %v", tier, time.Since(start))
	loaded.Store(tier, p)
	return p
}

// TestPluginMatchesNativeAndReference: on the whole corpus the plugin
// (sandboxed), the native fallback and transformers.js give the same ids,
// and the plugin decodes them back.
func TestPluginMatchesNativeAndReference(t *testing.T) {
	ctx := context.Background()
	p := loadPlugin(t, plugin.Sandboxed)
	nat := native(t)
	info, err := p.TokenizerInfo(ctx)
	require.NoError(t, err)
	require.Equal(t, nat.VocabSize(), info.VocabSize)
	require.Equal(t, int32(0), info.BOS)
	require.Equal(t, []int32{1}, info.EOS)
	require.True(t, info.DecodeIsConcat)
	matched := 0
	for _, c := range corpus(t) {
		got, err := p.Encode(ctx, c.Text, int32(hf.ParseSpecial), info.VocabSize)
		require.NoError(t, err, c.Name)
		want, err := nat.Encode(c.Text, hf.ParseSpecial)
		require.NoError(t, err, c.Name)
		require.Equal(t, fmt.Sprint(want), fmt.Sprint(got), "%s: plugin vs native", c.Name)
		if fmt.Sprint(c.IDs) == fmt.Sprint(got) || len(c.IDs) == 0 && len(got) == 0 {
			matched++
		}
		back, err := p.Decode(ctx, got, 0)
		require.NoError(t, err, c.Name)
		require.Equal(t, c.Text, back, c.Name)
	}
	require.Equal(t, len(corpus(t)), matched, "every case as transformers.js")
}

// TestPluginVocabulary: the plugin's vocabulary export is the native
// tokenizer's TokenBytes, id for id.
func TestPluginVocabulary(t *testing.T) {
	ctx := context.Background()
	p := loadPlugin(t, plugin.Sandboxed)
	nat := native(t)
	vocab, err := p.Vocab(ctx, nat.VocabSize())
	require.NoError(t, err)
	require.Len(t, vocab, nat.VocabSize())
	for id, b := range vocab {
		require.Equal(t, nat.TokenBytes(int32(id)), b, "token %d", id)
	}
}

// benchText is about 256 KiB of mixed-language text: the corpus's cases
// in a shuffled order with numbers between them, so that pieces repeat
// about as often as in real text, not every time.
func benchText(t testing.TB) string {
	cases := corpus(t)
	var b []byte
	for i := 0; len(b) < 256<<10; i++ {
		c := cases[(i*7919)%len(cases)]
		b = append(b, c.Text...)
		b = append(b, fmt.Sprintf(" %d\n", i*31337)...)
	}
	return string(b)
}

// BenchmarkEncode encodes benchText natively (the fallback) and through
// the plugin in both tiers, in one run: MB/s of text.
func BenchmarkEncode(b *testing.B) {
	text := benchText(b)
	b.Run("native", func(b *testing.B) {
		tok := native(b)
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			if _, err := tok.Encode(text, hf.ParseSpecial); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tier := range []struct {
		name string
		tier plugin.Tier
	}{{"sandboxed", plugin.Sandboxed}, {"trusted", plugin.Trusted}} {
		b.Run(tier.name, func(b *testing.B) {
			p := loadPlugin(b, tier.tier)
			ctx := context.Background()
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if _, err := p.Encode(ctx, text, int32(hf.ParseSpecial), 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPluginRendersChat: tok_chat renders with the tokenizer's Jinja
// template by default, as chatfmt does natively; a tool-calling assistant
// turn with empty content is null content to the template.
func TestPluginRendersChat(t *testing.T) {
	ctx := context.Background()
	p := loadPlugin(t, plugin.Sandboxed)
	req := plugin.ChatRequest{
		Messages: []plugin.ChatMessage{
			{Role: "system", Content: "You are a helpful assistant."},
			{Role: "user", Content: "Weather in Paris?"},
			{Role: "assistant", ToolCalls: []plugin.ChatToolCall{{ID: "c1", Name: "get_weather", Arguments: `{"location": "Paris"}`}}},
			{Role: "tool", ToolCallID: "c1", Content: `{"temp": 18}`},
		},
		AddGenerationPrompt: true,
	}
	got, err := p.Chat(ctx, req)
	require.NoError(t, err)
	s := func(v string) *string { return &v }
	want, err := chatfmt.Render(chatfmt.FormatJinja, native(t).ChatTemplate(), chatfmt.Conversation{
		Messages: []chatfmt.Message{
			{Role: "system", Content: s("You are a helpful assistant.")},
			{Role: "user", Content: s("Weather in Paris?")},
			{Role: "assistant", ToolCalls: []chatfmt.ToolCall{{ID: "c1", Name: "get_weather", Arguments: `{"location": "Paris"}`}}},
			{Role: "tool", ToolCallID: "c1", Content: s(`{"temp": 18}`)},
		},
		AddGenerationPrompt: true,
	})
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Contains(t, got, "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather")
}

// TestPluginPathologicalInputs: a 1 MB word and 100k repeated characters
// through the sandboxed plugin either encode (and round-trip) or fail with
// a clear error within the call deadline; the plugin keeps serving.
func TestPluginPathologicalInputs(t *testing.T) {
	if testing.Short() {
		t.Skip("megabytes through the plugin")
	}
	ctx := context.Background()
	p := loadPlugin(t, plugin.Sandboxed)
	for name, text := range map[string]string{
		"1 MB word":      strings.Repeat("abcdefghij", 1<<17)[:1<<20],
		"100k same char": strings.Repeat("a", 100_000),
		"100k CJK":       strings.Repeat("你", 100_000),
	} {
		start := time.Now()
		ids, err := p.Encode(ctx, text, 0, 1<<20)
		t.Logf("%s: encoded in %v", name, time.Since(start))
		if err != nil {
			require.NotEmpty(t, err.Error(), name)
			t.Logf("%s: refused: %v", name, err)
			continue
		}
		back, err := p.Decode(ctx, ids, 0)
		var ce *plugin.CallError
		if errors.As(err, &ce) && ce.Kind == plugin.KindTimeout {
			// A busy CI machine can take longer than the deadline: a clear
			// error in time is within the contract too.
			t.Logf("%s: decode refused: %v", name, err)
			continue
		}
		require.NoError(t, err, name)
		require.Equal(t, text, back, name)
	}
	ids, err := p.Encode(ctx, "still serving", 0, 1<<20)
	require.NoError(t, err)
	require.NotEmpty(t, ids)
}

// TestPluginConforms: the first-party tokenizer plugin, given DeepSeek's
// tokenizer, passes the conformance suite `ulan plugin test` runs,
// tok_chat and its declared limits included.
func TestPluginConforms(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the conformance suite")
	}
	checks := plugin.Conform(context.Background(), plugins.Tokenizer, pluginConfig(t), 0, nil)
	require.NotEmpty(t, checks)
	for _, c := range checks {
		require.NoError(t, c.Err, c.Name)
	}
}

// TestLongPrompt: a prompt of several MiB (a million-token context's worth)
// encodes with the native tokenizer, a chunk of the pre-tokenizer's pattern
// at a time, to the ids of its paragraphs encoded one by one, and decodes
// back; it used to fail past 1 MiB ("input out of bounds").
func TestLongPrompt(t *testing.T) {
	t.Parallel()
	tok := native(t)
	para := "The quick brown fox — 1234567 jumps!\n 你好世界 don't stop...  \n\n"
	text := strings.Repeat(para, (3<<20)/len(para))
	ids, err := tok.Encode(text, 0)
	require.NoError(t, err)
	one, err := tok.Encode(para, 0)
	require.NoError(t, err)
	// Each paragraph ends in "\n\n" before a letter, where the pattern always
	// cuts, so the whole is the paragraphs' ids in turn.
	require.Equal(t, len(one)*(len(text)/len(para)), len(ids))
	require.Equal(t, one, ids[:len(one)])
	require.Equal(t, one, ids[len(ids)-len(one):])
	back, err := tok.Decode(ids, 0)
	require.NoError(t, err)
	require.Equal(t, text, back)
}
