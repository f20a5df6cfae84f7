package hook

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// upper is a tiny hook: it upper-cases content and stops at "STOP".
type upper struct{}

func (upper) Open([]byte) (Session, error) { return &upperSession{}, nil }

type upperSession struct{}

func (*upperSession) Delta(text string, _ []int32, ch Channel) (Result, error) {
	switch {
	case strings.Contains(text, "stop"):
		return Result{Action: Stop, Emit: "", FinishReason: 4}, nil
	case text == "panic":
		panic("boom")
	case ch == Content:
		return Result{Action: Replace, Emit: strings.ToUpper(text)}, nil
	}
	return Result{Action: Pass}, nil
}
func (*upperSession) End(int32) (Result, error) { return Result{}, errors.New("no end today") }
func (*upperSession) Close()                    {}

// TestSessionNatively drives the SDK's plumbing natively: registration,
// handles, records, and a panic turned into an error.
func TestSessionNatively(t *testing.T) {
	Register(upper{})
	h, err := open([]byte(`{}`))
	require.NoError(t, err)
	s := lookup(h)
	rec, err := s.answer(s.s.Delta("hi", nil, Content))
	require.NoError(t, err)
	require.Equal(t, encode(Result{Action: Replace, Emit: "HI"}, nil), rec)
	require.Equal(t, []byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 'H', 'I'}, rec)
	rec, err = s.answer(s.s.Delta("x", nil, Reasoning))
	require.NoError(t, err)
	require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, rec)
	_, err = s.answer(s.s.End(1))
	require.ErrorContains(t, err, "no end today")
	closeSession(h)
	require.Nil(t, lookup(h))
}
