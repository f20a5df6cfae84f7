package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ulan-ai/ulan/host/api"
	"github.com/ulan-ai/ulan/host/chatparse"
	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/plugin"
	"github.com/ulan-ai/ulan/host/sampling"
	"github.com/ulan-ai/ulan/host/scheduler"
	"github.com/ulan-ai/ulan/host/stop"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/chatfmt"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
	"go.opentelemetry.io/otel/trace"
)

// selection is what one request runs with: its pipeline's plugins after
// the request's overrides.
type selection struct {
	number    uint64 // the generation's number (0: none)
	tokenizer *generation.Plugin
	sampler   *generation.Plugin
	hooks     []*generation.Plugin
	params    map[string][]byte // per-plugin request parameters, JSON
}

// selectPlugins resolves a request's pipeline and overrides against the
// generation; an unknown name is an invalid argument naming the field.
func (p *Pipeline) selectPlugins(g *generation.Generation, s *ulanv1.PluginSelection) (*selection, error) {
	sel := &selection{params: map[string][]byte{}}
	if g != nil {
		sel.number = g.Number()
	}
	var pl *generation.Pipeline
	if name := s.GetPipeline(); name != "" {
		ok := false
		if g != nil {
			pl, ok = g.Pipeline(name)
		}
		if !ok {
			return nil, &api.FieldError{Field: "plugins.pipeline", Reason: fmt.Sprintf("no pipeline named %q%s", name, known(g, pipelineNames))}
		}
	} else if g != nil {
		pl = g.Default()
	}
	if pl != nil {
		sel.tokenizer, sel.sampler, sel.hooks = pl.Tokenizer, pl.Sampler, pl.Hooks
	}
	if id := s.GetSampler(); id != "" {
		sp, err := pluginOfKind(g, "plugins.sampler", id, plugin.KindSampler)
		if err != nil {
			return nil, err
		}
		sel.sampler = sp
	}
	if ids := s.GetHooks(); len(ids) > 0 {
		sel.hooks = nil
		for i, id := range ids {
			hp, err := pluginOfKind(g, fmt.Sprintf("plugins.hooks[%d]", i), id, plugin.KindHook)
			if err != nil {
				return nil, err
			}
			sel.hooks = append(sel.hooks, hp)
		}
	}
	for id, st := range s.GetParams() {
		if g == nil {
			return nil, &api.FieldError{Field: fmt.Sprintf("plugins.params[%s]", id), Reason: "no plugin is configured"}
		}
		if _, ok := g.Plugin(id); !ok {
			return nil, &api.FieldError{Field: fmt.Sprintf("plugins.params[%s]", id), Reason: fmt.Sprintf("no plugin with id %q%s", id, known(g, pluginIDs))}
		}
		b, err := protojson.Marshal(st)
		if err != nil {
			return nil, &api.FieldError{Field: fmt.Sprintf("plugins.params[%s]", id), Reason: err.Error()}
		}
		sel.params[id] = b
	}
	return sel, nil
}

func pluginOfKind(g *generation.Generation, field, id string, kind plugin.Kind) (*generation.Plugin, error) {
	var pl *generation.Plugin
	ok := false
	if g != nil {
		pl, ok = g.Plugin(id)
	}
	switch {
	case !ok:
		return nil, &api.FieldError{Field: field, Reason: fmt.Sprintf("no plugin with id %q%s", id, known(g, pluginIDs))}
	case pl.Kind() != kind:
		return nil, &api.FieldError{Field: field, Reason: fmt.Sprintf("plugin %q is a %s plugin, not a %s plugin", id, pl.Kind(), kind)}
	}
	return pl, nil
}

func pipelineNames(g *generation.Generation) (names []string) {
	for _, pl := range g.Pipelines() {
		names = append(names, pl.Name)
	}
	return names
}

func pluginIDs(g *generation.Generation) (ids []string) {
	for _, pl := range g.Plugins() {
		ids = append(ids, pl.ID)
	}
	return ids
}

// known lists the configured names for an error message.
func known(g *generation.Generation, list func(*generation.Generation) []string) string {
	if g == nil {
		return "; none is configured"
	}
	names := list(g)
	if len(names) == 0 {
		return "; none is configured"
	}
	return "; configured: " + strings.Join(names, ", ")
}

// checkModel refuses a request for another model.
func (p *Pipeline) checkModel(name string) error {
	if name != "" && name != p.m.Name {
		return &api.FieldError{Field: "model", Reason: fmt.Sprintf("%q is not loaded; this server serves %q", name, p.m.Name)}
	}
	return nil
}

// encode tokenizes text with the selection's tokenizer plugin, or the
// model's tokenizer (also when the plugin fails under fallback, which adds
// the fallback's annotation to notes).
func (p *Pipeline) encode(ctx context.Context, tp *generation.Plugin, text string, flags hf.Flags, notes *[]*ulanv1.Annotation) ([]int32, error) {
	tok := p.m.Tokenizer
	if tp != nil {
		vocab := maxVocab
		if tok != nil {
			vocab = tok.VocabSize()
		}
		ids, err := tp.Runtime.Encode(ctx, text, int32(flags), vocab)
		if err == nil {
			return ids, nil
		}
		note, err := p.tokenizerFailed(tp, "tokenized the prompt", err)
		if err != nil {
			return nil, err
		}
		*notes = append(*notes, note)
	}
	if tok == nil {
		return nil, errNoTokenizer
	}
	ids, err := tok.Encode(text, flags)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	return ids, nil
}

var errNoDetokenizer = fmt.Errorf("text generation: %w: the model was loaded without a tokenizer to detokenize its output", api.ErrNotImplemented)

// Generate continues a raw prompt.
func (p *Pipeline) Generate(ctx context.Context, req *ulanv1.GenerateRequest, out api.Stream) error {
	arrived := time.Now()
	if err := p.checkModel(req.GetModel()); err != nil {
		return err
	}
	lease := p.live.Acquire(ctx)
	defer lease.Release()
	ctx = lease.Context()
	sel, err := p.selectPlugins(lease.Generation(), req.GetPlugins())
	if err != nil {
		return err
	}
	var prompt []int32
	var notes []*ulanv1.Annotation
	from := "prompt"
	if len(req.GetPromptTokenIds()) > 0 {
		from = "prompt_token_ids"
		vocab := p.m.Runner.Model().Info().Vocab
		for i, id := range req.GetPromptTokenIds() {
			if int64(id) >= int64(vocab) {
				return &api.FieldError{Field: fmt.Sprintf("prompt_token_ids[%d]", i), Reason: fmt.Sprintf("%d is outside the vocabulary of %d tokens", id, vocab)}
			}
			prompt = append(prompt, int32(id))
		}
	} else {
		var flags hf.Flags
		if req.GetAddSpecialTokens() {
			flags |= hf.AddSpecial
		}
		tctx, span := p.tokenizeSpan(ctx, pluginID(sel.tokenizer), len(req.GetPrompt()))
		prompt, err = p.encode(tctx, sel.tokenizer, req.GetPrompt(), flags, &notes)
		endSpan(span, err)
		if err != nil {
			return err
		}
		if len(prompt) == 0 {
			return &api.FieldError{Field: "prompt", Reason: "encodes to no tokens; set add_special_tokens to start from the beginning-of-sequence token"}
		}
	}
	return p.run(ctx, job{arrived: arrived, prompt: prompt, params: req.GetSampling(), sel: sel, from: from, notes: notes}, out)
}

// Chat renders a conversation with the model's chat format, generates the
// assistant's turn and parses it into content, reasoning and tool calls.
func (p *Pipeline) Chat(ctx context.Context, req *ulanv1.ChatRequest, out api.Stream) error {
	arrived := time.Now()
	if err := p.checkModel(req.GetModel()); err != nil {
		return err
	}
	lease := p.live.Acquire(ctx)
	defer lease.Release()
	ctx = lease.Context()
	sel, err := p.selectPlugins(lease.Generation(), req.GetPlugins())
	if err != nil {
		return err
	}
	chat, err := chatOf(req)
	if err != nil {
		return err
	}
	format, parse, err := p.chatFormat()
	if err != nil {
		return err
	}
	var text string
	var notes []*ulanv1.Annotation
	served := false
	if tp := sel.tokenizer; tp != nil {
		text, err = tp.Runtime.Chat(ctx, chat)
		if err == nil {
			served = true
		} else {
			note, err := p.tokenizerFailed(tp, "rendered the chat prompt", err)
			if err != nil {
				return err
			}
			notes = append(notes, note)
		}
	}
	if !served {
		if text, err = chatfmt.RenderChat(format, p.m.Tokenizer.ChatTemplate(), chat); err != nil {
			return &api.FieldError{Field: "messages", Reason: err.Error()}
		}
	}
	tctx, span := p.tokenizeSpan(ctx, pluginID(sel.tokenizer), len(text))
	prompt, err := p.encode(tctx, sel.tokenizer, text, hf.ParseSpecial, &notes)
	endSpan(span, err)
	if err != nil {
		return err
	}
	j := job{arrived: arrived, prompt: prompt, params: req.GetSampling(), sel: sel, chat: true, from: "messages", parse: parse,
		reasoning: strings.HasSuffix(text, chatfmt.ThinkOpen), notes: notes}
	if j.force, err = p.forcedCall(ctx, sel.tokenizer, req.GetToolChoice(), parse, j.reasoning, &j.notes); err != nil {
		return err
	}
	return p.run(ctx, j, out)
}

// chatFormat picks the model's chat format by its architecture: V4's
// encoder for deepseek4, else the tokenizer's Jinja template (V3, R1).
func (p *Pipeline) chatFormat() (string, chatparse.Format, error) {
	if p.m.Tokenizer == nil {
		return "", 0, errNoDetokenizer
	}
	if p.m.Runner.Model().Info().Architecture == "deepseek4" {
		return chatfmt.FormatV4, chatparse.V4, nil
	}
	template := p.m.Tokenizer.ChatTemplate()
	if template == "" {
		return "", 0, fmt.Errorf("chat: %w: the model's tokenizer has no chat template; use Generate", api.ErrNotImplemented)
	}
	return chatfmt.FormatJinja, jinjaCallOf(template).parse, nil
}

var roles = map[ulanv1.Role]string{
	ulanv1.Role_ROLE_SYSTEM: "system", ulanv1.Role_ROLE_DEVELOPER: "developer", ulanv1.Role_ROLE_USER: "user",
	ulanv1.Role_ROLE_ASSISTANT: "assistant", ulanv1.Role_ROLE_TOOL: "tool",
}

var thinkingModes = map[ulanv1.ThinkingMode]string{
	ulanv1.ThinkingMode_THINKING_MODE_OFF: "off", ulanv1.ThinkingMode_THINKING_MODE_ON: "on", ulanv1.ThinkingMode_THINKING_MODE_MAX: "max",
}

// forcedCall returns the tokens that make the assistant's turn open with a
// tool call, as tool_choice required (any tool) or a named tool asks, for
// the model's chat format: V4's DSML block up to the invoke's name (and the
// name, for a named tool), V3.1's call up to the function's name (and the
// name and its separator), or V3's call header up to the function's name
// (and the name and the opening of its JSON arguments). A turn that begins
// in the reasoning channel is forced once it closes it (</think>). The call
// is forced, the arguments are the model's: nothing checks them against
// the tool's schema. nil when nothing is forced.
func (p *Pipeline) forcedCall(ctx context.Context, tp *generation.Plugin, tc *ulanv1.ToolChoice, parse chatparse.Format, reasoning bool, notes *[]*ulanv1.Annotation) (*sampling.Forcing, error) {
	name := tc.GetTool()
	if name == "" && tc.GetMode() != ulanv1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED {
		return nil, nil
	}
	var text string
	switch {
	case parse == chatparse.V4:
		text = "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\""
		if name != "" {
			text += name + "\">\n"
		}
	case parse == chatparse.V31:
		text = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>"
		if name != "" {
			text += name + "<｜tool▁sep｜>"
		}
	case jinjaCallOf(p.m.Tokenizer.ChatTemplate()).v3Head:
		text = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>" + v3CallHead
		if name != "" {
			text += name + "\n```json\n"
		}
	default:
		return nil, fmt.Errorf("tool_choice: this model's chat template writes tool calls in a form ulan cannot force; use auto or none: %w", api.ErrNotImplemented)
	}
	ids, err := p.encode(ctx, tp, text, hf.ParseSpecial, notes)
	if err != nil {
		return nil, err
	}
	f := &sampling.Forcing{Tokens: ids}
	if reasoning {
		// After the tokens of </think> as this tokenizer writes it (one
		// special token in V4's).
		if f.After, err = p.encode(ctx, tp, chatfmt.ThinkEnd, hf.ParseSpecial, notes); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// v3CallHead opens a V3 tool call's header: DeepSeek-V3's template writes
// function<｜tool▁sep｜>NAME, a newline, then the arguments in a json fence.
// V3.1's writes NAME<｜tool▁sep｜> and the arguments bare.
const v3CallHead = "function<｜tool▁sep｜>"

// jinjaCall is how a Jinja chat template writes an assistant's tool call.
type jinjaCall struct {
	parse chatparse.Format
	// v3Head: the template writes V3's header exactly as forcedCall forces
	// it (v3CallHead, the name, a newline and a json fence).
	v3Head bool
}

// jinjaCalls remembers jinjaCallOf's answer for each template it was asked
// of (a server has one per model).
var jinjaCalls sync.Map // template string → jinjaCall

// jinjaCallOf tells how a Jinja chat template writes tool calls by
// rendering one call in a short conversation: V3.1's NAME<｜tool▁sep｜>ARGS
// (DeepSeek-V3.1 and V3.1-Terminus), else V3's form (DeepSeek-V3, V3-0324,
// R1). Reading the template's output rather than trusting the model's name
// follows llama.cpp, which tells V3.1 by its template's text.
func jinjaCallOf(template string) jinjaCall {
	if c, ok := jinjaCalls.Load(template); ok {
		return c.(jinjaCall)
	}
	probe := tokenizer.Chat{Messages: []tokenizer.Message{
		{Role: "user", Content: "?"},
		{Role: "assistant", ToolCalls: []tokenizer.ToolCall{{ID: "call_0", Name: "probe_fn", Arguments: "{}"}}},
	}}
	c := jinjaCall{parse: chatparse.V3}
	if text, err := chatfmt.RenderChat(chatfmt.FormatJinja, template, probe); err == nil {
		switch {
		case strings.Contains(text, "<｜tool▁call▁begin｜>probe_fn<｜tool▁sep｜>{}<｜tool▁call▁end｜>"):
			c.parse = chatparse.V31
		case strings.Contains(text, "<｜tool▁call▁begin｜>"+v3CallHead+"probe_fn\n```json\n"):
			c.v3Head = true
		}
	}
	jinjaCalls.Store(template, c)
	return c
}

// chatOf converts a request to tok_chat's input.
func chatOf(req *ulanv1.ChatRequest) (tokenizer.Chat, error) {
	c := tokenizer.Chat{Thinking: thinkingModes[req.GetThinking()], AddGenerationPrompt: true}
	for _, m := range req.GetMessages() {
		msg := tokenizer.Message{Role: roles[m.GetRole()], Content: m.GetContent(), ReasoningContent: m.GetReasoning(),
			ToolCallID: m.GetToolCallId(), Name: m.GetName()}
		for _, tc := range m.GetToolCalls() {
			msg.ToolCalls = append(msg.ToolCalls, tokenizer.ToolCall{ID: tc.GetId(), Name: tc.GetName(), Arguments: tc.GetArguments()})
		}
		c.Messages = append(c.Messages, msg)
	}
	if req.GetToolChoice().GetMode() == ulanv1.ToolChoiceMode_TOOL_CHOICE_MODE_NONE {
		return c, nil // the model is not told of the tools
	}
	for i, t := range req.GetTools() {
		var params json.RawMessage
		if t.GetParameters() != nil {
			b, err := protojson.Marshal(t.GetParameters())
			if err != nil {
				return c, &api.FieldError{Field: fmt.Sprintf("tools[%d].parameters", i), Reason: err.Error()}
			}
			params = b
		}
		c.Tools = append(c.Tools, tokenizer.Tool{Name: t.GetName(), Description: t.GetDescription(), Parameters: params})
	}
	return c, nil
}

// job is one request ready to run.
type job struct {
	arrived time.Time
	prompt  []int32
	params  *ulanv1.SamplingParams
	sel     *selection
	chat    bool
	// from is the request field the prompt came from (prompt,
	// prompt_token_ids or messages), for an error about its length.
	from      string
	parse     chatparse.Format
	reasoning bool // the prompt opened the reasoning channel
	// force makes every choice open its answer with a tool call
	// (tool_choice required or a named tool); nil for none.
	force *sampling.Forcing
	// notes are the request's annotations from before generation (a
	// tokenizer plugin's fallback), which every choice's final message
	// carries.
	notes []*ulanv1.Annotation
}

// choice is one choice's state shared between the scheduler's loop (which
// samples) and the request's goroutine (which streams).
type choice struct {
	smp *sampling.Seq

	mu    sync.Mutex
	draws []sampling.Result // sampled, not yet streamed
	notes []sampling.Note
}

func (c *choice) push(r sampling.Result, notes []sampling.Note) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draws = append(c.draws, r)
	c.notes = append(c.notes, notes...)
}

// pop returns the oldest draw not yet streamed.
func (c *choice) pop() (sampling.Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.draws) == 0 {
		return sampling.Result{}, false
	}
	r := c.draws[0]
	c.draws = c.draws[1:]
	return r, true
}

func (c *choice) takeNotes() []sampling.Note {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.notes
	c.notes = nil
	return n
}

// sample is the scheduler's SampleFunc: one sampling stage step for every
// row, plugins called once per step each.
func (p *Pipeline) sample(rows []scheduler.Row) []scheduler.Decision {
	seqs := make([]*sampling.Seq, len(rows))
	logits := make([][]float32, len(rows))
	maxima := make([][]float32, len(rows))
	for i, r := range rows {
		seqs[i], logits[i], maxima[i] = r.State.(*choice).smp, r.Logits, r.Maxima
	}
	res := p.stage.StepTiled(context.Background(), seqs, logits, maxima)
	dec := make([]scheduler.Decision, len(rows))
	for i, r := range res {
		rows[i].State.(*choice).push(r, seqs[i].Notes())
		dec[i] = scheduler.Decision{Token: r.Token, Err: r.Err}
		if r.Err == nil {
			dec[i].Stop = seqs[i].Ends(r.Token)
		}
	}
	return dec
}

// run generates the choices of j (sampling.n, 1 by default) and streams
// them to out: each choice is its own sequence from the same prompt, with
// its own stream of the seed, hook chain and writer; they are submitted
// together (all or none) and stream side by side. The first choice opens
// its hook chain before anything is submitted, so that a hook that cannot
// open fails the request; the others open theirs as they start streaming,
// because a hook session holds a plugin instance to its end and n choices
// opening at once could wait forever on a smaller pool.
func (p *Pipeline) run(ctx context.Context, j job, out api.Stream) error {
	if p.sched == nil {
		return fmt.Errorf("text generation: %w: the server has no scheduler", api.ErrNotImplemented)
	}
	if p.m.Tokenizer == nil {
		return errNoDetokenizer
	}
	n := max(1, int(j.params.GetN()))
	running := make([]*running, 0, n)
	defer func() {
		for _, r := range running {
			r.close()
		}
	}()
	for i := range n {
		r, err := p.start(ctx, j, i, i == 0)
		if err != nil {
			return err
		}
		running = append(running, r)
	}
	if err := out.Start(&ulanv1.Started{Model: p.m.Name, PromptTokens: uint32(len(j.prompt)), ConfigGeneration: j.sel.number}); err != nil {
		return err
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, r := range running {
		wg.Go(func() {
			if err := r.openHooks(ctx, j, i); err != nil {
				errs[i] = err
				return
			}
			w := p.newWriter(j, r.c, r.chain, out)
			w.index = uint32(i)
			w.seq = r.seq
			w.spans = p.startSteps(ctx, len(j.prompt))
			errs[i] = w.stream(ctx, r.seq)
			w.spans.end(w.tokens, w.finishReason, errs[i])
			// The chain's instances go back now, for the choices still
			// waiting to open theirs.
			r.closeHooks()
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// running is one submitted choice: its sampling state, hook chain and
// scheduler sequence.
type running struct {
	p     *Pipeline
	c     *choice
	chain *HookChain
	seq   *scheduler.Seq
}

// close cancels the choice's sequence if it is still running and releases
// its sampler and hooks.
func (r *running) close() {
	if r.seq != nil {
		r.seq.Cancel()
	}
	r.closeHooks()
	r.p.stage.Release(context.Background(), r.c.smp)
}

// closeHooks closes the choice's hook chain, if open.
func (r *running) closeHooks() {
	if r.chain != nil {
		r.chain.Close(context.Background())
		r.chain = nil
	}
}

// openHooks opens choice i's hook chain if its pipeline has hooks and it
// is not open yet.
func (r *running) openHooks(ctx context.Context, j job, i int) error {
	if len(j.sel.hooks) == 0 || r.chain != nil {
		return nil
	}
	meta, _ := json.Marshal(map[string]any{"model": r.p.m.Name, "prompt_tokens": len(j.prompt), "chat": j.chat, "choice": i})
	chain, err := OpenHookChain(ctx, j.sel.hooks, meta)
	if err != nil {
		return err
	}
	r.chain = chain
	return nil
}

// start prepares choice i of j, with its hook chain open if hooks is set,
// and submits it to the scheduler.
func (p *Pipeline) start(ctx context.Context, j job, i int, hooks bool) (*running, error) {
	info := p.m.Runner.Model().Info()
	var pluginParams []byte
	if j.sel.sampler != nil {
		pluginParams = j.sel.params[j.sel.sampler.ID]
	}
	smp, err := sampling.NewSeq(sampling.Config{Params: j.params, Vocab: info.Vocab, EOS: []int32{p.m.Tokenizer.EOS()},
		Prompt: j.prompt, Choice: i, Plugin: j.sel.sampler, PluginParams: pluginParams, Trace: trace.SpanFromContext(ctx), Force: j.force})
	if err != nil {
		var fe *sampling.FieldError
		if errors.As(err, &fe) {
			return nil, &api.FieldError{Field: fe.Field, Reason: fe.Reason}
		}
		return nil, err
	}
	r := &running{p: p, c: &choice{smp: smp}}
	if hooks {
		if err := r.openHooks(ctx, j, i); err != nil {
			r.close()
			return nil, err
		}
	}
	seq, err := p.sched.Submit(ctx, scheduler.Request{Prompt: j.prompt, MaxTokens: int(j.params.GetMaxTokens()), State: r.c})
	switch {
	case err == nil:
		r.seq = seq
		return r, nil
	case errors.Is(err, scheduler.ErrQueueFull):
		err = fmt.Errorf("%w: %w", api.ErrOverloaded, err)
	case errors.Is(err, scheduler.ErrTooLarge), errors.Is(err, scheduler.ErrInvalid):
		err = &api.FieldError{Field: j.from, Reason: err.Error()}
	}
	r.close()
	return nil, err
}

// pluginID is a plugin's id for a span, "" for none (the model's own).
func pluginID(p *generation.Plugin) string {
	if p == nil {
		return ""
	}
	return p.ID
}

// writer turns one choice's tokens into its stream: detokenize (partial
// UTF-8 held back), stop strings, channel parsing (Chat), hooks, deltas.
type writer struct {
	p      *Pipeline
	j      job
	seq    *scheduler.Seq // for its time in the admission queue
	c      *choice
	chain  *HookChain
	out    api.Stream
	detok  *hf.Stream
	stops  *stop.Matcher
	parser *chatparse.Parser

	tokens int // tokens received
	first  time.Time
	last   time.Time // when the latest token arrived
	spans  *stepSpans
	// finishReason is the choice's finish reason once sent, for its span.
	finishReason string
	delta        *ulanv1.Delta
	calls        int
	stopHit      string
	notes        []*ulanv1.Annotation
	ended        *ulanv1.Finished // set when the hooks ended the choice
	index        uint32           // the choice's index in the request
}

func (p *Pipeline) newWriter(j job, c *choice, chain *HookChain, out api.Stream) *writer {
	tok := p.m.Tokenizer
	// The answer shows text, not control tokens (as transformers' and
	// vLLM's skip_special_tokens), but a chat's parser needs the special
	// tokens of its markup.
	bytesOf := func(id int32) []byte {
		if tok.IsSpecial(id) && !(j.chat && chatparse.Markup(tok.Piece(id))) {
			return nil
		}
		return tok.TokenBytes(id)
	}
	w := &writer{p: p, j: j, c: c, chain: chain, out: out, detok: hf.NewStream(bytesOf),
		stops: stop.New(j.params.GetStop(), j.params.GetIncludeStop())}
	if j.chat {
		w.parser = chatparse.New(j.parse, j.reasoning, nil)
	}
	return w
}

// stream forwards the sequence's events until it ends.
func (w *writer) stream(ctx context.Context, seq *scheduler.Seq) error {
	for {
		ev, err := seq.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil && errors.Is(context.Cause(ctx), generation.ErrRetired) {
				// Its generation ran out of drain time: finish the choice
				// here, saying why (see finish).
				return w.finish(ctx, scheduler.Event{Finish: scheduler.FinishCancelled})
			}
			return err
		}
		if ev.Finish != "" {
			return w.finish(ctx, ev)
		}
		if err := w.token(ctx, ev.Token); err != nil {
			return err
		}
		if w.ended != nil || w.stopHit != "" {
			seq.Stop()
			return w.finish(ctx, scheduler.Event{Finish: scheduler.FinishStop})
		}
	}
}

// token handles one generated token.
func (w *writer) token(ctx context.Context, id int32) error {
	now := time.Now()
	if w.tokens == 0 {
		w.first = now
		w.p.m.Metrics.FirstToken(now.Sub(w.j.arrived))
	} else {
		w.p.m.Metrics.InterToken(now.Sub(w.last))
	}
	w.spans.token(w.tokens+1, w.last, now)
	w.last = now
	w.tokens++
	w.delta = &ulanv1.Delta{TokenIds: []uint32{uint32(id)}}
	if r, ok := w.c.pop(); ok && w.j.params.GetLogprobs() {
		w.delta.Logprobs = append(w.delta.Logprobs, w.logprob(r))
	}
	if !w.c.smp.Ends(id) {
		text, hit := w.stops.Feed(w.detok.Push(id))
		if err := w.text(ctx, text); err != nil {
			return err
		}
		w.stopHit = hit
	} else if w.j.params != nil && slices.Contains(w.j.params.StopTokenIds, uint32(id)) {
		w.stopHit = w.p.m.Tokenizer.Piece(id)
	}
	return w.send()
}

// text passes decoded text through the parser (Chat) and the hooks into
// the pending delta.
func (w *writer) text(ctx context.Context, s string) error {
	if s == "" {
		return nil
	}
	if w.parser == nil {
		return w.channel(ctx, s, plugin.ChannelContent)
	}
	return w.events(ctx, w.parser.Feed(s))
}

func (w *writer) events(ctx context.Context, evs []chatparse.Event) error {
	for _, ev := range evs {
		var err error
		switch ev.Kind {
		case chatparse.Reasoning:
			err = w.channel(ctx, ev.Text, plugin.ChannelReasoning)
		case chatparse.Content:
			err = w.channel(ctx, ev.Text, plugin.ChannelContent)
		case chatparse.CallStart:
			w.calls++
			w.delta.ToolCalls = append(w.delta.ToolCalls, &ulanv1.ToolCallDelta{Index: uint32(ev.Index), Id: ev.ID, Name: ev.Name})
		case chatparse.CallArgs:
			err = w.channel(ctx, ev.Text, plugin.ChannelToolArguments, ev.Index)
		case chatparse.Note:
			w.notes = append(w.notes, &ulanv1.Annotation{Kind: ulanv1.AnnotationKind_ANNOTATION_KIND_OUTPUT_REPAIRED, Source: "host", Message: ev.Text})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// channel runs text of one channel through the hooks and adds what they
// let through to the pending delta.
func (w *writer) channel(ctx context.Context, s string, ch plugin.HookChannel, call ...int) error {
	if w.ended != nil || s == "" {
		return nil
	}
	if w.chain != nil {
		o, err := w.chain.Delta(ctx, s, nil, ch)
		if err != nil {
			return err
		}
		s = o.Text
		if o.Finish != ulanv1.FinishReason_FINISH_REASON_UNSPECIFIED {
			w.ended = &ulanv1.Finished{FinishReason: o.Finish, Message: o.Message}
		}
	}
	w.add(s, ch, call...)
	return nil
}

func (w *writer) add(s string, ch plugin.HookChannel, call ...int) {
	if s == "" {
		return
	}
	switch ch {
	case plugin.ChannelContent:
		w.delta.Content += s
	case plugin.ChannelReasoning:
		w.delta.Reasoning += s
	case plugin.ChannelToolArguments:
		w.delta.ToolCalls = append(w.delta.ToolCalls, &ulanv1.ToolCallDelta{Index: uint32(call[0]), Arguments: s})
	}
}

// send streams the pending delta.
func (w *writer) send() error {
	d := w.delta
	w.delta = nil
	if d == nil || (len(d.TokenIds) == 0 && d.Content == "" && d.Reasoning == "" && len(d.ToolCalls) == 0) {
		return nil
	}
	d.Index = w.index
	return w.out.Delta(d)
}

func (w *writer) logprob(r sampling.Result) *ulanv1.TokenLogprob {
	tok := w.p.m.Tokenizer
	lp := &ulanv1.TokenLogprob{TokenId: uint32(r.Token), Logprob: r.Logprob}
	lp.Token, lp.Bytes = tokenText(tok, r.Token)
	for _, a := range r.Top {
		t := &ulanv1.TopLogprob{TokenId: uint32(a.Token), Logprob: a.Logprob}
		t.Token, t.Bytes = tokenText(tok, a.Token)
		lp.Top = append(lp.Top, t)
	}
	return lp
}

// tokenText is a token's text and its raw bytes.
func tokenText(tok *hf.Tokenizer, id int32) (string, []byte) {
	b := tok.TokenBytes(id)
	if utf8.Valid(b) {
		return string(b), b
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), b
}

var finishReasons = map[scheduler.FinishReason]ulanv1.FinishReason{
	scheduler.FinishStop:      ulanv1.FinishReason_FINISH_REASON_STOP,
	scheduler.FinishLength:    ulanv1.FinishReason_FINISH_REASON_LENGTH,
	scheduler.FinishCancelled: ulanv1.FinishReason_FINISH_REASON_CANCELLED,
	scheduler.FinishError:     ulanv1.FinishReason_FINISH_REASON_ERROR,
}

// finish flushes what is held back and ends the choice.
func (w *writer) finish(ctx context.Context, ev scheduler.Event) error {
	w.delta = &ulanv1.Delta{}
	fin := w.ended
	if fin == nil {
		fin = &ulanv1.Finished{FinishReason: finishReasons[ev.Finish]}
		if ev.Err != nil {
			fin.Message = ev.Err.Error()
		}
		if fin.FinishReason == ulanv1.FinishReason_FINISH_REASON_CANCELLED && ctx.Err() != nil {
			cause := context.Cause(ctx)
			if !errors.Is(cause, generation.ErrRetired) {
				return ctx.Err() // the host finishes a cancelled stream
			}
			// A reload retired the request's generation and its drain time ran
			// out: the client is still there and is told why.
			fin.Message = cause.Error()
			ctx = context.WithoutCancel(ctx)
		}
		// Text held back for a partial stop string or character is output
		// after all, unless a stop string ended the choice.
		if w.stopHit == "" {
			text, hit := w.stops.Feed(w.detok.Flush())
			if w.stopHit = hit; hit == "" {
				text += w.stops.Flush()
			}
			if err := w.text(ctx, text); err != nil {
				return err
			}
		}
		if w.parser != nil {
			if err := w.events(ctx, w.parser.Finish()); err != nil {
				return err
			}
		}
		if w.stopHit != "" {
			fin.FinishReason, fin.Stop = ulanv1.FinishReason_FINISH_REASON_STOP, w.stopHit
		}
		if w.calls > 0 && fin.FinishReason == ulanv1.FinishReason_FINISH_REASON_STOP {
			fin.FinishReason = ulanv1.FinishReason_FINISH_REASON_TOOL_CALLS
		}
		if w.chain != nil && w.ended == nil {
			o, err := w.chain.End(ctx, fin.FinishReason)
			if err != nil {
				return err
			}
			w.add(o.Text, plugin.ChannelContent)
			if o.Finish != fin.FinishReason {
				fin.FinishReason, fin.Message = o.Finish, o.Message
			}
		}
	}
	if err := w.send(); err != nil {
		return err
	}
	fin.Usage = &ulanv1.Usage{PromptTokens: uint32(len(w.j.prompt)), CompletionTokens: uint32(w.tokens)}
	fin.Timings = w.timings()
	fin.Annotations = w.annotations()
	w.p.m.Metrics.Tokens(len(w.j.prompt), w.tokens)
	// The request's own notes come first, and were counted as they happened.
	w.p.countFallbacks(w.j.sel, fin.Annotations[len(w.j.notes):])
	w.finishReason = fin.FinishReason.String()
	fin.Index = w.index
	return w.out.Finish(fin)
}

func (w *writer) timings() *ulanv1.Timings {
	now := time.Now()
	t := &ulanv1.Timings{Total: durationpb.New(now.Sub(w.j.arrived))}
	if w.seq != nil {
		if d, ok := w.seq.Queued(); ok {
			t.Queue = durationpb.New(d)
		}
	}
	if w.tokens > 0 {
		ttft := w.first.Sub(w.j.arrived)
		t.TimeToFirstToken = durationpb.New(ttft)
		if ttft > 0 {
			t.PrefillTokensPerSecond = float64(len(w.j.prompt)) / ttft.Seconds()
		}
		if d := now.Sub(w.first); w.tokens > 1 && d > 0 {
			t.DecodeTokensPerSecond = float64(w.tokens-1) / d.Seconds()
		}
	}
	return t
}

// countFallbacks counts, per plugin, the fallbacks and skips a choice's
// annotations report.
func (p *Pipeline) countFallbacks(sel *selection, notes []*ulanv1.Annotation) {
	if p.m.Metrics == nil {
		return
	}
	for _, n := range notes {
		switch n.Kind {
		case ulanv1.AnnotationKind_ANNOTATION_KIND_PLUGIN_FALLBACK, ulanv1.AnnotationKind_ANNOTATION_KIND_PLUGIN_SKIPPED:
			p.m.Metrics.FallbackTaken(n.Source, sel.loadedBy(n.Source))
		}
	}
}

// loadedBy returns the number of the generation that loaded the selected
// plugin with the given id (its metrics' generation label).
func (sel *selection) loadedBy(id string) uint64 {
	for _, p := range append([]*generation.Plugin{sel.tokenizer, sel.sampler}, sel.hooks...) {
		if p != nil && p.ID == id {
			return p.LoadedBy
		}
	}
	return sel.number
}

// annotations gathers the notes of the sampling stage, the parser and the
// hooks.
func (w *writer) annotations() []*ulanv1.Annotation {
	var out []*ulanv1.Annotation
	for _, n := range w.j.notes {
		out = append(out, &ulanv1.Annotation{Kind: n.Kind, Source: n.Source, Message: n.Message})
	}
	for _, n := range w.c.takeNotes() {
		out = append(out, &ulanv1.Annotation{Kind: n.Kind, Source: n.Source, Message: n.Message})
	}
	out = append(out, w.notes...)
	if w.chain != nil {
		out = append(out, w.chain.Annotations()...)
	}
	return out
}
