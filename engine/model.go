package engine

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/safetensors"
)

// Model is a loaded architecture: weights on a backend and the forward pass.
type Model interface {
	// Info describes the model.
	Info() Info
	// Cache describes the KV-cache tensors the model keeps per sequence.
	Cache() CacheLayout
	// Forward runs one step over b, storing the batch's keys and values in
	// caches (the tensors of Cache, in its order, from Backend.Cache) and
	// returning the logits of b.Outputs: [len(b.Outputs), vocab].
	Forward(ctx Context, b *Batch, caches []Tensor) Tensor
}

// Info describes a loaded model.
type Info struct {
	Architecture string
	Name         string
	Vocab        int
	Context      int
	Layers       int
	// TotalParams counts every weight; ActiveParams the weights one token
	// uses (shared weights plus its routed experts).
	TotalParams  uint64
	ActiveParams uint64
	// ActiveBytes is the weight bytes one decoded token reads: every weight
	// but the embedding table and the routed experts, one embedding row, and
	// the routed experts it is sent to. Over memory bandwidth it bounds
	// decode speed.
	ActiveBytes uint64
	// Params are the hyperparameters as name → value, for display.
	Params [][2]string
}

// Loader builds a Model from a GGUF file on a backend.
type Loader func(f *gguf.File, b Backend) (Model, error)

// DirLoader builds a Model from a Hugging Face directory (its config.json
// already parsed) on a backend.
type DirLoader func(m *safetensors.Model, cfg *safetensors.Config, b Backend) (Model, error)

var (
	registryMu  sync.RWMutex
	registry    = map[string]Loader{}
	dirRegistry = map[string]DirLoader{}
)

// RegisterDir makes an architecture loadable from Hugging Face directories
// whose config.json has one of the model_type names. A duplicate name is a
// programming error and panics.
func RegisterDir(l DirLoader, names ...string) {
	registryMu.Lock()
	defer registryMu.Unlock()
	for _, n := range names {
		if _, dup := dirRegistry[n]; dup {
			panic("engine: architecture " + n + " registered twice for directories")
		}
		dirRegistry[n] = l
	}
}

// LoadDir builds the model of a Hugging Face directory on backend b, by
// config.json's model_type. The directory must stay open while the model
// is used: weights are viewed in place.
func LoadDir(m *safetensors.Model, b Backend) (Model, error) {
	// model_type picks the architecture before config.json is parsed and
	// validated as that architecture's.
	var head struct {
		ModelType string `json:"model_type"`
	}
	if raw := m.ConfigJSON(); raw == nil || json.Unmarshal(raw, &head) != nil {
		_, err := m.Config() // names the missing or malformed config.json
		if err == nil {
			err = fmt.Errorf("engine: %s: config.json: model_type is not a string", m.Dir())
		}
		return nil, err
	}
	registryMu.RLock()
	l, ok := dirRegistry[head.ModelType]
	names := make([]string, 0, len(dirRegistry))
	for n := range dirRegistry {
		names = append(names, n)
	}
	registryMu.RUnlock()
	if !ok {
		sort.Strings(names)
		return nil, fmt.Errorf("engine: %s: model_type %q is not supported (supported: %v)", m.Dir(), head.ModelType, names)
	}
	cfg, err := m.Config()
	if err != nil {
		return nil, err
	}
	return l(m, cfg, b)
}

// Register makes an architecture loadable by every name a file may carry
// (general.architecture in GGUF, model_type in config.json). A duplicate
// name is a programming error and panics.
func Register(l Loader, names ...string) {
	registryMu.Lock()
	defer registryMu.Unlock()
	for _, n := range names {
		if _, dup := registry[n]; dup {
			panic("engine: architecture " + n + " registered twice")
		}
		registry[n] = l
	}
}

// Architectures lists the registered architecture names.
func Architectures() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LoadGGUF builds the model a GGUF file describes on backend b. The file
// must stay open while the model is used: weights are viewed in place.
func LoadGGUF(f *gguf.File, b Backend) (Model, error) {
	arch, err := f.Arch()
	if err != nil {
		return nil, err
	}
	registryMu.RLock()
	l, ok := registry[arch]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("engine: architecture %q is not supported (supported: %v)", arch, Architectures())
	}
	return l(f, b)
}

// CacheFiller is a Model that can fill a sequence's KV cache with random
// but well-formed entries, as if it had processed the batch's tokens, so
// that a benchmark can measure decoding at a long context without
// prefilling it for hours (Runner.Fill). The entries have the shapes, norms
// and positions real ones would; their values mean nothing.
type CacheFiller interface {
	// FillCache writes the cache entries of b's tokens (their positions and
	// slots; the token ids are zero) from a random stream seeded by seed.
	FillCache(ctx Context, b *Batch, caches []Tensor, seed uint64)
}
