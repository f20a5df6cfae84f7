package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/safetensors"
	"github.com/ulan-ai/ulan/host/tokenizer"
	"github.com/ulan-ai/ulan/sdk/go/tokenizer/hf"
)

// loadedModel is a model running in this process, from a GGUF file or a
// Hugging Face directory (exactly one of file and dir is set).
type loadedModel struct {
	file    *gguf.File
	dir     *safetensors.Model
	model   engine.Model
	backend *cpu.Backend
}

func (l *loadedModel) Close() error {
	if l.dir != nil {
		return l.dir.Close()
	}
	return l.file.Close()
}

// isModelDir reports whether path is a directory (a Hugging Face model).
func isModelDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// loadModel maps a GGUF file or a Hugging Face directory, builds its model
// on the CPU backend and reads every weight page the backend did not copy
// once, so that the first request does not pay for page faults. The pages
// of weights it copies (repacked Q8_0) are released as they are copied. On
// a terminal the load shows a progress bar on stderr.
func loadModel(path string, threads int, stderr io.Writer) (*loadedModel, error) {
	lm := &loadedModel{}
	var (
		data     [][]byte // every tensor's bytes
		release  func(b []byte)
		released func(i int) bool
		build    func(b *cpu.Backend) (engine.Model, error)
	)
	if isModelDir(path) {
		d, err := safetensors.OpenDir(path)
		if err != nil {
			return nil, err
		}
		lm.dir = d
		for _, n := range d.Names() {
			t, _ := d.Tensor(n)
			data = append(data, t.Data)
		}
		build = func(b *cpu.Backend) (engine.Model, error) { return engine.LoadDir(d, b) }
	} else {
		f, err := gguf.Open(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		lm.file = f
		tensors := f.Tensors()
		for _, t := range tensors {
			data = append(data, f.Data(t))
		}
		release = f.ReleaseBytes
		released = func(i int) bool { return f.Released(tensors[i]) }
		build = func(b *cpu.Backend) (engine.Model, error) {
			m, err := engine.LoadGGUF(f, b)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return m, nil
		}
	}
	progress := loadProgress(path, data, stderr)
	var mu sync.Mutex
	copied := func(src []byte) {
		if release != nil {
			release(src)
		}
		mu.Lock()
		progress(int64(len(src)))
		mu.Unlock()
	}
	lm.backend = cpu.New(cpu.WithThreads(threads), cpu.WithCopied(copied))
	m, err := build(lm.backend)
	if err != nil {
		lm.Close()
		return nil, err
	}
	lm.model = m
	var sink byte
	const page = 4096
	for i, d := range data {
		if released != nil && released(i) {
			continue
		}
		for j := 0; j < len(d); j += page {
			sink ^= d[j]
		}
		progress(int64(len(d)))
	}
	_ = sink
	return lm, nil
}

// loadProgress returns the function that advances a progress bar over
// data's bytes on a terminal (and does nothing elsewhere).
func loadProgress(path string, data [][]byte, stderr io.Writer) func(n int64) {
	file, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(file.Fd())) {
		return func(int64) {}
	}
	var total int64
	for _, d := range data {
		total += int64(len(d))
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("loading "+path),
		progressbar.OptionShowBytes(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(100_000_000),
	)
	return func(n int64) { _ = bar.Add64(n) }
}

// format is "gguf" or "safetensors".
func (l *loadedModel) format() string {
	if l.dir != nil {
		return "safetensors"
	}
	return "gguf"
}

// dtypes lists the weight types in the file or directory, sorted.
func (l *loadedModel) dtypes() []string {
	seen := map[string]bool{}
	var out []string
	add := func(name string) {
		name = strings.ToLower(name)
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	if l.dir != nil {
		for _, n := range l.dir.Names() {
			t, _ := l.dir.Tensor(n)
			add(t.DType.String())
		}
	} else {
		for _, t := range l.file.Tensors() {
			add(t.Type.String())
		}
	}
	sort.Strings(out)
	return out
}

// eos is the end-of-sequence token id, or −1 if the model names none.
func (l *loadedModel) eos() int {
	if l.dir != nil {
		if cfg, err := l.dir.Config(); err == nil && len(cfg.EOSTokenID) > 0 {
			return cfg.EOSTokenID[0]
		}
		return -1
	}
	if v, err := l.file.Uint32("tokenizer.ggml.eos_token_id"); err == nil {
		return int(v)
	}
	return -1
}

// tokenizer builds the model's native tokenizer: from the GGUF tokenizer
// section, or from a directory's tokenizer.json and tokenizer_config.json
// (the latter optional).
func (l *loadedModel) tokenizer() (*hf.Tokenizer, error) {
	if l.dir == nil {
		return tokenizer.FromGGUF(l.file)
	}
	tj, err := os.ReadFile(filepath.Join(l.dir.Dir(), "tokenizer.json"))
	if err != nil {
		return nil, err
	}
	cfg, err := os.ReadFile(filepath.Join(l.dir.Dir(), "tokenizer_config.json"))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	return tokenizer.Native(tj, cfg)
}
