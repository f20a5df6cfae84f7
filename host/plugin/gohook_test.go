package plugin

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// buildGoHook builds testdata/gohook with the Go SDK and its manifest.
func buildGoHook(t *testing.T) []byte {
	return buildGo(t, "gohook", `{"abi":1,"name":"gohook","version":"0.1.0","kind":"hook",
		"config_schema":{"type":"object","properties":{"greeting":{"type":"string"}}},
		"needs":{"memory_pages":256,"imports":["log"]}}`)
}

// TestGoSDKHook runs a hook built with the Go SDK through a whole session.
func TestGoSDKHook(t *testing.T) {
	t.Parallel()
	wasm := buildGoHook(t)
	logs := &syncBuffer{}
	cfg := Config{ID: "gohook", Kind: KindHook, PluginConfig: []byte(`{"greeting":"operator"}`), PoolSize: 1, MemoryPages: 256}
	p, err := loadWithLog(wasm, cfg, logs)
	require.NoError(t, err)
	defer p.Close(context.Background())
	require.Contains(t, logs.String(), "hello operator", "ulan_init handed over the config")

	ctx := context.Background()
	s, err := p.OpenHook(ctx, []byte(`{"request_id":"r1"}`))
	require.NoError(t, err)
	r, err := s.Delta(ctx, "hello ", []int32{1, 2}, ChannelContent)
	require.NoError(t, err)
	require.Equal(t, HookResult{Action: HookReplace, Emit: "HELLO "}, r)
	r, err = s.Delta(ctx, "thinking", []int32{3}, ChannelReasoning)
	require.NoError(t, err)
	require.Equal(t, HookPass, r.Action)

	// A panic in the plugin is an error with its message; the instance
	// survives (the SDK recovered), so the session goes on.
	_, err = s.Delta(ctx, "panic", nil, ChannelContent)
	require.ErrorContains(t, err, "hook_delta: status 5: panic: boom")
	r, err = s.Delta(ctx, "please stop", []int32{4}, ChannelContent)
	require.NoError(t, err)
	require.Equal(t, HookResult{Action: HookStop, FinishReason: 4, Emit: "[stopped]"}, r)
	r, err = s.End(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, "!!!!", r.Emit, "the session saw four token ids")
	s.Close(ctx)
	require.Equal(t, Stats{Idle: 1, Size: 1}, p.Stats())

	_, err = loadWithLog(wasm, Config{ID: "gohook", Kind: KindHook, PluginConfig: []byte(`{"greeting":7}`), MemoryPages: 256}, io.Discard)
	require.ErrorContains(t, err, "config: at /greeting")
}

// TestHookSessionsBeyondPool: hook sessions pin an instance each for their
// stream, so a pool of one serves three at once with two extra instances,
// which are closed (not pooled) as their sessions end.
func TestHookSessionsBeyondPool(t *testing.T) {
	t.Parallel()
	p, err := loadWithLog(buildGoHook(t), Config{ID: "gohook", Kind: KindHook, PoolSize: 1, MemoryPages: 256, CallTimeout: 200 * time.Millisecond}, io.Discard)
	require.NoError(t, err)
	defer p.Close(context.Background())
	ctx := context.Background()
	var sessions []*HookSession
	for range 3 {
		s, err := p.OpenHook(ctx, []byte(`{}`))
		require.NoError(t, err, "a session beyond the pool gets an instance of its own")
		sessions = append(sessions, s)
	}
	p.pool.mu.Lock()
	require.Equal(t, 2, p.pool.extra)
	p.pool.mu.Unlock()
	for i, s := range sessions {
		r, err := s.Delta(ctx, "hello ", []int32{1}, ChannelContent)
		require.NoError(t, err, "session %d", i)
		require.Equal(t, "HELLO ", r.Emit, "session %d keeps its own state", i)
	}
	for _, s := range sessions {
		s.Close(ctx)
	}
	require.Equal(t, Stats{Idle: 1, Size: 1}, p.Stats(), "the pool keeps its one instance")
	p.pool.mu.Lock()
	require.Zero(t, p.pool.extra, "the extra instances are closed")
	p.pool.mu.Unlock()
}
