package policy

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// walker decodes a yaml.Node tree strictly, collecting every error with its
// file, line and key path instead of stopping at the first.
type walker struct {
	file  string
	errs  ErrorList
	unset map[*yaml.Node][]string // environment variables a scalar referenced that are unset
	nodes map[string]*yaml.Node   // key path → value node
	keys  map[string]*yaml.Node   // key path → key node, for errors found after decoding
	root  *yaml.Node
}

// at returns the node of a decoded key, or the nearest decoded parent, or
// the root, so that validation errors still point at a line.
func (w *walker) at(key string) *yaml.Node {
	for k := key; k != ""; {
		if n, ok := w.keys[k]; ok {
			return n
		}
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return w.root
}

// fail reports a problem with an already decoded key.
func (w *walker) fail(key, format string, args ...any) {
	w.errorf(w.at(key), key, format, args...)
}

func (w *walker) errorf(n *yaml.Node, key, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	w.errs = append(w.errs, &Error{File: w.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// fields maps a mapping's keys to the functions that decode their values.
type fields map[string]func(v *yaml.Node, key string)

// mapping decodes a mapping node with a fixed set of keys. Unknown and
// duplicate keys are errors; the message lists the keys that are allowed.
func (w *walker) mapping(n *yaml.Node, key string, f fields) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		w.errorf(n, key, "want a mapping, got %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		sub := join(key, name)
		if seen[name] {
			w.errorf(k, sub, "duplicate key")
			continue
		}
		seen[name] = true
		fn, ok := f[name]
		w.nodes[sub], w.keys[sub] = v, k
		if !ok {
			w.errorf(k, sub, "unknown key; allowed here: %s", allowed(f))
			continue
		}
		fn(v, sub)
	}
}

// entries iterates a mapping with free-form keys (table and column names).
func (w *walker) entries(n *yaml.Node, key string, fn func(k, v *yaml.Node, sub string)) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		w.errorf(n, key, "want a mapping, got %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		sub := join(key, k.Value)
		if seen[k.Value] {
			w.errorf(k, sub, "duplicate key")
			continue
		}
		seen[k.Value] = true
		w.nodes[sub], w.keys[sub] = v, k
		fn(k, v, sub)
	}
}

func (w *walker) scalar(n *yaml.Node, key string) (string, bool) {
	if isNull(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		w.errorf(n, key, "want a single value, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (w *walker) str(dst *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		if s, ok := w.scalar(n, key); ok {
			*dst = s
		}
	}
}

func (w *walker) boolean(dst *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := w.scalar(n, key)
		if !ok {
			return
		}
		b, err := strconv.ParseBool(s)
		if err != nil {
			w.errorf(n, key, "want true or false, got %q", s)
			return
		}
		*dst = b
	}
}

func (w *walker) duration(dst *time.Duration) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := w.scalar(n, key)
		if !ok {
			return
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			w.errorf(n, key, "want a positive duration such as 5s or 1m30s, got %q", s)
			return
		}
		*dst = d
	}
}

// shortDuration accepts 0 or a duration up to limit, such as 50us.
func (w *walker) shortDuration(dst *time.Duration, limit time.Duration) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := w.scalar(n, key)
		if !ok {
			return
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > limit {
			w.errorf(n, key, "want 0 or a duration up to %v such as 50us, got %q", limit, s)
			return
		}
		*dst = d
	}
}

// size accepts a byte count as an integer or with a unit: 10kB, 8MiB, 1GiB.
func (w *walker) size(dst *int) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := w.scalar(n, key)
		if !ok {
			return
		}
		v, err := parseSize(s)
		if err != nil {
			w.errorf(n, key, "%v", err)
			return
		}
		*dst = v
	}
}

func (w *walker) integer(dst *int) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := w.scalar(n, key)
		if !ok {
			return
		}
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			w.errorf(n, key, "want a positive integer, got %q", s)
			return
		}
		*dst = v
	}
}

// count accepts an integer from 0 to limit.
func (w *walker) count(dst *int, limit int) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := w.scalar(n, key)
		if !ok {
			return
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 || v > limit {
			w.errorf(n, key, "want an integer from 0 to %d, got %q", limit, s)
			return
		}
		*dst = v
	}
}

// intRange accepts an integer from lo to hi.
func (w *walker) intRange(dst *int, lo, hi int) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := w.scalar(n, key)
		if !ok {
			return
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < lo || v > hi {
			w.errorf(n, key, "want an integer from %d to %d, got %q", lo, hi, s)
			return
		}
		*dst = v
	}
}

// durationRange accepts a duration from lo to hi.
func (w *walker) durationRange(dst *time.Duration, lo, hi time.Duration) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		s, ok := w.scalar(n, key)
		if !ok {
			return
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < lo || d > hi {
			w.errorf(n, key, "want a duration from %v to %v such as 30s, got %q", lo, hi, s)
			return
		}
		*dst = d
	}
}

func (w *walker) strings(dst *[]string) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			w.errorf(n, key, "want a list such as [a, b], got %s", kindName(n))
			return
		}
		out := make([]string, 0, len(n.Content))
		for i, item := range n.Content {
			if s, ok := w.scalar(item, fmt.Sprintf("%s[%d]", key, i)); ok {
				out = append(out, s)
			}
		}
		*dst = out
	}
}

// required reports a missing or empty value, naming an unset environment
// variable when that is why it is empty.
func (w *walker) required(key, value string) bool {
	if value != "" {
		return true
	}
	if n, ok := w.nodes[key]; ok {
		if vars := w.unset[n]; len(vars) > 0 {
			w.errorf(n, key, "is empty: environment variable %s is not set", strings.Join(vars, ", "))
			return false
		}
		w.errorf(n, key, "must not be empty")
		return false
	}
	w.errorf(w.at(key), key, "is required")
	return false
}

func parseSize(s string) (int, error) {
	t := strings.TrimSpace(s)
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v <= 0 || v*int64(mult) > 1<<30 {
		return 0, fmt.Errorf("want a size between 1 byte and 1GiB such as 8192, 64KiB or 1GiB, got %q", s)
	}
	return int(v) * mult, nil
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "an empty document"
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func allowed(f fields) string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}
