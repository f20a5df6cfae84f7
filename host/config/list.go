package config

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"
)

// This file decodes the list-of-mappings keys (plugins, pipelines). koanf flattens
// nested mappings into dotted keys but keeps a list as one value, so such a key is one
// leaf whose value is a []any; decodeList reads it element by element and field by
// field, strictly, so that each problem names its own key, such as
// plugins[1].failure_policy or pipelines[0].hooks[2].

// decodeList decodes v, a list of mappings, into a slice of elem, reporting every
// problem under the key of the element and field it is in. An element or field that
// fails keeps its zero value.
func (l *loader) decodeList(key string, elem reflect.Type, v any) reflect.Value {
	items, _ := v.([]any) // normalize let nothing else through
	out := reflect.MakeSlice(reflect.SliceOf(elem), 0, len(items))
	for i, item := range items {
		e := reflect.New(elem).Elem()
		l.decodeStruct(fmt.Sprintf("%s[%d]", key, i), e, item)
		out = reflect.Append(out, e)
	}
	return out
}

// decodeStruct fills the struct dst from the mapping v: known fields in struct order,
// then the unknown keys, sorted.
func (l *loader) decodeStruct(key string, dst reflect.Value, v any) {
	m, ok := stringMap(v)
	switch {
	case !ok && reflect.ValueOf(v).Kind() == reflect.Map:
		l.add(key, "", "has a key that is not a string")
		return
	case !ok:
		l.add(key, "", "expected a mapping of keys, got "+describe(v))
		return
	}
	t := dst.Type()
	known := map[string]bool{}
	for i := range t.NumField() {
		name := t.Field(i).Tag.Get("koanf")
		known[name] = true
		fv, present := m[name]
		if !present || fv == nil {
			// An empty value, as in "sha256:" with nothing after it, keeps the zero value.
			continue
		}
		l.decodeField(key+"."+name, dst.Field(i), fv)
	}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		if known[name] {
			continue
		}
		msg := "unknown key"
		if s := suggestField(name, known); s != "" {
			msg += " (did you mean " + key + "." + s + "?)"
		}
		l.add(key+"."+clip(name), "", msg)
	}
}

// decodeField sets one field of a list element from v, which is not nil.
func (l *loader) decodeField(key string, f reflect.Value, v any) {
	if f.Kind() == reflect.Struct {
		l.decodeStruct(key, f, v)
		return
	}
	k, _ := kindOf(f.Type()) // checkElem vetted every field type at init
	switch k {
	case kindBool:
		b, ok := v.(bool)
		if !ok {
			l.add(key, "", "expected true or false, got "+describe(v))
			return
		}
		f.SetBool(b)
	case kindMap:
		if reflect.ValueOf(v).Kind() != reflect.Map {
			l.add(key, "", "expected a mapping, got "+describe(v))
			return
		}
		if m, ok := l.jsonValue(key, v).(map[string]any); ok {
			f.Set(reflect.ValueOf(m))
		}
	case kindStrings:
		items, ok := v.([]any)
		if !ok {
			l.add(key, "", "expected a list of strings, got "+describe(v))
			return
		}
		out := make([]string, 0, len(items))
		for j, item := range items {
			s, ok := scalarText(item)
			if !ok {
				l.add(fmt.Sprintf("%s[%d]", key, j), "", "expected a string, got "+describe(item))
				continue
			}
			out = append(out, s)
		}
		if len(out) > 0 {
			f.Set(reflect.ValueOf(out))
		}
	case kindDuration:
		s, err := normalize(kindDuration, v)
		var d time.Duration
		if err == nil {
			d, err = time.ParseDuration(s.(string))
		}
		if err != nil {
			l.add(key, "", decodeMessage(kindDuration, v, err))
			return
		}
		f.SetInt(int64(d))
	case kindSize:
		s, err := normalize(kindSize, v)
		var b ByteSize
		if err == nil {
			err = b.UnmarshalText([]byte(s.(string)))
		}
		if err != nil {
			l.add(key, "", err.Error())
			return
		}
		f.SetInt(int64(b))
	case kindInt:
		n, err := toInt(v)
		if err != nil {
			l.add(key, "", err.Error())
			return
		}
		f.SetInt(int64(n.(int)))
	default: // kindString
		s, err := normalize(kindString, v)
		if err != nil {
			l.add(key, "", err.Error())
			return
		}
		f.SetString(s.(string))
	}
}

// jsonValue returns v, a value from YAML, in a form encoding/json can write: mappings
// with string keys, lists, strings, numbers, booleans and nil. A timestamp becomes its RFC 3339 text. What JSON cannot
// carry (a non-finite number, a mapping with a non-string key) is reported under its
// key, and the whole value is then nil.
func (l *loader) jsonValue(key string, v any) any {
	ok := true
	var conv func(key string, v any) any
	conv = func(key string, v any) any {
		switch v := v.(type) {
		case nil, bool, string:
			return v
		case time.Time:
			return v.Format(time.RFC3339Nano)
		case []any:
			out := make([]any, len(v))
			for i, e := range v {
				out[i] = conv(fmt.Sprintf("%s[%d]", key, i), e)
			}
			return out
		case map[string]any, map[any]any:
			m, isMap := stringMap(v)
			if !isMap {
				l.add(key, "", "a mapping key that is not a string cannot be passed to a plugin as JSON")
				ok = false
				return nil
			}
			out := make(map[string]any, len(m))
			for _, name := range slices.Sorted(maps.Keys(m)) {
				out[name] = conv(key+"."+name, m[name])
			}
			return out
		}
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return v
		case reflect.Float32, reflect.Float64:
			if f := rv.Float(); !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f
			}
			l.add(key, "", fmt.Sprintf("%v cannot be passed to a plugin as JSON", v))
			ok = false
			return nil
		}
		l.add(key, "", "cannot be passed to a plugin as JSON: "+describe(v))
		ok = false
		return nil
	}
	out := conv(key, v)
	if !ok {
		return nil
	}
	return out
}

// stringMap returns v as a mapping with string keys: YAML gives map[string]any, or
// map[any]any when a key is not a string (a number, a list).
func stringMap(v any) (map[string]any, bool) {
	switch v := v.(type) {
	case map[string]any:
		return v, true
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			s, ok := k.(string)
			if !ok {
				return nil, false
			}
			out[s] = e
		}
		return out, true
	}
	return nil, false
}

// suggestField returns the known field name an unknown one was most likely meant to
// be, or "".
func suggestField(name string, known map[string]bool) string {
	if len(name) > 64 {
		return "" // no field is this long, and measuring the distance would take long
	}
	best, bestDist := "", 3 // a typo is at most two edits
	for _, k := range slices.Sorted(maps.Keys(known)) {
		if d := editDistance(name, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// underBadKey reports whether key is, or lies within, a key in bad: plugins[1].id lies
// within plugins[1], and pipelines[0].hooks[2] within pipelines[0].hooks.
func underBadKey(key string, bad map[string]bool) bool {
	for p := key; p != ""; {
		if bad[p] {
			return true
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return false
		}
		p = p[:i]
	}
	return false
}
