package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/host/plugin/primitive"
)

// localFlags are generate's flags for running a model in this process.
type localFlags struct {
	model   string
	threads int
	greedy  bool
	top     int
}

func (l *localFlags) register(f *pflag.FlagSet) {
	f.StringVar(&l.model, "model", "", "run this GGUF model (or Hugging Face model directory) in this process instead of calling a server")
	f.IntVar(&l.threads, "threads", runtime.NumCPU(), "with --model: goroutines per engine operation")
	f.BoolVar(&l.greedy, "greedy", false, "greedy decoding, the same as --temperature 0 (with --model, the only mode until sampling lands)")
	f.IntVar(&l.top, "top", 10, "with --model --json: alternatives listed per step")
}

// localStep is one generated token with the most likely alternatives.
type localStep struct {
	Top []localCandidate `json:"top"`
}

type localCandidate struct {
	ID      int     `json:"id"`
	Logit   float32 `json:"logit"`
	Logprob float64 `json:"logprob"`
}

type localResult struct {
	PromptIDs    []int32     `json:"prompt_ids"`
	GeneratedIDs []int32     `json:"generated_ids"`
	FinishReason string      `json:"finish_reason"`
	Steps        []localStep `json:"steps"`
}

// run generates greedily from --prompt-ids with the model in this process,
// until cmd's context ends.
func (l *localFlags) run(cmd *cobra.Command, args []string, ids string, sf *samplingFlags) error {
	if len(args) > 0 {
		return errors.New("with --model, the prompt is token ids: give --prompt-ids instead of text (or call a server, which tokenizes)")
	}
	if ids == "" {
		return errors.New("--prompt-ids is required with --model")
	}
	for _, name := range []string{"top-p", "top-k", "min-p", "seed", "stop", "logprobs", "top-logprobs", "pipeline"} {
		if sf.f.Changed(name) {
			return fmt.Errorf("--%s: in-process generation is greedy only until sampling lands", name)
		}
	}
	if sf.f.Changed("temperature") {
		if t, _ := sf.f.GetFloat32("temperature"); t != 0 {
			return errors.New("--temperature: in-process generation is greedy only (temperature 0) until sampling lands")
		}
	}
	maxTokens := 16
	if sf.f.Changed("max-tokens") {
		v, _ := sf.f.GetInt32("max-tokens")
		if v < 1 {
			return errors.New("--max-tokens must be at least 1")
		}
		maxTokens = int(v)
	}
	if l.top < 0 || l.top > 100 {
		return errors.New("--top must be 0 to 100")
	}
	if l.threads < 1 {
		return fmt.Errorf("--threads %d: must be at least 1", l.threads)
	}
	prompt, err := parseIDs(ids)
	if err != nil {
		return err
	}
	lm, err := loadModel(l.model, l.threads, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer lm.Close()
	info := lm.model.Info()
	tokens := make([]int32, len(prompt))
	for i, id := range prompt {
		if int(id) >= info.Vocab {
			return fmt.Errorf("--prompt-ids: %d is outside the vocabulary of %d", id, info.Vocab)
		}
		tokens[i] = int32(id)
	}
	need := len(tokens) + maxTokens
	if info.Context > 0 && need > info.Context {
		return fmt.Errorf("--max-tokens %d: %d + %d tokens are beyond the model's context of %d", maxTokens, len(tokens), maxTokens, info.Context)
	}
	r, err := engine.NewRunner(lm.model, lm.backend, engine.RunnerConfig{CacheBytes: engine.CacheBytes(lm.model, 1, need, 0)})
	if err != nil {
		return err
	}
	eos := lm.eos()
	res := localResult{PromptIDs: tokens, FinishReason: "length"}
	out := cmd.OutOrStdout()
	seq := r.NewSequence()
	next := tokens
	ctx := cmd.Context()
	for range maxTokens {
		if err := ctx.Err(); err != nil {
			if !sfJSON(cmd) && len(res.GeneratedIDs) > 0 {
				fmt.Fprintln(out)
			}
			return err
		}
		rows, err := r.Step([]engine.Work{{Seq: seq, Tokens: next}})
		if err != nil {
			return err
		}
		step, best := topOf(rows[0], l.top)
		res.Steps = append(res.Steps, step)
		res.GeneratedIDs = append(res.GeneratedIDs, int32(best))
		if !sfJSON(cmd) {
			fmt.Fprint(out, strconv.Itoa(best)+" ")
		}
		if best == eos {
			res.FinishReason = "stop"
			break
		}
		next = []int32{int32(best)}
	}
	if sfJSON(cmd) {
		enc := json.NewEncoder(out)
		return enc.Encode(res)
	}
	_, err = fmt.Fprintln(out)
	return err
}

func sfJSON(cmd *cobra.Command) bool {
	v, _ := cmd.Flags().GetBool("json")
	return v
}

// topOf returns the k most likely tokens of a logits row with their log
// probabilities, and the argmax.
func topOf(row []float32, k int) (localStep, int) {
	mx := float32(math.Inf(-1))
	best := 0
	for i, v := range row {
		if v > mx {
			mx, best = v, i
		}
	}
	var sum float64
	for _, v := range row {
		sum += math.Exp(float64(v - mx))
	}
	lse := float64(mx) + math.Log(sum)
	k = min(k, len(row))
	idx := make([]int32, k)
	top := make([]float32, k)
	k, _ = primitive.TopK(row, k, idx, top) // largest first, ties to the lower id
	step := localStep{Top: make([]localCandidate, k)}
	for i := range k {
		step.Top[i] = localCandidate{ID: int(idx[i]), Logit: top[i], Logprob: float64(top[i]) - lse}
	}
	return step, best
}
