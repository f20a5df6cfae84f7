package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ulan-ai/ulan/engine"
	_ "github.com/ulan-ai/ulan/engine/arch/deepseekv4"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/pipeline"
	"github.com/ulan-ai/ulan/host/plugin"
	"github.com/ulan-ai/ulan/host/tokenizer"
	"github.com/ulan-ai/ulan/plugins"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// sink is an api.Stream that counts tokens.
type sink struct {
	mu     sync.Mutex
	tokens int
}

func (s *sink) Start(*ulanv1.Started) error { return nil }
func (s *sink) Delta(d *ulanv1.Delta) error {
	s.mu.Lock()
	s.tokens += len(d.TokenIds)
	s.mu.Unlock()
	return nil
}
func (s *sink) Finish(*ulanv1.Finished) error { return nil }

// callClock is a plugin.Observer that adds up the time spent in plugin
// calls (sampler steps, hook deltas, …), waits for an instance included,
// and the sampler steps' own count and time.
type callClock struct {
	ns, stepNS, steps atomic.Int64
}

func (c *callClock) Call(export string, d time.Duration, _ plugin.ErrorKind) {
	c.ns.Add(int64(d))
	if export == "smp_step" {
		c.stepNS.Add(int64(d))
		c.steps.Add(1)
	}
}
func (c *callClock) PoolWait(time.Duration) {}

// reset zeroes the clock.
func (c *callClock) reset() { c.ns.Store(0); c.stepNS.Store(0); c.steps.Store(0) }

// BenchmarkStreams runs 1, 4, 8 and 16 concurrent Generate requests through
// the whole pipeline (tokenizer, scheduler, engine, sampling stage,
// detokenizer, stream) on the built-in demo model (V4), with the
// built-in sampler and with the standard sampler plugin, and reports the
// aggregate tokens per second and its ratio to one stream of the same run,
// and for the plugin pipeline the share of the time spent in plugin calls
// (plugin-%: all of them, the sequences' smp_open and smp_close included;
// step-plugin-%: smp_step's, the share of the decode steps) and the mean
// time of one smp_step call (all of a step's rows).
//
// ULAN_BENCH_GGUF names another model to run instead (one with a
// tokenizer, e.g. `ulan model testgen --preset bench`, whose weights, not
// its per-token work, bound a step as a real model's do); ULAN_BENCH_GEN
// sets the tokens each stream generates (default 48).
func BenchmarkStreams(b *testing.B) {
	gen := 48
	if v, err := strconv.Atoi(os.Getenv("ULAN_BENCH_GEN")); err == nil && v > 0 {
		gen = v
	}
	path := os.Getenv("ULAN_BENCH_GGUF")
	if path == "" {
		path = filepath.Join(b.TempDir(), "demo.gguf")
		if err := testmodel.DemoV4().WriteFile(path, 1); err != nil {
			b.Fatal(err)
		}
	}
	f, err := gguf.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		b.Fatal(err)
	}
	cfg := config.Default()
	cfg.Plugins = []config.Plugin{{ID: "standard", Module: "builtin:standard", PoolSize: 1}}
	cfg.Pipelines = []config.Pipeline{{Name: "default"}, {Name: "plugged", Sampler: "standard"}}
	clock := &callClock{}
	g, err := generation.Build(context.Background(), cfg, generation.Deps{Builtins: plugins.Builtins(), InitTimeout: time.Minute,
		Observer: func(string, uint64) plugin.Observer { return clock }})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close(context.Background())
	for _, pipe := range []string{"default", "plugged"} {
		var one float64
		for _, n := range []int{1, 4, 8, 16} {
			b.Run(fmt.Sprintf("%s/streams=%d", pipe, n), func(b *testing.B) {
				bk := cpu.New(cpu.WithThreads(runtime.GOMAXPROCS(0)))
				m, err := engine.LoadGGUF(f, bk)
				if err != nil {
					b.Fatal(err)
				}
				r, err := engine.NewRunner(m, bk, engine.RunnerConfig{CacheBytes: 256 << 20})
				if err != nil {
					b.Fatal(err)
				}
				p := pipeline.New(pipeline.Model{Name: "demo", Runner: r, Tokenizer: tok, Generation: g})
				defer p.Close()
				total := 0
				clock.reset()
				b.ResetTimer()
				for b.Loop() {
					var wg sync.WaitGroup
					out := &sink{}
					for i := range n {
						wg.Go(func() {
							req := &ulanv1.GenerateRequest{Prompt: fmt.Sprintf("Stream %d of the benchmark:", i),
								Plugins:  &ulanv1.PluginSelection{Pipeline: pipe},
								Sampling: &ulanv1.SamplingParams{MaxTokens: ptr(int32(gen)), IgnoreEos: true, TopK: ptr(int32(40)), TopP: ptr(float32(0.95)), Seed: ptr(uint64(i))}}
							if err := p.Generate(context.Background(), req, out); err != nil {
								b.Error(err)
							}
						})
					}
					wg.Wait()
					total += out.tokens
				}
				rate := float64(total) / b.Elapsed().Seconds()
				b.ReportMetric(rate, "tok/s")
				if pipe == "plugged" {
					// The steps run one after another and a step's sampler
					// call is on its path, so these are the plugin's shares
					// of the wall time: all its calls, and its steps'.
					b.ReportMetric(100*float64(clock.ns.Load())/float64(b.Elapsed()), "plugin-%")
					b.ReportMetric(100*float64(clock.stepNS.Load())/float64(b.Elapsed()), "step-plugin-%")
					if steps := clock.steps.Load(); steps > 0 {
						// What one smp_step call costs, all of its rows.
						b.ReportMetric(float64(clock.stepNS.Load())/float64(steps)/1e3, "µs/smp_step")
					}
				}
				if n == 1 {
					one = rate
				} else if one > 0 {
					b.ReportMetric(rate/one, "x-one-stream")
				}
			})
		}
	}
}

func ptr[T any](v T) *T { return &v }
