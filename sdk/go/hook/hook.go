// Package hook is the Go guest SDK for post-processing hooks (sdk/ABI.md
// §6.3): implement Hook and Session, call Register from an init function,
// and the package exports hook_open, hook_delta, hook_end and hook_close.
// A panic in your code becomes an error status; the host then applies the
// plugin's failure policy.
package hook

import (
	"sync"

	"github.com/ulan-ai/ulan/sdk/go/ulan"
)

// Action is what a hook does with a delta.
type Action int32

// Actions (sdk/ABI.md §6.3).
const (
	// Pass emits the delta unchanged.
	Pass Action = 0
	// Replace emits Result.Emit instead; an empty Emit holds the text back.
	Replace Action = 1
	// Redact is Replace, counted and annotated as a redaction.
	Redact Action = 2
	// Stop emits Result.Emit and ends the generation.
	Stop Action = 3
)

// Channel is where a delta's text belongs.
type Channel int32

// Channels.
const (
	Content       Channel = 0
	Reasoning     Channel = 1
	ToolArguments Channel = 2
)

// Result is a hook's answer to a delta or to the end.
type Result struct {
	Action Action
	// Emit is the text to send for Replace, Redact and Stop.
	Emit string
	// FinishReason, for Stop, is the finish reason to report (the API's
	// FinishReason numbers); 0 lets the host choose.
	FinishReason int32
}

// Hook opens a session per streamed choice.
type Hook interface {
	// Open starts a session; meta is the request's metadata as JSON.
	Open(meta []byte) (Session, error)
}

// Session sees one choice's text, delta by delta.
type Session interface {
	// Delta handles new text of a channel with the token ids behind it.
	Delta(text string, ids []int32, ch Channel) (Result, error)
	// End handles the end of the choice (finish is the engine's reason) and
	// may flush held-back text.
	End(finish int32) (Result, error)
	// Close releases the session; it is always called.
	Close()
}

var (
	mu       sync.Mutex
	hook     Hook
	sessions = map[int64]*session{}
	nextID   int64
)

// session holds a Session and the last record it returned, which must stay
// valid until its next call.
type session struct {
	s      Session
	record []byte
}

// Register installs the plugin's hook. Call it once, from init.
func Register(h Hook) {
	mu.Lock()
	defer mu.Unlock()
	hook = h
}

// open, delta, end and close implement the exports; they are plain Go so
// that the wasip1 glue stays thin and tests can drive them natively.
func open(meta []byte) (int64, error) {
	mu.Lock()
	h := hook
	mu.Unlock()
	if h == nil {
		return 0, errNoHook
	}
	var s Session
	if err := ulan.Guard(func() (err error) { s, err = h.Open(meta); return err }); err != nil {
		return 0, err
	}
	mu.Lock()
	defer mu.Unlock()
	nextID++
	sessions[nextID] = &session{s: s}
	return nextID, nil
}

func lookup(h int64) *session {
	mu.Lock()
	defer mu.Unlock()
	return sessions[h]
}

func (s *session) answer(r Result, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	s.record = encode(r, s.record[:0])
	return s.record, nil
}

func closeSession(h int64) {
	mu.Lock()
	s := sessions[h]
	delete(sessions, h)
	mu.Unlock()
	if s != nil {
		_ = ulan.Guard(func() error { s.s.Close(); return nil })
	}
}

// encode writes a result record: action, finish reason and the length of
// the text, as little-endian i32, then the text (sdk/ABI.md §6.3).
func encode(r Result, b []byte) []byte {
	put := func(v int32) { b = append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24)) }
	put(int32(r.Action))
	put(r.FinishReason)
	put(int32(len(r.Emit)))
	return append(b, r.Emit...)
}

type sdkError string

func (e sdkError) Error() string { return string(e) }

const (
	errNoHook    = sdkError("hook: no Hook registered (call hook.Register from init)")
	errNoSession = sdkError("hook: unknown session handle")
)
