package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/safetensors"
	"github.com/ulan-ai/ulan/host/tokenizer"
)

// inspectDir is `model inspect` for a Hugging Face directory: the model as
// the engine loads it, its tensors by dtype and shard, and its tokenizer.
func inspectDir(out io.Writer, dir string) error {
	d, err := safetensors.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	m, err := engine.LoadDir(d, cpu.New(cpu.WithThreads(1)))
	if err != nil {
		return err
	}
	info := m.Info()
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "architecture\t%s\n", info.Architecture)
	fmt.Fprintf(w, "name\t%s\n", info.Name)
	fmt.Fprintf(w, "parameters\t%s total, %s active per token\n", human(info.TotalParams), human(info.ActiveParams))
	printKVCache(w, m)
	if cfg, err := d.Config(); err == nil {
		if q := cfg.QuantizationConfig; q != nil {
			fmt.Fprintf(w, "quantization\t%s %s, blocks %v\n", q.QuantMethod, q.Fmt, q.WeightBlockSize)
		}
		if mtp, ok := m.(interface{ MTPLayers() int }); ok && cfg.NumNextNPredictLayers > 0 {
			fmt.Fprintf(w, "mtp layers\t%d of %d loaded, not counted above, not used for generation yet\n", mtp.MTPLayers(), cfg.NumNextNPredictLayers)
		}
	}
	fmt.Fprintln(w, "\nhyperparameters")
	for _, kv := range info.Params {
		fmt.Fprintf(w, "  %s\t%s\n", kv[0], kv[1])
	}
	counts := map[string]int{}
	bytes := map[string]uint64{}
	shards := map[string]bool{}
	names := d.Names()
	for _, n := range names {
		t, _ := d.Tensor(n)
		counts[t.DType.String()]++
		bytes[t.DType.String()] += uint64(len(t.Data))
		if s, ok := d.ShardOf(n); ok {
			shards[filepath.Base(s)] = true
		}
	}
	types := make([]string, 0, len(counts))
	for t := range counts {
		types = append(types, t)
	}
	sort.Strings(types)
	fmt.Fprintf(w, "\ntensors\t%d in %d files\n", len(names), len(shards))
	for _, t := range types {
		fmt.Fprintf(w, "  %s\t%d tensors, %s\n", t, counts[t], humanBytes(bytes[t]))
	}
	fmt.Fprintln(w, "\ntokenizer")
	tj, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		fmt.Fprintf(w, "  tokenizer.json\tnone\n")
		return w.Flush()
	}
	cfg, _ := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if _, err := tokenizer.Native(tj, cfg); err != nil {
		fmt.Fprintf(w, "  tokenizer.json\t%d bytes, does not load: %v\n", len(tj), err)
	} else {
		fmt.Fprintf(w, "  tokenizer.json\t%d bytes, loads\n", len(tj))
	}
	return w.Flush()
}
