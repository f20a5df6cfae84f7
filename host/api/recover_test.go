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
