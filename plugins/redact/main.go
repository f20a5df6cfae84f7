// Command redact is ulan's first-party redaction hook: it replaces what
// configured regular expressions match in the generated content with a
// mask, also when a match is split across deltas, and reports each delta
// it changed with the REDACT action (sdk/ABI.md §6.3), so that the host
// annotates the choice.
//
// Config (manifest.json's schema):
//
//	{"patterns": ["email", "phone", "api_key", {"name": "ssn", "regex": "\\b\\d{3}-\\d{2}-\\d{4}\\b"}],
//	 "mask": "[REDACTED:{name}]"}
//
// patterns are preset names or {name, regex} objects (Go's RE2 syntax);
// without patterns the three presets apply. The presets (presets.go) are
// email (local@domain.tld), phone (international and North American
// formats with at least nine digits in groups, or + and 7–15 digits) and
// api_key (OpenAI/Anthropic sk-…, AWS AKIA…/ASIA…, GitHub ghp_…/github_pat_…,
// GitLab glpat-…, Slack xox?-…, Google AIza…, JWTs, PEM private key
// headers, and generic secrets: 32 or more hex digits, or 40 or more
// base64 characters). They are deliberately broad and will also mask some
// long hashes, long URL paths without punctuation and long digit groups;
// list your own patterns where that matters. mask replaces each match, with
// {name} replaced by the pattern's name; it defaults to "[REDACTED:{name}]"
// (so "[REDACTED:email]"), which tells the reader what kind of thing went
// missing without saying what it was. An empty mask deletes matches.
// Patterns that can match empty text are refused.
//
// # What the stream gets
//
// Exactly what one pass of Go's regexp over the whole content would give
// (ReplaceAllStringFunc with one alternation of the patterns, in their
// order: the leftmost match wins, at the same start the pattern listed
// first), however the content is split into deltas, as long as no match,
// nor text that could still become one, is longer than the hook's
// holdback bound (256 bytes, the manifest's hook.max_holdback_bytes).
// Reasoning and tool arguments are not seen (manifest channels: content):
// the hook chain releases held-back text at the end as content only.
//
// # What is held back, and why that is enough
//
// Go's regexp has no partial-match API, so the hook runs the patterns'
// compiled program (regexp/syntax) itself as a Thompson NFA over the text
// not yet released (live.go): it starts a thread at every character and
// finds the earliest start whose threads are still alive at the end of the
// text — waiting for the next character, or at an assertion (\b, $) that
// the next character decides. Text before that start is final: every match
// that starts there ended, or failed, before the end, whatever comes next,
// so Go's regexp over the same text finds the same leftmost matches that a
// pass over the whole content would. That text is released, redacted; the
// rest is held. In prose that is the current word or so (every word could
// still become an e-mail's local part). Where the rest would exceed the
// bound, the oldest bytes are released anyway, redacting what matches them
// now: a secret longer than the bound may then be masked in pieces, and a
// short tail of it could leak, which the bound makes the operator's choice.
// At hook_end everything held is released, redacted with the end of the
// text as the end.
//
// Build it (the module is committed, and CI checks it is fresh) with
//
//	go run ./cmd/ulan plugin build plugins/redact
package main

import (
	"encoding/json"
	"fmt"

	"github.com/ulan-ai/ulan/sdk/go/hook"
	"github.com/ulan-ai/ulan/sdk/go/ulan"
)

// maxHoldback is the manifest's hook.max_holdback_bytes: the most content
// a session holds back at once.
const maxHoldback = 256

// defaultMask is the mask without a configured one.
const defaultMask = "[REDACTED:{name}]"

// config is the plugin's configuration; each pattern is a preset's name or
// a {name, regex} object.
type config struct {
	Patterns []json.RawMessage `json:"patterns"`
	Mask     *string           `json:"mask"`
}

// plugin holds the configured redactor; each choice gets a session.
type plugin struct{ r *redactor }

var thePlugin = &plugin{}

func (p *plugin) Open(meta []byte) (hook.Session, error) {
	if p.r == nil {
		return nil, fmt.Errorf("redact: not configured")
	}
	return &session{stream: p.r.newStream()}, nil
}

// session is one choice's content stream.
type session struct{ stream *stream }

func (s *session) Delta(text string, ids []int32, ch hook.Channel) (hook.Result, error) {
	if ch != hook.Content {
		return hook.Result{Action: hook.Pass}, nil
	}
	out, masked := s.stream.feed(text, false)
	switch {
	case masked > 0:
		return hook.Result{Action: hook.Redact, Emit: out}, nil
	case out == text:
		return hook.Result{Action: hook.Pass}, nil
	}
	return hook.Result{Action: hook.Replace, Emit: out}, nil
}

// End releases what was held, redacted.
func (s *session) End(finish int32) (hook.Result, error) {
	out, masked := s.stream.feed("", true)
	switch {
	case masked > 0:
		return hook.Result{Action: hook.Redact, Emit: out}, nil
	case out == "":
		return hook.Result{Action: hook.Pass}, nil
	}
	return hook.Result{Action: hook.Replace, Emit: out}, nil
}

func (s *session) Close() {}

// configure reads the configuration (already checked against the
// manifest's schema by the host) and compiles the patterns.
func (p *plugin) configure(raw []byte) error {
	var c config
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &c); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	pats, err := parsePatterns(c.Patterns)
	if err != nil {
		return err
	}
	mask := defaultMask
	if c.Mask != nil {
		mask = *c.Mask
	}
	r, err := newRedactor(pats, mask, maxHoldback)
	if err != nil {
		return err
	}
	p.r = r
	ulan.Log(ulan.Info, fmt.Sprintf("redact: %d patterns", len(pats)))
	return nil
}

// parsePatterns turns the configured patterns into named regexes; none
// means the three presets.
func parsePatterns(raw []json.RawMessage) ([]pattern, error) {
	if len(raw) == 0 {
		return []pattern{presets["email"], presets["phone"], presets["api_key"]}, nil
	}
	var pats []pattern
	for i, r := range raw {
		var name string
		if json.Unmarshal(r, &name) == nil {
			p, ok := presets[name]
			if !ok {
				return nil, fmt.Errorf("config: patterns[%d]: no preset %q (email, phone, api_key)", i, name)
			}
			pats = append(pats, p)
			continue
		}
		var p pattern
		if err := json.Unmarshal(r, &p); err != nil {
			return nil, fmt.Errorf("config: patterns[%d]: %w", i, err)
		}
		if p.Name == "" || p.Regex == "" {
			return nil, fmt.Errorf("config: patterns[%d]: needs a name and a regex", i)
		}
		pats = append(pats, p)
	}
	return pats, nil
}

func init() {
	ulan.OnInit(thePlugin.configure)
	ulan.OnReconfigure(thePlugin.configure) // configure keeps the old redactor when it fails
	hook.Register(thePlugin)
}

func main() {}
