package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"

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
// every weight page it did not copy once, so that the first request does
// not pay for page faults. On a terminal the load shows a progress bar on
// stderr.
func loadModel(path string, threads int, stderr io.Writer) (*loadedModel, error) {
	f, err := gguf.Open(path)
	if err != nil {
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
	progress := func(n int64) {
		if bar != nil {
			_ = bar.Add64(n)
		}
	}
	var barMu sync.Mutex
	copied := func(src []byte) {
		f.ReleaseBytes(src)
		barMu.Lock()
		progress(int64(len(src)))
		barMu.Unlock()
	}
	b := cpu.New(cpu.WithThreads(threads), cpu.WithCopied(copied))
	m, err := engine.LoadGGUF(f, b)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var sink byte
	const page = 4096
	for _, t := range f.Tensors() {
		if f.Released(t) {
			// A backend that copied this weight (repacked Q8_0) has
			// let its pages go; reading them would bring them back.
			continue
		}
		data := f.Data(t)
		for i := 0; i < len(data); i += page {
			sink ^= data[i]
		}
		progress(int64(len(data)))
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
