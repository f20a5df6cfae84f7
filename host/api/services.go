package api

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"connectrpc.com/connect"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

type modelHandler struct {
	inf Inference
	log *slog.Logger
}

func (h *modelHandler) GetModel(ctx context.Context, req *connect.Request[ulanv1.GetModelRequest]) (*connect.Response[ulanv1.GetModelResponse], error) {
	if err := validateGetModel(req.Msg); err != nil {
		return nil, failWith(ctx, h.log, err)
	}
	m, err := h.inf.Model(ctx, req.Msg.KvCacheContextLengths)
	if err != nil {
		return nil, failWith(ctx, h.log, err)
	}
	return connect.NewResponse(&ulanv1.GetModelResponse{Model: m}), nil
}

type pluginHandler struct {
	plugins Plugins
	limits  Limits
	log     *slog.Logger
}

func (h *pluginHandler) ListPlugins(ctx context.Context, _ *connect.Request[ulanv1.ListPluginsRequest]) (*connect.Response[ulanv1.ListPluginsResponse], error) {
	res, err := h.plugins.List(ctx)
	if err != nil {
		return nil, failWith(ctx, h.log, err)
	}
	return connect.NewResponse(res), nil
}

func (h *pluginHandler) GetStatus(ctx context.Context, _ *connect.Request[ulanv1.GetStatusRequest]) (*connect.Response[ulanv1.GetStatusResponse], error) {
	res, err := h.plugins.Status(ctx)
	if err != nil {
		return nil, failWith(ctx, h.log, err)
	}
	return connect.NewResponse(res), nil
}

func (h *pluginHandler) Reload(ctx context.Context, _ *connect.Request[ulanv1.ReloadRequest]) (*connect.Response[ulanv1.ReloadResponse], error) {
	res, err := h.plugins.Reload(ctx)
	if err != nil {
		return nil, failWith(ctx, h.log, err)
	}
	return connect.NewResponse(&ulanv1.ReloadResponse{Result: res}), nil
}

func (h *pluginHandler) ValidateConfig(ctx context.Context, req *connect.Request[ulanv1.ValidateConfigRequest]) (*connect.Response[ulanv1.ValidateConfigResponse], error) {
	if req.Msg.Yaml == "" {
		return nil, failWith(ctx, h.log, &FieldError{Field: "yaml", Reason: "is required: the configuration file's text"})
	}
	res, err := h.plugins.Validate(ctx, []byte(req.Msg.Yaml))
	if err != nil {
		return nil, failWith(ctx, h.log, err)
	}
	return connect.NewResponse(res), nil
}

// NoModel is the Inference of a server that has no model loaded: every
// request that needs a model is answered with ErrNoModel (Unavailable), never
// with a made-up answer.
type NoModel struct{}

var errNoModel = fmt.Errorf("%w on this server", ErrNoModel)

// Generate answers ErrNoModel.
func (NoModel) Generate(context.Context, *ulanv1.GenerateRequest, Stream) error { return errNoModel }

// Chat answers ErrNoModel.
func (NoModel) Chat(context.Context, *ulanv1.ChatRequest, Stream) error { return errNoModel }

// Tokenize answers ErrNoModel: the tokenizer comes with the model.
func (NoModel) Tokenize(context.Context, *ulanv1.TokenizeRequest) (*ulanv1.TokenizeResponse, error) {
	return nil, errNoModel
}

// Detokenize answers ErrNoModel.
func (NoModel) Detokenize(context.Context, *ulanv1.DetokenizeRequest) (*ulanv1.DetokenizeResponse, error) {
	return nil, errNoModel
}

// Model answers ErrNoModel.
func (NoModel) Model(context.Context, []uint64) (*ulanv1.Model, error) { return nil, errNoModel }

// logInterceptor writes one log record per call, with its code and duration;
// the request id comes from the context (see reqid.Handler).
type logInterceptor struct{ log *slog.Logger }

func (l *logInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		res, err := next(ctx, req)
		l.record(ctx, req.Spec().Procedure, req.Peer().Protocol, start, err)
		return res, err
	}
}

func (l *logInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (l *logInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		l.record(ctx, conn.Spec().Procedure, conn.Peer().Protocol, start, err)
		return err
	}
}

func (l *logInterceptor) record(ctx context.Context, procedure, protocol string, start time.Time, err error) {
	code := "ok"
	level := slog.LevelInfo
	if err != nil {
		c := connect.CodeOf(err)
		code = c.String()
		if c == connect.CodeInternal || c == connect.CodeUnknown {
			level = slog.LevelError
		}
	}
	l.log.Log(ctx, level, "call", "procedure", procedure, "protocol", protocol, "code", code, "duration", time.Since(start))
}
