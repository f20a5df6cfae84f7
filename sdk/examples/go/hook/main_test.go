package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/sdk/go/hook"
)

// The plugin's logic runs natively under `go test`.
func TestRedactsAcrossDeltas(t *testing.T) {
	r := &redactor{}
	require.NoError(t, r.configure([]byte(`{"words": ["secret", "wörld"], "stop": "THE END"}`)))
	s, err := r.Open(nil)
	require.NoError(t, err)
	for _, step := range []struct {
		delta string
		ch    hook.Channel
		want  hook.Result
	}{
		{"hello ", hook.Content, hook.Result{Action: hook.Pass}},
		{"a sec", hook.Content, hook.Result{Action: hook.Replace, Emit: "a "}},            // "sec" may become "secret"
		{"ret plan", hook.Content, hook.Result{Action: hook.Redact, Emit: "****** plan"}}, // it did
		{"secret", hook.Reasoning, hook.Result{Action: hook.Pass}},                        // other channels pass
		{" wör", hook.Content, hook.Result{Action: hook.Replace, Emit: " "}},              // held back at a character boundary
		{"ld, THE", hook.Content, hook.Result{Action: hook.Redact, Emit: "*****, "}},      // one '*' per character; "THE" held
		{" ENDING", hook.Content, hook.Result{Action: hook.Stop, Emit: ""}},               // the stop phrase, split
	} {
		got, err := s.Delta(step.delta, nil, step.ch)
		require.NoError(t, err)
		require.Equal(t, step.want, got, "delta %q", step.delta)
	}

	s, err = r.Open(nil)
	require.NoError(t, err)
	got, err := s.Delta("the secre", nil, hook.Content)
	require.NoError(t, err)
	require.Equal(t, hook.Result{Action: hook.Replace, Emit: "the "}, got)
	got, err = s.End(1)
	require.NoError(t, err)
	require.Equal(t, hook.Result{Action: hook.Replace, Emit: "secre"}, got, "the end flushes what was held")
	got, err = s.End(1)
	require.NoError(t, err)
	require.Equal(t, hook.Pass, got.Action)

	require.Error(t, r.configure([]byte(`{"words": [""]}`)))
}
