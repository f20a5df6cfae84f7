package primitive

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Patterns of other byte-level tokenizers (GPT-2's and Llama 3's), whose
// lookaheads and optional prefixes chunking must not disturb either.
const (
	gpt2Split   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	llama3Split = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// TestChunkedSplitIsOnePass: a text longer than a chunk, split a chunk at a
// time, gives the pieces of one pass over it, for DeepSeek's patterns (fast
// and through the regex engine, alone and in sequence) and GPT-2's and
// Llama 3's, whatever the chunk size, on random texts whose runs of spaces,
// newlines, letters and marks are longer than some chunks.
func TestChunkedSplitIsOnePass(t *testing.T) {
	var splitters []Splitter
	var names []string
	for _, expr := range []string{deepseekDigits, deepseekCJK, deepseekWords, deepseekSplit, gpt2Split, llama3Split} {
		p, err := Compile(expr)
		require.NoError(t, err)
		splitters = append(splitters, p)
		names = append(names, expr)
		if p.fast != nil {
			splitters = append(splitters, regexOnly{p})
			names = append(names, "regexp2 "+expr)
		}
	}
	var parts, slow []Splitter
	for _, expr := range []string{deepseekDigits, deepseekCJK, deepseekWords} {
		p, err := Compile(expr)
		require.NoError(t, err)
		parts, slow = append(parts, p), append(slow, regexOnly{p})
	}
	seq, err := NewSequence(parts...)
	require.NoError(t, err)
	slowSeq, err := NewSequence(slow...)
	require.NoError(t, err)
	splitters = append(splitters, seq, slowSeq)
	names = append(names, "DeepSeek sequence", "DeepSeek sequence, regexp2")

	r := rand.New(rand.NewPCG(11, 12))
	runs := []string{" ", "  ", "\n", "\r\n", "\t", "a", "Zé", "漢字", "123", "!?", "'s", "\u0301", "😀", "\xff", " \n ", "don't"}
	texts := []string{strings.Repeat(" ", 300) + "x", strings.Repeat("a", 300), strings.Repeat("\n", 200) + " y  ", "x" + strings.Repeat(" ", 299)}
	for range 300 {
		var b strings.Builder
		for b.Len() < 200+r.IntN(400) {
			run := runs[r.IntN(len(runs))]
			for range 1 + r.IntN(8) {
				b.WriteString(run)
			}
		}
		texts = append(texts, b.String())
	}
	for i, sp := range splitters {
		for _, text := range texts {
			want, err := sp.Split(text) // one pass: the text is under a chunk
			require.NoError(t, err)
			for _, chunk := range []int{7, 16, 33, 64, 150} {
				got, err := withChunk(chunk, func() ([][2]int, error) { return sp.Split(text) })
				require.NoError(t, err)
				require.Equal(t, want, got, "%s, chunks of %d, %q", names[i], chunk, text)
			}
		}
	}
}

// withChunk runs split with splitChunk set to n (the tests that call it do
// not run in parallel).
func withChunk(n int, split func() ([][2]int, error)) ([][2]int, error) {
	old := splitChunk
	splitChunk = n
	defer func() { splitChunk = old }()
	return split()
}
