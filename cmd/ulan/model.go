package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
)

func newModelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Inspect, convert, quantize and generate model files",
	}
	cmd.AddCommand(newModelInspectCmd(), newModelTestgenCmd(), newModelConvertCmd(), newModelQuantizeCmd())
	return cmd
}

func newModelInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect FILE|DIR",
		Short: "Print a GGUF model's or Hugging Face directory's architecture, hyperparameters, tensors, parameter counts and tokenizer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if isModelDir(args[0]) {
				return inspectDir(cmd.OutOrStdout(), args[0])
			}
			f, err := gguf.Open(args[0])
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			defer f.Close()
			m, err := engine.LoadGGUF(f, cpu.New(cpu.WithThreads(1)))
			if err != nil {
				return err
			}
			return inspect(cmd.OutOrStdout(), f, m)
		},
	}
}

// printKVCache prints the f32 KV cache one sequence takes at 1k, 64k and
// 1M tokens (its fixed state and whole blocks included), as GetModel
// reports it.
func printKVCache(w io.Writer, m engine.Model) {
	fmt.Fprintf(w, "kv cache")
	for i, n := range []int{1 << 10, 1 << 16, 1 << 20} {
		b := engine.CacheBytes(m, 1, n, 0)
		sep := ","
		if i == 0 {
			sep = "\t"
		}
		fmt.Fprintf(w, "%s %s at %s tokens (%.0f bytes per token)", sep, humanBytes(uint64(b)), human(uint64(n)), float64(b)/float64(n))
	}
	fmt.Fprintln(w)
}

func inspect(out io.Writer, f *gguf.File, m engine.Model) error {
	info := m.Info()
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "architecture\t%s\n", info.Architecture)
	fmt.Fprintf(w, "name\t%s\n", info.Name)
	fmt.Fprintf(w, "parameters\t%s total, %s active per token\n", human(info.TotalParams), human(info.ActiveParams))
	printKVCache(w, m)
	fmt.Fprintln(w, "\nhyperparameters")
	for _, kv := range info.Params {
		fmt.Fprintf(w, "  %s\t%s\n", kv[0], kv[1])
	}
	counts := map[string]int{}
	bytes := map[string]uint64{}
	for _, t := range f.Tensors() {
		counts[t.Type.String()]++
		bytes[t.Type.String()] += t.Size
	}
	types := make([]string, 0, len(counts))
	for t := range counts {
		types = append(types, t)
	}
	sort.Strings(types)
	fmt.Fprintf(w, "\ntensors\t%d\n", len(f.Tensors()))
	for _, t := range types {
		fmt.Fprintf(w, "  %s\t%d tensors, %s\n", t, counts[t], humanBytes(bytes[t]))
	}
	fmt.Fprintln(w, "\ntokenizer")
	model, _ := f.String("tokenizer.ggml.model")
	pre, _ := f.String("tokenizer.ggml.pre")
	tokens, _ := f.Strings("tokenizer.ggml.tokens")
	fmt.Fprintf(w, "  model\t%s (pre-tokenizer %s)\n", orNone(model), orNone(pre))
	fmt.Fprintf(w, "  tokens\t%d\n", len(tokens))
	if types, err := f.Int32s("tokenizer.ggml.token_type"); err == nil {
		names := map[int32]string{1: "normal", 2: "unknown", 3: "control", 4: "user-defined", 5: "unused", 6: "byte"}
		byType := map[string]int{}
		for _, t := range types {
			byType[names[t]]++
		}
		var parts []string
		for _, n := range []string{"normal", "control", "user-defined", "unused", "byte", "unknown"} {
			if byType[n] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", byType[n], n))
			}
		}
		fmt.Fprintf(w, "  token types\t%s\n", strings.Join(parts, ", "))
	}
	if merges, err := f.Strings("tokenizer.ggml.merges"); err == nil {
		fmt.Fprintf(w, "  merges\t%d\n", len(merges))
	}
	for _, k := range []string{"bos", "eos", "padding"} {
		if id, err := f.Uint32("tokenizer.ggml." + k + "_token_id"); err == nil && int(id) < len(tokens) {
			fmt.Fprintf(w, "  %s\t%d %q\n", k, id, tokens[id])
		}
	}
	if tpl, err := f.String("tokenizer.chat_template"); err == nil {
		fmt.Fprintf(w, "  chat template\t%d characters\n", len(tpl))
	}
	return w.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// human writes a count with an SI suffix: 1.79B, 537M.
func human(n uint64) string {
	switch {
	case n >= 1e12:
		return fmt.Sprintf("%.2fT", float64(n)/1e12)
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.2fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.2f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

var testPresets = map[string]func() testmodel.V3{
	"tiny-v3":    testmodel.TinyV3,
	"tiny-v2":    testmodel.TinyV2,
	"tiny-quant": testmodel.TinyQuant,
	"bench":      testmodel.Bench,
	"demo-v3":    testmodel.DemoV3,
}

// testPresetsV4 are the deepseek4 (DeepSeek-V4) presets of testgen.
var testPresetsV4 = map[string]func() testmodel.V4{
	"tiny-v4":    testmodel.TinyV4,
	"tiny-v4-hf": testmodel.TinyV4HF,
	"demo-v4":    testmodel.DemoV4,
	"bench-v4":   testmodel.BenchV4,
}

func newModelTestgenCmd() *cobra.Command {
	var preset, typ, out, hfType string
	var seed uint64
	var mtp bool
	var block int
	cmd := &cobra.Command{
		Use:   "testgen --preset NAME --out FILE",
		Short: "Write a random-weight deepseek2 GGUF model from a seed (for tests and benchmarks)",
		Long: `Write a random-weight deepseek2 GGUF model, deterministically from a seed, with
DeepSeek-V3's real tokenizer. Presets: tiny-v3 (V3-shaped, 72 MB), tiny-v2
(V2-Lite-shaped), tiny-quant (V3-shaped with 256-wide rows, for the k-quants;
270 MB), bench (the 1.79 GB Q8_0 benchmark model); deepseek4 (DeepSeek-V4)
presets: tiny-v4 (the golden model, 16 MB), tiny-v4-hf (tiny-v4 widened to
hidden 64 for FP4 experts), demo-v4 (the built-in demo's, Q8_0, 49 MB) and
bench-v4 (the 1.64 GB Q8_0 long-context benchmark model). The model is not
smart; it exists to check ulan against llama.cpp and to measure speed.

With --hf f32|bf16|fp8, --out names a Hugging Face directory to write
instead (config.json, two safetensors shards and their index, tokenizer
files) holding the same draws; fp8 stores the projections as F8_E4M3 with
128×128 weight_scale_inv blocks, and --mtp adds V3's multi-token-prediction
layer. The directory is drawn in memory: use it for the tiny presets.

A deepseek4 preset's directory (--hf fp8 only) is in DeepSeek-V4's release
format: projections F8_E4M3 with F8_E8M0 .scale blocks of --block (128 by
default), routed experts FP4 E2M1 packed as I8 with an F8_E8M0 scale per 32
values (hidden and moe_intermediate_size must be multiples of 32: use
tiny-v4-hf), norms and tables BF16; --mtp adds an MTP block (mtp.0.*).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var t gguf.Type
			switch typ {
			case "":
			case "f32":
				t = gguf.TypeF32
			case "f16":
				t = gguf.TypeF16
			case "bf16":
				t = gguf.TypeBF16
			case "q8_0":
				t = gguf.TypeQ8_0
			default:
				return fmt.Errorf("--type %q: use f32, f16, bf16 or q8_0", typ)
			}
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			if mk, ok := testPresetsV4[preset]; ok {
				c := mk()
				if typ != "" {
					c.Type = t
				}
				switch {
				case hfType != "" && hfType != "fp8":
					return fmt.Errorf("--hf %q is not available for the deepseek4 preset %q: its directory is written in DeepSeek-V4's release format, --hf fp8 (FP8 projections, FP4 routed experts)", hfType, preset)
				case hfType != "":
					opts := []testmodel.HFOption{testmodel.WithFP8Block(block)}
					if mtp {
						opts = append(opts, testmodel.WithMTP())
					}
					return c.WriteHFDir(out, seed, opts...)
				case mtp:
					return fmt.Errorf("--mtp needs --hf: GGUF test models have no MTP layer")
				}
				return c.WriteFile(out, seed)
			}
			mk, ok := testPresets[preset]
			if !ok {
				return fmt.Errorf("--preset %q: use tiny-v3, tiny-v2, tiny-quant, bench, demo-v3, tiny-v4, tiny-v4-hf, demo-v4 or bench-v4", preset)
			}
			c := mk()
			if typ != "" {
				c.Type = t
			}
			if hfType != "" {
				var opts []testmodel.HFOption
				if mtp {
					opts = append(opts, testmodel.WithMTP())
				}
				return c.WriteHFDir(out, seed, hfType, opts...)
			}
			if mtp {
				return fmt.Errorf("--mtp needs --hf: GGUF test models have no MTP layer")
			}
			return c.WriteFile(out, seed)
		},
	}
	cmd.Flags().StringVar(&preset, "preset", "tiny-v3", "tiny-v3, tiny-v2, tiny-quant, bench, demo-v3, tiny-v4, tiny-v4-hf, demo-v4 or bench-v4")
	cmd.Flags().StringVar(&typ, "type", "", "matrix type: f32, f16, bf16 or q8_0 (default: the preset's)")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "random seed")
	cmd.Flags().StringVar(&out, "out", "", "file (or, with --hf, directory) to write")
	cmd.Flags().StringVar(&hfType, "hf", "", "write a Hugging Face directory with this storage: f32, bf16 or fp8")
	cmd.Flags().BoolVar(&mtp, "mtp", false, "with --hf, add a multi-token-prediction layer")
	cmd.Flags().IntVar(&block, "block", 128, "with --hf and a deepseek4 preset, the side of the FP8 scale blocks")
	return cmd
}
