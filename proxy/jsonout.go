package proxy

import (
	"errors"
	"strings"

	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// JSON built in the server from encrypted columns (rewrite/json.go): the
// server copied each envelope into the JSON as a string; the planner's
// JSONShape says where. openJSON opens each one there and writes the
// value as PostgreSQL's to_json writes that type, leaving every other
// byte of the document as the server sent it.

// jnode is one value of a parsed JSON document: its span, and for arrays
// and objects the indexes (into the document's nodes) of their elements or
// member values, and the members' keys.
type jnode struct {
	kind       byte // '[', '{', '"', or 'v' (number, true, false, null)
	start, end int
	kids       []int
	keys       []string
	keyStarts  []int // where each member's key begins
}

// jdoc is a parsed JSON document.
type jdoc struct {
	src   []byte
	nodes []jnode
	pos   int
	depth int
}

var errBadJSON = errors.New("the server's JSON does not parse")

// maxJSONDepth bounds the nesting pgveil follows (PostgreSQL's own limit
// on a json value's depth is far higher; the shapes the planner follows
// are a few levels deep).
const maxJSONDepth = 1000

func parseJSON(src []byte) (*jdoc, error) {
	d := &jdoc{src: src}
	if _, err := d.value(); err != nil {
		return nil, err
	}
	d.space()
	if d.pos != len(src) {
		return nil, errBadJSON
	}
	return d, nil
}

func (d *jdoc) space() {
	for d.pos < len(d.src) {
		switch d.src[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// value parses one value and returns its node index.
func (d *jdoc) value() (int, error) {
	d.space()
	if d.pos >= len(d.src) {
		return 0, errBadJSON
	}
	i := len(d.nodes)
	d.nodes = append(d.nodes, jnode{start: d.pos})
	switch c := d.src[d.pos]; c {
	case '[', '{':
		d.depth++
		if d.depth > maxJSONDepth {
			return 0, errBadJSON
		}
		d.nodes[i].kind = c
		d.pos++
		closer := byte(']')
		if c == '{' {
			closer = '}'
		}
		d.space()
		if d.pos < len(d.src) && d.src[d.pos] == closer {
			d.pos++
			d.depth--
			break
		}
		for {
			if c == '{' {
				d.space()
				if d.pos >= len(d.src) || d.src[d.pos] != '"' {
					return 0, errBadJSON
				}
				ks := d.pos
				d.nodes[i].keyStarts = append(d.nodes[i].keyStarts, ks)
				if err := d.str(); err != nil {
					return 0, err
				}
				key, err := canon.UnquoteJSON(d.src[ks:d.pos])
				if err != nil {
					return 0, err
				}
				d.space()
				if d.pos >= len(d.src) || d.src[d.pos] != ':' {
					return 0, errBadJSON
				}
				d.pos++
				d.nodes[i].keys = append(d.nodes[i].keys, string(key))
			}
			k, err := d.value()
			if err != nil {
				return 0, err
			}
			d.nodes[i].kids = append(d.nodes[i].kids, k)
			d.space()
			if d.pos >= len(d.src) {
				return 0, errBadJSON
			}
			if d.src[d.pos] == ',' {
				d.pos++
				continue
			}
			if d.src[d.pos] != closer {
				return 0, errBadJSON
			}
			d.pos++
			break
		}
		d.depth--
	case '"':
		d.nodes[i].kind = '"'
		if err := d.str(); err != nil {
			return 0, err
		}
	default:
		d.nodes[i].kind = 'v'
		for d.pos < len(d.src) {
			c := d.src[d.pos]
			if c == ',' || c == ']' || c == '}' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				break
			}
			d.pos++
		}
		switch tok := d.src[d.nodes[i].start:d.pos]; string(tok) {
		case "true", "false", "null":
		default:
			if !validJSONNumber(tok) {
				return 0, errBadJSON
			}
		}
	}
	d.nodes[i].end = d.pos
	return i, nil
}

// str skips a string token, checking its escapes (a string is decoded
// only where pgveil reads it: canon.UnquoteJSON).
func (d *jdoc) str() error {
	d.pos++ // the opening quote
	for d.pos < len(d.src) {
		switch c := d.src[d.pos]; {
		case c == '\\':
			if d.pos+1 >= len(d.src) {
				return errBadJSON
			}
			switch d.src[d.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.pos += 2
			case 'u':
				if d.pos+6 > len(d.src) {
					return errBadJSON
				}
				for _, h := range d.src[d.pos+2 : d.pos+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return errBadJSON
					}
				}
				d.pos += 6
			default:
				return errBadJSON
			}
		case c == '"':
			d.pos++
			return nil
		case c < 0x20:
			return errBadJSON
		default:
			d.pos++
		}
	}
	return errBadJSON
}

// jsonRepl replaces src[start:end] of the document with text.
type jsonRepl struct {
	start, end int
	text       []byte
}

// openJSON rewrites one json or jsonb field (text, or jsonb's binary form
// with its version byte) and appends the result to dst. null reports a
// value that must become NULL (never: JSON keeps its nulls inside).
func (s *session) openJSON(rc *resultCol, raw []byte, dst []byte) ([]byte, error) {
	prefix := 0
	if rc.srvFmt == 1 && len(raw) > 0 && raw[0] == 1 {
		prefix = 1 // jsonb's binary format: a version byte, then the text
	}
	d, err := parseJSON(raw[prefix:])
	if err != nil {
		return dst, s.jsonFailed(rc.json, err)
	}
	var repls []jsonRepl
	if err := s.openShape(d, 0, rc.json, false, &repls); err != nil {
		return dst, err
	}
	dst = append(dst, raw[:prefix]...)
	cur := 0
	body := raw[prefix:]
	for _, r := range repls {
		dst = append(dst, body[cur:r.start]...)
		dst = append(dst, r.text...)
		cur = r.end
	}
	return append(dst, body[cur:]...), nil
}

// jsonFailed is the error of a JSON value pgveil cannot follow: the
// session ends, as for a value that does not open.
func (s *session) jsonFailed(shape *rewrite.JSONShape, err error) error {
	col := shape.FirstColumn()
	return &pgError{Severity: "FATAL", Code: codeValueTampered,
		Message: "pgveil could not read the JSON built from " + col.QualifiedName() + " that the server returned",
		Detail:  "the session is closed so that no statement pipelined after this one is mistaken for skipped",
		cause:   err}
}

// openShape opens the envelopes of node n of d at the places shape names,
// appending replacements in document order.
func (s *session) openShape(d *jdoc, n int, shape *rewrite.JSONShape, inJSONB bool, repls *[]jsonRepl) error {
	inJSONB = inJSONB || shape.JSONB
	node := &d.nodes[n]
	if node.kind == 'v' && string(d.src[node.start:node.end]) == "null" {
		return nil
	}
	switch shape.Kind {
	case rewrite.JSONScalar:
		return s.openJSONElem(d, n, -1, false, shape.Elems[0], inJSONB, repls)
	case rewrite.JSONAgg:
		if node.kind != '[' {
			return s.jsonFailed(shape, errBadJSON)
		}
		for _, k := range node.kids {
			if err := s.openShape(d, k, shape.Each, inJSONB, repls); err != nil {
				return err
			}
		}
		return nil
	case rewrite.JSONArray:
		if node.kind != '[' || len(node.kids) != len(shape.Elems) {
			return s.jsonFailed(shape, errBadJSON)
		}
		visible := len(shape.Elems)
		for i, e := range shape.Elems {
			if e.Hidden {
				visible = min(visible, i)
				continue
			}
			tenant := -1
			if e.Tenant >= 0 {
				tenant = node.kids[e.Tenant]
			}
			if err := s.openJSONElem(d, node.kids[i], tenant, e.Tenant >= 0 && shape.Elems[e.Tenant].Send, e, inJSONB, repls); err != nil {
				return err
			}
		}
		if visible < len(node.kids) {
			// pgveil's own elements, the last ones: cut from the end of
			// the last of the client's (or the bracket) to the end of ours.
			from := node.start + 1
			if visible > 0 {
				from = d.nodes[node.kids[visible-1]].end
			}
			*repls = append(*repls, jsonRepl{from, d.nodes[node.kids[len(node.kids)-1]].end, nil})
		}
		return nil
	case rewrite.JSONObject:
		if node.kind != '{' {
			return s.jsonFailed(shape, errBadJSON)
		}
		member := func(key string) int {
			found := -1
			for j, k := range node.keys {
				if k == key {
					found = node.kids[j] // jsonb keeps the last of equal keys
				}
			}
			return found
		}
		elem := func(key string) *rewrite.JSONElem {
			for i := range shape.Elems {
				if shape.Elems[i].Key == key {
					return &shape.Elems[i]
				}
			}
			return nil
		}
		// The members pgveil added go, wherever they are (jsonb sorts
		// keys): each one before the last kept member with the comma
		// after it, the run after it from the end of that member's value.
		lastKept := -1
		for j := range node.kids {
			if e := elem(node.keys[j]); e == nil || !e.Hidden {
				lastKept = j
			}
		}
		for j, k := range node.kids {
			e := elem(node.keys[j])
			switch {
			case e != nil && e.Hidden && j < lastKept:
				*repls = append(*repls, jsonRepl{node.keyStarts[j], node.keyStarts[j+1], nil})
				continue
			case e != nil && e.Hidden && j == lastKept+1:
				from := node.keyStarts[j]
				if lastKept >= 0 {
					from = d.nodes[node.kids[lastKept]].end
				}
				*repls = append(*repls, jsonRepl{from, d.nodes[node.kids[len(node.kids)-1]].end, nil})
				continue
			case e == nil || e.Hidden || e.Column == nil && e.Shape == nil:
				continue
			}
			tenant := -1
			if e.Tenant >= 0 {
				if tenant = member(shape.Elems[e.Tenant].Key); tenant < 0 {
					return s.jsonFailed(shape, errBadJSON)
				}
			}
			if err := s.openJSONElem(d, k, tenant, e.Tenant >= 0 && shape.Elems[e.Tenant].Send, *e, inJSONB, repls); err != nil {
				return err
			}
		}
		return nil
	}
	return s.jsonFailed(shape, errBadJSON)
}

// openJSONElem opens the element at node n (its tenant at node tenant, or
// -1; send: the tenant's send form, a bytea's text), or follows its
// nested shape.
func (s *session) openJSONElem(d *jdoc, n, tenant int, send bool, e rewrite.JSONElem, inJSONB bool, repls *[]jsonRepl) error {
	if e.Shape != nil {
		return s.openShape(d, n, e.Shape, inJSONB, repls)
	}
	if e.Column == nil {
		return nil
	}
	node := &d.nodes[n]
	tok := d.src[node.start:node.end]
	if node.kind == 'v' && string(tok) == "null" {
		return nil
	}
	col := e.Column
	cat := s.eng.catalog()
	rc := resultCol{tenant: -1}
	s.fillCol(cat, &rc, col)
	if node.kind != '"' {
		_, _, err := s.openFailed(&rc, errNotSealed, nil)
		if err == nil {
			*repls = append(*repls, jsonRepl{node.start, node.end, []byte("null")})
		}
		return err
	}
	env, err := canon.UnquoteJSON(tok)
	if err != nil {
		return s.jsonFailed(&rewrite.JSONShape{Kind: rewrite.JSONScalar, Elems: []rewrite.JSONElem{e}}, err)
	}
	m := &resultMap{cols: []resultCol{{srvFmt: 0, send: send}}}
	var row [][]byte
	if tenant >= 0 {
		tn := &d.nodes[tenant]
		tv := d.src[tn.start:tn.end]
		switch {
		case tn.kind == '"':
			if tv, err = canon.UnquoteJSON(tv); err != nil {
				return s.jsonFailed(&rewrite.JSONShape{Kind: rewrite.JSONScalar, Elems: []rewrite.JSONElem{e}}, err)
			}
		case tn.kind != 'v' || string(tv) == "null":
			tv = nil
		}
		rc.tenant = 0
		row = [][]byte{tv}
	} else if col.Table.KeyContext != "" {
		// The planner always names the tenant; without one the value
		// cannot be checked against its row.
		_, _, err := s.openFailed(&rc, keysource.ErrWrongScope, nil)
		if err == nil {
			*repls = append(*repls, jsonRepl{node.start, node.end, []byte("null")})
		}
		return err
	}
	out, null, err := s.openValue(m, &rc, env, row, s.jsonBuf[:0])
	if err != nil {
		return err
	}
	if null {
		*repls = append(*repls, jsonRepl{node.start, node.end, []byte("null")})
		return nil
	}
	s.jsonBuf = out
	if col.Type == policy.TypeJSON && inJSONB {
		// A json value inside jsonb is printed as jsonb prints it.
		norm, err := canon.JSONBText(out, nil)
		if err != nil {
			if _, _, err := s.openFailed(&rc, err, nil); err != nil {
				return err
			}
			*repls = append(*repls, jsonRepl{node.start, node.end, []byte("null")})
			return nil
		}
		out = norm
	}
	*repls = append(*repls, jsonRepl{node.start, node.end, appendJSONValue(nil, col.Type, out)})
	return nil
}

// appendJSONValue appends the JSON PostgreSQL's to_json gives a value of
// type t whose text output is v.
func appendJSONValue(dst []byte, t policy.LogicalType, v []byte) []byte {
	switch t {
	case policy.TypeInt2, policy.TypeInt4, policy.TypeInt8:
		return append(dst, v...)
	case policy.TypeNumeric:
		if validJSONNumber(v) {
			return append(dst, v...)
		}
		return canon.AppendJSONString(dst, v) // NaN, Infinity
	case policy.TypeBool:
		if string(v) == "t" {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case policy.TypeJSON, policy.TypeJSONB:
		return append(dst, v...)
	case policy.TypeDate, policy.TypeTimestamp, policy.TypeTimestamptz:
		return canon.AppendJSONString(dst, xsdDateTime(v))
	}
	return canon.AppendJSONString(dst, v)
}

// validJSONNumber reports whether v is a JSON number.
func validJSONNumber(v []byte) bool {
	i := 0
	if i < len(v) && v[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
			n++
		}
		return n
	}
	first := i
	if n := digits(); n == 0 || n > 1 && v[first] == '0' {
		return false // no digits, or a leading zero
	}
	if i < len(v) && v[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(v)
}

// xsdDateTime turns a date or timestamp in PostgreSQL's ISO text output
// into the XSD form to_json writes (EncodeDateTime with USE_XSD_DATES):
// "2024-03-05 10:00:00.5+00" becomes "2024-03-05T10:00:00.5+00:00"; a
// date is unchanged; " BC" and infinity stay as they are.
func xsdDateTime(v []byte) []byte {
	s := string(v)
	bc := strings.HasSuffix(s, " BC")
	s = strings.TrimSuffix(s, " BC")
	sp := strings.IndexByte(s, ' ')
	if sp < 0 {
		return v // a date, or infinity
	}
	out := make([]byte, 0, len(v)+4)
	out = append(out, s[:sp]...)
	out = append(out, 'T')
	out = append(out, s[sp+1:]...)
	// A zone of hours only (+00) gets its minutes (+00:00).
	if n := len(out); n-3 > sp && (out[n-3] == '+' || out[n-3] == '-') {
		out = append(out, ':', '0', '0')
	}
	if bc {
		out = append(out, " BC"...)
	}
	return out
}
