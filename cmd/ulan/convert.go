package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/arch/deepseekv3"
	"github.com/ulan-ai/ulan/engine/arch/deepseekv4"
	"github.com/ulan-ai/ulan/engine/convert"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/safetensors"
	"github.com/ulan-ai/ulan/host/tokenizer"
)

func newModelConvertCmd() *cobra.Command {
	var to, typ, name string
	var force bool
	cmd := &cobra.Command{
		Use:   "convert --to gguf --type q8_0|f16|bf16|f32 HF_DIR OUT.gguf",
		Short: "Convert a DeepSeek V2/V3/R1/V4 Hugging Face directory to a deepseek2 or deepseek4 GGUF file llama.cpp loads",
		Long: `Convert a Hugging Face directory (config.json, safetensors in F32, F16, BF16
or FP8 e4m3 with weight_scale_inv, tokenizer.json, tokenizer_config.json) of
a DeepSeek V2, V3 or R1 model into a deepseek2 GGUF file laid out as
llama.cpp's convert_hf_to_gguf.py lays it out: stacked experts, kv_b_proj
split into attn_k_b and attn_v_b, the deepseek2 metadata and the tokenizer.

--type sets the matrices' type; norms, biases and the MoE router stay F32,
and Q8_0 rows that are not whole 32-value blocks fall back to F16, as the
converter does. FP8 weights are decoded exactly (value × block scale)
first. MTP layers are left out, as llama.cpp's converter leaves them out.

A DeepSeek-V4 directory (model_type deepseek_v4, the release's names, FP8
e4m3 projections with E8M0 .scale blocks, FP4 e2m1 routed experts) becomes
a deepseek4 file with llama.cpp's tensor names: FP8 and FP4 weights decoded
exactly, then written in --type (experts stacked [E, out, in]); tid2eid as
I32; the compressors' ape and the hyper-connection matrices stay F32.

The model is read and written one tensor at a time; the file appears under
its name only once complete.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to != "gguf" {
				return fmt.Errorf("--to %q: only gguf", to)
			}
			want, ok := convert.Types[typ]
			if !ok {
				return fmt.Errorf("--type %q: use q8_0, f16, bf16 or f32", typ)
			}
			return convertDir(args[0], args[1], convertOptions{want: want, name: name, force: force, stderr: cmd.ErrOrStderr()})
		},
	}
	cmd.Flags().StringVar(&to, "to", "gguf", "output format: gguf")
	cmd.Flags().StringVar(&typ, "type", "", "matrix type: q8_0, f16, bf16 or f32 (required)")
	cmd.Flags().StringVar(&name, "name", "", "general.name (default: the directory's name)")
	cmd.Flags().BoolVar(&force, "force", false, "replace OUT.gguf if it exists")
	return cmd
}

// convertOptions are `model convert`'s settings.
type convertOptions struct {
	want   engine.DType
	name   string // general.name; "" for the directory's base name
	force  bool
	stderr io.Writer
}

// convertDir converts the directory dir into the GGUF file out and reports
// what it did on o.stderr.
func convertDir(dir, out string, o convertOptions) error {
	if fi, err := os.Stat(dir); err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory: convert reads a Hugging Face model directory", dir)
	}
	if _, err := os.Stat(out); err == nil && !o.force {
		return fmt.Errorf("%s exists: pass --force to replace it", out)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	m, err := safetensors.OpenDir(dir)
	if err != nil {
		return err
	}
	defer m.Close()
	w, tensors, err := convertPlan(m, o)
	if err != nil {
		return err
	}
	var total int64
	for _, t := range tensors {
		total += t.size
	}
	progress := convertProgress(out, total, o.stderr)
	for _, t := range tensors {
		if err := convert.Add(w, t.Tensor, t.dt, progress); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := writeAtomic(w, out); err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(o.stderr, "wrote %s: %d tensors, %s of tensor data in %.1fs (%.0f MB/s)\n",
		out, len(tensors), humanBytes(uint64(total)), secs, float64(total)/1e6/max(secs, 1e-9))
	return nil
}

// plannedTensor is a tensor with the type it is written in.
type plannedTensor struct {
	convert.Tensor
	dt   engine.DType
	size int64
}

// convertPlan reads the directory's config and tokenizer and returns the
// writer holding the metadata, and the tensors to add, reporting the Q8_0
// fallbacks on o.stderr.
func convertPlan(m *safetensors.Model, o convertOptions) (*gguf.Writer, []plannedTensor, error) {
	cfg, err := m.Config()
	if err != nil {
		return nil, nil, err
	}
	var kvs []gguf.KV
	var tensors []convert.Tensor
	switch cfg.ModelType {
	case "deepseek_v2", "deepseek_v3":
		kvs, tensors, err = deepseekv3.ConvertDir(m, cfg)
	case safetensors.ModelTypeV4:
		kvs, tensors, err = deepseekv4.ConvertDir(m, cfg)
	default:
		return nil, nil, fmt.Errorf("%s: model_type %q: convert handles deepseek_v2, deepseek_v3 and deepseek_v4", filepath.Join(m.Dir(), safetensors.ConfigFile), cfg.ModelType)
	}
	if err != nil {
		return nil, nil, err
	}
	tok, err := tokenizerSection(m.Dir(), cfg, o.stderr)
	if err != nil {
		return nil, nil, err
	}
	fileType, err := convert.FileType(o.want)
	if err != nil {
		return nil, nil, err
	}
	name := o.name
	if name == "" {
		name = filepath.Base(filepath.Clean(m.Dir()))
	}
	w := &gguf.Writer{}
	w.Add(kvs[0].Key, kvs[0].Value) // general.architecture first, as llama.cpp writes it
	w.Add("general.name", name)
	w.Add("general.file_type", fileType)
	w.Add("general.quantization_version", uint32(2))
	for _, kv := range append(kvs[1:], tok...) {
		w.Add(kv.Key, kv.Value)
	}
	planned := make([]plannedTensor, len(tensors))
	fellBack := map[string][]string{}
	for i, t := range tensors {
		dt, fb := convert.OutType(t, o.want)
		if fb {
			fellBack[blockSuffix(t.Name)] = append(fellBack[blockSuffix(t.Name)], t.Name)
		}
		planned[i] = plannedTensor{Tensor: t, dt: dt, size: convert.Size(t, dt)}
	}
	reportFallbacks(o.stderr, fellBack, tensors)
	return w, planned, nil
}

// blockSuffix is a tensor name without its "blk.N." prefix.
func blockSuffix(name string) string {
	if rest, ok := strings.CutPrefix(name, "blk."); ok {
		if _, after, ok := strings.Cut(rest, "."); ok {
			return after
		}
	}
	return name
}

// reportFallbacks says which tensors could not be Q8_0.
func reportFallbacks(out io.Writer, fellBack map[string][]string, tensors []convert.Tensor) {
	keys := make([]string, 0, len(fellBack))
	for k := range fellBack {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		names := fellBack[k]
		i := slices.IndexFunc(tensors, func(t convert.Tensor) bool { return t.Name == names[0] })
		cols := tensors[i].Shape[len(tensors[i].Shape)-1]
		fmt.Fprintf(out, "note: %s (%d tensors): rows of %d values are not whole Q8_0 blocks of 32: written as F16, as llama.cpp's converter does\n", k, len(names), cols)
	}
}

// tokenizerSection builds the GGUF tokenizer keys from the directory's
// tokenizer.json and tokenizer_config.json. The pre-tokenizer is named by
// what tokenizer.json's pre_tokenizer is; one this server does not know
// takes the model type's (deepseek-v3 for V3 and V4, deepseek-llm for V2), with a
// note.
func tokenizerSection(dir string, cfg *safetensors.Config, stderr io.Writer) ([]gguf.KV, error) {
	tjPath := filepath.Join(dir, "tokenizer.json")
	tj, err := os.ReadFile(tjPath)
	if err != nil {
		return nil, fmt.Errorf("the GGUF tokenizer section is built from tokenizer.json: %w", err)
	}
	tc, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	pre, ok := tokenizer.PreTokenizerName(tj)
	if !ok {
		pre = map[string]string{"deepseek_v4": "deepseek-v3", "deepseek_v3": "deepseek-v3", "deepseek_v2": "deepseek-llm"}[cfg.ModelType]
		fmt.Fprintf(stderr, "note: %s: pre_tokenizer is not one ulan knows; tokenizer.ggml.pre %q from model_type %s\n", tjPath, pre, cfg.ModelType)
	}
	kvs, err := tokenizer.GGUFSection(tj, tc, cfg.VocabSize, pre)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return kvs, nil
}

// writeAtomic writes w into a temporary file beside path and renames it to
// path once complete, so that a failed conversion leaves no partial file.
func writeAtomic(w *gguf.Writer, path string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".part-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 4<<20)
	if _, err := w.WriteTo(bw); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// convertProgress returns the function that advances a progress bar over
// total bytes of tensor data on a terminal (and does nothing elsewhere).
func convertProgress(out string, total int64, stderr io.Writer) func(n int64) {
	file, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(file.Fd())) {
		return nil
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("writing "+out),
		progressbar.OptionShowBytes(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(100_000_000),
	)
	return func(n int64) { _ = bar.Add64(n) }
}
