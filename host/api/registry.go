package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ulan-ai/ulan/host/auth"
)

// generationIDPrefix marks generation ids so that a mixed-up id (a request id,
// say) is told apart from an expired one.
const generationIDPrefix = "gen_"

// idAlphabet is lower-case base32 without padding: 26 characters for 128 bits.
const idAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

// errCancelRequested is the cause a generation's context carries after a
// Cancel call, so that its Finished message can say who ended it.
var errCancelRequested = errors.New("cancelled by a Cancel request")

// newGenerationID returns an unguessable id: 128 random bits.
func newGenerationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	var sb strings.Builder
	sb.WriteString(generationIDPrefix)
	// 5 bits at a time, most significant first.
	var acc uint32
	bits := 0
	for _, x := range b {
		acc = acc<<8 | uint32(x)
		bits += 8
		for bits >= 5 {
			bits -= 5
			sb.WriteByte(idAlphabet[(acc>>bits)&31])
		}
	}
	if bits > 0 {
		sb.WriteByte(idAlphabet[(acc<<(5-bits))&31])
	}
	return sb.String()
}

func validGenerationID(id string) bool {
	rest, ok := strings.CutPrefix(id, generationIDPrefix)
	if !ok || len(rest) != 26 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if strings.IndexByte(idAlphabet, rest[i]) < 0 {
			return false
		}
	}
	return true
}

// registry tracks live generations so that Cancel can reach them.
type registry struct {
	mu   sync.Mutex
	live map[string]*liveGeneration
}

type liveGeneration struct {
	cancel context.CancelCauseFunc
	// owner is the key that started the generation (auth.Owner; "" without
	// keys). Only that key, or an admin key, may cancel it.
	owner string
}

func newRegistry() *registry { return &registry{live: map[string]*liveGeneration{}} }

// start registers a new generation and returns its id, a context that
// Cancel ends, and a release func to call when the generation is over.
func (r *registry) start(ctx context.Context, owner string) (string, context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	id := newGenerationID()
	r.mu.Lock()
	r.live[id] = &liveGeneration{cancel: cancel, owner: owner}
	r.mu.Unlock()
	return id, ctx, func() {
		r.mu.Lock()
		delete(r.live, id)
		r.mu.Unlock()
		cancel(context.Canceled)
	}
}

// cancel ends the live generation id on behalf of caller.
func (r *registry) cancel(ctx context.Context, id string) error {
	r.mu.Lock()
	g, ok := r.live[id]
	r.mu.Unlock()
	// A generation owned by someone else is reported as not found, so that
	// ids cannot be probed.
	if !ok || !auth.MayCancel(ctx, g.owner) {
		return fmt.Errorf("generation %s: %w (finished, or never started)", id, ErrNotFound)
	}
	g.cancel(errCancelRequested)
	return nil
}

// count returns the number of live generations.
func (r *registry) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.live)
}
