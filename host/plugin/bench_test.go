package plugin

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"math"
	"testing"
)

// benchTiers are the tiers each plugin benchmark runs under.
var benchTiers = []struct {
	name string
	tier Tier
}{{"sandboxed", Sandboxed}, {"trusted", Trusted}}

// discard is the benchmarks' logger.
var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// BenchmarkNoopCall measures a whole Call (deadline, checkout, call,
// return) of an export that does nothing, per tier; the difference is the
// price of interruption checks on the call path.
func BenchmarkNoopCall(b *testing.B) {
	for _, tier := range benchTiers {
		b.Run(tier.name, func(b *testing.B) {
			p, err := Load(context.Background(), mustRead(b, "ok"), Config{ID: "bench", Tier: tier.tier, PoolSize: 1, Logger: discard})
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

// BenchmarkKindCall measures one call of each kind's hot export per tier,
// through the kind's host API, on WAT plugins that do almost nothing: a
// hook's delta that passes (badhook's answer to "x"), a sampler step of one row with three
// candidates that selects the first (badsmp's well-behaved case), and a
// tokenizer's encode of one byte (badtok). It is the fixed price a
// pipeline pays per hook per delta, per sampler step and per encode.
func BenchmarkKindCall(b *testing.B) {
	ctx := context.Background()
	for _, tier := range benchTiers {
		load := func(b *testing.B, name string, kind Kind) *Plugin {
			module := withManifest(b, name, `{"abi":1,"name":"`+name+`","version":"0.1.0","kind":"`+string(kind)+`"}`)
			p, err := Load(ctx, module, Config{ID: name, Kind: kind, Tier: tier.tier, PoolSize: 1, MemoryPages: 16,
				Logger: discard})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = p.Close(ctx) })
			return p
		}
		b.Run("hook/"+tier.name, func(b *testing.B) {
			s, err := load(b, "badhook", KindHook).OpenHook(ctx, []byte(`{}`))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(ctx)
			for b.Loop() {
				if _, err := s.Delta(ctx, "x", nil, ChannelContent); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("sampler/"+tier.name, func(b *testing.B) {
			batch, err := load(b, "badsmp", KindSampler).OpenSamplerBatch(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer batch.Close(ctx)
			h, err := batch.Open(ctx, []byte(`{}`))
			if err != nil {
				b.Fatal(err)
			}
			rows := []SamplerRow{{Handle: h, IDs: []int32{11, 12, 13}, Logits: []float32{1, 2, 3}}}
			for b.Loop() {
				if _, err := batch.Step(ctx, rows); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("tokenizer/"+tier.name, func(b *testing.B) {
			p := load(b, "badtok", KindTokenizer)
			for b.Loop() {
				if _, err := p.Encode(ctx, "x", 0, 256); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckout measures taking and returning a warm instance.
func BenchmarkCheckout(b *testing.B) {
	p, err := Load(context.Background(), mustRead(b, "ok"), Config{ID: "bench", PoolSize: 2, Logger: discard})
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
	for _, tier := range benchTiers {
		b.Run(tier.name, func(b *testing.B) {
			p, err := Load(context.Background(), mustRead(b, "ok"), Config{ID: "bench", Tier: tier.tier, PoolSize: 1, Logger: discard})
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

// BenchmarkTopKThroughPlugin is the 129,280-entry logits path: a plugin asks
// the host for the top 64 of a full vocabulary row in its memory. Compare
// with primitive.BenchmarkTopK64Of129280, the same work natively.
func BenchmarkTopKThroughPlugin(b *testing.B) {
	for _, tier := range benchTiers {
		b.Run(tier.name, func(b *testing.B) {
			p, err := Load(context.Background(), mustRead(b, "prims"), Config{ID: "bench", Tier: tier.tier, PoolSize: 1, Logger: discard})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			inst, err := p.pool.checkout(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			defer p.pool.put(inst)
			const n = 129280
			buf := make([]byte, 4*n)
			for i := range n {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(float32(math.Sin(float64(i)))))
			}
			inst.mod.Memory().Write(0, buf)
			fn := inst.function("topk")
			b.SetBytes(4 * n)
			for b.Loop() {
				res, err := fn.Call(context.Background(), n, 64)
				if err != nil || res[0] != 64 {
					b.Fatal(err, res)
				}
			}
		})
	}
}

// BenchmarkSamplerStep is one engine step of a Go sampler plugin over 32
// rows of 64 candidates (processor mode: divide every logit), per tier;
// BenchmarkSamplerStepNative is the same arithmetic in plain Go.
func BenchmarkSamplerStep(b *testing.B) {
	wasm := buildGo(b, "gosampler", `{"abi":1,"name":"gosampler","version":"0.1.0","kind":"sampler","needs":{"memory_pages":256}}`)
	for _, tier := range benchTiers {
		b.Run(tier.name, func(b *testing.B) {
			p, err := Load(context.Background(), wasm, Config{ID: "bench", Kind: KindSampler, Tier: tier.tier, PoolSize: 1, MemoryPages: 256, Logger: discard})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			ctx := context.Background()
			batch, err := p.OpenSamplerBatch(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer batch.Close(ctx)
			rows := make([]SamplerRow, 32)
			for i := range rows {
				h, err := batch.Open(ctx, []byte(`{"divide": 2}`))
				if err != nil {
					b.Fatal(err)
				}
				rows[i] = SamplerRow{Handle: h, IDs: make([]int32, 64), Logits: make([]float32, 64)}
				for j := range 64 {
					rows[i].IDs[j], rows[i].Logits[j] = int32(j), float32(j)
				}
			}
			for b.Loop() {
				if _, err := batch.Step(ctx, rows); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSamplerStepNative(b *testing.B) {
	logits := make([][]float32, 32)
	out := make([][]float32, 32)
	for i := range logits {
		logits[i], out[i] = make([]float32, 64), make([]float32, 64)
	}
	for b.Loop() {
		for i := range logits {
			for j := range logits[i] {
				out[i][j] = logits[i][j] / 2
			}
		}
	}
}
