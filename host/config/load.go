package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
	yamlv3 "go.yaml.in/yaml/v3"
)

// Sources says where Load reads the configuration from. Every field may be left zero.
type Sources struct {
	// File is the path of a YAML file; empty reads none.
	File string
	// Env holds "NAME=value" entries, as os.Environ returns them; only ULAN_* are read.
	// Nil reads none, so tests need not touch the process environment.
	Env []string
	// Flags holds the parsed command line; only flags the user set are read.
	Flags *pflag.FlagSet
	// FlagKeys maps a flag's name to the key it sets, such as "listen" to "server.listen".
	FlagKeys map[string]string
}

// Load builds a Config from the built-in defaults, then src.File, then src.Env, then the
// flags in src.FlagKeys that were set on the command line; each layer overrides the one
// before. It returns every problem as Problems: a file that is missing or not YAML, an
// unknown key in the file, a ULAN_* variable that names no key, a value of the wrong type
// and whatever Validate finds, with the zero Config. A problem with a value that came from
// the environment or a flag says which variable or flag set it.
func Load(src Sources) (Config, error) {
	l := newLoader()
	if src.File != "" {
		b, err := readFile(src.File)
		if err != nil {
			l.add("", "", err.Error())
		} else {
			l.loadYAML(b, src.File+": ")
		}
	}
	return l.rest(src)
}

// LoadText is Load with b as the content of src.File, which is not read (it may be
// empty): it answers what a reload would make of a file holding b, environment and
// flags included, so that PluginService.ValidateConfig judges a file as Reload would.
func LoadText(src Sources, b []byte) (Config, error) {
	l := newLoader()
	l.loadYAML(b, "")
	return l.rest(src)
}

// rest merges the environment and the flags of src, then decodes and validates.
func (l *loader) rest(src Sources) (Config, error) {
	l.loadEnv(src.Env)
	if src.Flags != nil {
		l.loadFlags(src.Flags, src.FlagKeys)
	}
	return l.finish()
}

// MaxFileBytes bounds a configuration file: far above any real one (a plugin's config
// may embed a tokenizer of a few MiB), far below what would hurt to read by mistake.
const MaxFileBytes = 64 * MiB

// readFile reads a configuration file. Only a regular file (a symlink to one, as
// Kubernetes mounts a ConfigMap, included) is read, up to MaxFileBytes: a FIFO would
// block every later reload until a writer came, and a device such as /dev/zero, or a
// model file renamed by mistake, would be read into memory whole.
func readFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("config file %s does not exist", path)
	case err != nil:
		return nil, fmt.Errorf("cannot read config file %s: %s", path, pathErr(err))
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("config file %s is not a regular file", path)
	case fi.Size() > int64(MaxFileBytes):
		return nil, fmt.Errorf("config file %s is %d bytes; a configuration file may be at most %v", path, fi.Size(), ByteSize(MaxFileBytes))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read config file %s: %s", path, pathErr(err))
	}
	defer f.Close()
	// Checked again on the open file: the name may have been swapped meanwhile.
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("config file %s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(MaxFileBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read config file %s: %s", path, pathErr(err))
	}
	if len(b) > int(MaxFileBytes) {
		return nil, fmt.Errorf("config file %s grew past %v while it was read", path, ByteSize(MaxFileBytes))
	}
	return b, nil
}

// Parse builds a Config from the built-in defaults and the YAML text b alone, reporting
// problems as Load does. It reads no environment or flags, and suits checking a file
// before it is deployed.
func Parse(b []byte) (Config, error) {
	l := newLoader()
	l.loadYAML(b, "")
	return l.finish()
}

// loader layers sources into one koanf instance, ko.
//
// Each source is first read into a staging instance of its own; its keys are checked
// against Config's and brought to their key's canonical type (normalize), and only then
// are the good ones merged into ko. StrictMerge refuses a value whose Go type differs from
// the one already held, yet one key legitimately arrives as different types: a duration
// is a string in YAML and a time.Duration from a flag, a size may be 1048576 or "1MiB",
// a list is a comma-separated string in the environment. Checking in staging also lets
// every problem name its own key, where koanf's strict-merge error names the parent.
type loader struct {
	ko       *koanf.Koanf
	problems Problems
	seen     map[Problem]bool
	// origin holds the environment variable or flag that last set a key; keys from the
	// defaults or the file are absent.
	origin map[string]string
}

func newLoader() *loader {
	l := &loader{
		ko:     koanf.NewWithConf(koanf.Conf{Delim: ".", StrictMerge: true}),
		seen:   map[Problem]bool{},
		origin: map[string]string{},
	}
	def := reflect.ValueOf(Default())
	flat := make(map[string]any, len(leaves))
	for _, lf := range leaves {
		v, err := normalize(lf.kind, def.FieldByIndex(lf.index).Interface())
		if err != nil {
			panic(fmt.Sprintf("config: default for %s: %v", lf.key, err))
		}
		flat[lf.key] = v
	}
	if err := l.ko.Load(confmap.Provider(flat, "."), nil); err != nil {
		panic(fmt.Sprintf("config: loading defaults: %v", err))
	}
	return l
}

// add records a problem once; origin, when set, is the variable or flag behind it.
func (l *loader) add(key, origin, msg string) {
	if origin != "" {
		msg += " (from " + origin + ")"
	}
	p := Problem{Key: key, Message: msg}
	if !l.seen[p] {
		l.seen[p] = true
		l.problems = append(l.problems, p)
	}
}

// loadYAML merges YAML text; where prefixes the parser's message (the file's path).
func (l *loader) loadYAML(b []byte, where string) {
	if msg := checkDocuments(b); msg != "" {
		l.add("", "", where+msg)
		return
	}
	stage := koanf.New(".")
	if err := stage.Load(rawbytes.Provider(b), yaml.Parser()); err != nil {
		l.add("", "", where+err.Error())
		return
	}
	l.merge(stage, nil)
}

// MaxDepth bounds how deeply a configuration file's mappings and lists may nest. A
// plugin's config starts four levels down (plugins, the list, its entry, config), which
// leaves it sixty: far more than any real one needs. Without a bound a file of a few
// KiB nested thousands of levels deep (YAML allows 10000) takes seconds to load, as
// koanf copies every level of it at every level.
const MaxDepth = 64

// checkDocuments returns what is wrong with the shape of YAML text b, or "": a first
// document nested deeper than MaxDepth, holding more than MaxNodes values or mappings
// too large to read (see mappingWork), or a second document with content, which
// yaml.Unmarshal would silently drop (two files pasted together, a manifest's separator
// left in). Text that does not parse gets "": the YAML parser then says why.
func checkDocuments(b []byte) string {
	dec := yamlv3.NewDecoder(bytes.NewReader(b))
	var doc yamlv3.Node
	if err := dec.Decode(&doc); err != nil {
		return ""
	}
	if msg := checkShape(&doc); msg != "" {
		return msg
	}
	for {
		var n yamlv3.Node
		err := dec.Decode(&n)
		switch {
		case errors.Is(err, io.EOF):
			return ""
		case err != nil:
			// A broken later document is still a later document.
			return "the file holds more than one YAML document; ulan reads one: merge them, or remove the --- between them"
		case len(n.Content) > 0 && (n.Content[0].Kind != yamlv3.ScalarNode || n.Content[0].ShortTag() != "!!null"):
			// An empty document, such as after a trailing ---, holds nothing to lose.
			return fmt.Sprintf("the file holds more than one YAML document (another begins at line %d); ulan reads one: merge them, or remove the --- between them", n.Content[0].Line)
		}
	}
}

// MaxNodes bounds the values (scalars, mappings and lists) in a configuration file:
// reading one takes about 2 µs, so a file at the bound takes 2 s, and real ones hold a
// few thousand.
const MaxNodes = 1_000_000

// maxNodes is MaxNodes, lowered by tests so that a file past the bound is
// small.
var maxNodes int64 = MaxNodes

// mappingWork bounds the work yaml.v3 spends checking a file's mappings for duplicate
// keys: it compares every key of a mapping with every other, so a mapping of n keys
// costs n², and one of 100000 keys (a file of 1 MiB) took 15 s. The bound, the sum of n²
// over the file's mappings (aliases counted each time they are used), lets one mapping
// hold about 12000 keys, a quarter of a second's work.
const mappingWork = 150_000_000

// shape measures a document's nodes: the height of each (how deeply mappings and lists
// nest in it) and the duplicate-key work of the mappings within it. Both are memoized
// per node, so that aliases cost nothing to measure however they are stacked.
type shape struct {
	height map[*yamlv3.Node]int
	work   map[*yamlv3.Node]int64
	nodes  map[*yamlv3.Node]int64
	// nullKey is the first mapping key found that is null (~, null or
	// nothing): yaml.v3 drops its entry without a word.
	nullKey *yamlv3.Node
}

func (s *shape) measure(n *yamlv3.Node) (int, int64, int64) {
	if h, ok := s.height[n]; ok {
		return h, s.work[n], s.nodes[n]
	}
	// A cycle, which YAML's parser does not build, would end here.
	s.height[n], s.work[n], s.nodes[n] = 0, 0, 1
	h, w, c := 0, int64(0), int64(1)
	switch n.Kind {
	case yamlv3.AliasNode:
		if n.Alias != nil {
			h, w, c = s.measure(n.Alias)
		}
	case yamlv3.DocumentNode, yamlv3.MappingNode, yamlv3.SequenceNode:
		for _, e := range n.Content {
			eh, ew, ec := s.measure(e)
			h, w, c = max(h, eh), min(w+ew, math.MaxInt64/2), min(c+ec, math.MaxInt64/2)
		}
		if n.Kind != yamlv3.DocumentNode {
			h++
		}
		if n.Kind == yamlv3.MappingNode {
			k := int64(len(n.Content) / 2)
			w = min(w+k*k, math.MaxInt64/2)
			for i := 0; i+1 < len(n.Content) && s.nullKey == nil; i += 2 {
				if key := n.Content[i]; key.Kind == yamlv3.ScalarNode && key.ShortTag() == "!!null" {
					s.nullKey = key
				}
			}
		}
	}
	s.height[n], s.work[n], s.nodes[n] = h, w, c
	return h, w, c
}

// checkShape returns what makes doc too deep or its mappings too large to load, or "".
func checkShape(doc *yamlv3.Node) string {
	s := &shape{height: map[*yamlv3.Node]int{}, work: map[*yamlv3.Node]int64{}, nodes: map[*yamlv3.Node]int64{}}
	h, w, c := s.measure(doc)
	if c > maxNodes {
		return fmt.Sprintf("the file holds %d values (aliases counted each time they are used); a configuration may hold at most %d", c, maxNodes)
	}
	if k := s.nullKey; k != nil {
		return fmt.Sprintf("line %d: a mapping key is null (%q); name the key, or quote it to mean the text", k.Line, k.Value)
	}
	if w > mappingWork {
		// Name the largest mapping: it is usually the one to blame.
		var big *yamlv3.Node
		for n := range s.height {
			if n.Kind == yamlv3.MappingNode && (big == nil || len(n.Content) > len(big.Content)) {
				big = n
			}
		}
		return fmt.Sprintf("line %d: a mapping of %d keys: the file's mappings are too large to read quickly "+
			"(YAML checks every key of a mapping against every other; keep a mapping to about 10000 keys, "+
			"and give bulk data as a list or a string)", big.Line, len(big.Content)/2)
	}
	if h <= MaxDepth {
		return ""
	}
	// Follow the deepest branch down to the level past the bound, naming it.
	key, line := "", 0
	n := doc
	for level := 0; level <= MaxDepth; {
		switch n.Kind {
		case yamlv3.DocumentNode:
			n = n.Content[0]
			continue
		case yamlv3.AliasNode:
			n = n.Alias
			continue
		}
		line = n.Line
		want := s.height[n] - 1
		for i, c := range n.Content {
			if s.height[c] != want {
				continue
			}
			switch {
			case n.Kind == yamlv3.SequenceNode:
				key += fmt.Sprintf("[%d]", i)
			case i%2 == 1 && key == "":
				key = n.Content[i-1].Value
			case i%2 == 1:
				key += "." + n.Content[i-1].Value
			default:
				key += ".?" // a key that is itself a mapping or a list
			}
			n = c
			break
		}
		level++
	}
	return fmt.Sprintf("line %d: %s nests mappings and lists more than %d levels deep", line, clip(key), MaxDepth)
}

// loadEnv merges the ULAN_* entries of environ.
func (l *loader) loadEnv(environ []string) {
	var unknown []string
	names := map[string]string{} // key → variable, for origin
	stage := koanf.New(".")
	err := stage.Load(env.Provider(".", env.Opt{
		Prefix: envPrefix,
		TransformFunc: func(name, value string) (string, any) {
			key, ok := envNames[name]
			if !ok {
				unknown = append(unknown, name)
				return "", nil
			}
			names[key] = name
			return key, value
		},
		// Always set: a nil EnvironFunc would make the provider read os.Environ.
		EnvironFunc: func() []string { return environ },
	}), nil)
	if err != nil {
		l.add("", "", "reading the environment: "+err.Error())
		return
	}
	slices.Sort(unknown)
	for _, name := range slices.Compact(unknown) {
		l.add(name, "", "unknown environment variable (no such configuration key)")
	}
	l.merge(stage, names)
}

// loadFlags merges the flags of fs that the user set and flagKeys names.
func (l *loader) loadFlags(fs *pflag.FlagSet, flagKeys map[string]string) {
	names := map[string]string{} // key → flag, for origin
	stage := koanf.New(".")
	// ProviderWithFlag rather than Provider: flag names are not key paths, and an unset
	// flag's default must not override the file. ko is passed as koanf's README asks,
	// though the callback already drops unset flags.
	err := stage.Load(posflag.ProviderWithFlag(fs, ".", l.ko, func(f *pflag.Flag) (string, any) {
		key, ok := flagKeys[f.Name]
		if !ok || !f.Changed {
			return "", nil
		}
		names[key] = "--" + f.Name
		return key, posflag.FlagVal(fs, f)
	}), nil)
	if err != nil {
		l.add("", "", "reading flags: "+err.Error())
		return
	}
	l.merge(stage, names)
}

// merge checks each key of stage and merges the good ones into l.ko. origins maps a key
// to the variable or flag it came from.
func (l *loader) merge(stage *koanf.Koanf, origins map[string]string) {
	good := map[string]any{}
	for _, key := range stage.Keys() {
		origin := origins[key]
		v := stage.Get(key)
		lf, ok := leafKeys[key]
		if !ok {
			l.misplaced(key, v, origin)
			continue
		}
		if lf.kind == kindList && origin != "" {
			l.add(key, origin, "can be set only in the YAML file (--config), not from the environment or a flag")
			continue
		}
		if v == nil {
			// YAML's empty value, as in "tls:" with its keys commented out, keeps the default.
			continue
		}
		cv, err := normalize(lf.kind, v)
		if err != nil {
			l.add(key, origin, err.Error())
			continue
		}
		good[key] = cv
	}
	// Normalized values match the defaults' types, so this merge should not fail; if it
	// does, merging key by key finds the one to blame. A failed Load leaves ko unchanged.
	if err := l.ko.Load(confmap.Provider(good, "."), nil); err != nil {
		for _, key := range slices.Sorted(maps.Keys(good)) {
			if err := l.ko.Load(confmap.Provider(map[string]any{key: good[key]}, "."), nil); err != nil {
				l.add(key, origins[key], fmt.Sprintf("cannot merge %s: %v", describe(good[key]), err))
				delete(good, key)
			}
		}
	}
	for key := range good {
		if origins[key] != "" {
			l.origin[key] = origins[key]
		} else {
			delete(l.origin, key)
		}
	}
}

// misplaced reports a flattened key that is not a leaf of Config: a section given a
// value, a leaf given a mapping (which flattens to keys below the leaf), or a key that
// does not exist.
func (l *loader) misplaced(key string, v any, origin string) {
	if sections[key] {
		if m, ok := v.(map[string]any); v == nil || ok && len(m) == 0 {
			return
		}
		l.add(key, origin, "expected a mapping of keys, got "+describe(v))
		return
	}
	for p := key; strings.Contains(p, "."); {
		p = p[:strings.LastIndex(p, ".")]
		if lf, ok := leafKeys[p]; ok {
			l.add(p, origin, fmt.Sprintf("expected %s, got a mapping", lf.kind.expected()))
			return
		}
	}
	msg := "unknown key"
	if key == "" {
		msg = `unknown key ""`
	}
	if s := suggest(key); s != "" {
		msg += " (did you mean " + s + "?)"
	}
	l.add(clip(key), origin, msg) // clipped: a pasted blob as a key would flood the list
}

// finish decodes ko into a Config and validates it.
func (l *loader) finish() (Config, error) {
	c := l.decode()
	// A key that failed to decode kept its default, so Validate's view of it says
	// nothing new.
	// The same goes for the keys within a list element that failed to decode.
	bad := map[string]bool{}
	for _, p := range l.problems {
		bad[p.Key] = true
	}
	var ps Problems
	errors.As(c.Validate(), &ps)
	for _, p := range ps {
		if !underBadKey(p.Key, bad) {
			l.add(p.Key, l.originOf(p.Key), p.Message)
		}
	}
	if len(l.problems) > 0 {
		return Config{}, l.problems
	}
	return c, nil
}

// originOf returns the variable or flag that set key or, for an element of a list of
// strings such as server.auth.api_keys[1], the list; "" when neither came from one.
func (l *loader) originOf(key string) string {
	if o := l.origin[key]; o != "" {
		return o
	}
	if i := strings.IndexByte(key, '['); i > 0 {
		if lf, ok := leafKeys[key[:i]]; ok && lf.kind == kindStrings {
			return l.origin[lf.key]
		}
	}
	return ""
}

// decode fills a Config from ko key by key: mapstructure's error for a whole struct joins
// the failures under field names, not key paths, and stops a field at its first failure.
func (l *loader) decode() Config {
	c := Default()
	dc := &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.TextUnmarshallerHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		),
	}
	rv := reflect.ValueOf(&c).Elem()
	for _, lf := range leaves {
		f := rv.FieldByIndex(lf.index)
		if lf.kind == kindList {
			if list := l.decodeList(lf.key, lf.elem, l.ko.Get(lf.key)); list.Len() > 0 {
				f.Set(list)
			}
			continue
		}
		// Decode into a fresh value: mapstructure reuses a slice it is given, and a
		// failed decode must leave the default in place.
		p := reflect.New(f.Type())
		err := l.ko.UnmarshalWithConf(lf.key, p.Interface(), koanf.UnmarshalConf{DecoderConfig: dc})
		if err != nil {
			l.add(lf.key, l.origin[lf.key], decodeMessage(lf.kind, l.ko.Get(lf.key), err))
			continue
		}
		if p.Elem().Kind() == reflect.Slice && p.Elem().Len() == 0 {
			// An empty list decodes as a non-nil slice; keep Default's nil.
			continue
		}
		f.Set(p.Elem())
	}
	return c
}

// decodeMessage turns a mapstructure error into a problem's message. The duration hook
// drops the offending text from time.ParseDuration's error, so that message is rebuilt.
func decodeMessage(k kind, v any, err error) string {
	if k == kindDuration {
		return fmt.Sprintf("%q is not a duration (use a value such as 30s, 2m or 1h30m)", clip(fmt.Sprint(v)))
	}
	var de *mapstructure.DecodeError
	if errors.As(err, &de) && de.Unwrap() != nil {
		return de.Unwrap().Error()
	}
	return err.Error()
}

// normalize brings v to kind k's canonical type, the one the defaults are loaded as:
// string for strings, durations (as time.ParseDuration reads them) and sizes (as
// ByteSize reads them), int for integers, []string for lists of strings and []any for
// lists of mappings. Numbers become text for
// durations and sizes so the decode hooks judge them: 0 is a duration, 30 is not.
func normalize(k kind, v any) (any, error) {
	switch k {
	case kindString:
		if s, ok := scalarText(v); ok {
			return s, nil
		}
	case kindInt:
		return toInt(v)
	case kindDuration:
		if d, ok := v.(time.Duration); ok {
			return formatDuration(d), nil
		}
		if _, isBool := v.(bool); !isBool {
			if s, ok := scalarText(v); ok {
				return s, nil
			}
		}
	case kindSize:
		if b, ok := v.(ByteSize); ok {
			return b.String(), nil
		}
		if _, isBool := v.(bool); !isBool {
			if s, ok := scalarText(v); ok {
				return s, nil
			}
		}
	case kindList:
		// The elements are checked when decoded (decodeList), where each problem can
		// name its element.
		if l, ok := v.([]any); ok {
			return l, nil
		}
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.Len() == 0 {
			return []any{}, nil // the default: a typed empty list
		}
	case kindStrings:
		switch v := v.(type) {
		case string:
			return splitList(v), nil
		case []string:
			return slices.Clone(v), nil
		case []any:
			out := make([]string, 0, len(v))
			for _, e := range v {
				s, ok := scalarText(e)
				if !ok {
					return nil, fmt.Errorf("expected a list of strings, got a list holding %s", describe(e))
				}
				out = append(out, s)
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("expected %s, got %s", k.expected(), describe(v))
}

// splitList reads a comma-separated list, as the environment gives one, trimming spaces
// so that "a, b" works; an empty string is an empty list, which clears the default.
func splitList(s string) []string {
	out := []string{}
	for e := range strings.SplitSeq(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// toInt accepts any Go integer, a float64 with no fraction (YAML reads 1e6 as a float) and
// decimal text (from the environment).
func toInt(v any) (any, error) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n := rv.Int(); n >= math.MinInt && n <= math.MaxInt {
			return int(n), nil
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if n := rv.Uint(); n <= math.MaxInt {
			return int(n), nil
		}
	case reflect.Float32, reflect.Float64:
		if f := rv.Float(); f == math.Trunc(f) && f >= math.MinInt64 && f < math.MaxInt64 {
			return int(f), nil
		}
		return nil, fmt.Errorf("%v is not an integer", v)
	case reflect.String:
		if n, err := strconv.Atoi(strings.TrimSpace(rv.String())); err == nil {
			return n, nil
		}
		return nil, fmt.Errorf("%q is not an integer", clip(rv.String()))
	default:
		return nil, fmt.Errorf("expected an integer, got %s", describe(v))
	}
	return nil, fmt.Errorf("%v is too large", v)
}

// scalarText writes a YAML scalar as text. Floats are written without an exponent so
// that a size of 1e6 reads as 1000000.
func scalarText(v any) (string, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return rv.String(), true
	case reflect.Bool:
		return strconv.FormatBool(rv.Bool()), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(rv.Uint(), 10), true
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(rv.Float(), 'f', -1, 64), true
	}
	return "", false
}

// describe names the shape of a value from a source, for problems.
func describe(v any) string {
	if _, ok := v.(time.Time); ok {
		// YAML reads an unquoted 2025-01-02 as a timestamp.
		return "a timestamp (quote it to make it a string)"
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Invalid:
		return "nothing"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map:
		return "a mapping"
	}
	return fmt.Sprintf("a %T", v)
}

// suggest returns the known key that an unknown one was most likely meant to be, or "".
func suggest(key string) string {
	if len(key) > 128 {
		return "" // no key is this long, and measuring the distance would take long
	}
	best, bestDist := "", 3 // a typo is at most two edits
	var sameName []string
	for _, lf := range leaves {
		if d := editDistance(key, lf.key); d < bestDist {
			best, bestDist = lf.key, d
		}
		if lastPart(lf.key) == lastPart(key) {
			sameName = append(sameName, lf.key)
		}
	}
	if best == "" && len(sameName) == 1 {
		// The right name in the wrong section, such as a top-level "listen".
		best = sameName[0]
	}
	return best
}

func lastPart(key string) string {
	return key[strings.LastIndex(key, ".")+1:]
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
