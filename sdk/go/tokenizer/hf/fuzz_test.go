package hf_test

import (
	"encoding/binary"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/testmodel"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"
)

// The fuzz targets here check DeepSeek-V3's tokenizer (which has no
// normalizer: its tokenizer.json's normalizer is an empty Sequence) on
// arbitrary input. The contract they hold it to:
//
//   - Encode accepts any byte string, valid UTF-8 or not, and its tokens'
//     TokenBytes spell the input exactly; Decode gives the input back when
//     it is valid UTF-8, and otherwise the input with each maximal
//     ill-formed subsequence replaced by U+FFFD (WHATWG's UTF-8 decoder).
//   - The three ways of running the hot loops (the whole-text encoder,
//     composed splits with batched merges, one call per piece) and a
//     tokenizer loaded from its bundle give the same ids.
//   - A Stream emits, after each token, exactly what a streaming WHATWG
//     decoder emits for the bytes so far: whole characters only, never a
//     U+FFFD that a later byte could have completed; its output ends as
//     the one-shot Decode.
//   - Decode of arbitrary ids is an error naming the id when one is
//     outside the vocabulary, and otherwise valid UTF-8 equal to decoding
//     the concatenated TokenBytes (of the non-special tokens, with
//     SkipSpecial) — never a panic.
//
// The tokenizers load once per test process (loadDeepSeek and fuzzOthers),
// not once per input, and before fuzzing starts (fuzzLoad): a fuzz worker
// gives one input 10s at most (golang/go#56238).

// fuzzMaxText bounds the inputs the targets encode, so that an execution
// stays fast; longer inputs are covered by TestPathologicalInputs.
const fuzzMaxText = 1 << 16

// fuzzHang is how long one input may take before the target reports a
// hang: orders of magnitude above a normal encode of fuzzMaxText bytes,
// even under the race detector.
const fuzzHang = 20 * time.Second

// fuzzOthers are DeepSeek's tokenizer over the other primitives and from
// its bundle, for differential checks against loadDeepSeek's.
var fuzzOthers = sync.OnceValues(func() (map[string]*hf.Tokenizer, error) {
	tj, err := testmodel.TokenizerJSON()
	if err != nil {
		return nil, err
	}
	out := map[string]*hf.Tokenizer{}
	for name, prims := range map[string]hf.Primitives{"batching": batching{}, "plain": plain{}} {
		tok, err := hf.Load(tj, testmodel.TokenizerConfigJSON(), prims)
		if err != nil {
			return nil, err
		}
		out[name] = tok
	}
	base, err := deepseek()
	if err != nil {
		return nil, err
	}
	b, err := base.Bundle()
	if err != nil {
		return nil, err
	}
	if out["bundle"], err = hf.LoadBundle(b, native{}); err != nil {
		return nil, err
	}
	return out, nil
})

// fuzzMu serialises the targets' use of the shared tokenizers: Encode is
// not safe for concurrent use (its piece cache), and a fuzz worker may run
// the seed corpus's cases in parallel.
var fuzzMu sync.Mutex

// fuzzTexts are the seeds of the text targets: ASCII, CJK, emoji (with
// modifiers and joiners), combining marks, whitespace runs, digits,
// control characters, added and special tokens, and invalid UTF-8.
var fuzzTexts = []string{
	"",
	"Hello, world! It's 3:45pm; don't panic.",
	"  leading and trailing spaces   ",
	"tabs\tand\nnewlines\r\n\r\n\n\nand\v\fothers",
	"\u00a0\u2003\u3000 unicode spaces\u2028\u2029\u0085",
	"1234567890 3.14159 1e-10 ٣٤٥ ０１２ ²³ Ⅻ",
	"中文分词测试，你好世界。日本語のテキスト、カタカナ。한국어 텍스트",
	"👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷 😀😃😄",
	"e\u0301 a\u0308 n\u0303 \u0915\u094d\u0937 ç̧̧ Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇",
	"\x00\x01\x02\x1b[31mred\x1b[0m\x7f",
	"<｜begin▁of▁sentence｜>You are<｜User｜>hi<｜Assistant｜><think>\n</think>ok<｜end▁of▁sentence｜>",
	"<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{}\n```<｜tool▁call▁end｜>",
	"<｜begin▁of▁sentence<｜<｜｜>",
	"ok\xff\xfe and \xe2\x82 end",
	"\xc0\x80 \xed\xa0\x80 \xf4\x90\x80\x80 \xf0\x9f\x98",
	"\x80\x80\x80\xbf",
	"\xe2\x82\xac\xe2\x82",
	"\uFFFD literal replacement \uFFFD",
	strings.Repeat("a", 300) + strings.Repeat(" ", 40) + strings.Repeat("7", 50),
	"func main() {\n\tfmt.Println(\"hi\") // comment\n}\n",
	"'s 're 've 'll 'd 'm 't ?!... --- ===",
	"Ａｂｃ ﬁ ﬀ ℌ ℍ Ω Å",
}

// fuzzLoad loads the tokenizers FuzzEncodeDecode compares.
func fuzzLoad(f *testing.F) {
	loadDeepSeek(f)
	_, err := fuzzOthers()
	require.NoError(f, err)
}

// checkFuzzText runs the encode contract on text.
func checkFuzzText(t *testing.T, text string) {
	tok := loadDeepSeek(t)
	others, err := fuzzOthers()
	require.NoError(t, err)
	fuzzMu.Lock()
	defer fuzzMu.Unlock()
	withinTime(t, func() {
		for _, flags := range []hf.Flags{0, hf.ParseSpecial} {
			ids, err := tok.Encode(text, flags)
			require.NoError(t, err, "a byte-level tokenizer encodes any bytes")
			var raw []byte
			for _, id := range ids {
				require.True(t, id >= 0 && int(id) < tok.VocabSize(), "id %d", id)
				if flags&hf.ParseSpecial == 0 {
					require.False(t, tok.IsSpecial(id), "special token %d without ParseSpecial", id)
				}
				raw = append(raw, tok.TokenBytes(id)...)
			}
			require.Equal(t, text, string(raw), "TokenBytes spell the input")

			back, err := tok.Decode(ids, 0)
			require.NoError(t, err)
			require.Equal(t, whatwgDecode([]byte(text), true), back)
			if utf8.ValidString(text) {
				require.Equal(t, text, back, "valid UTF-8 round-trips exactly")
			}

			for name, other := range others {
				got, err := other.Encode(text, flags)
				require.NoError(t, err, name)
				requireSameIDs(t, ids, got, "%s primitives, flags %d", name, flags)
			}

			offIDs, spans, err := tok.EncodeOffsets(text, flags)
			require.NoError(t, err)
			requireSameIDs(t, ids, offIDs, "EncodeOffsets")
			at := 0
			for i, sp := range spans {
				require.Equal(t, at, sp[0], "token %d starts where the last ended", i)
				require.Equal(t, string(tok.TokenBytes(ids[i])), text[sp[0]:sp[1]], "token %d", i)
				at = sp[1]
			}
			require.Equal(t, len(text), at)

			withBOS, err := tok.Encode(text, flags|hf.AddSpecial)
			require.NoError(t, err)
			requireSameIDs(t, append([]int32{tok.BOS()}, ids...), withBOS, "AddSpecial adds the BOS")
		}
	})
}

// FuzzEncodeDecode: any text encodes, its tokens spell it, it decodes
// back (exactly when valid UTF-8, WHATWG-replaced otherwise), and every
// way of running the tokenizer gives the same ids.
func FuzzEncodeDecode(f *testing.F) {
	for _, s := range fuzzTexts {
		f.Add(s)
	}
	fuzzLoad(f)
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > fuzzMaxText {
			t.Skip("too long for one execution")
		}
		checkFuzzText(t, text)
	})
}

// streamCheck pushes ids through a Stream over tokenBytes and checks that
// after each token its output so far is what a streaming WHATWG decoder
// emits for the bytes so far (so each delta is whole characters), and that
// the flushed whole equals want.
func streamCheck(t *testing.T, tokenBytes func(int32) []byte, ids []int32, want string) {
	s := hf.NewStream(tokenBytes)
	var raw []byte
	var got strings.Builder
	for k, id := range ids {
		raw = append(raw, tokenBytes(id)...)
		delta := s.Push(id)
		require.True(t, utf8.ValidString(delta), "delta %d %q is not whole UTF-8", k, delta)
		got.WriteString(delta)
		require.Equal(t, whatwgDecode(raw, false), got.String(), "output after token %d (%d)", k, id)
	}
	last := s.Flush()
	require.True(t, utf8.ValidString(last))
	got.WriteString(last)
	require.Equal(t, whatwgDecode(raw, true), got.String(), "flushed output")
	require.Equal(t, want, got.String(), "the stream ends as a whole decode")
	require.Equal(t, "", s.Flush(), "a second flush has nothing")
}

// FuzzStream: the tokens of a text, and an arbitrary sequence of tokens
// chosen by picks (single bytes, byte pairs, added tokens, any token),
// stream to the one-shot Decode, one whole character at a time; with
// special tokens left out (as the server streams a raw continuation) the
// stream ends as Decode with SkipSpecial.
func FuzzStream(f *testing.F) {
	for i, s := range fuzzTexts {
		f.Add(s, []byte(fuzzTexts[(i+5)%len(fuzzTexts)]))
	}
	f.Add("", []byte{0, 0xe2, 0, 0x82, 1, 0, 0, 0xac, 3, 0, 2})
	f.Add("x", []byte{0, 0xf0, 2, 0, 0, 0x9f, 2, 5, 0, 0x98, 0, 0x80})
	loadDeepSeek(f)
	f.Fuzz(func(t *testing.T, text string, picks []byte) {
		if len(text) > fuzzMaxText || len(picks) > fuzzMaxText {
			t.Skip("too long for one execution")
		}
		tok := loadDeepSeek(t)
		fuzzMu.Lock()
		defer fuzzMu.Unlock()
		withinTime(t, func() {
			ids, err := tok.Encode(text, hf.ParseSpecial)
			require.NoError(t, err)
			want, err := tok.Decode(ids, 0)
			require.NoError(t, err)
			streamCheck(t, tok.TokenBytes, ids, want)

			ids = ids[:0]
			for _, id := range pickIDs(t, tok, picks) {
				if id >= 0 && int(id) < tok.VocabSize() {
					ids = append(ids, id)
				}
			}
			want, err = tok.Decode(ids, 0)
			require.NoError(t, err)
			streamCheck(t, tok.TokenBytes, ids, want)

			nonSpecial := func(id int32) []byte {
				if tok.IsSpecial(id) {
					return nil
				}
				return tok.TokenBytes(id)
			}
			want, err = tok.Decode(ids, hf.SkipSpecial)
			require.NoError(t, err)
			streamCheck(t, nonSpecial, ids, want)
		})
	})
}

// FuzzDecodeIDs: arbitrary ids (in and out of the vocabulary, negative,
// added and special) decode to an error naming the vocabulary, or to valid
// UTF-8 that is the WHATWG decoding of their TokenBytes; decoding is
// stable under re-encoding.
func FuzzDecodeIDs(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add([]byte{1, 0, 0, 0, 0}, uint8(0))
	f.Add([]byte{4, 1, 4, 2, 4, 3, 4, 4}, uint8(0))
	f.Add([]byte{0, 'a', 0, 0xe2, 0, 0x82, 4, 5, 0, 0xac, 3, 7, 0}, uint8(0))
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 1, 0x10, 0x20, 0x30}, uint8(hf.SkipSpecial))
	f.Add([]byte("arbitrary bytes as ids \xff\xfe"), uint8(7))
	loadDeepSeek(f)
	f.Fuzz(func(t *testing.T, data []byte, flagBits uint8) {
		if len(data) > fuzzMaxText {
			t.Skip("too long for one execution")
		}
		tok := loadDeepSeek(t)
		fuzzMu.Lock()
		defer fuzzMu.Unlock()
		withinTime(t, func() {
			ids := pickIDs(t, tok, data)
			flags := hf.Flags(flagBits)
			inVocab := true
			var raw, rawNonSpecial []byte
			var kept []int32
			for _, id := range ids {
				b := tok.TokenBytes(id)
				_ = tok.Piece(id)
				if id < 0 || int(id) >= tok.VocabSize() {
					inVocab = false
					require.Nil(t, b, "id %d outside the vocabulary has no bytes", id)
					require.Empty(t, tok.Piece(id))
					require.False(t, tok.IsSpecial(id))
					continue
				}
				require.NotEmpty(t, b, "token %d has bytes", id)
				raw = append(raw, b...)
				if !tok.IsSpecial(id) {
					rawNonSpecial = append(rawNonSpecial, b...)
					kept = append(kept, id)
				}
			}
			text, err := tok.Decode(ids, flags)
			if !inVocab {
				require.ErrorContains(t, err, "outside the vocabulary")
				require.Empty(t, text)
				return
			}
			require.NoError(t, err)
			require.True(t, utf8.ValidString(text))
			if flags&hf.SkipSpecial != 0 {
				require.Equal(t, whatwgDecode(rawNonSpecial, true), text, "SkipSpecial decodes as if the special tokens were absent")
				alone, err := tok.Decode(kept, 0)
				require.NoError(t, err)
				require.Equal(t, alone, text)
			} else {
				require.Equal(t, whatwgDecode(raw, true), text, "decoding is concatenating TokenBytes")
			}

			again, err := tok.Encode(text, hf.ParseSpecial)
			require.NoError(t, err)
			back, err := tok.Decode(again, 0)
			require.NoError(t, err)
			require.Equal(t, text, back, "decoded text re-encodes to itself")
		})
	})
}

// pickIDs turns fuzz bytes into token ids, each by a kind byte and its
// operands: a raw little-endian int32 (any value, negative ones too), a
// byte's own token, an id modulo the vocabulary, an added token, or an
// edge of the id range.
func pickIDs(t *testing.T, tok *hf.Tokenizer, data []byte) []int32 {
	bt := byteTokens(t, tok)
	n := int32(tok.VocabSize())
	edges := []int32{-1, math.MinInt32, math.MaxInt32, n, n - 1, 0, 1, 2, tok.BOS(), tok.EOS(), 127999, 128000}
	var ids []int32
	for len(data) > 0 {
		kind := data[0] % 6
		data = data[1:]
		switch kind {
		case 0: // one byte's token
			if len(data) < 1 {
				return ids
			}
			ids = append(ids, bt[data[0]])
			data = data[1:]
		case 1: // a raw int32
			if len(data) < 4 {
				return ids
			}
			ids = append(ids, int32(binary.LittleEndian.Uint32(data)))
			data = data[4:]
		case 2: // any token
			if len(data) < 3 {
				return ids
			}
			v := int32(data[0]) | int32(data[1])<<8 | int32(data[2])<<16
			ids = append(ids, v%n)
			data = data[3:]
		case 3: // an added token (DeepSeek's are 128000 on, and 0 to 2)
			if len(data) < 2 {
				return ids
			}
			v := (int32(data[0]) | int32(data[1])<<8) % (n - 128000 + 3)
			if v < 3 {
				ids = append(ids, v)
			} else {
				ids = append(ids, 128000+v-3)
			}
			data = data[2:]
		case 4: // an edge
			if len(data) < 1 {
				return ids
			}
			ids = append(ids, edges[int(data[0])%len(edges)])
			data = data[1:]
		case 5: // a token of two bytes, as BPE merges them
			if len(data) < 2 {
				return ids
			}
			if id, ok := tok.TokenID(byteLevel(data[0]) + byteLevel(data[1])); ok {
				ids = append(ids, id)
			} else {
				ids = append(ids, bt[data[0]], bt[data[1]])
			}
			data = data[2:]
		}
	}
	return ids
}

var byteTokenIDs struct {
	once sync.Once
	ids  [256]int32
}

// byteTokens returns each byte's one-byte token.
func byteTokens(t *testing.T, tok *hf.Tokenizer) *[256]int32 {
	byteTokenIDs.once.Do(func() {
		for b := range 256 {
			id, ok := tok.TokenID(byteLevel(byte(b)))
			if !ok {
				panic("no token for a byte")
			}
			byteTokenIDs.ids[b] = id
		}
	})
	return &byteTokenIDs.ids
}

// byteLevel is byte b's character in the byte-level alphabet.
func byteLevel(b byte) string { return hfByteChar(int(b)) }

// withinTime runs fn, failing the test if it takes longer than fuzzHang
// (a hang, which the fuzzer would otherwise never report).
func withinTime(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan struct{})
	var failed bool
	go func() {
		defer close(done)
		failed = true
		fn()
		failed = false
	}()
	select {
	case <-done:
		if failed {
			t.FailNow() // fn's require already reported why
		}
	case <-time.After(fuzzHang):
		t.Fatalf("no result after %v: a hang", fuzzHang)
	}
}

func requireSameIDs(t *testing.T, want, got []int32, msg string, args ...any) {
	t.Helper()
	if len(want) == 0 && len(got) == 0 {
		return
	}
	require.Equal(t, want, got, append([]any{msg}, args...)...)
}

// whatwgDecode is the UTF-8 decoder of the WHATWG Encoding Standard
// (§8.1.1), written from the standard independently of the package's
// own: each maximal ill-formed subsequence becomes one U+FFFD. With final
// false it is the streaming decoder's output so far, which holds back an
// incomplete last character.
func whatwgDecode(b []byte, final bool) string {
	var out strings.Builder
	var cp rune
	needed, seen := 0, 0
	lower, upper := byte(0x80), byte(0xbf)
	for i := 0; i < len(b); i++ {
		c := b[i]
		if needed == 0 {
			switch {
			case c <= 0x7f:
				out.WriteByte(c)
			case c >= 0xc2 && c <= 0xdf:
				needed, cp = 1, rune(c&0x1f)
			case c >= 0xe0 && c <= 0xef:
				if c == 0xe0 {
					lower = 0xa0
				}
				if c == 0xed {
					upper = 0x9f
				}
				needed, cp = 2, rune(c&0xf)
			case c >= 0xf0 && c <= 0xf4:
				if c == 0xf0 {
					lower = 0x90
				}
				if c == 0xf4 {
					upper = 0x8f
				}
				needed, cp = 3, rune(c&0x7)
			default:
				out.WriteRune(utf8.RuneError)
			}
			continue
		}
		if c < lower || c > upper {
			cp, needed, seen, lower, upper = 0, 0, 0, 0x80, 0xbf
			out.WriteRune(utf8.RuneError)
			i-- // the byte is read again, as the standard prepends it to the stream
			continue
		}
		lower, upper = 0x80, 0xbf
		cp = cp<<6 | rune(c&0x3f)
		seen++
		if seen == needed {
			out.WriteRune(cp)
			cp, needed, seen = 0, 0, 0
		}
	}
	if needed > 0 && final {
		out.WriteRune(utf8.RuneError)
	}
	return out.String()
}

func TestWhatwgDecode(t *testing.T) {
	for in, want := range map[string]string{
		"a€b":                      "a€b",
		"\xe2\x82":                 "\uFFFD",
		"\xe2\x82(":                "\uFFFD(",
		"\xed\xa0\x80":             "\uFFFD\uFFFD\uFFFD",
		"\xf0\x9f\x98\x80\xf0\x9f": "😀\uFFFD",
		"\xc0\x80":                 "\uFFFD\uFFFD",
		"\xf4\x90\x80\x80":         "\uFFFD\uFFFD\uFFFD\uFFFD",
	} {
		require.Equal(t, want, whatwgDecode([]byte(in), true), "%q", in)
	}
	require.Equal(t, "😀", whatwgDecode([]byte("\xf0\x9f\x98\x80\xf0\x9f"), false))
}

// TestDecodeSkipSpecialJoinsAround: a special token that SkipSpecial
// leaves out does not cut the text around it, so a character whose bytes
// lie on both sides decodes whole (FuzzDecodeIDs found it cut in two).
func TestDecodeSkipSpecialJoinsAround(t *testing.T) {
	tok := loadDeepSeek(t)
	bt := byteTokens(t, tok)
	ids := []int32{bt[0xe2], bt[0x82], tok.BOS(), bt[0xac]}
	text, err := tok.Decode(ids, hf.SkipSpecial)
	require.NoError(t, err)
	require.Equal(t, "€", text)
	text, err = tok.Decode(ids, 0)
	require.NoError(t, err)
	require.Equal(t, "\uFFFD<｜begin▁of▁sentence｜>\uFFFD", text, "a token that is written still cuts")
}
