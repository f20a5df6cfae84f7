package plugin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero/sys"
)

func wasm(t testing.TB, name string) []byte {
	t.Helper()
	return mustRead(t, name)
}

func mustRead(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".wasm"))
	require.NoError(tb, err)
	return b
}

// syncBuffer is a log sink safe for the pool's background goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func loadWithLog(wasm []byte, cfg Config, w io.Writer) (*Plugin, error) {
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Cache == nil {
		cfg.Cache = toolCache // each Go-built test plugin compiles once per test binary
	}
	return Load(context.Background(), wasm, cfg)
}

func load(t *testing.T, name string, cfg Config) (*Plugin, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg.ID = name
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := Load(context.Background(), wasm(t, name), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p, logs
}

func TestWellBehavedPlugin(t *testing.T) {
	t.Parallel()
	p, logs := load(t, "ok", Config{PoolSize: 3})
	res, err := p.Call(context.Background(), "initialised")
	require.NoError(t, err)
	require.Equal(t, uint64(42), res[0], "_initialize ran")
	res, err = p.Call(context.Background(), "add", 2, 40)
	require.NoError(t, err)
	require.Equal(t, uint64(42), res[0])
	_, err = p.Call(context.Background(), "hello")
	require.NoError(t, err)
	require.Contains(t, logs.String(), "hello from ok")
	require.Contains(t, logs.String(), "plugin=ok")
	require.Equal(t, Stats{Idle: 3, Size: 3}, p.Stats())

	_, err = p.Call(context.Background(), "nope")
	var ce *CallError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, KindMissing, ce.Kind)
	require.Equal(t, 3, p.Stats().Idle, "a missing export does not cost the instance")
}

func TestModuleShapeIsChecked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, want string }{
		{"command", "command module"},
		{"noabi", "no ulan_abi_1 export"},
		{"clock", "ulan_v1.now_ns, which needs a grant"},
	} {
		_, err := Load(context.Background(), wasm(t, tc.name), Config{ID: tc.name})
		require.ErrorContains(t, err, tc.want, tc.name)
		require.ErrorContains(t, err, "plugin "+tc.name)
	}
	_, err := Load(context.Background(), []byte("not wasm"), Config{ID: "junk"})
	require.ErrorContains(t, err, "not a valid WebAssembly module")
	// 15 bytes that declare 2³² tables: wazero would allocate ~46 GB for
	// them before reading one; Load refuses them first, in either tier.
	tables := []byte{0, 'a', 's', 'm', 1, 0, 0, 0, 4, 5, 0xff, 0xff, 0xff, 0xff, 0x0f}
	for _, tier := range []Tier{Sandboxed, Trusted} {
		_, err = Load(context.Background(), tables, Config{ID: "tables", Tier: tier})
		require.ErrorContains(t, err, "not a valid WebAssembly module: section 4: 4294967295 entries declared")
	}
	_, err = Describe(context.Background(), tables)
	require.ErrorContains(t, err, "not a valid WebAssembly module")
}

func TestGrantedClock(t *testing.T) {
	t.Parallel()
	p, _ := load(t, "clock", Config{Grants: Grants{Clock: true}})
	a, err := p.Call(context.Background(), "now")
	require.NoError(t, err)
	time.Sleep(time.Millisecond)
	b, err := p.Call(context.Background(), "now")
	require.NoError(t, err)
	require.Greater(t, b[0], a[0])
}

func TestTrustedTierRunsCalls(t *testing.T) {
	t.Parallel()
	p, _ := load(t, "hostile", Config{Tier: Trusted, PoolSize: 1})
	res, err := p.Call(context.Background(), "add", 20, 22)
	require.NoError(t, err)
	require.Equal(t, uint64(42), res[0])
	_, err = p.Call(context.Background(), "boom")
	var ce *CallError
	require.ErrorAs(t, err, &ce, "traps are caught in both tiers")
	require.Equal(t, KindTrap, ce.Kind)
}

func TestOutputBudget(t *testing.T) {
	t.Parallel()
	p, logs := load(t, "hostile", Config{LogBytes: 300})
	_, err := p.Call(context.Background(), "spam", 100)
	require.NoError(t, err)
	out := logs.String()
	require.Equal(t, 5, strings.Count(out, `msg="plugin output" `), "300 bytes of 60-byte lines")
	require.Equal(t, 1, strings.Count(out, "output budget spent"))
}

func TestCheckoutWaitsWithDeadline(t *testing.T) {
	t.Parallel()
	p, _ := load(t, "hostile", Config{PoolSize: 1, CallTimeout: 300 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := p.Call(context.Background(), "spin") // holds the only instance until its deadline
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := p.Call(ctx, "add", 1, 1)
	var ce *CallError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, KindTimeout, ce.Kind)
	require.Contains(t, err.Error(), "no instance free")
	require.Error(t, <-done)
}

// TestClosedInstanceIsNotPooled: an instance whose module was closed behind
// its holder's back (as a deadline passing just when a call returns does) is
// replaced when put back, and the next call runs on a live one.
func TestClosedInstanceIsNotPooled(t *testing.T) {
	t.Parallel()
	p, _ := load(t, "hostile", Config{PoolSize: 1})
	m, err := p.pool.checkout(context.Background())
	require.NoError(t, err)
	require.NoError(t, m.mod.CloseWithExitCode(context.Background(), sys.ExitCodeDeadlineExceeded))
	p.pool.put(m)
	res, err := p.Call(context.Background(), "add", 2, 3)
	require.NoError(t, err)
	require.Equal(t, []uint64{5}, res)
	require.Equal(t, 1, p.Stats().Replacements)
}

func TestBreakerOpensAfterRepeatedFailures(t *testing.T) {
	t.Parallel()
	p, _ := load(t, "hostile", Config{PoolSize: 1})
	for range breakerFailures {
		_, err := p.Call(context.Background(), "boom")
		require.Error(t, err)
	}
	_, err := p.Call(context.Background(), "add", 1, 1)
	var ce *CallError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, KindUnhealthy, ce.Kind)
	require.True(t, p.Stats().Unhealthy)

	b := newBreaker()
	now := time.Now()
	b.now = func() time.Time { return now }
	for range breakerFailures {
		b.failure()
	}
	require.Error(t, b.allow())
	now = now.Add(breakerCooldown + time.Millisecond)
	require.NoError(t, b.allow(), "after the cool-down one call may probe")
	b.success()
	require.False(t, b.open())
}

// TestConcurrentCallsSurviveAHostileNeighbour: while one caller keeps
// crashing instances, others on the same plugin and on another plugin get
// their answers.
func TestConcurrentCallsSurviveAHostileNeighbour(t *testing.T) {
	t.Parallel()
	bad, _ := load(t, "hostile", Config{PoolSize: 2, CallTimeout: 100 * time.Millisecond})
	good, _ := load(t, "ok", Config{PoolSize: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				res, err := good.Call(context.Background(), "add", 1, 2)
				if err != nil || res[0] != 3 {
					errs <- errors.Join(err, errors.New("good plugin failed"))
				}
			}
		}()
	}
	for range 3 {
		_, _ = bad.Call(context.Background(), "boom")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestOpenCacheRefusesSharedDirectories(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "cache")
	c, err := OpenCache(dir)
	require.NoError(t, err)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	p, err := Load(context.Background(), wasm(t, "ok"), Config{ID: "cached", Cache: c})
	require.NoError(t, err)
	require.NoError(t, p.Close(context.Background()))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.NotEmpty(t, entries, "compiled code went to the cache")

	shared := filepath.Join(t.TempDir(), "shared")
	require.NoError(t, os.Mkdir(shared, 0o777))
	require.NoError(t, os.Chmod(shared, 0o777))
	_, err = OpenCache(shared)
	require.ErrorContains(t, err, "lets others write native code")
}
