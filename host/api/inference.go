package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"connectrpc.com/connect"

	"github.com/ulan-ai/ulan/host/auth"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// GenerationIDHeader carries a stream's generation id, so that a client can
// cancel before the first message arrives.
const GenerationIDHeader = "Ulan-Generation-Id"

type inferenceHandler struct {
	inf    Inference
	limits Limits
	gens   *registry
	log    *slog.Logger
}

func (h *inferenceHandler) Generate(ctx context.Context, req *connect.Request[ulanv1.GenerateRequest], ss *connect.ServerStream[ulanv1.GenerateResponse]) error {
	if err := validateGenerate(req.Msg, h.limits); err != nil {
		return h.fail(ctx, err)
	}
	out := &stream[ulanv1.GenerateResponse]{send: ss.Send, wrap: generateEvents, choices: choices(req.Msg.Sampling)}
	return h.run(ctx, ss.ResponseHeader().Set, out, func(ctx context.Context) error {
		return h.inf.Generate(ctx, req.Msg, out)
	})
}

func (h *inferenceHandler) Chat(ctx context.Context, req *connect.Request[ulanv1.ChatRequest], ss *connect.ServerStream[ulanv1.ChatResponse]) error {
	if err := validateChat(req.Msg, h.limits); err != nil {
		return h.fail(ctx, err)
	}
	out := &stream[ulanv1.ChatResponse]{send: ss.Send, wrap: chatEvents, choices: choices(req.Msg.Sampling)}
	return h.run(ctx, ss.ResponseHeader().Set, out, func(ctx context.Context) error {
		return h.inf.Chat(ctx, req.Msg, out)
	})
}

// run gives a generation its id, lets gen write to out, and makes sure every
// choice ends with a Finished message whatever gen does.
func (h *inferenceHandler) run(ctx context.Context, setHeader func(k, v string), out finisher, gen func(context.Context) error) error {
	id, gctx, release := h.gens.start(ctx, callerOf(ctx))
	defer release()
	setHeader(GenerationIDHeader, id)
	out.setID(id)
	err := gen(gctx)
	if !out.isStarted() {
		if err == nil {
			err = errors.New("pipeline returned without starting its stream")
		}
		if cause := context.Cause(gctx); gctx.Err() != nil && cause != nil {
			err = fmt.Errorf("%w: %w", cause, context.Canceled)
		}
		if deadlinePassed(ctx) {
			err = errDeadlinePassed
		}
		return h.fail(ctx, err)
	}
	reason, msg := ulanv1.FinishReason_FINISH_REASON_ERROR, ""
	switch {
	case deadlinePassed(ctx):
		reason, msg = ulanv1.FinishReason_FINISH_REASON_CANCELLED, errDeadlinePassed.Error()
	case gctx.Err() != nil:
		reason, msg = ulanv1.FinishReason_FINISH_REASON_CANCELLED, context.Cause(gctx).Error()
	case err != nil:
		ce, known := toConnect(err)
		if !known {
			h.log.ErrorContext(ctx, "generation failed", "generation_id", id, "err", err)
		}
		msg = ce.Message()
	default:
		msg = "pipeline ended without a finish reason"
	}
	// The client may be gone; a send error only means nobody listens.
	n, _ := out.finishRest(reason, msg)
	if n > 0 && err == nil && gctx.Err() == nil {
		h.log.ErrorContext(ctx, "generation ended without finishing", "generation_id", id, "choices", n)
	}
	// A stream its deadline cut short ends with DeadlineExceeded after its
	// Finished messages, as gRPC clients expect: a client that set the
	// deadline with a header alone (a browser's grpc-timeout) learns from the
	// status that the answer is incomplete. One that finished in time is OK.
	if n > 0 && deadlinePassed(ctx) {
		return connect.NewError(connect.CodeDeadlineExceeded, errDeadlinePassed)
	}
	return nil
}

// errDeadlinePassed is what a call its deadline ended is told.
var errDeadlinePassed = fmt.Errorf("the call's deadline (grpc-timeout or Connect-Timeout-Ms) passed: %w", context.DeadlineExceeded)

// deadlinePassed reports whether the call's own deadline ended it (not a
// Cancel request, a drain or a client that went away).
func deadlinePassed(ctx context.Context) bool {
	return errors.Is(ctx.Err(), context.DeadlineExceeded)
}

func (h *inferenceHandler) Tokenize(ctx context.Context, req *connect.Request[ulanv1.TokenizeRequest]) (*connect.Response[ulanv1.TokenizeResponse], error) {
	if err := validateTokenize(req.Msg, h.limits); err != nil {
		return nil, h.fail(ctx, err)
	}
	res, err := h.inf.Tokenize(ctx, req.Msg)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	return connect.NewResponse(res), nil
}

func (h *inferenceHandler) Detokenize(ctx context.Context, req *connect.Request[ulanv1.DetokenizeRequest]) (*connect.Response[ulanv1.DetokenizeResponse], error) {
	if err := validateDetokenize(req.Msg); err != nil {
		return nil, h.fail(ctx, err)
	}
	res, err := h.inf.Detokenize(ctx, req.Msg)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	return connect.NewResponse(res), nil
}

func (h *inferenceHandler) Cancel(ctx context.Context, req *connect.Request[ulanv1.CancelRequest]) (*connect.Response[ulanv1.CancelResponse], error) {
	if err := validateCancel(req.Msg); err != nil {
		return nil, h.fail(ctx, err)
	}
	if err := h.gens.cancel(ctx, req.Msg.GenerationId); err != nil {
		return nil, h.fail(ctx, err)
	}
	return connect.NewResponse(&ulanv1.CancelResponse{}), nil
}

// fail maps err for the client and logs what the client is not told.
func (h *inferenceHandler) fail(ctx context.Context, err error) error {
	return failWith(ctx, h.log, err)
}

func failWith(ctx context.Context, log *slog.Logger, err error) error {
	ce, known := toConnect(err)
	if !known {
		log.ErrorContext(ctx, "internal error", "err", err)
	}
	return ce
}

// callerOf names the authenticated caller: its key's id (auth.Owner), or ""
// when the server has no keys.
func callerOf(ctx context.Context) string { return auth.Owner(ctx) }

func choices(s *ulanv1.SamplingParams) int {
	if s == nil || s.N < 1 {
		return 1
	}
	return int(s.N)
}

// events wraps the shared stream messages in one RPC's response type.
type events[T any] struct {
	started  func(*ulanv1.Started) *T
	delta    func(*ulanv1.Delta) *T
	finished func(*ulanv1.Finished) *T
}

var generateEvents = events[ulanv1.GenerateResponse]{
	started: func(m *ulanv1.Started) *ulanv1.GenerateResponse {
		return &ulanv1.GenerateResponse{Event: &ulanv1.GenerateResponse_Started{Started: m}}
	},
	delta: func(m *ulanv1.Delta) *ulanv1.GenerateResponse {
		return &ulanv1.GenerateResponse{Event: &ulanv1.GenerateResponse_Delta{Delta: m}}
	},
	finished: func(m *ulanv1.Finished) *ulanv1.GenerateResponse {
		return &ulanv1.GenerateResponse{Event: &ulanv1.GenerateResponse_Finished{Finished: m}}
	},
}

var chatEvents = events[ulanv1.ChatResponse]{
	started: func(m *ulanv1.Started) *ulanv1.ChatResponse {
		return &ulanv1.ChatResponse{Event: &ulanv1.ChatResponse_Started{Started: m}}
	},
	delta: func(m *ulanv1.Delta) *ulanv1.ChatResponse {
		return &ulanv1.ChatResponse{Event: &ulanv1.ChatResponse_Delta{Delta: m}}
	},
	finished: func(m *ulanv1.Finished) *ulanv1.ChatResponse {
		return &ulanv1.ChatResponse{Event: &ulanv1.ChatResponse_Finished{Finished: m}}
	},
}

// finisher is the part of a stream that run needs, whatever its message type.
type finisher interface {
	setID(string)
	isStarted() bool
	finishRest(ulanv1.FinishReason, string) (int, error)
}

// stream implements Stream over one server stream and enforces its order:
// Start once and first, then deltas and one Finish per choice. It is safe for
// concurrent use, since a pipeline may finish choices from several goroutines.
type stream[T any] struct {
	send    func(*T) error
	wrap    events[T]
	choices int

	mu       sync.Mutex
	id       string
	started  bool
	finished map[uint32]bool
}

var errStreamOrder = errors.New("stream")

func (s *stream[T]) setID(id string) { s.id = id }

func (s *stream[T]) isStarted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

// Start sends the opening message with the generation id filled in.
func (s *stream[T]) Start(m *ulanv1.Started) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return fmt.Errorf("%w: Start called twice", errStreamOrder)
	}
	s.started = true
	s.finished = map[uint32]bool{}
	m.GenerationId = s.id
	return s.send(s.wrap.started(m))
}

// Delta sends new output of an open choice.
func (s *stream[T]) Delta(m *ulanv1.Delta) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.open(m.Index); err != nil {
		return err
	}
	return s.send(s.wrap.delta(m))
}

// Finish ends an open choice.
func (s *stream[T]) Finish(m *ulanv1.Finished) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.open(m.Index); err != nil {
		return err
	}
	if m.FinishReason == ulanv1.FinishReason_FINISH_REASON_UNSPECIFIED {
		return fmt.Errorf("%w: choice %d finished without a reason", errStreamOrder, m.Index)
	}
	s.finished[m.Index] = true
	return s.send(s.wrap.finished(m))
}

func (s *stream[T]) open(index uint32) error {
	switch {
	case !s.started:
		return fmt.Errorf("%w: output before Start", errStreamOrder)
	case int(index) >= s.choices:
		return fmt.Errorf("%w: choice %d of %d", errStreamOrder, index, s.choices)
	case s.finished[index]:
		return fmt.Errorf("%w: choice %d already finished", errStreamOrder, index)
	}
	return nil
}

// finishRest ends every choice the pipeline left open and says how many
// it ended.
func (s *stream[T]) finishRest(reason ulanv1.FinishReason, msg string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	n := 0
	for i := range s.choices {
		if s.finished[uint32(i)] {
			continue
		}
		s.finished[uint32(i)] = true
		n++
		errs = append(errs, s.send(s.wrap.finished(&ulanv1.Finished{Index: uint32(i), FinishReason: reason, Message: msg})))
	}
	return n, errors.Join(errs...)
}
