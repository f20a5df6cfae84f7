package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/optime"
)

// benchResult is what `ulan bench --json` prints.
type benchResult struct {
	Model                  string  `json:"model"`
	Threads                int     `json:"threads"`
	Kernels                string  `json:"kernels"`
	PromptTokens           int     `json:"prompt_tokens"`
	GenTokens              int     `json:"gen_tokens"`
	Batch                  int     `json:"batch"`
	Prefill                float64 `json:"prefill_tokens_per_second"`
	Decode                 float64 `json:"decode_tokens_per_second"`
	BatchDecode            float64 `json:"batch_tokens_per_second"`
	BandwidthBytesPerSec   float64 `json:"bandwidth_bytes_per_second"`
	ActiveBytesPerToken    uint64  `json:"active_bytes_per_token"`
	BandwidthBound         float64 `json:"bandwidth_bound_tokens_per_second"`
	PeakRSS                uint64  `json:"peak_rss_bytes"`
	LlamaCppPrefill        float64 `json:"llamacpp_prefill_tokens_per_second,omitempty"`
	LlamaCppDecode         float64 `json:"llamacpp_decode_tokens_per_second,omitempty"`
	PrefillRatioToLlamaCpp float64 `json:"prefill_ratio_to_llamacpp,omitempty"`
	DecodeRatioToLlamaCpp  float64 `json:"decode_ratio_to_llamacpp,omitempty"`
	// llama.cpp's llama-batched-bench on the same file: decode tokens/s of
	// one sequence and the aggregate of Batch sequences.
	LlamaCppBatch1Decode float64 `json:"llamacpp_batch1_decode_tokens_per_second,omitempty"`
	LlamaCppBatchDecode  float64 `json:"llamacpp_batch_tokens_per_second,omitempty"`
	// LongContext is decode speed after a cache filled to each --context
	// length.
	LongContext []contextResult `json:"long_context,omitempty"`
	// OpTimes (--op-times) is where a decode step's time went, per
	// operation, at batch 1 and at Batch.
	OpTimes []opTime `json:"op_times,omitempty"`
}

// opTime is one operation's share of the decode steps (optime): wall time
// and calls per step, at batch 1 and at the batch size.
type opTime struct {
	Op           string  `json:"op"`
	DecodeMicros float64 `json:"decode_us_per_step"`
	DecodeCalls  float64 `json:"decode_calls_per_step"`
	BatchMicros  float64 `json:"batch_us_per_step"`
	BatchCalls   float64 `json:"batch_calls_per_step"`
}

// opTimes merges the operations of the batch-1 and the batched decode runs,
// per step, the longest at the batch size first.
func opTimes(decode, batch []optime.Op, steps int) []opTime {
	byName := map[string]*opTime{}
	var out []*opTime
	at := func(name string) *opTime {
		if o := byName[name]; o != nil {
			return o
		}
		o := &opTime{Op: name}
		byName[name] = o
		out = append(out, o)
		return o
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(steps) }
	for _, op := range batch {
		o := at(op.Name)
		o.BatchMicros, o.BatchCalls = per(op.Time), float64(op.Calls)/float64(steps)
	}
	for _, op := range decode {
		o := at(op.Name)
		o.DecodeMicros, o.DecodeCalls = per(op.Time), float64(op.Calls)/float64(steps)
	}
	res := make([]opTime, len(out))
	for i, o := range out {
		res[i] = *o
	}
	return res
}

// contextResult is decode speed at one context length: the cache is filled
// synthetically to Context tokens (engine.Runner.Fill), then Gen tokens
// are decoded one per step.
type contextResult struct {
	Context  int     `json:"context"`
	Gen      int     `json:"gen_tokens"`
	Decode   float64 `json:"decode_tokens_per_second"`
	KVBytes  int64   `json:"kv_cache_bytes"`
	FillSecs float64 `json:"fill_seconds"`
}

func newBenchCmd() *cobra.Command {
	var (
		modelPath, against string
		threads, prompt    int
		gen, batch         int
		asJSON             bool
		cpuProfile         string
		timeOps            bool
		contexts           []int
		contextGen         int
	)
	cmd := &cobra.Command{
		Use:   "bench --model FILE",
		Short: "Measure prefill, decode and batched decode speed against the memory-bandwidth bound",
		Long: `Measure a model's prefill and decode speed on the CPU backend, the aggregate
decode speed of a batch, the peak resident memory, and the bound that memory
bandwidth puts on decode (weight bytes read per token over the read bandwidth
measured in the same run). With --against-llamacpp DIR it also runs a native
llama.cpp build's llama-bench (DIR/build/bin/llama-bench, or DIR/llama-bench)
on the same file with the same threads and prints the ratios, and, where the
build has it, llama-batched-bench for llama.cpp's own batch figure.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" {
				return fmt.Errorf("--model is required")
			}
			if prompt < 1 || gen < 1 || batch < 1 || threads < 1 || contextGen < 1 {
				return fmt.Errorf("--prompt, --gen, --batch, --threads and --context-gen must be at least 1")
			}
			for _, n := range contexts {
				if n < 1 {
					return fmt.Errorf("--context: %d is not a context length", n)
				}
			}
			lm, err := loadModel(modelPath, threads, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer lm.Close()
			if mc := lm.model.Info().Context; mc > 0 {
				for _, n := range contexts {
					if n+contextGen > mc {
						return fmt.Errorf("--context %d: %d + %d tokens are beyond the model's context of %d", n, n, contextGen, mc)
					}
				}
			}
			if cpuProfile != "" {
				pf, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer pf.Close()
				if err := pprof.StartCPUProfile(pf); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			ctx := cmd.Context()
			res, err := runBench(ctx, lm, threads, prompt, gen, batch, timeOps)
			if err != nil {
				return err
			}
			res.Model = modelPath
			for _, n := range contexts {
				c, err := runContext(ctx, lm, n, contextGen)
				if err != nil {
					return fmt.Errorf("--context %d: %w", n, err)
				}
				res.LongContext = append(res.LongContext, c)
			}
			if against != "" {
				pp, tg, err := llamaBench(ctx, against, modelPath, threads, prompt, gen)
				if err := ctx.Err(); err != nil {
					return err // the tool was stopped with us
				}
				if err != nil {
					return fmt.Errorf("--against-llamacpp: %w", err)
				}
				res.LlamaCppPrefill, res.LlamaCppDecode = pp, tg
				res.PrefillRatioToLlamaCpp, res.DecodeRatioToLlamaCpp = res.Prefill/pp, res.Decode/tg
				one, all, err := llamaBatchedBench(ctx, against, modelPath, threads, gen, batch)
				switch {
				case errors.Is(err, fs.ErrNotExist):
					// A build without llama-batched-bench: no batch figure.
				case err != nil:
					return fmt.Errorf("--against-llamacpp: %w", err)
				default:
					res.LlamaCppBatch1Decode, res.LlamaCppBatchDecode = one, all
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			return printBench(out, res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelPath, "model", "", "GGUF model file or Hugging Face model directory")
	f.IntVar(&threads, "threads", runtime.NumCPU(), "goroutines per operation")
	f.IntVar(&prompt, "prompt", 512, "prompt tokens to prefill")
	f.IntVar(&gen, "gen", 128, "tokens to decode")
	f.IntVar(&batch, "batch", 8, "sequences decoded together for the batch figure")
	f.IntSliceVar(&contexts, "context", nil, "also decode after a cache filled synthetically to each of these context lengths (e.g. 1024,8192,65536)")
	f.IntVar(&contextGen, "context-gen", 16, "tokens to decode at each --context length")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.StringVar(&against, "against-llamacpp", "", "native llama.cpp build directory to compare with")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a Go CPU profile of the measured runs to this file")
	f.BoolVar(&timeOps, "op-times", false, "also print each operation's wall time per decode step, at batch 1 and at --batch (the timing costs a little of the speeds measured)")
	return cmd
}

// runBench measures lm; it stops with ctx's error at the next step once ctx
// is done.
func runBench(ctx context.Context, lm *loadedModel, threads, prompt, gen, batch int, timeOps bool) (*benchResult, error) {
	m := lm.model
	info := m.Info()
	tokens := max(prompt+gen, 16+gen) + engine.DefaultBlockSize
	var backend engine.Backend = lm.backend
	var timer *optime.Backend
	if timeOps {
		timer = optime.New(lm.backend)
		backend = timer
	}
	r, err := engine.NewRunner(m, backend, engine.RunnerConfig{CacheBytes: engine.CacheBytes(m, max(batch, 1)+1, tokens, 0)})
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ids := func(n int) []int32 {
		v := make([]int32, n)
		for i := range v {
			v[i] = int32(rng.IntN(min(info.Vocab, 128000)))
		}
		return v
	}
	res := &benchResult{Threads: threads, Kernels: cpu.Kernels(), PromptTokens: prompt, GenTokens: gen, Batch: batch, ActiveBytesPerToken: info.ActiveBytes}

	// Prefill in one chunk of the whole prompt.
	seq := r.NewSequence()
	start := time.Now()
	if _, err := r.Step([]engine.Work{{Seq: seq, Tokens: ids(prompt)}}); err != nil {
		return nil, err
	}
	res.Prefill = float64(prompt) / time.Since(start).Seconds()
	r.Free(seq)

	// Decode from a short prompt, one token per step, greedy.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	seq = r.NewSequence()
	rows, err := r.Step([]engine.Work{{Seq: seq, Tokens: ids(16)}})
	if err != nil {
		return nil, err
	}
	next := int32(argmaxRow(rows[0]))
	var decodeOps []optime.Op
	if timer != nil {
		timer.Reset()
	}
	start = time.Now()
	for range gen {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rows, err := r.Step([]engine.Work{{Seq: seq, Tokens: []int32{next}}})
		if err != nil {
			return nil, err
		}
		next = int32(argmaxRow(rows[0]))
	}
	res.Decode = float64(gen) / time.Since(start).Seconds()
	if timer != nil {
		decodeOps = timer.Ops()
	}
	r.Free(seq)

	// Batched decode: batch sequences, one token each per step.
	seqs := make([]*engine.Sequence, batch)
	work := make([]engine.Work, batch)
	for i := range seqs {
		seqs[i] = r.NewSequence()
		work[i] = engine.Work{Seq: seqs[i], Tokens: ids(16)}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, err := r.Step(work); err != nil {
		return nil, err
	}
	if timer != nil {
		timer.Reset()
	}
	start = time.Now()
	for range gen {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for i := range work {
			work[i].Tokens = ids(1)
		}
		if _, err := r.Step(work); err != nil {
			return nil, err
		}
	}
	res.BatchDecode = float64(gen*batch) / time.Since(start).Seconds()
	if timer != nil {
		res.OpTimes = opTimes(decodeOps, timer.Ops(), gen)
	}
	for _, s := range seqs {
		r.Free(s)
	}

	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.PeakRSS = peakRSS() // before the bandwidth test's buffer
	res.BandwidthBytesPerSec = readBandwidth(threads)
	if info.ActiveBytes > 0 {
		res.BandwidthBound = res.BandwidthBytesPerSec / float64(info.ActiveBytes)
	}
	return res, nil
}

// runContext fills one sequence's cache to n tokens with random entries
// and decodes gen tokens after them, greedy, until ctx is done.
func runContext(ctx context.Context, lm *loadedModel, n, gen int) (contextResult, error) {
	res := contextResult{Context: n, Gen: gen}
	r, err := engine.NewRunner(lm.model, lm.backend, engine.RunnerConfig{CacheBytes: engine.CacheBytes(lm.model, 1, n+gen, 0)})
	if err != nil {
		return res, err
	}
	seq := r.NewSequence()
	start := time.Now()
	if err := r.Fill(seq, n, 1); err != nil {
		return res, err
	}
	res.FillSecs = time.Since(start).Seconds()
	res.KVBytes = r.CacheBytesAt(n)
	next := int32(1)
	start = time.Now()
	for range gen {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		rows, err := r.Step([]engine.Work{{Seq: seq, Tokens: []int32{next}}})
		if err != nil {
			return res, err
		}
		next = int32(argmaxRow(rows[0]))
	}
	res.Decode = float64(gen) / time.Since(start).Seconds()
	r.Free(seq)
	return res, nil
}

func argmaxRow(row []float32) int {
	best := 0
	for i, v := range row {
		if v > row[best] {
			best = i
		}
	}
	return best
}

// readBandwidth measures how fast threads goroutines read memory: each sums
// its share of a 512 MiB buffer (far beyond any cache), twice, and the faster pass counts.
func readBandwidth(threads int) float64 {
	const size = 512 << 20
	buf := make([]uint64, size/8)
	for i := range buf {
		buf[i] = uint64(i)
	}
	best := 0.0
	for range 2 {
		var wg sync.WaitGroup
		sums := make([]uint64, threads)
		chunk := len(buf) / threads
		start := time.Now()
		for t := range threads {
			wg.Add(1)
			go func(t int) {
				defer wg.Done()
				var s0, s1, s2, s3 uint64
				part := buf[t*chunk : (t+1)*chunk]
				for i := 0; i+3 < len(part); i += 4 {
					s0 += part[i]
					s1 += part[i+1]
					s2 += part[i+2]
					s3 += part[i+3]
				}
				sums[t] = s0 + s1 + s2 + s3
			}(t)
		}
		wg.Wait()
		best = max(best, float64(chunk*threads*8)/time.Since(start).Seconds())
	}
	runtime.KeepAlive(buf)
	return best
}

// peakRSS reads the process's high-water resident set from /proc (Linux);
// elsewhere it is 0.
func peakRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// llamaBench runs llama.cpp's llama-bench on the same model and threads and
// returns its prefill and decode tokens/s.
func llamaBench(ctx context.Context, dir, model string, threads, prompt, gen int) (pp, tg float64, err error) {
	bin := filepath.Join(dir, "build", "bin", "llama-bench")
	if _, err := os.Stat(bin); err != nil {
		bin = filepath.Join(dir, "llama-bench")
	}
	cmd := exec.CommandContext(ctx, bin, "-m", model, "-t", strconv.Itoa(threads), "-p", strconv.Itoa(prompt), "-n", strconv.Itoa(gen), "-r", "2", "-o", "json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w: %s", bin, err, lastLine(stderr.String()))
	}
	var runs []struct {
		NPrompt int     `json:"n_prompt"`
		NGen    int     `json:"n_gen"`
		AvgTS   float64 `json:"avg_ts"`
	}
	if err := json.Unmarshal(out, &runs); err != nil {
		return 0, 0, fmt.Errorf("llama-bench output: %w", err)
	}
	for _, r := range runs {
		switch {
		case r.NPrompt > 0 && r.NGen == 0:
			pp = r.AvgTS
		case r.NGen > 0 && r.NPrompt == 0:
			tg = r.AvgTS
		}
	}
	if pp == 0 || tg == 0 {
		return 0, 0, fmt.Errorf("llama-bench printed no prefill or decode figure")
	}
	return pp, tg, nil
}

// llamaBatchedBench runs llama.cpp's llama-batched-bench on the same model
// and threads: a 16-token prompt per sequence, then gen decode steps for 1
// and for batch sequences at once. It returns the decode tokens/s of one
// sequence and the aggregate of batch. A build without the tool gives an
// error that wraps fs.ErrNotExist.
func llamaBatchedBench(ctx context.Context, dir, model string, threads, gen, batch int) (one, all float64, err error) {
	bin := filepath.Join(dir, "build", "bin", "llama-batched-bench")
	if _, err := os.Stat(bin); err != nil {
		bin = filepath.Join(dir, "llama-batched-bench")
		if _, err := os.Stat(bin); err != nil {
			return 0, 0, err
		}
	}
	const prompt = 16
	cmd := exec.CommandContext(ctx, bin, "-m", model, "-t", strconv.Itoa(threads), "-c", strconv.Itoa(batch*(prompt+gen)+64),
		"-b", "512", "-ub", "512", "-npp", strconv.Itoa(prompt), "-ntg", strconv.Itoa(gen),
		"-npl", "1,"+strconv.Itoa(batch), "--output-format", "jsonl")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w: %s", bin, err, lastLine(string(out)))
	}
	for _, line := range strings.Split(string(out), "\n") {
		var run struct {
			PL      int     `json:"pl"`
			SpeedTG float64 `json:"speed_tg"`
		}
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &run) != nil {
			continue
		}
		switch run.PL {
		case 1:
			one = run.SpeedTG
		case batch:
			all = run.SpeedTG
		}
	}
	if one == 0 || all == 0 {
		return 0, 0, fmt.Errorf("%s printed no decode figure for 1 and %d sequences", bin, batch)
	}
	return one, all, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func printBench(out io.Writer, r *benchResult) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "model\t%s\n", r.Model)
	fmt.Fprintf(w, "threads\t%d\n", r.Threads)
	fmt.Fprintf(w, "kernels\t%s\n", r.Kernels)
	fmt.Fprintf(w, "prefill (%d tokens)\t%.1f tok/s\n", r.PromptTokens, r.Prefill)
	fmt.Fprintf(w, "decode (%d tokens)\t%.1f tok/s\n", r.GenTokens, r.Decode)
	fmt.Fprintf(w, "batch %d decode\t%.1f tok/s aggregate (%.2f× batch 1)\n", r.Batch, r.BatchDecode, r.BatchDecode/r.Decode)
	fmt.Fprintf(w, "memory bandwidth\t%.1f GB/s read\n", r.BandwidthBytesPerSec/1e9)
	fmt.Fprintf(w, "bandwidth bound\t%.1f tok/s (%.1f MB per token); decode is %.0f%% of it\n", r.BandwidthBound, float64(r.ActiveBytesPerToken)/1e6, 100*r.Decode/r.BandwidthBound)
	fmt.Fprintf(w, "peak RSS\t%s\n", humanBytes(r.PeakRSS))
	for _, c := range r.LongContext {
		fmt.Fprintf(w, "decode at %d context\t%.1f tok/s (%.2f× the cost at %d; %s of KV cache, %.0f bytes per token; filled in %.1f s)\n",
			c.Context, c.Decode, r.LongContext[0].Decode/c.Decode, r.LongContext[0].Context, humanBytes(uint64(c.KVBytes)), float64(c.KVBytes)/float64(c.Context), c.FillSecs)
	}
	if r.LlamaCppDecode > 0 {
		fmt.Fprintf(w, "llama.cpp prefill\t%.1f tok/s (ulan %.2f×)\n", r.LlamaCppPrefill, r.PrefillRatioToLlamaCpp)
		fmt.Fprintf(w, "llama.cpp decode\t%.1f tok/s (ulan %.2f×)\n", r.LlamaCppDecode, r.DecodeRatioToLlamaCpp)
	}
	if r.LlamaCppBatchDecode > 0 {
		fmt.Fprintf(w, "llama.cpp batch %d decode\t%.1f tok/s aggregate (%.2f× its batch 1, %.1f tok/s; ulan %.2f×)\n",
			r.Batch, r.LlamaCppBatchDecode, r.LlamaCppBatchDecode/r.LlamaCppBatch1Decode, r.LlamaCppBatch1Decode, r.BatchDecode/r.LlamaCppBatchDecode)
	}
	if len(r.OpTimes) > 0 {
		fmt.Fprintf(w, "\noperation\tbatch 1, µs/step\tcalls\tbatch %d, µs/step\tcalls\n", r.Batch)
		var one, all float64
		for _, o := range r.OpTimes {
			fmt.Fprintf(w, "%s\t%.1f\t%.0f\t%.1f\t%.0f\n", o.Op, o.DecodeMicros, o.DecodeCalls, o.BatchMicros, o.BatchCalls)
			one, all = one+o.DecodeMicros, all+o.BatchMicros
		}
		fmt.Fprintf(w, "all operations\t%.1f\t\t%.1f\t\n", one, all)
	}
	return w.Flush()
}
