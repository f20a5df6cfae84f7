package api

import (
	"context"
	"errors"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
)

// Sentinel errors that Inference and Plugins implementations return (wrapped
// with context as they like); toConnect turns them into Connect codes.
var (
	// ErrNoModel: no model is loaded, so there is nothing to run.
	ErrNoModel = errors.New("no model is loaded")
	// ErrNotFound: a named thing (model, pipeline, generation) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNotImplemented: the request asks for something ulan does not do yet.
	ErrNotImplemented = errors.New("not implemented")
	// ErrOverloaded: the server cannot take the request now (queue full, no
	// KV-cache space); the client may retry later.
	ErrOverloaded = errors.New("overloaded")
	// ErrPermissionDenied: the caller may not do this.
	ErrPermissionDenied = errors.New("permission denied")
)

// FieldError says what is wrong with one request field.
type FieldError struct {
	// Field is the field's path in the request, as in proto: sampling.top_p,
	// messages[2].role.
	Field string
	// Reason says what is wrong and what would be right.
	Reason string
}

// Error returns "field: reason".
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// FieldErrors are all the problems found in one request.
type FieldErrors []*FieldError

// Error joins the problems with "; ".
func (es FieldErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// toConnect maps a domain error to the Connect error the client sees. It is
// the only place that chooses codes (see STYLE.md, "Connect codes at the
// edge only"). The second result is false when the error is unexpected: the
// client then gets a generic message and the caller should log err.
func toConnect(err error) (*connect.Error, bool) {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce, true
	}
	var fes FieldErrors
	var fe *FieldError
	switch {
	case errors.As(err, &fes):
		return invalidArgument(err, fes...), true
	case errors.As(err, &fe):
		return invalidArgument(err, fe), true
	case errors.Is(err, ErrNoModel):
		return connect.NewError(connect.CodeUnavailable, err), true
	case errors.Is(err, ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err), true
	case errors.Is(err, ErrNotImplemented):
		return connect.NewError(connect.CodeUnimplemented, err), true
	case errors.Is(err, ErrOverloaded):
		return connect.NewError(connect.CodeResourceExhausted, err), true
	case errors.Is(err, ErrPermissionDenied):
		return connect.NewError(connect.CodePermissionDenied, err), true
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err), true
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err), true
	}
	return connect.NewError(connect.CodeInternal, errors.New("internal error")), false
}

// invalidArgument attaches the standard google.rpc.BadRequest detail, so
// gRPC clients can read the offending fields programmatically.
func invalidArgument(err error, fes ...*FieldError) *connect.Error {
	ce := connect.NewError(connect.CodeInvalidArgument, err)
	br := &errdetails.BadRequest{}
	for _, fe := range fes {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field:       fe.Field,
			Description: fe.Reason,
		})
	}
	if d, derr := connect.NewErrorDetail(br); derr == nil {
		ce.AddDetail(d)
	}
	return ce
}
