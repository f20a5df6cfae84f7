// Command gohook is a hook plugin built with the Go SDK for the runtime's
// tests: it upper-cases content, stops the generation at "stop", panics on
// "panic", and logs what its config says.
package main

import (
	"encoding/json"
	"strings"

	"github.com/ulan-ai/ulan/sdk/go/hook"
	"github.com/ulan-ai/ulan/sdk/go/ulan"
)

type config struct {
	Greeting string `json:"greeting"`
}

type upper struct{}

func (upper) Open([]byte) (hook.Session, error) { return &session{}, nil }

type session struct{ seen int }

func (s *session) Delta(text string, ids []int32, ch hook.Channel) (hook.Result, error) {
	s.seen += len(ids)
	switch {
	case text == "panic":
		panic("boom")
	case strings.Contains(text, "stop"):
		return hook.Result{Action: hook.Stop, Emit: "[stopped]", FinishReason: 4}, nil
	case ch == hook.Content:
		return hook.Result{Action: hook.Replace, Emit: strings.ToUpper(text)}, nil
	}
	return hook.Result{Action: hook.Pass}, nil
}

func (s *session) End(int32) (hook.Result, error) {
	return hook.Result{Action: hook.Replace, Emit: strings.Repeat("!", s.seen)}, nil
}

func (s *session) Close() {}

func init() {
	ulan.OnInit(func(raw []byte) error {
		var c config
		if err := json.Unmarshal(raw, &c); err != nil {
			return err
		}
		ulan.Log(ulan.Info, "hello "+c.Greeting)
		return nil
	})
	hook.Register(upper{})
}

func main() {}
