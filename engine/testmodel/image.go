package testmodel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/ulan-ai/ulan/engine/gguf"
)

// Image is a GGUF file taken apart for editing, so that a test can break a
// valid model in one place (a key, a tensor's shape or type) and write it
// back: the loaders' error paths are tested on files that differ from a
// good one in exactly the way under test.
type Image struct {
	KVs     []gguf.KV
	Tensors []ImageTensor
}

// ImageTensor is one tensor of an Image. Data is shared with the file it
// came from until replaced.
type ImageTensor struct {
	Name string
	Type gguf.Type
	Dims []uint64
	Data []byte
}

// ImageOf takes f apart. The tensors' data stay views of f's.
func ImageOf(f *gguf.File) *Image {
	im := &Image{KVs: f.KVs()}
	for _, t := range f.Tensors() {
		im.Tensors = append(im.Tensors, ImageTensor{Name: t.Name, Type: t.Type, Dims: slices.Clone(t.Dims), Data: f.Data(t)})
	}
	return im
}

// Clone copies the image's lists (not the tensors' data), so edits to the
// copy leave im as it was.
func (im *Image) Clone() *Image {
	c := &Image{KVs: slices.Clone(im.KVs), Tensors: slices.Clone(im.Tensors)}
	for i := range c.Tensors {
		c.Tensors[i].Dims = slices.Clone(c.Tensors[i].Dims)
	}
	return c
}

// Set sets key to v (one of gguf's Value types), adding it if absent.
func (im *Image) Set(key string, v any) {
	for i := range im.KVs {
		if im.KVs[i].Key == key {
			im.KVs[i].Value = v
			return
		}
	}
	im.KVs = append(im.KVs, gguf.KV{Key: key, Value: v})
}

// Delete removes key if present.
func (im *Image) Delete(key string) {
	im.KVs = slices.DeleteFunc(im.KVs, func(kv gguf.KV) bool { return kv.Key == key })
}

// Tensor returns the named tensor for editing, or nil.
func (im *Image) Tensor(name string) *ImageTensor {
	for i := range im.Tensors {
		if im.Tensors[i].Name == name {
			return &im.Tensors[i]
		}
	}
	return nil
}

// DeleteTensor removes the named tensor if present.
func (im *Image) DeleteTensor(name string) {
	im.Tensors = slices.DeleteFunc(im.Tensors, func(t ImageTensor) bool { return t.Name == name })
}

// Bytes writes the image as a GGUF file. The gguf.Writer checks what it
// writes, so every tensor's data must fit its type and shape.
func (im *Image) Bytes() ([]byte, error) {
	var w gguf.Writer
	for _, kv := range im.KVs {
		w.Add(kv.Key, kv.Value)
	}
	for _, t := range im.Tensors {
		w.AddTensor(t.Name, t.Type, t.Dims, t.Data)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// TensorInfoAt returns where the named tensor's info starts in a GGUF
// file's bytes (its name's length field), found by the name as the file
// encodes it, so that a test can patch the fields the Writer would refuse
// to write: n_dims, the dims, the type and the data offset follow the name.
func TensorInfoAt(data []byte, name string) (int, error) {
	enc := binary.LittleEndian.AppendUint64(nil, uint64(len(name)))
	enc = append(enc, name...)
	f, err := gguf.Parse(data)
	if err != nil {
		return 0, err
	}
	// Tensor infos follow the metadata and precede the data; the last match
	// before the data is the info, not a string value holding the name.
	i := bytes.LastIndex(data[:min(f.DataOffset(), uint64(len(data)))], enc)
	if i < 0 {
		return 0, fmt.Errorf("testmodel: no tensor info for %q", name)
	}
	return i, nil
}

// TensorOffsetAt returns where the data-offset field of the named tensor's
// info lies in a GGUF file's bytes.
func TensorOffsetAt(data []byte, name string) (int, error) {
	i, err := TensorInfoAt(data, name)
	if err != nil {
		return 0, err
	}
	i += 8 + len(name)
	nd := int(binary.LittleEndian.Uint32(data[i:]))
	return i + 4 + 8*nd + 4, nil
}
