package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// duplicateKeyError reports a key that appears twice in one JSON object.
type duplicateKeyError struct{ key string }

func (e *duplicateKeyError) Error() string { return fmt.Sprintf("key %q appears twice", e.key) }

// object calls fn for each member of the JSON object in data, in file
// order, with the member's raw value. A repeated key gives a
// *duplicateKeyError: encoding/json would keep the last of two equal keys
// without a word, and two tensors of one name are a broken file, not a
// choice to make for its writer. Anything but whitespace after the object is
// an error. An error from fn is returned as it is.
//
// Each value is copied once (json.RawMessage), so the memory used is a
// small multiple of len(data) whatever the input.
func object(data []byte, fn func(key string, value []byte) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("%s, not a JSON object", describeToken(tok))
	}
	seen := map[string]struct{}{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			// The decoder refuses non-string keys itself; this is a guard.
			return fmt.Errorf("object key is %s", describeToken(tok))
		}
		if _, dup := seen[key]; dup {
			return &duplicateKeyError{key}
		}
		seen[key] = struct{}{}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		if err := fn(key, raw); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return err
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return err
		}
		return fmt.Errorf("%s after the JSON object", describeToken(tok))
	}
	return nil
}

// uints reads a JSON array of at most limit non-negative integers. It stops
// at limit+1 elements, before converting or storing more, so a header
// cannot make us hold a huge shape.
func uints(raw []byte, limit int) ([]uint64, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("%s, not an array", describeToken(tok))
	}
	out := []uint64{}
	for dec.More() {
		if len(out) == limit {
			return nil, fmt.Errorf("more than %d elements", limit)
		}
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("element %d is %s, not an integer", len(out), describeToken(tok))
		}
		v, err := strconv.ParseUint(string(num), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("element %d is %s, not an integer from 0 to 2^64-1", len(out), num)
		}
		out = append(out, v)
	}
	if _, err := dec.Token(); err != nil { // the closing bracket
		return nil, err
	}
	return out, nil
}

// jsonString decodes a JSON string, refusing other types (which
// json.Unmarshal would let through as "" for null).
func jsonString(raw []byte) (string, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '"' {
		return "", fmt.Errorf("%s, not a string", describeRaw(t))
	}
	var s string
	if err := json.Unmarshal(t, &s); err != nil {
		return "", err
	}
	return s, nil
}

// describeToken names a json.Token for an error message.
func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			return "an object"
		case '[':
			return "an array"
		}
		return fmt.Sprintf("%q", string(v))
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

// describeRaw names the type of a raw JSON value for an error message.
func describeRaw(t []byte) string {
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// syntaxOffset returns the byte offset of a JSON syntax error, if err is
// one.
func syntaxOffset(err error) (int64, bool) {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return se.Offset, true
	}
	return 0, false
}
