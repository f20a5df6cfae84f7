package scheduler_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
	"github.com/ulan-ai/ulan/host/scheduler"
)

// benchModel is bigger than TinyV3 where a step's cost lies: 64 experts of
// 6 used (plus a shared one) in three MoE layers, Q8_0, so a step of many
// streams reads most experts while one stream reads a tenth of them, as a
// real MoE does; hidden 256 with the real vocabulary. About 110 MB.
func benchModel() testmodel.V3 {
	return testmodel.V3{
		Name: "ulan-bench-scheduler", Hidden: 256, Layers: 4, DenseLayers: 1, DenseFFN: 1024, ExpertFFN: 256,
		Heads: 8, QLoRA: 128, KVLoRA: 128, NopeDim: 32, RopeDim: 32, ValueDim: 32,
		Experts: 64, ExpertsUsed: 6, Shared: 1, Groups: 8, GroupsUsed: 4, Sigmoid: true, NormTopK: true,
		RoutedScale: 2.5, Context: 4096, YarnFactor: 1, Type: gguf.TypeQ8_0,
	}
}

// BenchmarkConcurrentStreams runs n streams at once, each a 16-token prompt
// and 64 greedy tokens, and reports the aggregate generated tokens per
// second (prefill included) and its ratio to one stream's in the same run.
func BenchmarkConcurrentStreams(b *testing.B) {
	const promptLen, gen = 16, 64
	r := newRunnerThreads(b, benchModel(), 16*(promptLen+gen+16), runtime.GOMAXPROCS(0))
	var one float64
	for _, n := range []int{1, 4, 8, 16} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			s := scheduler.New(r, greedy, scheduler.Config{MaxRunning: 16, StepTokens: 512})
			defer s.Close()
			tokens := 0
			for b.Loop() {
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						q, err := s.Submit(context.Background(), scheduler.Request{Prompt: prompt(uint64(i), promptLen), MaxTokens: gen})
						if err != nil {
							b.Error(err)
							return
						}
						for {
							ev, err := q.Recv(context.Background())
							if err != nil || ev.Finish != "" {
								return
							}
						}
					})
				}
				wg.Wait()
				tokens += n * gen
			}
			tps := float64(tokens) / b.Elapsed().Seconds()
			b.ReportMetric(tps, "tok/s")
			if n == 1 {
				one = tps
			} else if one > 0 {
				b.ReportMetric(tps/one, "x-one-stream")
			}
		})
	}
}
