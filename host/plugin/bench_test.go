package plugin

import (
	"context"
	"io"
	"log/slog"
	"testing"
)

// BenchmarkNoopCall measures a whole Call (deadline, checkout, call,
// return) of an export that does nothing, per tier; the difference is the
// price of interruption checks on the call path.
func BenchmarkNoopCall(b *testing.B) {
	for _, tier := range []struct {
		name string
		tier Tier
	}{{"sandboxed", Sandboxed}, {"trusted", Trusted}} {
		b.Run(tier.name, func(b *testing.B) {
			p, err := Load(context.Background(), mustRead(b, "ok"), Config{ID: "bench", Tier: tier.tier, PoolSize: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			ctx := context.Background()
			for b.Loop() {
				if _, err := p.Call(ctx, "noop"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckout measures taking and returning a warm instance.
func BenchmarkCheckout(b *testing.B) {
	p, err := Load(context.Background(), mustRead(b, "ok"), Config{ID: "bench", PoolSize: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx := context.Background()
	for b.Loop() {
		m, err := p.pool.checkout(ctx)
		if err != nil {
			b.Fatal(err)
		}
		p.pool.put(m)
	}
}

// BenchmarkBareCall is the floor the Call path is compared with: wazero's own
// call of the same export on one instance, with no deadline, pool or breaker.
func BenchmarkBareCall(b *testing.B) {
	for _, tier := range []struct {
		name string
		tier Tier
	}{{"sandboxed", Sandboxed}, {"trusted", Trusted}} {
		b.Run(tier.name, func(b *testing.B) {
			p, err := Load(context.Background(), mustRead(b, "ok"), Config{ID: "bench", Tier: tier.tier, PoolSize: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			ctx := context.Background()
			m, err := p.pool.checkout(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer p.pool.put(m)
			fn := m.function("noop")
			for b.Loop() {
				if _, err := fn.Call(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
