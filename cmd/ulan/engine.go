package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
)

// loadedModel is a model running in this process.
type loadedModel struct {
	file    *gguf.File
	model   engine.Model
	backend *cpu.Backend
}

func (l *loadedModel) Close() error { return l.file.Close() }

// loadModel maps a GGUF file, builds its model on the CPU backend and reads
// every weight page once, so that the first request does not pay for page
// faults. On a terminal the read shows a progress bar on stderr.
func loadModel(path string, threads int, stderr io.Writer) (*loadedModel, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b := cpu.New(cpu.WithThreads(threads))
	m, err := engine.LoadGGUF(f, b)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var total int64
	for _, t := range f.Tensors() {
		total += int64(t.Size)
	}
	var bar *progressbar.ProgressBar
	if file, ok := stderr.(*os.File); ok && term.IsTerminal(int(file.Fd())) {
		bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("loading "+path),
			progressbar.OptionShowBytes(true),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionThrottle(100_000_000),
		)
	}
	var sink byte
	const page = 4096
	for _, t := range f.Tensors() {
		data := f.Data(t)
		for i := 0; i < len(data); i += page {
			sink ^= data[i]
		}
		if bar != nil {
			_ = bar.Add64(int64(len(data)))
		}
	}
	_ = sink
	return &loadedModel{file: f, model: m, backend: b}, nil
}

// dtypes lists the weight types in the file, sorted.
func (l *loadedModel) dtypes() []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range l.file.Tensors() {
		name := strings.ToLower(t.Type.String())
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
