package metrics

import (
	"context"
	"errors"

	"connectrpc.com/connect"
)

// Interceptor counts every RPC its handlers serve, unary and streaming, in
// ulan_requests_total by procedure and final code: "ok" when the handler
// returns no error, else the Connect code the client is sent. A stream is
// counted when its handler returns. Clients it wraps are left alone. Give it
// to the handlers with connect.WithInterceptors.
func (m *Metrics) Interceptor() connect.Interceptor { return interceptor{m} }

type interceptor struct{ m *Metrics }

func (i interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	if i.m == nil {
		return next
	}
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		if !req.Spec().IsClient {
			i.m.Request(req.Spec().Procedure, code(err))
		}
		return res, err
	}
}

func (i interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	if i.m == nil {
		return next
	}
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		err := next(ctx, conn)
		i.m.Request(conn.Spec().Procedure, code(err))
		return err
	}
}

// code is the label of a handler's result: "ok", or the code connect-go
// sends for err, which turns a bare context error into canceled or
// deadline_exceeded and any other error that is no *connect.Error into
// unknown.
func code(err error) string {
	if err == nil {
		return "ok"
	}
	if _, ok := errors.AsType[*connect.Error](err); !ok {
		switch {
		case errors.Is(err, context.Canceled):
			return connect.CodeCanceled.String()
		case errors.Is(err, context.DeadlineExceeded):
			return connect.CodeDeadlineExceeded.String()
		}
	}
	return connect.CodeOf(err).String()
}
