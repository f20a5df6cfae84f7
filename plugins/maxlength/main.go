// Command maxlength is ulan's first-party length limit hook: it ends a
// choice once its content would exceed a limit, cutting the delta that
// crosses it exactly at the limit and returning STOP with finish reason
// length (2, sdk/ABI.md §6.3).
//
// Config (manifest.json's schema), exactly one of:
//
//	{"max_chars": 500}   Unicode code points (not bytes, not grapheme clusters)
//	{"max_words": 100}   runs of non-space characters (unicode.IsSpace), as strings.Fields counts them
//
// The content that goes out is the first max_chars characters, or
// everything before the first character of word max_words+1 (the space
// after the last word included); content within the limit goes out whole
// and the choice ends as the engine ends it. The result depends only on the
// content, never on how it was split into deltas. Only the content channel
// is counted (manifest channels: content): reasoning and tool arguments are
// neither seen nor cut; max_tokens bounds the whole generation. Text in
// scripts written without spaces (Chinese, Japanese) is one word per run,
// so limit it with max_chars.
//
// The hook holds back nothing but an incomplete UTF-8 sequence at the end
// of a delta (at most 3 bytes, the manifest's max_holdback_bytes), so that
// a cut never splits a character; the host's detokenizer already keeps
// characters whole, so in practice every delta passes or is cut.
//
// Build it (the module is committed, and CI checks it is fresh) with
//
//	go run ./cmd/ulan plugin build plugins/maxlength
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ulan-ai/ulan/sdk/go/hook"
	"github.com/ulan-ai/ulan/sdk/go/ulan"
)

// finishLength is the API's FinishReason for a choice cut at a limit.
const finishLength = 2

// config is the plugin's configuration: exactly one limit is set.
type config struct {
	MaxChars int `json:"max_chars"`
	MaxWords int `json:"max_words"`
}

// plugin holds the configured limit; each choice gets a session.
type plugin struct{ cfg config }

var thePlugin = &plugin{}

func (p *plugin) Open(meta []byte) (hook.Session, error) {
	if p.cfg.MaxChars <= 0 && p.cfg.MaxWords <= 0 {
		return nil, errors.New("maxlength: not configured")
	}
	return &session{cfg: p.cfg}, nil
}

// session counts one choice's content.
type session struct {
	cfg    config
	n      int    // characters or words so far
	inWord bool   // the last character was not a space
	held   string // an incomplete UTF-8 sequence at the end of the last delta
	done   bool   // stopped
}

func (s *session) Delta(text string, ids []int32, ch hook.Channel) (hook.Result, error) {
	if ch != hook.Content {
		return hook.Result{Action: hook.Pass}, nil
	}
	out, stop := s.feed(text, false)
	switch {
	case stop:
		return hook.Result{Action: hook.Stop, Emit: out, FinishReason: finishLength}, nil
	case out == text:
		return hook.Result{Action: hook.Pass}, nil
	}
	return hook.Result{Action: hook.Replace, Emit: out}, nil
}

// End releases an incomplete sequence held at the end (as U+FFFD, as a
// detokenizer would), still within the limit.
func (s *session) End(finish int32) (hook.Result, error) {
	if s.done || s.held == "" {
		return hook.Result{Action: hook.Pass}, nil
	}
	out, stop := s.feed("", true)
	if stop {
		return hook.Result{Action: hook.Stop, Emit: out, FinishReason: finishLength}, nil
	}
	return hook.Result{Action: hook.Replace, Emit: out}, nil
}

func (s *session) Close() {}

// feed counts the next delta and returns what goes out, cut at the limit
// when it crosses it (stop true: the choice ends). final releases an
// incomplete sequence at the end.
func (s *session) feed(text string, final bool) (string, bool) {
	if s.done {
		return "", true
	}
	buf := s.held + text
	end := len(buf)
	if final {
		buf = strings.ToValidUTF8(buf, "\uFFFD")
		end = len(buf)
	} else {
		end -= partialRune(buf)
	}
	for i, r := range buf[:end] {
		if s.cfg.MaxChars > 0 {
			s.n++
			if s.n > s.cfg.MaxChars {
				return s.stop(buf[:i])
			}
			continue
		}
		space := unicode.IsSpace(r)
		if !space && !s.inWord {
			s.n++
			if s.n > s.cfg.MaxWords {
				return s.stop(buf[:i])
			}
		}
		s.inWord = !space
	}
	s.held = strings.Clone(buf[end:])
	return buf[:end], false
}

func (s *session) stop(out string) (string, bool) {
	s.done, s.held = true, ""
	return out, true
}

// partialRune returns the length of an incomplete UTF-8 sequence at the end
// of s that more bytes could complete.
func partialRune(s string) int {
	for i := len(s) - 1; i >= 0 && i >= len(s)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(s[i]) {
			if !utf8.FullRuneInString(s[i:]) {
				return len(s) - i
			}
			return 0
		}
	}
	return 0
}

// configure reads the configuration, already checked against the
// manifest's schema by the host (which requires exactly one limit).
func (p *plugin) configure(raw []byte) error {
	var c config
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if (c.MaxChars > 0) == (c.MaxWords > 0) {
		return errors.New("config: set exactly one of max_chars and max_words, above 0")
	}
	p.cfg = c
	if c.MaxChars > 0 {
		ulan.Log(ulan.Info, fmt.Sprintf("maxlength: %d characters", c.MaxChars))
	} else {
		ulan.Log(ulan.Info, fmt.Sprintf("maxlength: %d words", c.MaxWords))
	}
	return nil
}

func init() {
	ulan.OnInit(thePlugin.configure)
	hook.Register(thePlugin)
}

func main() {}
