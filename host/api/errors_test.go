package api

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/auth"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
)

func TestToConnect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		err   error
		code  connect.Code
		known bool
		msg   string
	}{
		{"field error", &FieldError{Field: "sampling.top_p", Reason: "bad"}, connect.CodeInvalidArgument, true, "sampling.top_p: bad"},
		{"field errors", FieldErrors{{Field: "a", Reason: "x"}, {Field: "b", Reason: "y"}}, connect.CodeInvalidArgument, true, "a: x; b: y"},
		{"wrapped field error", fmt.Errorf("tokenizer: %w", &FieldError{Field: "prompt_token_ids[3]", Reason: "out of vocabulary"}), connect.CodeInvalidArgument, true, ""},
		{"no model", fmt.Errorf("%w on this server", ErrNoModel), connect.CodeUnavailable, true, "no model is loaded on this server"},
		{"not found", fmt.Errorf("pipeline %q: %w", "x", ErrNotFound), connect.CodeNotFound, true, ""},
		{"not implemented", ErrNotImplemented, connect.CodeUnimplemented, true, ""},
		{"overloaded", fmt.Errorf("queue full: %w", ErrOverloaded), connect.CodeResourceExhausted, true, ""},
		{"permission", ErrPermissionDenied, connect.CodePermissionDenied, true, ""},
		{"canceled", context.Canceled, connect.CodeCanceled, true, ""},
		{"deadline", fmt.Errorf("step: %w", context.DeadlineExceeded), connect.CodeDeadlineExceeded, true, ""},
		{"connect error passes", connect.NewError(connect.CodeAborted, errors.New("x")), connect.CodeAborted, true, "x"},
		{"anything else is internal and hidden", errors.New("open /secret/path: permission denied"), connect.CodeInternal, false, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ce, known := toConnect(tt.err)
			require.Equal(t, tt.code, ce.Code())
			require.Equal(t, tt.known, known)
			if tt.msg != "" {
				require.Equal(t, tt.msg, ce.Message())
			}
		})
	}
}

func TestInvalidArgumentCarriesBadRequest(t *testing.T) {
	t.Parallel()
	ce, _ := toConnect(FieldErrors{{Field: "sampling.temperature", Reason: "NaN is out of range"}})
	require.Len(t, ce.Details(), 1)
	v, err := ce.Details()[0].Value()
	require.NoError(t, err)
	br, ok := v.(*errdetails.BadRequest)
	require.True(t, ok)
	require.Equal(t, "sampling.temperature", br.FieldViolations[0].Field)
}

func TestGenerationIDs(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := newGenerationID()
		require.True(t, validGenerationID(id), id)
		require.False(t, seen[id])
		seen[id] = true
	}
	for _, bad := range []string{"", "gen_", "gen_ABCDEFGHIJKLMNOPQRSTUVWXYZ", "req_abcdefghijklmnopqrstuvwxyz", "gen_abcdefghijklmnopqrstuvwxy1"} {
		require.False(t, validGenerationID(bad), bad)
	}
}

func TestRegistryCancel(t *testing.T) {
	t.Parallel()
	r := newRegistry()
	as := func(key string, admin bool) context.Context {
		return auth.NewContext(context.Background(), auth.Principal{KeyID: key, Admin: admin})
	}
	id, ctx, release := r.start(context.Background(), "alice")
	require.ErrorIs(t, r.cancel(as("bob", false), id), ErrNotFound, "only the owner may cancel")
	require.ErrorIs(t, r.cancel(context.Background(), id), ErrNotFound, "nor a caller without a key")
	require.NoError(t, ctx.Err())
	require.NoError(t, r.cancel(as("alice", false), id))
	require.ErrorIs(t, context.Cause(ctx), errCancelRequested)
	release()
	require.Zero(t, r.count())
	require.ErrorIs(t, r.cancel(as("alice", false), id), ErrNotFound)

	id, ctx, release = r.start(context.Background(), "alice")
	defer release()
	require.NoError(t, r.cancel(as("root", true), id), "an admin key may cancel any generation")
	require.ErrorIs(t, context.Cause(ctx), errCancelRequested)
}
