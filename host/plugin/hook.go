package plugin

import (
	"context"
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// HookAction is what a hook did with a delta (sdk/ABI.md §6.3).
type HookAction int32

// Hook actions.
const (
	HookPass    HookAction = 0
	HookReplace HookAction = 1
	HookRedact  HookAction = 2
	HookStop    HookAction = 3
)

// HookChannel says which channel a delta's text belongs to.
type HookChannel int32

// Hook channels.
const (
	ChannelContent       HookChannel = 0
	ChannelReasoning     HookChannel = 1
	ChannelToolArguments HookChannel = 2
)

// HookResult is a hook's answer.
type HookResult struct {
	Action       HookAction
	FinishReason int32
	// Emit is the text to send instead of the delta (Replace, Redact, Stop).
	Emit string
}

// MaxHookText bounds the text and token ids of one delta, and a hook's
// answer, so that neither side can make the other copy without limit; a
// caller with more text hands it over in pieces.
const MaxHookText = 1 << 20

// HookSession is one streamed choice's session with a hook plugin. It holds
// one instance for its whole life, since the plugin's handle lives in that
// instance's memory; Close returns it.
type HookSession struct {
	*pinned
	handle int64
}

// OpenHook starts a session: it checks out an instance (waiting until ctx
// is done at most) and calls hook_open with the request's metadata (JSON).
func (p *Plugin) OpenHook(ctx context.Context, meta []byte) (_ *HookSession, err error) {
	if err := p.requireKind(KindHook); err != nil {
		return nil, err
	}
	defer p.observe("hook_open", p.started(), &err)
	x, err := p.pin(ctx, KindHook, "hook_open")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	s := &HookSession{pinned: x}
	ptr, err := s.write(ctx, meta, nil)
	if err != nil {
		return nil, err
	}
	res, err := s.call(ctx, "hook_open", uint64(ptr), uint64(len(meta)))
	if err != nil {
		return nil, err
	}
	s.ok()
	if h := int64(res[0]); h < 0 {
		err := s.statusError("hook_open", -h)
		_ = s.release(ctx)
		return nil, err
	} else {
		s.handle = h
	}
	return s, nil
}

// Delta hands the hook new text of a channel with its token ids.
func (s *HookSession) Delta(ctx context.Context, text string, ids []int32, ch HookChannel) (_ HookResult, err error) {
	if len(text) > MaxHookText || len(ids) > MaxHookText/4 {
		return HookResult{}, fmt.Errorf("plugin %s: hook_delta: %d bytes and %d ids exceed the %d-byte bound", s.p.cfg.ID, len(text), len(ids), MaxHookText)
	}
	defer s.p.observe("hook_delta", s.p.started(), &err)
	ctx, cancel := context.WithTimeout(ctx, s.p.cfg.CallTimeout)
	defer cancel()
	idBytes := make([]byte, 4*len(ids))
	for i, id := range ids {
		binary.LittleEndian.PutUint32(idBytes[4*i:], uint32(id))
	}
	ptr, err := s.write(ctx, []byte(text), idBytes)
	if err != nil {
		return HookResult{}, err
	}
	return s.result(ctx, "hook_delta", []uint64{uint64(s.handle), uint64(ptr), uint64(len(text)), uint64(ptr + uint32(len(text))), uint64(len(ids)), uint64(ch)})
}

// End tells the hook the choice finished with the engine's finish reason.
func (s *HookSession) End(ctx context.Context, finish int32) (_ HookResult, err error) {
	defer s.p.observe("hook_end", s.p.started(), &err)
	ctx, cancel := context.WithTimeout(ctx, s.p.cfg.CallTimeout)
	defer cancel()
	return s.result(ctx, "hook_end", []uint64{uint64(s.handle), uint64(uint32(finish))})
}

// Close ends the session (hook_close) and returns the instance.
func (s *HookSession) Close(ctx context.Context) {
	if s.dead || s.inst == nil {
		return
	}
	var err error
	defer s.p.observe("hook_close", s.p.started(), &err)
	cctx, cancel := context.WithTimeout(ctx, s.p.cfg.CallTimeout)
	defer cancel()
	if _, err = s.call(cctx, "hook_close", uint64(s.handle)); err != nil {
		return
	}
	s.ok()
	err = s.release(ctx)
}

// result calls a hook export that returns a packed result record and
// decodes it: action, finish reason, text length (i32 each), then the text.
func (s *HookSession) result(ctx context.Context, export string, params []uint64) (HookResult, error) {
	res, err := s.call(ctx, export, params...)
	if err != nil {
		return HookResult{}, err
	}
	packed := int64(res[0])
	if packed < 0 {
		s.ok()
		return HookResult{}, s.statusError(export, -packed)
	}
	ptr, n := uint32(uint64(packed)>>32), uint32(packed)
	if n < 12 || n > MaxHookText+12 {
		return HookResult{}, s.reject(fmt.Errorf("plugin %s: %s returned a record of %d bytes", s.p.cfg.ID, export, n))
	}
	rec, ok := s.inst.mod.Memory().Read(ptr, n)
	if !ok {
		return HookResult{}, s.reject(fmt.Errorf("plugin %s: %s returned a record outside its memory", s.p.cfg.ID, export))
	}
	r := HookResult{
		Action:       HookAction(int32(binary.LittleEndian.Uint32(rec))),
		FinishReason: int32(binary.LittleEndian.Uint32(rec[4:])),
	}
	tl := binary.LittleEndian.Uint32(rec[8:])
	if tl != n-12 || r.Action < HookPass || r.Action > HookStop {
		return HookResult{}, s.reject(fmt.Errorf("plugin %s: %s returned a malformed record (action %d, text %d of %d bytes)", s.p.cfg.ID, export, r.Action, tl, n-12))
	}
	if !utf8.Valid(rec[12:]) {
		return HookResult{}, s.reject(fmt.Errorf("plugin %s: %s returned text that is not valid UTF-8", s.p.cfg.ID, export))
	}
	r.Emit = string(rec[12:])
	s.ok()
	return r, nil
}
