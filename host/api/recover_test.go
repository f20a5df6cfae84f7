package api_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/api"
	"github.com/ulan-ai/ulan/host/api/apitest"
	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// panicky is an Inference whose Tokenize and Generate panic.
type panicky struct{ *apitest.Echo }

func (panicky) Tokenize(context.Context, *ulanv1.TokenizeRequest) (*ulanv1.TokenizeResponse, error) {
	panic("tokenizer bug")
}

func (panicky) Generate(context.Context, *ulanv1.GenerateRequest, api.Stream) error {
	panic("generation bug")
}

// TestHandlerPanicIsInternal: a handler that panics answers its call with
// Internal and logs the panic with its stack; the server goes on serving.
func TestHandlerPanicIsInternal(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	a := api.New(api.Config{Inference: panicky{&apitest.Echo{}}, Limits: testLimits, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	client := ulanv1connect.NewInferenceServiceClient(srv.Client(), srv.URL)
	ctx := context.Background()

	_, err := client.Tokenize(ctx, connect.NewRequest(&ulanv1.TokenizeRequest{Text: "a"}))
	require.Equal(t, connect.CodeInternal, connect.CodeOf(err), "%v", err)
	require.Contains(t, err.Error(), "Tokenize")

	stream, err := client.Generate(ctx, connect.NewRequest(&ulanv1.GenerateRequest{Prompt: "a"}))
	require.NoError(t, err)
	for stream.Receive() {
	}
	require.Equal(t, connect.CodeInternal, connect.CodeOf(stream.Err()), "%v", stream.Err())

	require.Contains(t, logs.String(), "tokenizer bug")
	require.Contains(t, logs.String(), "generation bug")
	require.Contains(t, logs.String(), "recover_test.go", "the stack is logged")

	// The server still answers.
	_, err = client.Detokenize(ctx, connect.NewRequest(&ulanv1.DetokenizeRequest{TokenIds: []uint32{1}}))
	require.NoError(t, err)
}

// startsOnly is an Inference whose Generate starts its stream and returns
// without finishing its choice.
type startsOnly struct{ *apitest.Echo }

func (startsOnly) Generate(_ context.Context, _ *ulanv1.GenerateRequest, out api.Stream) error {
	return out.Start(&ulanv1.Started{})
}

// TestUnfinishedGenerationIsLogged: a generation that finishes its choices
// logs no error; one that returns with a choice open gets it finished as an
// error, and that is logged.
func TestUnfinishedGenerationIsLogged(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		inf    api.Inference
		logged bool
	}{{&apitest.Echo{}, false}, {startsOnly{&apitest.Echo{}}, true}} {
		var logs bytes.Buffer
		a := api.New(api.Config{Inference: tc.inf, Limits: testLimits, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		srv := httptest.NewServer(a)
		client := ulanv1connect.NewInferenceServiceClient(srv.Client(), srv.URL)
		stream, err := client.Generate(context.Background(), connect.NewRequest(&ulanv1.GenerateRequest{Prompt: "a"}))
		require.NoError(t, err)
		var fin *ulanv1.Finished
		for stream.Receive() {
			if f := stream.Msg().GetFinished(); f != nil {
				fin = f
			}
		}
		require.NoError(t, stream.Err())
		srv.Close()
		require.NotNil(t, fin)
		if tc.logged {
			require.Equal(t, ulanv1.FinishReason_FINISH_REASON_ERROR, fin.FinishReason)
			require.Contains(t, logs.String(), "generation ended without finishing")
		} else {
			require.NotEqual(t, ulanv1.FinishReason_FINISH_REASON_ERROR, fin.FinishReason)
			require.NotContains(t, logs.String(), "level=ERROR", "a finished generation logs no error")
		}
	}
}
