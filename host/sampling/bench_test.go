package sampling

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/plugin"
	"github.com/ulan-ai/ulan/plugins"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// BenchmarkStep is one sampling step of 8 rows over DeepSeek's vocabulary,
// with the built-in standard policy and with the standard sampler plugin,
// for a truncating request (top_k 40, top_p 0.9) and for one that keeps
// every token (temperature only). Compare with a decode step's time to
// get the sampling share (the closing note of issue 6 does). Each row's
// logits are copied in first (as much memory traffic as one pass).
func BenchmarkStep(b *testing.B) {
	const vocab, rows = 129280, 8
	ctx := context.Background()
	p, err := plugin.Load(ctx, plugins.Standard, plugin.Config{ID: "standard", Kind: plugin.KindSampler, PoolSize: 1,
		MemoryPages: 1024, CallTimeout: time.Minute, InitTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	gp := &generation.Plugin{ID: "standard", Policy: generation.FailClosed, Runtime: p}
	r := rand.New(rand.NewPCG(1, 1))
	base := make([][]float32, rows)
	for i := range base {
		base[i] = randomRow(r, vocab, 3)
	}
	for _, pc := range []struct {
		name   string
		params *ulanv1.SamplingParams
	}{
		{"topk40-topp0.9", &ulanv1.SamplingParams{TopK: i32(40), TopP: f32(0.9), Temperature: f32(0.8), Seed: u64(1)}},
		{"temperature-only", &ulanv1.SamplingParams{Temperature: f32(0.8), Seed: u64(1)}},
	} {
		for _, impl := range []struct {
			name string
			p    *generation.Plugin
		}{{"native", nil}, {"plugin", gp}} {
			b.Run(pc.name+"/"+impl.name, func(b *testing.B) {
				st := NewStage()
				defer st.Close(ctx)
				seqs := make([]*Seq, rows)
				for i := range seqs {
					s, err := NewSeq(Config{Params: pc.params, Vocab: vocab, Prompt: []int32{1}, Plugin: impl.p})
					if err != nil {
						b.Fatal(err)
					}
					seqs[i] = s
				}
				logits := make([][]float32, rows)
				for i := range logits {
					logits[i] = make([]float32, vocab)
				}
				b.ResetTimer()
				cpu0 := processCPU()
				for b.Loop() {
					for i := range logits {
						copy(logits[i], base[i])
					}
					for _, res := range st.Step(ctx, seqs, logits) {
						if res.Err != nil {
							b.Fatal(res.Err)
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/rows, "µs/row")
				// CPU time, all threads: on a busy machine, steadier than
				// the wall clock.
				b.ReportMetric(float64(processCPU()-cpu0)/1e3/float64(b.N)/rows, "cpu-µs/row")
			})
		}
	}
}
