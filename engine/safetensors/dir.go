package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The file names of a Hugging Face model directory.
const (
	// SingleFile holds every tensor of a model that is not sharded.
	SingleFile = "model.safetensors"
	// IndexFile maps each tensor of a sharded model to its shard:
	// {"metadata": {...}, "weight_map": {"tensor name": "shard file name"}}.
	IndexFile = "model.safetensors.index.json"
	// ConfigFile holds the model's hyperparameters; see Config.
	ConfigFile = "config.json"
)

// maxJSONFile bounds the size of the index and config.json we read into
// memory. DeepSeek V3's index, listing about 90,000 tensors, is a few MB.
const maxJSONFile = MaxHeaderSize

// Model is a Hugging Face model directory opened by OpenDir: its tensors,
// memory-mapped from their shards, and its config.json. Its methods may be
// called concurrently, except Close, which must come after every other use
// (the tensors' Data included).
type Model struct {
	dir    string
	shards []*File
	where  map[string]*File
	names  []string
	config []byte
}

// OpenDir opens the model directory dir. Like transformers, it takes
// model.safetensors if there is one, else the shards that
// model.safetensors.index.json lists; a directory with neither gives an
// error that matches fs.ErrNotExist. Each shard is opened (memory-mapped)
// once, and every tensor of the weight map must be in the shard it names.
// Shard names must be plain file names inside dir: a name with a path
// separator, "..", or a volume is refused, so an index cannot reach outside
// the directory (a symlink inside dir is followed, as Hugging Face's cache
// needs). Tensors a shard holds beyond those the weight map gives it are
// not visible.
//
// config.json is read if present (at most 100 MB, like the index) and must
// be JSON; Config parses it. Errors in the index or a shard are
// *FormatError values naming the file and the tensor.
func OpenDir(dir string) (*Model, error) {
	m := &Model{dir: dir, where: map[string]*File{}}
	cfg, err := readJSONFile(filepath.Join(dir, ConfigFile))
	switch {
	case err == nil:
		m.config = cfg
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}

	single := filepath.Join(dir, SingleFile)
	if _, err := os.Stat(single); err == nil {
		f, err := Open(single)
		if err != nil {
			return nil, err
		}
		m.shards = []*File{f}
		m.names = f.Names()
		for _, name := range m.names {
			m.where[name] = f
		}
		return m, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %w", err)
	}

	indexPath := filepath.Join(dir, IndexFile)
	index, err := readJSONFile(indexPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %s has neither %s nor %s: %w", dir, SingleFile, IndexFile, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	weightMap, err := parseIndex(indexPath, index)
	if err != nil {
		return nil, err
	}
	if err := m.openShards(indexPath, weightMap); err != nil {
		_ = m.Close()
		return nil, err
	}
	return m, nil
}

// parseIndex reads the weight map of model.safetensors.index.json,
// checking shard names and refusing a tensor listed twice.
func parseIndex(path string, data []byte) (map[string]string, error) {
	fail := func(item, msg string, err error) error {
		return &FormatError{Path: path, Item: item, Msg: msg, Err: err}
	}
	var weightMap map[string]string
	err := object(data, func(key string, raw []byte) error {
		if key != "weight_map" {
			return nil // "metadata" ({"total_size": n}) and anything else
		}
		weightMap = map[string]string{}
		err := object(raw, func(name string, v []byte) error {
			item := fmt.Sprintf("tensor %q", name)
			shard, err := jsonString(v)
			if err != nil {
				return fail(item, "shard: "+err.Error(), err)
			}
			if msg := checkShardName(shard); msg != "" {
				return fail(item, fmt.Sprintf("shard %q %s", shard, msg), nil)
			}
			weightMap[name] = shard
			return nil
		})
		var dup *duplicateKeyError
		if errors.As(err, &dup) {
			return fail(fmt.Sprintf("tensor %q", dup.key), "listed twice in weight_map", nil)
		}
		var fe *FormatError
		if err != nil && !errors.As(err, &fe) {
			return fail("weight_map", err.Error(), err)
		}
		return err
	})
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return nil, fe
		}
		var dup *duplicateKeyError
		if errors.As(err, &dup) {
			return nil, fail(fmt.Sprintf("%q", dup.key), "appears twice", nil)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fail("index", "JSON ends early", io.ErrUnexpectedEOF)
		}
		return nil, fail("index", "bad JSON: "+err.Error(), err)
	}
	if weightMap == nil {
		return nil, fail("index", `no "weight_map"`, nil)
	}
	if len(weightMap) == 0 {
		return nil, fail("weight_map", "is empty", nil)
	}
	return weightMap, nil
}

// checkShardName says what is wrong with a shard name from the index, or
// returns "". Only a plain file name inside the directory is allowed.
func checkShardName(name string) string {
	switch {
	case name == "":
		return "is empty"
	case strings.ContainsAny(name, `/\`+"\x00"), name == ".", name == "..",
		!filepath.IsLocal(name), filepath.VolumeName(name) != "", filepath.Base(name) != name:
		return "is not a plain file name in the model directory"
	}
	return ""
}

// openShards opens each shard of weightMap once, in name order, and checks
// that it holds the tensors mapped to it.
func (m *Model) openShards(indexPath string, weightMap map[string]string) error {
	byShard := map[string][]string{}
	for name, shard := range weightMap {
		byShard[shard] = append(byShard[shard], name)
	}
	shards := make([]string, 0, len(byShard))
	for shard := range byShard {
		shards = append(shards, shard)
		sort.Strings(byShard[shard])
	}
	sort.Strings(shards)
	for _, shard := range shards {
		names := byShard[shard]
		f, err := Open(filepath.Join(m.dir, shard))
		if err != nil {
			var fe *FormatError
			if errors.As(err, &fe) {
				return fe
			}
			// Open's own errors only add a prefix to the os error.
			if inner := errors.Unwrap(err); inner != nil {
				err = inner
			}
			return &FormatError{Path: indexPath, Item: fmt.Sprintf("tensor %q", names[0]), Msg: fmt.Sprintf("shard %q: %v", shard, err), Err: err}
		}
		m.shards = append(m.shards, f)
		for _, name := range names {
			if _, ok := f.Tensor(name); !ok {
				return &FormatError{Path: f.Path(), Item: fmt.Sprintf("tensor %q", name), Msg: fmt.Sprintf("listed for this shard in %s but not in it", IndexFile)}
			}
			m.where[name] = f
		}
	}
	m.names = make([]string, 0, len(weightMap))
	for name := range weightMap {
		m.names = append(m.names, name)
	}
	sort.Strings(m.names)
	return nil
}

// readJSONFile reads a small JSON file, refusing one over maxJSONFile and
// one that is not JSON. A missing file gives an error matching
// fs.ErrNotExist.
func readJSONFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxJSONFile+1))
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if len(data) > maxJSONFile {
		return nil, &FormatError{Path: path, Item: "file", Msg: fmt.Sprintf("larger than the limit of %d bytes", maxJSONFile)}
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		return nil, &FormatError{Path: path, Item: "file", Msg: fmt.Sprintf("bad JSON: %v", err), Err: err}
	}
	return data, nil
}

// Dir returns the directory the model was opened from.
func (m *Model) Dir() string { return m.dir }

// Tensor returns the named tensor and whether the model has it.
func (m *Model) Tensor(name string) (Tensor, bool) {
	f, ok := m.where[name]
	if !ok {
		return Tensor{}, false
	}
	return f.Tensor(name)
}

// Names returns the model's tensor names, sorted: the weight map's, or
// every tensor of model.safetensors.
func (m *Model) Names() []string { return slices.Clone(m.names) }

// ShardOf returns the path of the file that holds the named tensor, for
// error messages that must name it.
func (m *Model) ShardOf(name string) (string, bool) {
	f, ok := m.where[name]
	if !ok {
		return "", false
	}
	return f.Path(), true
}

// LayerPast finds a tensor of a numbered layer at or past limit: the first
// name, in Names' order, of the form prefix N "." with N ≥ limit. It
// returns the name, N, and where the tensor is (its shard, else the
// directory), for a loader to refuse a checkpoint whose config describes
// fewer layers than it holds.
func (m *Model) LayerPast(prefix string, limit int) (name string, layer int, where string, found bool) {
	for _, name := range m.names {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		if n, err := strconv.Atoi(num); err == nil && n >= limit {
			where := m.dir
			if shard, ok := m.ShardOf(name); ok {
				where = shard
			}
			return name, n, where, true
		}
	}
	return "", 0, "", false
}

// ConfigJSON returns config.json as read, or nil if the directory has
// none. The slice is shared; do not modify it.
func (m *Model) ConfigJSON() []byte { return m.config }

// Config parses and validates config.json (see ParseConfig). A directory
// without one gives an error matching fs.ErrNotExist.
func (m *Model) Config() (*Config, error) {
	path := filepath.Join(m.dir, ConfigFile)
	if m.config == nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, fs.ErrNotExist)
	}
	return parseConfig(path, m.config)
}

// Close unmaps every shard. The tensors' Data must not be used after it.
func (m *Model) Close() error {
	var errs []error
	for _, f := range m.shards {
		errs = append(errs, f.Close())
	}
	m.shards = nil
	m.where = nil
	m.names = nil
	return errors.Join(errs...)
}
