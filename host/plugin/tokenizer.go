package plugin

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/ulan-ai/ulan/sdk/go/tokenizer"
)

// TokenizerInfo is what a tokenizer plugin says about itself (tok_info).
type TokenizerInfo struct {
	VocabSize      int     `json:"vocab_size"`
	BOS            int32   `json:"bos"`
	EOS            []int32 `json:"eos"`
	DecodeIsConcat bool    `json:"decode_is_concat"`
	// Features lists optional abilities, such as FeatureChatTemplate.
	Features []string `json:"features,omitempty"`
}

// Has reports whether the tokenizer declared a feature.
func (i TokenizerInfo) Has(feature string) bool { return slices.Contains(i.Features, feature) }

// FeatureChatTemplate is the tok_info feature of a tokenizer that renders
// chat prompts with tok_chat.
const FeatureChatTemplate = "chat_template"

// ErrNoChatTemplate is returned by Chat for a tokenizer without tok_chat.
var ErrNoChatTemplate = errors.New("the tokenizer renders no chat template")

// ChatRequest is a conversation for tok_chat to render (sdk/ABI.md §6.1):
// the SDK's own type, so host and guest read one wire format.
type ChatRequest = tokenizer.Chat

// ChatMessage is one turn of a ChatRequest.
type ChatMessage = tokenizer.Message

// ChatToolCall is a call an assistant message made; Arguments is JSON text.
type ChatToolCall = tokenizer.ToolCall

// ChatTool is a function the model may call; Parameters is its JSON Schema.
type ChatTool = tokenizer.Tool

// Bounds on what a tokenizer call may return, so a plugin cannot make the
// host copy without limit.
const (
	maxTokenizerOutput = 64 << 20
	maxVocab           = 1 << 22
	vocabChunk         = 8192
)

// withInstance runs fn on a pooled instance within the call deadline,
// discarding the instance if fn fails at the wasm level.
func (p *Plugin) withInstance(ctx context.Context, export string, fn func(ctx context.Context, inst *instance) error) (err error) {
	defer p.observe(export, p.started(), &err)
	if err := p.breaker.allow(); err != nil {
		return &CallError{Plugin: p.cfg.ID, Export: export, Kind: KindUnhealthy, Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	inst, err := p.pool.checkout(ctx)
	if err != nil {
		return &CallError{Plugin: p.cfg.ID, Export: export, Kind: KindTimeout, Err: fmt.Errorf("no instance free before the deadline: %w", err)}
	}
	err = fn(ctx, inst)
	var ce *CallError
	if errors.As(err, &ce) || errors.Is(err, errBadOutput) {
		if !errors.As(err, &ce) {
			p.broke(err)
		}
		p.pool.discard(inst)
		return err
	}
	p.breaker.success()
	p.pool.put(inst)
	return err
}

var errBadOutput = errors.New("malformed output")

// callPacked calls an export that returns a packed buffer, optionally
// handing it input bytes first (through ulan_alloc), and returns a copy of
// the output.
func (p *Plugin) callPacked(ctx context.Context, inst *instance, export string, input []byte, extra ...uint64) ([]byte, error) {
	var params []uint64
	if input != nil {
		ptr, free, err := p.input(ctx, inst, input)
		if err != nil {
			return nil, err
		}
		params = append(params, uint64(ptr), uint64(len(input)))
		return freeAfter(free, func() ([]byte, error) { return p.callPacked(ctx, inst, export, nil, append(params, extra...)...) })
	}
	res, err := p.callOn(ctx, inst, export, append(params, extra...))
	if err != nil {
		return nil, err
	}
	packed := int64(res[0])
	if packed < 0 {
		msg := p.takeError(inst)
		if msg == "" {
			msg = "no message"
		}
		return nil, &StatusError{Plugin: p.cfg.ID, Export: export, Status: -packed, Message: msg}
	}
	ptr, n := uint32(uint64(packed)>>32), uint32(packed)
	if n > maxTokenizerOutput {
		return nil, fmt.Errorf("plugin %s: %s: %w: %d bytes", p.cfg.ID, export, errBadOutput, n)
	}
	if n == 0 {
		return []byte{}, nil
	}
	b, ok := inst.mod.Memory().Read(ptr, n)
	if !ok {
		return nil, fmt.Errorf("plugin %s: %s: %w: outside its memory", p.cfg.ID, export, errBadOutput)
	}
	return append([]byte(nil), b...), nil
}

func (p *Plugin) requireKind(k Kind) error {
	if p.cfg.Kind != k {
		return fmt.Errorf("plugin %s: not a %s plugin", p.cfg.ID, k)
	}
	return nil
}

// TokenizerInfo calls tok_info.
func (p *Plugin) TokenizerInfo(ctx context.Context) (TokenizerInfo, error) {
	var info TokenizerInfo
	if err := p.requireKind(KindTokenizer); err != nil {
		return info, err
	}
	err := p.withInstance(ctx, "tok_info", func(ctx context.Context, inst *instance) error {
		b, err := p.callPacked(ctx, inst, "tok_info", nil)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &info); err != nil {
			return fmt.Errorf("plugin %s: tok_info: %w: %v", p.cfg.ID, errBadOutput, err)
		}
		if info.VocabSize <= 0 || info.VocabSize > maxVocab {
			return fmt.Errorf("plugin %s: tok_info: %w: vocabulary of %d", p.cfg.ID, errBadOutput, info.VocabSize)
		}
		return nil
	})
	return info, err
}

// Vocab fetches every token's bytes (tok_vocab, in chunks), so the host can
// detokenize natively.
func (p *Plugin) Vocab(ctx context.Context, size int) ([][]byte, error) {
	if err := p.requireKind(KindTokenizer); err != nil {
		return nil, err
	}
	if size <= 0 || size > maxVocab {
		return nil, fmt.Errorf("plugin %s: vocabulary of %d", p.cfg.ID, size)
	}
	vocab := make([][]byte, 0, size)
	for start := 0; start < size; start += vocabChunk {
		count := min(vocabChunk, size-start)
		err := p.withInstance(ctx, "tok_vocab", func(ctx context.Context, inst *instance) error {
			b, err := p.callPacked(ctx, inst, "tok_vocab", nil, uint64(start), uint64(count))
			if err != nil {
				return err
			}
			for range count {
				if len(b) < 2 || len(b) < 2+int(binary.LittleEndian.Uint16(b)) {
					return fmt.Errorf("plugin %s: tok_vocab: %w: truncated at token %d", p.cfg.ID, errBadOutput, len(vocab))
				}
				n := int(binary.LittleEndian.Uint16(b))
				vocab = append(vocab, b[2:2+n])
				b = b[2+n:]
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return vocab, nil
}

// Encode calls tok_encode; every id must be below vocab.
func (p *Plugin) Encode(ctx context.Context, text string, flags int32, vocab int) ([]int32, error) {
	if err := p.requireKind(KindTokenizer); err != nil {
		return nil, err
	}
	var ids []int32
	err := p.withInstance(ctx, "tok_encode", func(ctx context.Context, inst *instance) error {
		b, err := p.callPacked(ctx, inst, "tok_encode", []byte(text), uint64(uint32(flags)))
		if err != nil {
			return err
		}
		if len(b)%4 != 0 {
			return fmt.Errorf("plugin %s: tok_encode: %w: %d bytes", p.cfg.ID, errBadOutput, len(b))
		}
		ids = make([]int32, len(b)/4)
		for i := range ids {
			ids[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
			if ids[i] < 0 || int(ids[i]) >= vocab {
				return fmt.Errorf("plugin %s: tok_encode: %w: token id %d outside the vocabulary of %d", p.cfg.ID, errBadOutput, ids[i], vocab)
			}
		}
		return nil
	})
	return ids, err
}

// Decode calls tok_decode; the text must be valid UTF-8.
func (p *Plugin) Decode(ctx context.Context, ids []int32, flags int32) (string, error) {
	if err := p.requireKind(KindTokenizer); err != nil {
		return "", err
	}
	var text string
	err := p.withInstance(ctx, "tok_decode", func(ctx context.Context, inst *instance) error {
		in := make([]byte, 4*len(ids))
		for i, id := range ids {
			binary.LittleEndian.PutUint32(in[4*i:], uint32(id))
		}
		// tok_decode takes a count of ids, not bytes.
		b, err := p.callPackedCount(ctx, inst, "tok_decode", in, uint64(len(ids)), uint64(uint32(flags)))
		if err != nil {
			return err
		}
		if !utf8.Valid(b) {
			return fmt.Errorf("plugin %s: tok_decode: %w: not valid UTF-8", p.cfg.ID, errBadOutput)
		}
		text = string(b)
		return nil
	})
	return text, err
}

// Chat renders a conversation as a prompt with tok_chat. The text must be
// valid UTF-8. A tokenizer that does not export tok_chat gives
// ErrNoChatTemplate without a call.
func (p *Plugin) Chat(ctx context.Context, req ChatRequest) (string, error) {
	if err := p.requireKind(KindTokenizer); err != nil {
		return "", err
	}
	if _, ok := p.compiled.ExportedFunctions()["tok_chat"]; !ok {
		return "", fmt.Errorf("plugin %s: %w (it does not export tok_chat)", p.cfg.ID, ErrNoChatTemplate)
	}
	in, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("plugin %s: tok_chat input: %w", p.cfg.ID, err)
	}
	var text string
	err = p.withInstance(ctx, "tok_chat", func(ctx context.Context, inst *instance) error {
		b, err := p.callPacked(ctx, inst, "tok_chat", in)
		if err != nil {
			return err
		}
		if !utf8.Valid(b) {
			return fmt.Errorf("plugin %s: tok_chat: %w: not valid UTF-8", p.cfg.ID, errBadOutput)
		}
		text = string(b)
		return nil
	})
	return text, err
}

// callPackedCount is callPacked for exports whose length parameter counts
// elements rather than bytes: the input pointer is followed by count.
func (p *Plugin) callPackedCount(ctx context.Context, inst *instance, export string, input []byte, count uint64, extra ...uint64) ([]byte, error) {
	ptr, free, err := p.input(ctx, inst, input)
	if err != nil {
		return nil, err
	}
	return freeAfter(free, func() ([]byte, error) {
		return p.callPacked(ctx, inst, export, nil, append([]uint64{uint64(ptr), count}, extra...)...)
	})
}

// freeAfter runs call, then frees its input with free (ulan_free) unless
// the call failed at the wasm level — the instance is then discarded, and a
// second call into it would count its failure twice. A ulan_free that fails
// fails the call, so that withInstance discards the instance instead of
// pooling one that trapped.
func freeAfter(free func() error, call func() ([]byte, error)) ([]byte, error) {
	out, err := call()
	if ce := (*CallError)(nil); errors.As(err, &ce) {
		return nil, err
	}
	if ferr := free(); ferr != nil {
		return nil, ferr
	}
	return out, err
}

// input copies bytes into a fresh ulan_alloc buffer of the instance and
// returns its address and the func that frees it (see freeAfter).
func (p *Plugin) input(ctx context.Context, inst *instance, b []byte) (uint32, func() error, error) {
	res, err := p.callOn(ctx, inst, "ulan_alloc", []uint64{uint64(max(len(b), 1))})
	if err != nil {
		return 0, nil, err
	}
	ptr := uint32(res[0])
	if ptr == 0 || !inst.mod.Memory().Write(ptr, b) {
		return 0, nil, fmt.Errorf("plugin %s: %w: ulan_alloc gave no usable buffer", p.cfg.ID, errBadOutput)
	}
	return ptr, func() error { _, err := p.callOn(ctx, inst, "ulan_free", []uint64{uint64(ptr)}); return err }, nil
}
