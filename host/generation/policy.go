package generation

import (
	"fmt"

	"github.com/ulan-ai/ulan/host/plugin"
)

// Policy is what a request sees when one of its plugins fails: a trap, a timeout, an
// output the host refuses, or a refusal while the plugin's circuit breaker is open
// (sdk/ABI.md §2, §8). Which policies a plugin may have depends on its kind; Allows
// says.
type Policy uint8

const (
	// FailClosed, the default, stops the request. A tokenizer's or sampler's failure
	// fails it with an error; a hook's failure ends it, with finish reason
	// content_filter for a safety hook and error for any other.
	FailClosed Policy = iota + 1
	// FailOpen skips the failed hook for the rest of the request, which goes on
	// unfiltered and is annotated so. Hooks only: text cannot pass untokenized, and a
	// sampler has Fallback.
	FailOpen
	// Fallback uses the built-in implementation in the plugin's place: the model's own
	// tokenizer for the request, or the standard sampler for that step; the response is
	// annotated. Tokenizers and samplers only: a hook has no built-in to fall back to.
	Fallback
)

// ParsePolicy reads a policy as the configuration writes it (config.FailurePolicies);
// "" is FailClosed, the default.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "", "fail_closed":
		return FailClosed, nil
	case "fail_open":
		return FailOpen, nil
	case "fallback":
		return Fallback, nil
	}
	return 0, fmt.Errorf("%q is not a failure policy (fail_closed, fail_open or fallback)", s)
}

// String returns the policy as the configuration writes it.
func (p Policy) String() string {
	switch p {
	case FailClosed:
		return "fail_closed"
	case FailOpen:
		return "fail_open"
	case Fallback:
		return "fallback"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// Allows returns nil when a plugin of kind k may have policy p, or why not
// (sdk/ABI.md §8).
func (p Policy) Allows(k plugin.Kind) error {
	switch {
	case p == FailOpen && k == plugin.KindTokenizer:
		return fmt.Errorf("fail_open is not allowed for a tokenizer: text cannot pass untokenized (use fail_closed or fallback)")
	case p == FailOpen && k == plugin.KindSampler:
		return fmt.Errorf("fail_open is not allowed for a sampler: use fallback, which samples that step with the built-in sampler")
	case p == Fallback && k == plugin.KindHook:
		return fmt.Errorf("fallback is not allowed for a hook: there is no built-in hook to fall back to (use fail_closed or fail_open)")
	case p < FailClosed || p > Fallback:
		return fmt.Errorf("%v is not a failure policy", p)
	}
	return nil
}
