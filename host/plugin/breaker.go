package plugin

import (
	"errors"
	"sync"
	"time"
)

// The circuit breaker opens after breakerFailures consecutive failed calls
// and then refuses calls for breakerCooldown, after which one call is let
// through to probe: a success closes it, a failure opens it again.
const (
	breakerFailures = 5
	breakerCooldown = 5 * time.Second
)

// errUnhealthy is what calls get while the breaker is open.
var errUnhealthy = errors.New("the plugin keeps failing; calls are refused for a while")

type breaker struct {
	mu        sync.Mutex
	failures  int
	openUntil time.Time
	now       func() time.Time
}

func newBreaker() *breaker { return &breaker{now: time.Now} }

func (b *breaker) allow() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures >= breakerFailures && b.now().Before(b.openUntil) {
		return errUnhealthy
	}
	return nil
}

func (b *breaker) failure() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	if b.failures >= breakerFailures {
		b.openUntil = b.now().Add(breakerCooldown)
	}
}

func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures = 0
}

func (b *breaker) open() bool { return b.allow() != nil }
