package primitive

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// pool holds runes of every class the DeepSeek patterns tell apart.
var pool = []rune("aZé漢字かカ가ßΩ\u0301\u0308 \t\r\n\u00a0\u2003\u2028\u0085\v\f0123٣١²½Ⅻ!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~«»—…€¢£©®™°±×÷✓😀👍🏽\u200d\ufe0f\u200b\u00ad\ufeff\x00\x01\x7f")

// samePieces requires the hand-written matcher and the regex engine to cut
// text the same way.
func samePieces(t *testing.T, expr, text string) {
	t.Helper()
	p, err := Compile(expr)
	require.NoError(t, err)
	require.NotNil(t, p.fast)
	want, err := p.regexSplit(text)
	require.NoError(t, err)
	require.Equal(t, want, fastSplit(p.fast, text), "pattern %q on %q", expr, text)
}

func TestFastSplitMatchesRegexp2(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	for _, expr := range []string{deepseekDigits, deepseekCJK, deepseekWords} {
		for _, text := range []string{"", "Hello, world!", "  a\n\n b  \r\n\tc ", "1234567 89", "你好世界abc", "don't -x --y 'é",
			"x\u0301 \u0301y", "\xff\xfe ok \xe2\x82", "a  ", "  ", "\n", " \n \n x", "!?\r\n\r\nz", " !a"} {
			samePieces(t, expr, text)
		}
		for range 2000 {
			n := r.IntN(24)
			var b strings.Builder
			for range n {
				b.WriteRune(pool[r.IntN(len(pool))])
			}
			samePieces(t, expr, b.String())
		}
	}
}

func FuzzFastSplitMatchesRegexp2(f *testing.F) {
	for _, s := range []string{"Hello, world!", "  a\n\n b  \r\n\tc ", "1234567", "你好abc", "x\u0301 \u0301y", "\xff ok"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 256 || !utf8.ValidString(text) && strings.ContainsRune(text, utf8.RuneError) {
			return // an invalid byte and a real U+FFFD are the same rune to both; keep inputs unambiguous
		}
		for _, expr := range []string{deepseekDigits, deepseekCJK, deepseekWords} {
			samePieces(t, expr, text)
		}
	})
}

func BenchmarkSplitDeepSeek(b *testing.B) {
	text := strings.Repeat("The quick brown fox — 1234567 jumps!\n 你好世界 don't stop...  ", 200)
	for _, name := range []string{"fast", "regexp2"} {
		b.Run(name, func(b *testing.B) {
			p, err := Compile(deepseekWords)
			require.NoError(b, err)
			if name == "regexp2" {
				p.fast = nil
			}
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if _, err := p.Split(text); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestFastSequenceMatchesPartByPart: the one-pass sequence of the three
// DeepSeek matchers cuts text as splitting each piece with each pattern in
// turn does, with the regex engine.
func TestFastSequenceMatchesPartByPart(t *testing.T) {
	t.Parallel()
	var parts []Splitter
	var slow []Splitter
	for _, expr := range []string{deepseekDigits, deepseekCJK, deepseekWords} {
		p, err := Compile(expr)
		require.NoError(t, err)
		parts = append(parts, p)
		slow = append(slow, regexOnly{p})
	}
	fast, err := NewSequence(parts...)
	require.NoError(t, err)
	require.NotNil(t, fast.fastParts())
	ref, err := NewSequence(slow...)
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(7, 8))
	for range 3000 {
		var b strings.Builder
		for range r.IntN(40) {
			b.WriteRune(pool[r.IntN(len(pool))])
		}
		text := b.String()
		want, err := ref.Split(text)
		require.NoError(t, err)
		got, err := fast.Split(text)
		require.NoError(t, err)
		require.Equal(t, want, got, "%q", text)
	}
}

// regexOnly splits with a pattern's regex engine, never its matcher.
type regexOnly struct{ p *Pattern }

func (r regexOnly) Split(text string) ([][2]int, error) { return r.p.regexSplit(text) }
