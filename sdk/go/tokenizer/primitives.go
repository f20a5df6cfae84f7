package tokenizer

// The host's tokenizer primitives (sdk/ABI.md §4): the hot loops of a
// tokenizer, splitting text into pieces and merging a piece's symbols, run
// natively in the host. Register patterns and merge tables once, from
// ulan.OnInit. Outside wasip1 (in a plugin's own tests) they run in Go:
// patterns then compile with Go's regexp package, whose RE2 syntax has
// Unicode classes but no lookahead, and merging is the same BPE.

// Pattern is a regular expression compiled by the host.
type Pattern int32

// CompilePattern asks the host to compile expr (lookahead and Unicode
// classes supported); call it from ulan.OnInit.
func CompilePattern(expr string) (Pattern, error) {
	if len(expr) == 0 {
		return -1, sdkError("tokenizer: empty pattern")
	}
	return compile(expr)
}

// Split cuts text into the pattern's pieces (Hugging Face "Isolated": every
// match is a piece, and so is every stretch between matches): [start, end)
// byte offsets covering the text.
func (p Pattern) Split(text string) ([][2]int, error) {
	if len(text) == 0 {
		return nil, nil
	}
	return p.split(text)
}

// Merges is a BPE rank table registered with the host.
type Merges int32

// RegisterMerges registers merges in priority order (left[i] + right[i] →
// result[i]); call it from ulan.OnInit.
func RegisterMerges(left, right, result []int32) (Merges, error) {
	if len(left) == 0 || len(left) != len(right) || len(left) != len(result) {
		return -1, sdkError("tokenizer: merge arrays differ in length or are empty")
	}
	return register(left, right, result)
}

// Merge applies the table to a piece's initial symbols: it joins the
// adjacent pair of lowest rank, leftmost first, until no pair of the table
// remains.
func (m Merges) Merge(symbols []int32) ([]int32, error) {
	if len(symbols) == 0 {
		return nil, nil
	}
	return m.merge(symbols)
}

// MaxSequence bounds the patterns of one Sequence (the host's bound).
const MaxSequence = 8

// Sequence asks the host for a pattern that applies parts in turn, each to
// every piece the ones before it cut (a Hugging Face Sequence of Split
// pre-tokenizers): one Split call for the whole chain.
func Sequence(parts ...Pattern) (Pattern, error) {
	if len(parts) == 0 || len(parts) > MaxSequence {
		return -1, sdkError("tokenizer: a sequence of 1 to 8 patterns")
	}
	return sequence(parts)
}

// MergeBatch merges many pieces in one call: symbols holds every piece's
// initial symbols one after another and lens each piece's count. It
// returns the merged ids one piece after another and sets lens[i] to piece
// i's merged count.
func (m Merges) MergeBatch(symbols []int32, lens []int32) ([]int32, error) {
	total := 0
	for _, n := range lens {
		if n < 0 {
			return nil, sdkError("tokenizer: a negative piece length")
		}
		total += int(n)
	}
	if total != len(symbols) {
		return nil, sdkError("tokenizer: piece lengths do not add up to the symbols")
	}
	if len(symbols) == 0 {
		return nil, nil
	}
	return m.mergeBatch(symbols, lens)
}

// Encoder is a byte-level encoder the host runs: split, bytes to symbols,
// merge, for a whole text in one call (see ByteEncoder).
type Encoder int32

// ByteEncoder asks the host for an encoder that splits text with p, maps
// each piece's byte b to symbol byteIDs[b] and merges with m; call it from
// ulan.OnInit. It is the loop a byte-level BPE tokenizer runs on every
// stretch of text between its added tokens.
func ByteEncoder(p Pattern, m Merges, byteIDs [256]int32) (Encoder, error) {
	return newEncoder(p, m, byteIDs)
}

// Encode returns the ids of text.
func (e Encoder) Encode(text string) ([]int32, error) {
	if len(text) == 0 {
		return nil, nil
	}
	return e.encode(text)
}
