package main

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/ulan-ai/ulan/engine/testmodel"
)

// demo is a random-weight model that ulan writes from a seed on first use
// and keeps in a cache directory: what `ulan serve` runs when no model is
// given, so that every path of the server works out of the box. Its words
// are random.
type demo struct {
	name string // the cache file's name starts with it
	cfg  demoConfig
	seed uint64
	// size and crc (CRC-32C) describe the file testmodel writes, the same
	// on every machine; a cached file that differs is built again.
	// TestDemoModel holds them to what testmodel writes.
	size int64
	crc  uint32
}

// demoConfig is a test-model configuration that writes a GGUF file from a
// seed (testmodel.V3, testmodel.V4). Its printed fields name the cache file,
// so it must be a plain value.
type demoConfig interface {
	Write(w io.Writer, seed uint64, opts ...testmodel.WriteOption) error
}

// builtinDemo is the demo `ulan serve` runs: the V4 architecture.
var builtinDemo = demo{
	name: "ulan-demo-v4",
	cfg:  testmodel.DemoV4(),
	seed: 1,
	size: 48753312,
	crc:  0x6aee41e1,
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fileName is the cache file's name: the demo's name and a hash of the
// generator's version, the configuration and the seed, so that a change to
// any of them writes a new file rather than trusting an old one.
func (d demo) fileName() string {
	h := sha256.New()
	fmt.Fprintf(h, "testmodel %d\n%+v\nseed %d\n", testmodel.Version, d.cfg, d.seed)
	return fmt.Sprintf("%s-%x.gguf", d.name, h.Sum(nil)[:8])
}

// demoModel returns the path of demo d (builtinDemo in serve), writing it into
// the user's cache directory (ulan/models under os.UserCacheDir) when no
// good copy is there. Where that directory cannot be used, the model is
// written into a new temporary directory, which cleanup removes; cleanup
// must run after the model is closed.
func demoModel(d demo, log *slog.Logger, stderr io.Writer) (path string, cleanup func(), err error) {
	dir, err := os.UserCacheDir()
	if err == nil {
		dir = filepath.Join(dir, "ulan", "models")
		if err = os.MkdirAll(dir, 0o755); err == nil {
			if path, err = d.ensure(dir, log, stderr); err == nil {
				return path, func() {}, nil
			}
		}
	}
	log.Warn("the model cache cannot be used; writing the demo model to a temporary directory, again at every start", "err", err)
	tmp, err := os.MkdirTemp("", "ulan-demo-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { _ = os.RemoveAll(tmp) }
	if path, err = d.ensure(tmp, log, stderr); err != nil {
		cleanup()
		return "", nil, err
	}
	return path, cleanup, nil
}

// ensure returns the demo's path in dir, writing the file when it is
// missing or fails its check. Files are written under a temporary name and
// renamed into place, so that a server starting beside one that is writing
// never reads half a file; both write the same bytes, and the last rename
// wins.
func (d demo) ensure(dir string, log *slog.Logger, stderr io.Writer) (string, error) {
	path := filepath.Join(dir, d.fileName())
	err := d.check(path)
	if err == nil {
		return path, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		log.Warn("the cached demo model is damaged; writing it again", "path", path, "err", err)
	}
	if err := d.write(dir, path, log, stderr); err != nil {
		return "", fmt.Errorf("writing the demo model to %s: %w", dir, err)
	}
	return path, nil
}

// check compares a file's size and CRC-32C with the demo's. Reading the
// file costs little: the server reads every page of it right after.
func (d demo) check(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != d.size {
		return fmt.Errorf("%d bytes, want %d", fi.Size(), d.size)
	}
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := h.Sum32(); got != d.crc {
		return fmt.Errorf("CRC-32C %08x, want %08x", got, d.crc)
	}
	return nil
}

// tempPattern names files being written; staleTemp is when one is left
// over from a process that died while writing.
const (
	tempPattern = ".ulan-demo-*.tmp"
	staleTemp   = time.Hour
)

// write writes the demo to path through a temporary file in dir.
func (d demo) write(dir, path string, log *slog.Logger, stderr io.Writer) (err error) {
	removeStaleTemps(dir)
	start := time.Now()
	log.Info("writing the demo model (random weights from a fixed seed; written once, then cached)", "path", path)
	f, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close() // a second Close only reports os.ErrClosed
			_ = os.Remove(tmp)
		}
	}()
	h := crc32.New(castagnoli)
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	bar := &buildBar{w: terminal(stderr), start: start}
	err = d.cfg.Write(w, d.seed, testmodel.WithProgress(bar.update))
	bar.finish()
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != d.size || h.Sum32() != d.crc {
		// The generator changed without builtinDemo, or differs on this
		// machine: the model still runs, but every start writes it again.
		log.Warn("the demo model written differs from the one this ulan expects; serving it anyway (please report this)",
			"bytes", fi.Size(), "want_bytes", d.size, "crc32c", fmt.Sprintf("%08x", h.Sum32()), "want_crc32c", fmt.Sprintf("%08x", d.crc))
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	log.Info("demo model written", "path", path, "bytes", fi.Size(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// removeStaleTemps removes temporary files that processes which died while
// writing left behind; files younger than staleTemp may still be written.
func removeStaleTemps(dir string) {
	names, _ := filepath.Glob(filepath.Join(dir, tempPattern))
	for _, n := range names {
		if fi, err := os.Stat(n); err == nil && time.Since(fi.ModTime()) > staleTemp {
			_ = os.Remove(n)
		}
	}
}

// terminal returns w when it is a terminal, else nil.
func terminal(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return w
	}
	return nil
}

// buildBar shows a progress bar on a terminal once writing has taken a
// second; shorter writes show none. It shows no rate or times: the bar
// appears part way, and progressbar counts them from its own start.
type buildBar struct {
	w     io.Writer // nil: no bar
	start time.Time
	bar   *progressbar.ProgressBar
}

// update is testmodel's progress callback (never called concurrently).
func (b *buildBar) update(done, total int64) {
	if b.w == nil {
		return
	}
	if b.bar == nil {
		if time.Since(b.start) < time.Second {
			return
		}
		b.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(b.w),
			progressbar.OptionSetDescription("writing the demo model"),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
	}
	_ = b.bar.Set64(done)
}

func (b *buildBar) finish() {
	if b.bar != nil {
		_ = b.bar.Finish()
	}
}
