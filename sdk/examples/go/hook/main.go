// Command hook is an example hook plugin in Go: it masks configured words
// in the generated content (one '*' per character) and ends the generation
// at a stop phrase, also when a word or the phrase is split across deltas:
// it holds back a delta's tail while that tail could still become one
// (never more than the longest word or phrase). Reasoning and tool
// arguments pass unchanged.
//
// Config (manifest.json's schema): {"words": ["secret", ...], "stop": "..."};
// without one it masks "secret" and does not stop. Build and check it with
//
//	ulan plugin build sdk/examples/go/hook
//	ulan plugin test sdk/examples/go/hook/hook.wasm
package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ulan-ai/ulan/sdk/go/hook"
	"github.com/ulan-ai/ulan/sdk/go/ulan"
)

// config is the plugin's configuration.
type config struct {
	Words []string `json:"words"`
	Stop  string   `json:"stop"`
}

// redactor holds the configuration; each choice gets a session.
type redactor struct{ cfg config }

var plugin = &redactor{cfg: config{Words: []string{"secret"}}}

func (r *redactor) Open(meta []byte) (hook.Session, error) { return &session{cfg: &r.cfg}, nil }

// session is one choice: the content held back so far.
type session struct {
	cfg  *config
	held string
}

func (s *session) Delta(text string, ids []int32, ch hook.Channel) (hook.Result, error) {
	if ch != hook.Content {
		return hook.Result{Action: hook.Pass}, nil
	}
	all := s.held + text
	s.held = ""
	var out strings.Builder
	redacted := false
	i := 0
scan:
	for i < len(all) {
		rest := all[i:]
		if s.cfg.Stop != "" {
			switch {
			case strings.HasPrefix(rest, s.cfg.Stop):
				return hook.Result{Action: hook.Stop, Emit: out.String()}, nil
			case strings.HasPrefix(s.cfg.Stop, rest):
				break scan // the phrase may be completed by the next delta
			}
		}
		partial := false
		for _, w := range s.cfg.Words {
			if strings.HasPrefix(rest, w) {
				out.WriteString(strings.Repeat("*", utf8.RuneCountInString(w)))
				i += len(w)
				redacted = true
				continue scan
			}
			partial = partial || strings.HasPrefix(w, rest)
		}
		if partial {
			break
		}
		out.WriteByte(all[i])
		i++
	}
	s.held = all[i:]
	switch {
	case redacted:
		return hook.Result{Action: hook.Redact, Emit: out.String()}, nil
	case out.String() == text:
		return hook.Result{Action: hook.Pass}, nil
	}
	return hook.Result{Action: hook.Replace, Emit: out.String()}, nil
}

// End flushes what was held back: it never became a word.
func (s *session) End(finish int32) (hook.Result, error) {
	if s.held == "" {
		return hook.Result{Action: hook.Pass}, nil
	}
	r := hook.Result{Action: hook.Replace, Emit: s.held}
	s.held = ""
	return r, nil
}

func (s *session) Close() {}

// configure reads the configuration (already checked against the
// manifest's schema by the host).
func (r *redactor) configure(raw []byte) error {
	c := config{Words: []string{"secret"}}
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	for _, w := range c.Words {
		if w == "" {
			return fmt.Errorf("config: an empty word")
		}
	}
	r.cfg = c
	ulan.Log(ulan.Info, fmt.Sprintf("hook: words to mask: %d", len(c.Words)))
	return nil
}

func init() {
	ulan.OnInit(plugin.configure)
	hook.Register(plugin)
}

func main() {}
