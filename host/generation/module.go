package generation

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/ulan-ai/ulan/host/plugin"
)

// maxModuleBytes bounds a module file: far above any real plugin (a Go-built one is a
// few MiB), far below what would hurt to read by mistake.
const maxModuleBytes = 256 << 20

// modules remembers the module files read so far, with their hashes: a reload that
// finds a file unchanged (same file, size, modification and change times) takes the
// bytes and hash it read before instead of reading and hashing megabytes again, which
// would otherwise be most of a reload that changes no plugin.
var modules = struct {
	sync.Mutex
	byPath map[string]readModuleResult
}{byPath: map[string]readModuleResult{}}

type readModuleResult struct {
	fi     os.FileInfo
	change int64 // the inode's change time where the platform reports one
	wasm   []byte
	sum    string
}

// builtinSums caches the hashes of the built-in modules, by their bytes' address.
var builtinSums sync.Map // *byte → string

// builtinSum returns a built-in module's SHA-256 (lowercase hex), hashing each
// built-in once.
func builtinSum(wasm []byte) string {
	if len(wasm) == 0 {
		return hex.EncodeToString(func() []byte { s := sha256.Sum256(nil); return s[:] }())
	}
	if s, ok := builtinSums.Load(&wasm[0]); ok {
		return s.(string)
	}
	sum := sha256.Sum256(wasm)
	s := hex.EncodeToString(sum[:])
	builtinSums.Store(&wasm[0], s)
	return s
}

// readModuleCached is readModule with the hash, both taken from the cache when the file
// has not changed since it was last read.
func readModuleCached(path string) ([]byte, string, error) {
	fi, err := os.Stat(path)
	if err == nil {
		modules.Lock()
		c, ok := modules.byPath[path]
		modules.Unlock()
		if ok && os.SameFile(c.fi, fi) && c.fi.Size() == fi.Size() && c.fi.ModTime().Equal(fi.ModTime()) && c.change == changeTime(fi) {
			return c.wasm, c.sum, nil
		}
	}
	wasm, err := readModule(path)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(wasm)
	res := readModuleResult{wasm: wasm, sum: hex.EncodeToString(sum[:])}
	// The cached identity is what the file was before the read: a write during the
	// read changes its times, so the next reload reads it again.
	if fi != nil {
		res.fi, res.change = fi, changeTime(fi)
		modules.Lock()
		modules.byPath[path] = res
		modules.Unlock()
	}
	return res.wasm, res.sum, nil
}

// readModule reads a module file. Only a regular file is read (a FIFO would block, a
// device could be endless), and only up to maxModuleBytes.
func readModule(path string) ([]byte, error) {
	// Checked before opening too: opening a FIFO blocks until a writer comes, and
	// with it the reload (and every reload after it).
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, pathErr(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, pathErr(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > maxModuleBytes {
		return nil, fmt.Errorf("%s is %d bytes; a module may be at most %d MiB", path, fi.Size(), maxModuleBytes>>20)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxModuleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, pathErr(err))
	}
	if len(b) > maxModuleBytes {
		return nil, fmt.Errorf("%s grew past %d MiB while it was read", path, maxModuleBytes>>20)
	}
	return b, nil
}

// pathErr drops the operation and path that *fs.PathError repeats.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// manifestOf reads the manifest a module carries in its ulan.manifest custom section
// (sdk/ABI.md §7), without compiling it: the kind decides how the module is loaded. It
// reads leniently; plugin.Load reads the manifest again, strictly, and checks it in
// full.
func manifestOf(wasm []byte) (plugin.Manifest, error) {
	raw, err := customSection(wasm, plugin.ManifestSection)
	if err != nil {
		return plugin.Manifest{}, err
	}
	if raw == nil {
		return plugin.Manifest{}, fmt.Errorf("has no %s section, so its kind is unknown: build it with `ulan plugin build`, which embeds the manifest", plugin.ManifestSection)
	}
	var m plugin.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return plugin.Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	switch m.Kind {
	case plugin.KindTokenizer, plugin.KindSampler, plugin.KindHook:
	default:
		return plugin.Manifest{}, fmt.Errorf("manifest: kind %q is not tokenizer, sampler or hook", m.Kind)
	}
	return m, nil
}

// isWasm reports whether b starts like a WebAssembly binary: the magic and a version.
func isWasm(b []byte) bool {
	return len(b) >= 8 && bytes.Equal(b[:4], []byte("\x00asm"))
}

// customSection returns the payload of the custom section called name, nil when there
// is none, or an error for a binary that is not well-formed as far as sections go.
func customSection(wasm []byte, name string) ([]byte, error) {
	if !isWasm(wasm) {
		return nil, errors.New("is not a WebAssembly binary")
	}
	var found []byte
	for rest := wasm[8:]; len(rest) > 0; {
		id := rest[0]
		size, n := binary.Uvarint(rest[1:]) // wasm sizes are unsigned LEB128, as Uvarint reads
		if n <= 0 || size > uint64(len(rest)-1-n) {
			return nil, errors.New("is not a well-formed WebAssembly binary: a section runs past the end")
		}
		body := rest[1+n : 1+n+int(size)]
		rest = rest[1+n+int(size):]
		if id != 0 {
			continue
		}
		nameLen, m := binary.Uvarint(body)
		if m <= 0 || nameLen > uint64(len(body)-m) {
			return nil, errors.New("is not a well-formed WebAssembly binary: a custom section's name runs past it")
		}
		if string(body[m:m+int(nameLen)]) != name {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("has two %s sections", name)
		}
		found = body[m+int(nameLen):]
	}
	return found, nil
}
