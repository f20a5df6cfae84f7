package primitive

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// deepseekSplit is the third Split regex of DeepSeek-V3's tokenizer.json, with
// the lookahead Go's regexp cannot express.
const deepseekSplit = `[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_` + "`" + `{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

func pieces(t *testing.T, p *Pattern, text string) []string {
	t.Helper()
	spans, err := p.Split(text)
	require.NoError(t, err)
	var out []string
	end := 0
	for _, s := range spans {
		require.Equal(t, end, s[0], "spans cover the text in order")
		out = append(out, text[s[0]:s[1]])
		end = s[1]
	}
	require.Equal(t, len(text), end)
	return out
}

func TestSplitDeepSeekPattern(t *testing.T) {
	t.Parallel()
	p, err := Compile(deepseekSplit)
	require.NoError(t, err)
	require.Equal(t, []string{"Hello", ",", " world", "!"}, pieces(t, p, "Hello, world!"))
	// \s+(?!\S) leaves the last space to the next word.
	require.Equal(t, []string{"a", "  ", " b"}, pieces(t, p, "a   b"))
	require.Equal(t, []string{"über", " café"}, pieces(t, p, "über café"))
	require.Equal(t, []string{"x", "\xff", "y"}, pieces(t, p, "x\xffy"), "an invalid byte stands alone")

	digits, err := Compile(`\p{N}{1,3}`)
	require.NoError(t, err)
	require.Equal(t, []string{"123", "456", "7", "ab"}, pieces(t, digits, "1234567ab"))

	_, err = Compile(`(`)
	require.ErrorContains(t, err, "pattern")
	_, err = p.Split(strings.Repeat("a", MaxSplitText+1))
	require.ErrorIs(t, err, ErrBounds)
}

func TestSplitLongInputFinishes(t *testing.T) {
	t.Parallel()
	p, err := Compile(deepseekSplit)
	require.NoError(t, err)
	// The bound on time is the pattern's match timeout; a pathological
	// match would come back as an error, which this input must not cause.
	// One piece of two chunks and more: the chunk doubles until it ends.
	spans, err := p.Split(strings.Repeat("x", 2*splitChunk+5))
	require.NoError(t, err)
	require.Len(t, spans, 1)
}

func TestMerge(t *testing.T) {
	t.Parallel()
	// Symbols a=1 b=2 c=3; merges: (a,b)→4 rank 0, (4,c)→5 rank 1, (b,c)→6 rank 2.
	r, err := NewRanks([]int32{1, 4, 2}, []int32{2, 3, 3}, []int32{4, 5, 6})
	require.NoError(t, err)
	got, err := r.Merge([]int32{1, 2, 3})
	require.NoError(t, err)
	require.Equal(t, []int32{5}, got)
	got, err = r.Merge([]int32{2, 3, 1, 2})
	require.NoError(t, err)
	require.Equal(t, []int32{6, 4}, got)
	got, err = r.Merge([]int32{1, 2, 1, 2})
	require.NoError(t, err)
	require.Equal(t, []int32{4, 4}, got, "equal ranks merge leftmost first")
	got, err = r.Merge(nil)
	require.NoError(t, err)
	require.Empty(t, got)
	_, err = NewRanks([]int32{1}, nil, nil)
	require.ErrorIs(t, err, ErrBounds)
}

// TestMergeLongPiece: a long piece that merges pairwise all the way up
// comes out as one token (2^20 symbols, 2^16 in -short). Its speed is
// BenchmarkMergeLongPiece's business, not a timed assertion here.
func TestMergeLongPiece(t *testing.T) {
	t.Parallel()
	// Level k merges two tokens of level k−1 into one of level k.
	var left, right, result []int32
	for lvl := int32(0); lvl < 20; lvl++ {
		left, right, result = append(left, lvl), append(right, lvl), append(result, lvl+1)
	}
	r, err := NewRanks(left, right, result)
	require.NoError(t, err)
	levels := 20
	if testing.Short() {
		levels = 16
	}
	got, err := r.Merge(make([]int32, 1<<levels))
	require.NoError(t, err)
	require.Equal(t, []int32{int32(levels)}, got)
}

// BenchmarkMergeLongPiece merges a 2^16-symbol piece pairwise to one token
// (a worst case for the queue: every level re-pairs every survivor).
func BenchmarkMergeLongPiece(b *testing.B) {
	var left, right, result []int32
	for lvl := int32(0); lvl < 16; lvl++ {
		left, right, result = append(left, lvl), append(right, lvl), append(result, lvl+1)
	}
	r, err := NewRanks(left, right, result)
	require.NoError(b, err)
	in := make([]int32, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Merge(in); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSequenceAndMergeBatch(t *testing.T) {
	t.Parallel()
	digits, err := Compile(`\p{N}{1,3}`)
	require.NoError(t, err)
	words, err := Compile(`\p{L}+|\s+`)
	require.NoError(t, err)
	seq, err := NewSequence(digits, words)
	require.NoError(t, err)
	spans, err := seq.Split("ab 12345cd")
	require.NoError(t, err)
	require.Equal(t, [][2]int{{0, 2}, {2, 3}, {3, 6}, {6, 8}, {8, 10}}, spans)
	_, err = NewSequence()
	require.ErrorIs(t, err, ErrBounds)

	r, err := NewRanks([]int32{1, 4}, []int32{2, 3}, []int32{4, 5})
	require.NoError(t, err)
	lens := []int32{3, 0, 2}
	out, err := r.MergeBatch([]int32{1, 2, 3, 1, 2}, lens)
	require.NoError(t, err)
	require.Equal(t, []int32{5, 4}, out)
	require.Equal(t, []int32{1, 0, 1}, lens)
	_, err = r.MergeBatch([]int32{1, 2}, []int32{3})
	require.ErrorIs(t, err, ErrBounds)
	_, err = r.MergeBatch([]int32{1, 2}, []int32{1})
	require.ErrorIs(t, err, ErrBounds)
}

func TestByteEncoder(t *testing.T) {
	t.Parallel()
	words, err := Compile(`\p{L}+|\s+|\p{N}`)
	require.NoError(t, err)
	// Symbols: byte b is b; merges a+b → 256, 256+c → 257.
	r, err := NewRanks([]int32{'a', 256}, []int32{'b', 'c'}, []int32{256, 257})
	require.NoError(t, err)
	var bytes [256]int32
	for b := range bytes {
		bytes[b] = int32(b)
	}
	e, err := NewByteEncoder(r, words, bytes)
	require.NoError(t, err)
	for range 2 { // the second time from the cache
		ids, err := e.Encode("abc ab 7")
		require.NoError(t, err)
		require.Equal(t, []int32{257, ' ', 256, ' ', '7'}, ids)
	}
	bytes[3] = -1
	_, err = NewByteEncoder(r, words, bytes)
	require.ErrorIs(t, err, ErrBounds)
}
