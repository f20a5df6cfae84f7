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
