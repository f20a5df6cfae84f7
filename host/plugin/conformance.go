package plugin

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
)

// Check is one conformance check's outcome.
type Check struct {
	Name string
	Err  error
}

// Conform loads a module as its manifest says and runs the contract of its
// kind on generated inputs: the exports and their signatures, init with the
// given config, then a session (hook), a batched step with a processor and
// a selector-checked row (sampler), or info, vocabulary and encode/decode
// round trips (tokenizer); then, loaded with exactly the limits its
// manifest declares, a larger workload of its kind (conformLimits). `ulan
// plugin test` prints the result.
func Conform(ctx context.Context, wasm []byte, config []byte, memoryPages uint32) []Check {
	var checks []Check
	add := func(name string, err error) bool {
		checks = append(checks, Check{Name: name, Err: err})
		return err == nil
	}
	d, err := Describe(ctx, wasm)
	if !add("module compiles", err) {
		return checks
	}
	if !add("is a reactor with the ABI 1 marker", shapeErr(d)) {
		return checks
	}
	if !add("carries a valid manifest", d.ManifestErr) {
		return checks
	}
	man := d.Manifest
	if memoryPages == 0 {
		memoryPages = max(man.Needs.MemoryPages, 256)
	}
	timeout := 2 * time.Second
	if man.Needs.CallTimeoutMS > 0 {
		timeout = max(timeout, time.Duration(man.Needs.CallTimeoutMS)*time.Millisecond)
	}
	p, err := Load(ctx, wasm, Config{ID: man.Name, Kind: man.Kind, PluginConfig: config, MemoryPages: memoryPages,
		CallTimeout: timeout, PoolSize: 1, Grants: Grants{Clock: true}, Tier: Sandboxed, Cache: toolCache})
	if !add(fmt.Sprintf("loads as a %s: exports, signatures, config, init", man.Kind), err) {
		return checks
	}
	defer p.Close(ctx)
	switch man.Kind {
	case KindHook:
		conformHook(ctx, p, add)
	case KindSampler:
		conformSampler(ctx, p, add)
	case KindTokenizer:
		conformTokenizer(ctx, p, add)
	}
	add("survives the run (no instance lost)", func() error {
		if s := p.Stats(); s.Replacements > 0 || s.Unhealthy {
			return fmt.Errorf("%d instances replaced, unhealthy: %v", s.Replacements, s.Unhealthy)
		}
		return nil
	}())
	conformLimits(ctx, wasm, config, *man, add)
	return checks
}

// limitAttempts is how often conformLimits tries a workload before it
// reports a failure: a deadline on a shared machine can be missed once by
// bad luck, not three times.
const limitAttempts = 3

// conformLimits loads the module again with exactly the limits its manifest
// declares (the host's defaults where it declares none), as an operator
// who grants what a plugin asks for would, and runs a larger workload of
// its kind: a 16 KiB text through encode and decode, 64 hook deltas of 256
// bytes, a sampler step of 32 rows × 64 candidates. Every call must finish
// within the declared deadline and memory.
func conformLimits(ctx context.Context, wasm, config []byte, man Manifest, add func(string, error) bool) {
	cfg := Config{ID: man.Name, Kind: man.Kind, PluginConfig: config, MemoryPages: man.Needs.MemoryPages,
		CallTimeout: time.Duration(man.Needs.CallTimeoutMS) * time.Millisecond, PoolSize: 1,
		Grants: Grants{Clock: true}, Tier: Sandboxed, Cache: toolCache}
	cfg.defaults()
	name := fmt.Sprintf("within its declared limits (%d pages, %v a call)", cfg.MemoryPages, cfg.CallTimeout)
	p, err := Load(ctx, wasm, cfg)
	if err != nil {
		add(name+": load", err)
		return
	}
	defer p.Close(ctx)
	var work func() error
	switch man.Kind {
	case KindHook:
		work = func() error { return hookWorkload(ctx, p) }
	case KindSampler:
		work = func() error { return samplerWorkload(ctx, p) }
	case KindTokenizer:
		work = func() error { return tokenizerWorkload(ctx, p) }
	default:
		return
	}
	for range limitAttempts {
		if err = work(); err == nil {
			break
		}
	}
	if err != nil {
		err = fmt.Errorf("%w (raise needs.memory_pages or needs.call_timeout_ms in the manifest if the plugin needs more)", err)
	}
	add(name+": "+kindWorkload[man.Kind], err)
}

var kindWorkload = map[Kind]string{
	KindHook:      "64 deltas of 256 bytes",
	KindSampler:   "a step of 32 rows × 64 candidates",
	KindTokenizer: "a 16 KiB text encoded and decoded",
}

func hookWorkload(ctx context.Context, p *Plugin) error {
	s, err := p.OpenHook(ctx, []byte(`{"request_id":"limits"}`))
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	delta := strings.Repeat("Limits: naïve café — 東京 🌍 ", 8)[:256]
	delta = strings.ToValidUTF8(delta, "")
	for i := range 64 {
		r, err := s.Delta(ctx, delta, []int32{int32(i)}, ChannelContent)
		if err != nil {
			return err
		}
		if r.Action == HookStop {
			break
		}
	}
	_, err = s.End(ctx, 1)
	return err
}

func samplerWorkload(ctx context.Context, p *Plugin) error {
	b, err := p.OpenSamplerBatch(ctx)
	if err != nil {
		return err
	}
	defer b.Close(ctx)
	rows := make([]SamplerRow, 32)
	for i := range rows {
		h, err := b.Open(ctx, []byte(`{"temperature":0.8,"top_k":40,"top_p":0.95,"seed":2}`))
		if err != nil {
			return err
		}
		rows[i] = SamplerRow{Handle: h, Position: int32(i), U0: float32(i) / 32, U1: 0.5}
		for j := range 64 {
			rows[i].IDs = append(rows[i].IDs, int32(2000+j))
			rows[i].Logits = append(rows[i].Logits, float32(math.Cos(float64(i*64+j))))
		}
	}
	if _, err := b.Step(ctx, rows); err != nil {
		return err
	}
	for _, r := range rows {
		if err := b.CloseSequence(ctx, r.Handle); err != nil {
			return err
		}
	}
	return nil
}

func tokenizerWorkload(ctx context.Context, p *Plugin) error {
	info, err := p.TokenizerInfo(ctx)
	if err != nil {
		return err
	}
	text := strings.Repeat("The naïve café in 東京 opened at 9:45 — 🌍 1234567 tokens!\n", 256)[:16<<10]
	text = strings.ToValidUTF8(text, "")
	ids, err := p.Encode(ctx, text, 0, info.VocabSize)
	if err != nil {
		return err
	}
	got, err := p.Decode(ctx, ids, 0)
	if err == nil && got != text {
		err = fmt.Errorf("the text does not round-trip (%d bytes back of %d)", len(got), len(text))
	}
	return err
}

func shapeErr(d *Description) error {
	switch {
	case d.ABI != 1:
		return fmt.Errorf("no %s export", MarkerExport)
	case !d.Reactor:
		return fmt.Errorf("no _initialize export")
	}
	return nil
}

func conformHook(ctx context.Context, p *Plugin, add func(string, error) bool) {
	s, err := p.OpenHook(ctx, []byte(`{"request_id":"conformance"}`))
	if !add("hook_open", err) {
		return
	}
	for i, d := range []struct {
		text string
		ch   HookChannel
	}{{"Hello, ", ChannelContent}, {"wörld 🌍", ChannelContent}, {"thinking…", ChannelReasoning}, {`{"a":1}`, ChannelToolArguments}, {"", ChannelContent}} {
		r, err := s.Delta(ctx, d.text, []int32{int32(i)}, d.ch)
		if err == nil && (r.Action < HookPass || r.Action > HookStop) {
			err = fmt.Errorf("action %d", r.Action)
		}
		if !add(fmt.Sprintf("hook_delta %d (%d bytes)", i, len(d.text)), err) {
			return
		}
		if r.Action == HookStop {
			break
		}
	}
	_, err = s.End(ctx, 1)
	add("hook_end", err)
	s.Close(ctx)
	add("hook_close", nil)
}

func conformSampler(ctx context.Context, p *Plugin, add func(string, error) bool) {
	b, err := p.OpenSamplerBatch(ctx)
	if !add("open a batch", err) {
		return
	}
	defer b.Close(ctx)
	var rows []SamplerRow
	for i := range 4 {
		h, err := b.Open(ctx, []byte(`{"temperature":0.7,"top_p":0.9,"seed":1}`))
		if !add(fmt.Sprintf("smp_open %d", i), err) {
			return
		}
		r := SamplerRow{Handle: h, Position: int32(i), U0: 0.25 * float32(i), U1: 0.5, LSE: 0}
		for j := range 64 {
			r.IDs = append(r.IDs, int32(1000+j))
			r.Logits = append(r.Logits, float32(math.Sin(float64(i*64+j))))
		}
		rows = append(rows, r)
	}
	out, err := b.Step(ctx, rows)
	add("smp_step over 4 rows × 64 candidates (outputs finite, tokens among candidates)", err)
	for i, o := range out {
		for _, v := range o.Logits {
			if math.IsInf(float64(v), 1) {
				add(fmt.Sprintf("row %d", i), fmt.Errorf("+Inf logit"))
				return
			}
		}
	}
	for i, r := range rows {
		add(fmt.Sprintf("smp_close %d", i), b.CloseSequence(ctx, r.Handle))
	}
}

func conformTokenizer(ctx context.Context, p *Plugin, add func(string, error) bool) {
	info, err := p.TokenizerInfo(ctx)
	if !add("tok_info", err) {
		return
	}
	vocab, err := p.Vocab(ctx, info.VocabSize)
	add(fmt.Sprintf("tok_vocab (%d tokens)", len(vocab)), err)
	for _, text := range []string{"Hello, world!", "naïve café — 東京 🌍", "  spaces\tand\nlines  ", "1234567890", ""} {
		ids, err := p.Encode(ctx, text, 0, info.VocabSize)
		if !add(fmt.Sprintf("tok_encode %q", text), err) {
			continue
		}
		got, err := p.Decode(ctx, ids, 0)
		if err == nil && got != text {
			err = fmt.Errorf("decodes to %q", got)
		}
		add(fmt.Sprintf("tok_decode round trip %q", text), err)
	}
	if info.Has(FeatureChatTemplate) {
		add("tok_chat", conformChat(ctx, p))
	}
}

// conformChat renders a conversation with every role and requires each
// message's text in the prompt: a chat template may add markup around a
// message, never lose one.
func conformChat(ctx context.Context, p *Plugin) error {
	req := ChatRequest{
		Messages: []ChatMessage{
			{Role: "system", Content: "You are terse."},
			{Role: "user", Content: "What is 2+2? Answer in 東京 style 🌍."},
			{Role: "assistant", Content: "Four."},
			{Role: "user", Content: "And 3+3?"},
		},
		AddGenerationPrompt: true,
	}
	text, err := p.Chat(ctx, req)
	if err != nil {
		return err
	}
	for _, m := range req.Messages {
		if !strings.Contains(text, m.Content) {
			return fmt.Errorf("the prompt %q lacks the %s message %q", text, m.Role, m.Content)
		}
	}
	return nil
}
