package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"unicode/utf8"
)

// Write writes tensors as a safetensors file: the header lists "__metadata__"
// first (when metadata is not empty, keys sorted) and then the tensors in
// the order given, and the data section holds their bytes in that order
// with no gaps. The header is padded with spaces so that the data section
// starts at a multiple of 8 bytes, as the reference writer does; a tensor
// inside it is aligned to its element size only if those before it keep it
// so (put the widest dtypes first, as the reference does by sorting).
//
// Everything is checked before a byte is written: names unique, valid UTF-8
// and not "__metadata__"; dtypes known; at most MaxRank dimensions, none
// negative; len(Data) the size dtype and shape give; the header within
// MaxHeaderSize. Write does not close w.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	header, err := encodeHeader(tensors, metadata)
	if err != nil {
		return err
	}
	return writeEncoded(w, header, tensors)
}

// writeEncoded writes a file whose header encodeHeader made from tensors.
func writeEncoded(w io.Writer, header []byte, tensors []Tensor) error {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(header); err != nil {
		return err
	}
	for _, t := range tensors {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// encodeHeader checks tensors and metadata and returns the padded header.
func encodeHeader(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k, v := range metadata {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, fmt.Errorf("safetensors: metadata key %q: key or value is not valid UTF-8", k)
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		writeString(&b, MetadataKey)
		b.WriteString(":{")
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(&b, k)
			b.WriteByte(':')
			writeString(&b, metadata[k])
		}
		b.WriteByte('}')
	}

	seen := make(map[string]struct{}, len(tensors))
	var offset uint64
	for i, t := range tensors {
		if err := checkTensor(t); err != nil {
			return nil, err
		}
		if _, dup := seen[t.Name]; dup {
			return nil, fmt.Errorf("safetensors: tensor %q: name appears twice", t.Name)
		}
		seen[t.Name] = struct{}{}
		if i > 0 || len(metadata) > 0 {
			b.WriteByte(',')
		}
		writeString(&b, t.Name)
		fmt.Fprintf(&b, `:{"dtype":"%s","shape":[`, t.DType)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprint(&b, d)
		}
		end := offset + uint64(len(t.Data))
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
		if b.Len() > MaxHeaderSize {
			return nil, fmt.Errorf("safetensors: header exceeds the limit of %d bytes", MaxHeaderSize)
		}
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > MaxHeaderSize {
		return nil, fmt.Errorf("safetensors: header of %d bytes exceeds the limit of %d", b.Len(), MaxHeaderSize)
	}
	return b.Bytes(), nil
}

// checkTensor checks one tensor given to Write.
func checkTensor(t Tensor) error {
	item := fmt.Sprintf("safetensors: tensor %q", t.Name)
	switch {
	case t.Name == MetadataKey:
		return fmt.Errorf("%s: the name is reserved for the metadata", item)
	case !utf8.ValidString(t.Name):
		return fmt.Errorf("%s: name is not valid UTF-8", item)
	case t.DType.Bits() == 0:
		return fmt.Errorf("%s: unknown dtype %v", item, t.DType)
	case len(t.Shape) > MaxRank:
		return fmt.Errorf("%s: %d dimensions, more than %d", item, len(t.Shape), MaxRank)
	}
	dims := make([]uint64, len(t.Shape))
	for i, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("%s: negative dimension %d", item, d)
		}
		dims[i] = uint64(d)
	}
	count, why := numElements(dims)
	if why != "" {
		return fmt.Errorf("%s: %s", item, why)
	}
	size, why := dataSize(t.DType, count)
	if why != "" {
		return fmt.Errorf("%s: %s", item, why)
	}
	if uint64(len(t.Data)) != size {
		return fmt.Errorf("%s: %d bytes of data, but shape %v of %v takes %d", item, len(t.Data), t.Shape, t.DType, size)
	}
	return nil
}

// writeString writes s as a JSON string. s is valid UTF-8 (checked by the
// callers), so json.Marshal cannot fail or change it.
func writeString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s)
	b.Write(q)
}

// ShardName returns the file name Hugging Face gives shard i (from 1) of n:
// "model-00001-of-00003.safetensors".
func ShardName(i, n int) string {
	return fmt.Sprintf("model-%05d-of-%05d.safetensors", i, n)
}

// WriteDir writes a model directory, creating dir if needed. With one shard
// it writes model.safetensors alone, as Hugging Face does for small models;
// with more it writes ShardName(i, n) for each and model.safetensors.index.json
// with the weight map and {"total_size": bytes of tensor data} as metadata.
// config.json is written from cfg as given when cfg is not nil (it must be
// valid JSON). A tensor name may appear in only one shard. Every shard is
// checked as Write checks it before any file is written. WriteDir is meant
// for tests and small tools: an I/O error partway leaves what was written.
func WriteDir(dir string, shards [][]Tensor, cfg json.RawMessage) error {
	if len(shards) == 0 {
		return errors.New("safetensors: WriteDir needs at least one shard")
	}
	if cfg != nil && !json.Valid(cfg) {
		return errors.New("safetensors: config is not valid JSON")
	}
	where := map[string]string{}
	headers := make([][]byte, len(shards))
	var total uint64
	for i, shard := range shards {
		name := SingleFile
		if len(shards) > 1 {
			name = ShardName(i+1, len(shards))
		}
		header, err := encodeHeader(shard, nil)
		if err != nil {
			return err
		}
		headers[i] = header
		for _, t := range shard {
			if other, dup := where[t.Name]; dup {
				return fmt.Errorf("safetensors: tensor %q is in shards %s and %s", t.Name, other, name)
			}
			where[t.Name] = name
			total += uint64(len(t.Data))
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	for i, shard := range shards {
		name := SingleFile
		if len(shards) > 1 {
			name = ShardName(i+1, len(shards))
		}
		if err := writeFile(filepath.Join(dir, name), headers[i], shard); err != nil {
			return err
		}
	}
	if len(shards) > 1 {
		index, err := json.MarshalIndent(struct {
			Metadata  map[string]uint64 `json:"metadata"`
			WeightMap map[string]string `json:"weight_map"`
		}{map[string]uint64{"total_size": total}, where}, "", "  ")
		if err != nil {
			return fmt.Errorf("safetensors: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, IndexFile), append(index, '\n'), 0o644); err != nil {
			return fmt.Errorf("safetensors: %w", err)
		}
	}
	if cfg != nil {
		if err := os.WriteFile(filepath.Join(dir, ConfigFile), cfg, 0o644); err != nil {
			return fmt.Errorf("safetensors: %w", err)
		}
	}
	return nil
}

// writeFile writes one safetensors file whose header encodeHeader made.
func writeFile(path string, header []byte, tensors []Tensor) error {
	fh, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	w := bufio.NewWriter(fh)
	err = writeEncoded(w, header, tensors)
	if err == nil {
		err = w.Flush()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return nil
}
