package hf

// trie finds the added tokens that start at a position of a text: a byte
// trie, so that a position costs one step per matched byte however many
// tokens share a prefix (all of DeepSeek's 818 start with '<').
type trie struct {
	nodes []trieNode
}

type trieNode struct {
	edges []trieEdge // sorted by byte
	tok   int32      // index into the tokens this node ends, or −1
}

type trieEdge struct {
	b    byte
	next int32
}

func newTrie() *trie { return &trie{nodes: []trieNode{{tok: -1}}} }

// add inserts s, ending at token index tok.
func (t *trie) add(s string, tok int32) {
	n := int32(0)
	for i := 0; i < len(s); i++ {
		next := t.child(n, s[i])
		if next < 0 {
			next = int32(len(t.nodes))
			t.nodes = append(t.nodes, trieNode{tok: -1})
			edges := t.nodes[n].edges
			at := 0
			for at < len(edges) && edges[at].b < s[i] {
				at++
			}
			edges = append(edges, trieEdge{})
			copy(edges[at+1:], edges[at:])
			edges[at] = trieEdge{b: s[i], next: next}
			t.nodes[n].edges = edges
		}
		n = next
	}
	t.nodes[n].tok = tok
}

func (t *trie) child(n int32, b byte) int32 {
	for _, e := range t.nodes[n].edges {
		if e.b == b {
			return e.next
		}
		if e.b > b {
			break
		}
	}
	return -1
}

// matches appends to out the token indices of the trie's strings that
// text starts with, shortest first.
func (t *trie) matches(text string, out []int32) []int32 {
	n := int32(0)
	for i := 0; i < len(text); i++ {
		if n = t.child(n, text[i]); n < 0 {
			break
		}
		if tok := t.nodes[n].tok; tok >= 0 {
			out = append(out, tok)
		}
	}
	return out
}
