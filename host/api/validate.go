package api

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/ulan-ai/ulan/host/config"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// Bounds on request fields that are the API's own, not the operator's.
const (
	maxStop         = 16
	maxStopBytes    = 256
	maxStopTokenIDs = 256
	maxTokenList    = 1 << 17
	maxLogitBias    = 1024
	maxLogitBiasAbs = 100
	maxTopLogprobs  = 20
	maxChoices      = 16
	maxTemperature  = 100
	maxRepetition   = 10
	maxPenaltyAbs   = 2
	maxHooks        = 16
	maxMessages     = 4096
	maxTools        = 128
	maxToolCalls    = 128
	maxNameBytes    = 256
	maxKVLengths    = 16
	maxKVContext    = 1 << 32
)

var (
	// pluginName matches plugin ids and pipeline names, which come from the
	// operator's configuration and are checked there against the same pattern.
	pluginName = config.NamePattern
	// toolName matches what OpenAI and DeepSeek accept as a function name.
	toolName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// checker collects every problem in a request rather than stopping at the
// first, so a client fixes them in one round.
type checker struct{ errs FieldErrors }

func (c *checker) add(field, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (c *checker) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return c.errs
}

// inRange reports lo <= v <= hi, false for NaN.
func inRange(v, lo, hi float32) bool { return v >= lo && v <= hi }

func (c *checker) floatRange(field string, v *float32, lo, hi float32, loOpen bool) {
	if v == nil {
		return
	}
	x := *v
	ok := inRange(x, lo, hi) && !(loOpen && x == lo)
	if ok {
		return
	}
	open := "["
	if loOpen {
		open = "("
	}
	c.add(field, "%v is out of range; must be in %s%v, %v]", x, open, lo, hi)
}

func (c *checker) enum(field string, v protoreflect.Enum, required bool) {
	n := v.Number()
	if v.Descriptor().Values().ByNumber(n) == nil {
		c.add(field, "unknown value %d", n)
		return
	}
	if required && n == 0 {
		c.add(field, "is required")
	}
}

func (c *checker) name(field, v string) {
	if v != "" && !pluginName.MatchString(v) {
		c.add(field, "%q is not a valid name (1 to 64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit)", clip(v))
	}
}

func (c *checker) model(v string) {
	if len(v) > maxNameBytes {
		c.add("model", "is %d bytes; at most %d", len(v), maxNameBytes)
	}
}

func (c *checker) sampling(s *ulanv1.SamplingParams, lim Limits) {
	if s == nil {
		return
	}
	c.floatRange("sampling.temperature", s.Temperature, 0, maxTemperature, false)
	c.floatRange("sampling.top_p", s.TopP, 0, 1, true)
	if s.TopK != nil && *s.TopK < 0 {
		c.add("sampling.top_k", "%d is negative; use 0 to disable top-k", *s.TopK)
	}
	c.floatRange("sampling.min_p", s.MinP, 0, 1, false)
	c.floatRange("sampling.typical_p", s.TypicalP, 0, 1, true)
	c.floatRange("sampling.repetition_penalty", s.RepetitionPenalty, 0, maxRepetition, true)
	c.floatRange("sampling.presence_penalty", s.PresencePenalty, -maxPenaltyAbs, maxPenaltyAbs, false)
	c.floatRange("sampling.frequency_penalty", s.FrequencyPenalty, -maxPenaltyAbs, maxPenaltyAbs, false)
	if s.PenaltyWindow != nil && *s.PenaltyWindow < 0 {
		c.add("sampling.penalty_window", "%d is negative; use 0 for the whole sequence", *s.PenaltyWindow)
	}
	if len(s.Stop) > maxStop {
		c.add("sampling.stop", "has %d strings; at most %d", len(s.Stop), maxStop)
	}
	for i, st := range s.Stop {
		if len(st) == 0 || len(st) > maxStopBytes {
			c.add(fmt.Sprintf("sampling.stop[%d]", i), "is %d bytes; must be 1 to %d", len(st), maxStopBytes)
		}
	}
	if len(s.StopTokenIds) > maxStopTokenIDs {
		c.add("sampling.stop_token_ids", "has %d ids; at most %d", len(s.StopTokenIds), maxStopTokenIDs)
	}
	if len(s.AllowedTokenIds) > maxTokenList {
		c.add("sampling.allowed_token_ids", "has %d ids; at most %d", len(s.AllowedTokenIds), maxTokenList)
	}
	if len(s.BannedTokenIds) > maxTokenList {
		c.add("sampling.banned_token_ids", "has %d ids; at most %d", len(s.BannedTokenIds), maxTokenList)
	}
	c.samplable(s)
	if s.MaxTokens != nil {
		if m := *s.MaxTokens; m < 1 || m > int32(min(lim.MaxTokens, math.MaxInt32)) {
			c.add("sampling.max_tokens", "%d is out of range; must be 1 to %d (limits.max_tokens), or unset for up to the context length", m, lim.MaxTokens)
		}
	}
	switch m := s.MinTokens; {
	case m < 0:
		c.add("sampling.min_tokens", "%d is negative", m)
	case int64(m) > int64(lim.MaxTokens):
		c.add("sampling.min_tokens", "%d is over the limit of %d (limits.max_tokens)", m, lim.MaxTokens)
	case s.MaxTokens != nil && *s.MaxTokens >= 1 && m > *s.MaxTokens: // a bad max_tokens is its own problem
		c.add("sampling.min_tokens", "%d is more than max_tokens (%d)", m, *s.MaxTokens)
	}
	if len(s.LogitBias) > maxLogitBias {
		c.add("sampling.logit_bias", "has %d entries; at most %d", len(s.LogitBias), maxLogitBias)
	}
	ids := make([]uint32, 0, len(s.LogitBias))
	for id := range s.LogitBias {
		ids = append(ids, id)
	}
	slices.Sort(ids) // report in a stable order
	for _, id := range ids {
		if b := s.LogitBias[id]; !inRange(b, -maxLogitBiasAbs, maxLogitBiasAbs) {
			c.add(fmt.Sprintf("sampling.logit_bias[%d]", id), "%v is out of range; must be in [-%d, %d]", b, maxLogitBiasAbs, maxLogitBiasAbs)
		}
	}
	switch t := s.TopLogprobs; {
	case t < 0 || t > maxTopLogprobs:
		c.add("sampling.top_logprobs", "%d is out of range; must be 0 to %d", t, maxTopLogprobs)
	case t > 0 && !s.Logprobs:
		c.add("sampling.top_logprobs", "needs logprobs set to true")
	}
	if s.N < 0 || s.N > maxChoices {
		c.add("sampling.n", "%d is out of range; must be 0 to %d", s.N, maxChoices)
	}
}

// samplable refuses allowed_token_ids that leave nothing to sample: every
// allowed id banned, or (before min_tokens) banned or a stop token, which
// min_tokens bans until then. Otherwise the stream would start and its first
// step fail. Whether the model's end-of-sequence token is the only one left
// depends on the model, and is the sampler's to report.
func (c *checker) samplable(s *ulanv1.SamplingParams) {
	if len(s.AllowedTokenIds) == 0 || len(s.AllowedTokenIds) > maxTokenList || len(s.BannedTokenIds) > maxTokenList {
		return
	}
	excluded := make(map[uint32]bool, len(s.BannedTokenIds)+len(s.StopTokenIds))
	for _, id := range s.BannedTokenIds {
		excluded[id] = true
	}
	if s.MinTokens > 0 {
		for _, id := range s.StopTokenIds {
			excluded[id] = true
		}
	}
	for _, id := range s.AllowedTokenIds {
		if !excluded[id] {
			return
		}
	}
	if s.MinTokens > 0 && len(s.StopTokenIds) > 0 {
		c.add("sampling.allowed_token_ids", "every allowed token is in banned_token_ids or stop_token_ids (banned until min_tokens), so none can be sampled")
		return
	}
	c.add("sampling.allowed_token_ids", "every allowed token is in banned_token_ids, so none can be sampled")
}

func (c *checker) plugins(p *ulanv1.PluginSelection) {
	if p == nil {
		return
	}
	c.name("plugins.pipeline", p.Pipeline)
	c.name("plugins.sampler", p.Sampler)
	if len(p.Hooks) > maxHooks {
		c.add("plugins.hooks", "has %d hooks; at most %d", len(p.Hooks), maxHooks)
	}
	for i, h := range p.Hooks {
		field := fmt.Sprintf("plugins.hooks[%d]", i)
		switch {
		case h == "":
			c.add(field, "is empty")
		case slices.Contains(p.Hooks[:i], h):
			c.add(field, "%q is listed twice", h)
		default:
			c.name(field, h)
		}
	}
	for id := range p.Params {
		if !pluginName.MatchString(id) {
			c.add("plugins.params", "key %q is not a valid plugin id", clip(id))
		}
	}
}

func validateGenerate(r *ulanv1.GenerateRequest, lim Limits) error {
	var c checker
	switch {
	case r.Prompt == "" && len(r.PromptTokenIds) == 0:
		c.add("prompt", "is required: set prompt or prompt_token_ids")
	case r.Prompt != "" && len(r.PromptTokenIds) > 0:
		c.add("prompt", "set only one of prompt and prompt_token_ids")
	case int64(len(r.Prompt)) > lim.MaxPromptBytes:
		c.add("prompt", "is %d bytes; the limit is %d (limits.max_prompt_bytes)", len(r.Prompt), lim.MaxPromptBytes)
	}
	c.model(r.Model)
	c.sampling(r.Sampling, lim)
	c.plugins(r.Plugins)
	return c.err()
}

func validateChat(r *ulanv1.ChatRequest, lim Limits) error {
	var c checker
	switch n := len(r.Messages); {
	case n == 0:
		c.add("messages", "is required: at least one message")
	case n > maxMessages:
		c.add("messages", "has %d messages; at most %d", n, maxMessages)
	}
	var textBytes int64
	callIDs := map[string]bool{}
	for i, m := range r.Messages {
		f := fmt.Sprintf("messages[%d]", i)
		c.enum(f+".role", m.Role, true)
		textBytes += int64(len(m.Content) + len(m.Reasoning))
		role := m.Role
		if m.Reasoning != "" && role != ulanv1.Role_ROLE_ASSISTANT {
			c.add(f+".reasoning", "only assistant messages have reasoning")
		}
		if len(m.ToolCalls) > 0 && role != ulanv1.Role_ROLE_ASSISTANT {
			c.add(f+".tool_calls", "only assistant messages make tool calls")
		}
		if len(m.ToolCalls) > maxToolCalls {
			c.add(f+".tool_calls", "has %d calls; at most %d", len(m.ToolCalls), maxToolCalls)
		}
		for j, tc := range m.ToolCalls {
			tf := fmt.Sprintf("%s.tool_calls[%d]", f, j)
			textBytes += int64(len(tc.Arguments))
			if tc.Id == "" || len(tc.Id) > maxNameBytes {
				c.add(tf+".id", "is required (1 to %d bytes)", maxNameBytes)
			} else {
				callIDs[tc.Id] = true
			}
			if !toolName.MatchString(tc.Name) {
				c.add(tf+".name", "%q is not a valid tool name (1 to 64 of A-Z, a-z, 0-9, '_', '.', '-')", clip(tc.Name))
			}
			if !isJSONObject(tc.Arguments) {
				c.add(tf+".arguments", "must be a JSON object")
			}
		}
		switch {
		case role == ulanv1.Role_ROLE_TOOL && m.ToolCallId == "":
			c.add(f+".tool_call_id", "is required for tool messages")
		case role == ulanv1.Role_ROLE_TOOL && !callIDs[m.ToolCallId]:
			c.add(f+".tool_call_id", "%q answers no earlier assistant tool call", clip(m.ToolCallId))
		case role != ulanv1.Role_ROLE_TOOL && m.ToolCallId != "":
			c.add(f+".tool_call_id", "only tool messages answer tool calls")
		}
		if len(m.Name) > maxNameBytes {
			c.add(f+".name", "is %d bytes; at most %d", len(m.Name), maxNameBytes)
		}
	}
	if textBytes > lim.MaxPromptBytes {
		c.add("messages", "hold %d bytes of text; the limit is %d (limits.max_prompt_bytes)", textBytes, lim.MaxPromptBytes)
	}
	if len(r.Tools) > maxTools {
		c.add("tools", "has %d tools; at most %d", len(r.Tools), maxTools)
	}
	tools := map[string]bool{}
	for i, t := range r.Tools {
		f := fmt.Sprintf("tools[%d].name", i)
		switch {
		case !toolName.MatchString(t.Name):
			c.add(f, "%q is not a valid tool name (1 to 64 of A-Z, a-z, 0-9, '_', '.', '-')", clip(t.Name))
		case tools[t.Name]:
			c.add(f, "%q is defined twice", t.Name)
		}
		tools[t.Name] = true
	}
	if tc := r.ToolChoice; tc != nil {
		switch ch := tc.Choice.(type) {
		case *ulanv1.ToolChoice_Mode:
			c.enum("tool_choice.mode", ch.Mode, false)
			if ch.Mode == ulanv1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED && len(r.Tools) == 0 {
				c.add("tool_choice.mode", "required needs at least one tool in tools")
			}
		case *ulanv1.ToolChoice_Tool:
			if !tools[ch.Tool] {
				c.add("tool_choice.tool", "%q is not in tools", clip(ch.Tool))
			}
		}
	}
	c.enum("thinking", r.Thinking, false)
	c.model(r.Model)
	c.sampling(r.Sampling, lim)
	c.plugins(r.Plugins)
	return c.err()
}

func validateTokenize(r *ulanv1.TokenizeRequest, lim Limits) error {
	var c checker
	if int64(len(r.Text)) > lim.MaxPromptBytes {
		c.add("text", "is %d bytes; the limit is %d (limits.max_prompt_bytes)", len(r.Text), lim.MaxPromptBytes)
	}
	c.name("pipeline", r.Pipeline)
	c.model(r.Model)
	return c.err()
}

func validateDetokenize(r *ulanv1.DetokenizeRequest) error {
	var c checker
	c.name("pipeline", r.Pipeline)
	c.model(r.Model)
	return c.err()
}

func validateGetModel(r *ulanv1.GetModelRequest) error {
	var c checker
	if len(r.KvCacheContextLengths) > maxKVLengths {
		c.add("kv_cache_context_lengths", "has %d lengths; at most %d", len(r.KvCacheContextLengths), maxKVLengths)
	}
	for i, n := range r.KvCacheContextLengths {
		if n < 1 || n > maxKVContext {
			c.add(fmt.Sprintf("kv_cache_context_lengths[%d]", i), "%d is out of range; must be 1 to %d", n, uint64(maxKVContext))
		}
	}
	return c.err()
}

func validateCancel(r *ulanv1.CancelRequest) error {
	var c checker
	switch {
	case r.GenerationId == "":
		c.add("generation_id", "is required")
	case !validGenerationID(r.GenerationId):
		c.add("generation_id", "%q is not a generation id", clip(r.GenerationId))
	}
	return c.err()
}

func isJSONObject(s string) bool {
	var v map[string]any
	return json.Unmarshal([]byte(s), &v) == nil && v != nil
}

// clip shortens a client's string before it goes into an error message, so
// that a huge bad value does not come back in full.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
