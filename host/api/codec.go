package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// protoCodec is connect's binary protobuf codec ("proto", used by Connect,
// gRPC and gRPC-web) with one change: a request whose string field is not
// valid UTF-8 is refused naming the field (messages[0].content: …), where
// the protobuf decoder says only "string field contains invalid UTF-8" and
// leaves the client to guess which of its strings it was. Decoding itself is
// unchanged; the field is looked for only after a failure.
type protoCodec struct{}

// Name is the codec's name in content types: application/grpc+proto.
func (protoCodec) Name() string { return "proto" }

// Marshal encodes a message.
func (protoCodec) Marshal(m any) ([]byte, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto.Message", m)
	}
	return proto.Marshal(pm)
}

// MarshalAppend encodes a message after dst (connect's marshalAppender).
func (protoCodec) MarshalAppend(dst []byte, m any) ([]byte, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto.Message", m)
	}
	return proto.MarshalOptions{}.MarshalAppend(dst, pm)
}

// MarshalStable encodes a message deterministically (connect's stableCodec,
// used for GET requests' cache keys).
func (protoCodec) MarshalStable(m any) ([]byte, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto.Message", m)
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(pm)
}

// IsBinary reports that the encoding is not text.
func (protoCodec) IsBinary() bool { return true }

// Unmarshal decodes a message, naming the first string field that is not
// valid UTF-8 when that is why decoding failed.
func (protoCodec) Unmarshal(b []byte, m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a proto.Message", m)
	}
	err := proto.Unmarshal(b, pm)
	if err == nil {
		return nil
	}
	if field, found := badUTF8(pm.ProtoReflect().Descriptor(), b, ""); found {
		return &FieldError{Field: field, Reason: "is not valid UTF-8, which every protobuf string must be"}
	}
	return fmt.Errorf("decode %s: %w", pm.ProtoReflect().Descriptor().FullName(), err)
}

// badUTF8 walks an encoded message of type md and returns the path of its
// first string field (nested messages, list elements and map entries
// included) that is not valid UTF-8, in FieldError's form: sampling.stop[2],
// messages[0].content, plugins.params[id].fields[k].string_value.
func badUTF8(md protoreflect.MessageDescriptor, b []byte, prefix string) (string, bool) {
	seen := map[protowire.Number]int{} // elements of each repeated field so far
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "", false
		}
		value := b[:n]
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		if fd == nil || typ != protowire.BytesType {
			continue
		}
		payload, _ := protowire.ConsumeBytes(value)
		path := prefix + fd.TextName()
		switch {
		case fd.IsMap():
			key, ok := mapKey(fd, payload)
			if !ok {
				return path, true // the key itself is not UTF-8
			}
			path += "[" + key + "]"
			if p, found := badUTF8(fd.Message(), payload, path+"."); found {
				// Name the entry, not its synthetic value field.
				return path + strings.TrimPrefix(p, path+".value"), true
			}
			continue
		case fd.IsList():
			path += "[" + strconv.Itoa(seen[num]) + "]"
			seen[num]++
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			if !utf8.Valid(payload) {
				return path, true
			}
		case protoreflect.MessageKind:
			if p, found := badUTF8(fd.Message(), payload, path+"."); found {
				return p, true
			}
		}
	}
	return "", false
}

// mapKey returns a map entry's key as text for a path; false when it is a
// string key that is not valid UTF-8.
func mapKey(fd protoreflect.FieldDescriptor, entry []byte) (string, bool) {
	key := ""
	for len(entry) > 0 {
		num, typ, n := protowire.ConsumeTag(entry)
		if n < 0 {
			break
		}
		entry = entry[n:]
		n = protowire.ConsumeFieldValue(num, typ, entry)
		if n < 0 {
			break
		}
		if num == 1 {
			switch typ {
			case protowire.BytesType:
				v, _ := protowire.ConsumeBytes(entry[:n])
				if fd.MapKey().Kind() == protoreflect.StringKind && !utf8.Valid(v) {
					return "", false
				}
				key = clip(string(v))
			case protowire.VarintType:
				v, _ := protowire.ConsumeVarint(entry[:n])
				key = strconv.FormatUint(v, 10)
			}
		}
		entry = entry[n:]
	}
	return key, true
}

// jsonCodec is connect's protobuf JSON codec under one of its names ("json",
// "json; charset=utf-8") with the same change as protoCodec: a string that
// is not valid UTF-8, or escapes half a surrogate pair ("\udc00"), is
// refused naming the field as the client wrote it (sampling.stop[1]), where
// protojson says "invalid UTF-8 in string" at a column, or, for a lone
// surrogate, "unexpected EOF".
type jsonCodec struct{ name string }

// Name is the codec's name in content types.
func (c jsonCodec) Name() string { return c.name }

// Marshal encodes a message as JSON.
func (jsonCodec) Marshal(m any) ([]byte, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto.Message", m)
	}
	return protojson.MarshalOptions{}.Marshal(pm)
}

// MarshalAppend encodes a message as JSON after dst.
func (jsonCodec) MarshalAppend(dst []byte, m any) ([]byte, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto.Message", m)
	}
	return protojson.MarshalOptions{}.MarshalAppend(dst, pm)
}

// MarshalStable encodes a message as compact JSON, the same text for the
// same message.
func (c jsonCodec) MarshalStable(m any) ([]byte, error) {
	b, err := c.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// IsBinary reports that the encoding is text.
func (jsonCodec) IsBinary() bool { return false }

// Unmarshal decodes JSON, ignoring unknown fields as connect's codec does
// (so that clients and servers need not share a schema version).
func (jsonCodec) Unmarshal(b []byte, m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a proto.Message", m)
	}
	if len(b) == 0 {
		return errors.New("zero-length payload is not a valid JSON object")
	}
	err := protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, pm)
	if err == nil {
		return nil
	}
	if field, found := badJSONString(b); found {
		return &FieldError{Field: field, Reason: "is not valid UTF-8, which every protobuf string must be (a \\u escape must not be half a surrogate pair)"}
	}
	return fmt.Errorf("decode %s: %w", pm.ProtoReflect().Descriptor().FullName(), err)
}

// jsonFrame is an object or array badJSONString is inside.
type jsonFrame struct {
	object  bool
	key     string // object: the current member's name
	wantKey bool   // object: the next string is a name
	index   int    // array: the current element
}

// badJSONString returns the path (names as written, dots and [i]) of the
// first string in JSON text b, name or value, that is not valid UTF-8 or
// holds a lone surrogate escape; false when there is none or b is not JSON.
func badJSONString(b []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var stack []*jsonFrame
	// pathOf names the value the innermost of frames is at: each frame
	// contributes its current member name or element index.
	pathOf := func(frames []*jsonFrame) string {
		var sb strings.Builder
		for _, f := range frames {
			if !f.object {
				sb.WriteString("[" + strconv.Itoa(f.index) + "]")
				continue
			}
			if sb.Len() > 0 {
				sb.WriteByte('.')
			}
			sb.WriteString(clip(f.key))
		}
		if sb.Len() == 0 {
			return "request"
		}
		return sb.String()
	}
	// advance moves the innermost container past a value.
	advance := func() {
		if len(stack) == 0 {
			return
		}
		if f := stack[len(stack)-1]; f.object {
			f.wantKey = true
		} else {
			f.index++
		}
	}
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		raw := b[start:dec.InputOffset()]
		var top *jsonFrame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				stack = append(stack, &jsonFrame{object: v == '{', wantKey: v == '{'})
			case '}', ']':
				stack = stack[:len(stack)-1]
				advance()
			}
		case string:
			if top != nil && top.object && top.wantKey {
				if !validJSONString(raw) {
					return pathOf(stack[:len(stack)-1]), true // a member name of this object
				}
				top.key, top.wantKey = v, false
				continue
			}
			if !validJSONString(raw) {
				return pathOf(stack), true
			}
			advance()
		default:
			advance()
		}
	}
}

// validJSONString reports whether the JSON string token in raw (with what
// came before it: separators, spaces) is valid UTF-8 with no lone surrogate
// escape.
func validJSONString(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	i := bytes.IndexByte(raw, '"')
	if i < 0 {
		return true
	}
	s := raw[i+1:]
	for j := 0; j < len(s); j++ {
		if s[j] != '\\' {
			continue
		}
		j++
		if j >= len(s) || s[j] != 'u' {
			continue
		}
		r, ok := hex4(s[j+1:])
		if !ok {
			return false
		}
		j += 4
		switch {
		case r >= 0xdc00 && r <= 0xdfff:
			return false // a low half with no high half before it
		case r >= 0xd800 && r <= 0xdbff:
			if j+6 >= len(s) || s[j+1] != '\\' || s[j+2] != 'u' {
				return false
			}
			lo, ok := hex4(s[j+3:])
			if !ok || lo < 0xdc00 || lo > 0xdfff {
				return false
			}
			j += 6
		}
	}
	return true
}

// hex4 parses the four hex digits that start b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[:4]), 16, 16)
	return rune(v), err == nil
}
