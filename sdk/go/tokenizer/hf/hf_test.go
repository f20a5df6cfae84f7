package hf_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/testmodel"
	"github.com/ulan-ai/ulan/host/plugin/primitive"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"
)

// native supplies the primitives from the host's own package, as the
// native fallback does.
type native struct{}

func (native) Compile(p string) (hf.Splitter, error) { return primitive.Compile(p) }
func (native) Merges(l, r, res []int32) (hf.Merger, error) {
	return primitive.NewRanks(l, r, res)
}
func (native) Sequence(parts []hf.Splitter) (hf.Splitter, error) {
	ps := make([]primitive.Splitter, len(parts))
	for i, p := range parts {
		ps[i] = p
	}
	return primitive.NewSequence(ps...)
}

func (native) ByteEncoder(split hf.Splitter, merges hf.Merger, byteIDs [256]int32) (hf.TextEncoder, error) {
	return primitive.NewByteEncoder(merges.(*primitive.Ranks), split, byteIDs)
}

// batching is native without the whole-text encoder: composed splits and
// batched merges.
type batching struct{}

func (batching) Compile(p string) (hf.Splitter, error)             { return native{}.Compile(p) }
func (batching) Merges(l, r, res []int32) (hf.Merger, error)       { return native{}.Merges(l, r, res) }
func (batching) Sequence(parts []hf.Splitter) (hf.Splitter, error) { return native{}.Sequence(parts) }

// plain is native without the optional interfaces: one split call per
// piece and one merge call per piece, as a minimal host would offer.
type plain struct{}

type plainSplitter struct{ s hf.Splitter }
type plainMerger struct{ m hf.Merger }

func (p plainSplitter) Split(text string) ([][2]int, error) { return p.s.Split(text) }
func (p plainMerger) Merge(s []int32) ([]int32, error)      { return p.m.Merge(s) }

func (plain) Compile(p string) (hf.Splitter, error) {
	s, err := native{}.Compile(p)
	return plainSplitter{s}, err
}
func (plain) Merges(l, r, res []int32) (hf.Merger, error) {
	m, err := native{}.Merges(l, r, res)
	return plainMerger{m}, err
}

var deepseek = sync.OnceValues(func() (*hf.Tokenizer, error) {
	tj, err := testmodel.TokenizerJSON()
	if err != nil {
		return nil, err
	}
	return hf.Load(tj, testmodel.TokenizerConfigJSON(), native{})
})

func loadDeepSeek(t testing.TB) *hf.Tokenizer {
	t.Helper()
	tok, err := deepseek()
	require.NoError(t, err)
	return tok
}

type corpusCase struct {
	Name string  `json:"name"`
	Text string  `json:"text"`
	IDs  []int32 `json:"ids"`
}

func loadCorpus(t testing.TB) []corpusCase {
	t.Helper()
	raw, err := os.ReadFile("testdata/corpus.json")
	require.NoError(t, err)
	var c struct {
		Cases []corpusCase `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(raw, &c))
	require.GreaterOrEqual(t, len(c.Cases), 200)
	return c.Cases
}

// TestCorpusMatchesTransformersJS: every case of the corpus gives exactly
// the ids transformers.js gives (testdata/gen_corpus.mjs), and decodes
// back to its text, with composed splits and batched merges and without.
func TestCorpusMatchesTransformersJS(t *testing.T) {
	for name, prims := range map[string]hf.Primitives{"plain primitives": plain{}, "batching primitives": batching{}} {
		t.Run(name, func(t *testing.T) {
			tj, err := testmodel.TokenizerJSON()
			require.NoError(t, err)
			tok, err := hf.Load(tj, testmodel.TokenizerConfigJSON(), prims)
			require.NoError(t, err)
			corpusMatches(t, tok)
		})
	}
	corpusMatches(t, loadDeepSeek(t))
}

func corpusMatches(t *testing.T, tok *hf.Tokenizer) {
	cases := loadCorpus(t)
	matched := 0
	for _, c := range cases {
		ids, err := tok.Encode(c.Text, hf.ParseSpecial)
		require.NoError(t, err, c.Name)
		if assertIDs(t, c, ids) {
			matched++
		}
		text, err := tok.Decode(ids, 0)
		require.NoError(t, err, c.Name)
		require.Equal(t, c.Text, text, "%s: decode round trip", c.Name)
	}
	t.Logf("%d of %d cases match transformers.js", matched, len(cases))
}

func assertIDs(t *testing.T, c corpusCase, got []int32) bool {
	t.Helper()
	if len(c.IDs) == 0 {
		c.IDs = []int32{}
	}
	if got == nil {
		got = []int32{}
	}
	return assertEqualIDs(t, c.IDs, got, c.Name, c.Text)
}

func assertEqualIDs(t *testing.T, want, got []int32, name, text string) bool {
	t.Helper()
	if len(want) == len(got) {
		same := true
		for i := range want {
			if want[i] != got[i] {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	t.Errorf("%s %q:\n want %v\n got  %v", name, text, want, got)
	return false
}

func TestSpecialTokensAndFlags(t *testing.T) {
	tok := loadDeepSeek(t)
	bos, eos := tok.BOS(), tok.EOS()
	require.Equal(t, int32(0), bos)
	require.Equal(t, int32(1), eos)
	text := "<｜begin▁of▁sentence｜>Hi"
	parsed, err := tok.Encode(text, hf.ParseSpecial)
	require.NoError(t, err)
	require.Equal(t, bos, parsed[0])
	plain, err := tok.Encode(text, 0)
	require.NoError(t, err)
	require.NotContains(t, plain, bos, "special-token text is text without ParseSpecial")
	back, err := tok.Decode(plain, 0)
	require.NoError(t, err)
	require.Equal(t, text, back)

	withBOS, err := tok.Encode("Hi", hf.AddSpecial)
	require.NoError(t, err)
	require.Equal(t, bos, withBOS[0], "add_bos_token")
	s, err := tok.Decode(withBOS, hf.SkipSpecial)
	require.NoError(t, err)
	require.Equal(t, "Hi", s)

	_, err = tok.Decode([]int32{int32(tok.VocabSize())}, 0)
	require.ErrorContains(t, err, "outside the vocabulary")
}

// TestInvalidUTF8: bytes that are not UTF-8 are encoded byte for byte and
// decode back as U+FFFD per maximal ill-formed subsequence; TokenBytes
// keeps them exact.
func TestInvalidUTF8(t *testing.T) {
	tok := loadDeepSeek(t)
	in := "ok\xff\xfe and \xe2\x82 end"
	ids, err := tok.Encode(in, 0)
	require.NoError(t, err)
	var raw []byte
	for _, id := range ids {
		raw = append(raw, tok.TokenBytes(id)...)
	}
	require.Equal(t, in, string(raw), "the bytes survive")
	text, err := tok.Decode(ids, 0)
	require.NoError(t, err)
	require.Equal(t, "ok\uFFFD\uFFFD and \uFFFD end", text)
}

func TestVocabularyExport(t *testing.T) {
	tok := loadDeepSeek(t)
	require.True(t, tok.DecodeIsConcat())
	ids, err := tok.Encode("Hello, 世界! 👍🏽 <think>x</think>", hf.ParseSpecial)
	require.NoError(t, err)
	var b strings.Builder
	for _, id := range ids {
		b.Write(tok.TokenBytes(id))
	}
	require.Equal(t, "Hello, 世界! 👍🏽 <think>x</think>", b.String())
}

func TestLoadErrors(t *testing.T) {
	for name, tc := range map[string]struct{ json, want string }{
		"not json":    {`{`, "tokenizer.json"},
		"not bpe":     {`{"model":{"type":"Unigram"}}`, `unsupported model type "Unigram"`},
		"empty vocab": {`{"model":{"type":"BPE","vocab":{}}}`, "0 tokens"},
		"bad merge":   {`{"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":["a b"]}}`, `merges[0] "a" "b"`},
		"bad pretok":  {`{"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"Whitespace"}}`, `pre_tokenizer type "Whitespace"`},
		"bad split":   {`{"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"Split","pattern":{"Regex":"a"},"behavior":"Removed"}}`, `Split behavior "Removed"`},
		"bad pattern": {`{"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"Split","pattern":{"Regex":"("},"behavior":"Isolated"}}`, "pattern"},
		"bad decoder": {`{"model":{"type":"BPE","vocab":{"a":0}},"decoder":{"type":"CTC"}}`, `decoder type "CTC"`},
		"bad added":   {`{"model":{"type":"BPE","vocab":{"a":0}},"added_tokens":[{"id":-1,"content":"x"}]}`, "added_tokens[0]"},
		"unknown bos": {`{"model":{"type":"BPE","vocab":{"a":0}}}`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := []byte(nil)
			if name == "unknown bos" {
				cfg = []byte(`{"bos_token":"<s>"}`)
				tc.want = `bos_token "<s>" is not a token`
			}
			_, err := hf.Load([]byte(tc.json), cfg, native{})
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestPathologicalInputs: a 1 MB word and 100k repeated characters encode
// (or fail with an error) and round-trip; nothing stalls.
func TestPathologicalInputs(t *testing.T) {
	if testing.Short() {
		t.Skip("encodes megabytes")
	}
	tok := loadDeepSeek(t)
	for name, text := range map[string]string{
		"1 MB word":      strings.Repeat("abcdefghij", 1<<17)[:1<<20],
		"100k same char": strings.Repeat("a", 100_000),
		"100k CJK":       strings.Repeat("你", 100_000),
		"100k spaces":    strings.Repeat(" ", 100_000),
		"100k digits":    strings.Repeat("7", 100_000),
	} {
		ids, err := tok.Encode(text, 0)
		if err != nil {
			t.Logf("%s: refused: %v", name, err)
			continue
		}
		back, err := tok.Decode(ids, 0)
		require.NoError(t, err, name)
		require.Equal(t, text, back, name)
	}
}

// BenchmarkEncode encodes the corpus's mixed-language text with the
// host's primitives natively (the native fallback's speed).
func BenchmarkEncode(b *testing.B) {
	tok := loadDeepSeek(b)
	var sb strings.Builder
	for _, c := range loadCorpus(b) {
		sb.WriteString(c.Text)
		sb.WriteString("\n")
	}
	text := sb.String()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := tok.Encode(text, hf.ParseSpecial); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad loads DeepSeek-V3's tokenizer files natively.
func BenchmarkLoad(b *testing.B) {
	tj, err := testmodel.TokenizerJSON()
	require.NoError(b, err)
	cfg := testmodel.TokenizerConfigJSON()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hf.Load(tj, cfg, native{}); err != nil {
			b.Fatal(err)
		}
	}
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func itoa(i int) string { return fmt.Sprint(i) }

// hfByteChar is byte b's character in the byte-level alphabet.
func hfByteChar(b int) string {
	n := 0
	for c := range 256 {
		if c >= '!' && c <= '~' || c >= 0xa1 && c <= 0xac || c >= 0xae && c <= 0xff {
			if c == b {
				return string(rune(c))
			}
			continue
		}
		if c == b {
			return string(rune(256 + n))
		}
		n++
	}
	return ""
}

// TestEncodeOffsets: each token's span holds the bytes it stands for, the
// spans tile the text in order, and the ids are Encode's.
func TestEncodeOffsets(t *testing.T) {
	tok := loadDeepSeek(t)
	for _, c := range loadCorpus(t) {
		ids, spans, err := tok.EncodeOffsets(c.Text, hf.ParseSpecial)
		require.NoError(t, err)
		want, err := tok.Encode(c.Text, hf.ParseSpecial)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(want), fmt.Sprint(ids), c.Name)
		at := 0
		for i, sp := range spans {
			require.Equal(t, at, sp[0], "%s: token %d starts where the last ended", c.Name, i)
			require.Equal(t, string(tok.TokenBytes(ids[i])), c.Text[sp[0]:sp[1]], "%s: token %d", c.Name, i)
			at = sp[1]
		}
		require.Equal(t, len(c.Text), at, c.Name)
	}
	ids, spans, err := tok.EncodeOffsets("Hi", hf.AddSpecial)
	require.NoError(t, err)
	require.Equal(t, tok.BOS(), ids[0])
	require.Equal(t, [2]int{0, 0}, spans[0])
}
