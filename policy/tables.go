package policy

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// maxIdentifier is PostgreSQL's NAMEDATALEN-1: longer names are truncated by
// the server, so a longer name in the policy could never match.
const maxIdentifier = 63

// tables decodes the encryption policy: tables → columns → settings.
func (w *walker) tables(c *Config, n *yaml.Node) {
	w.entries(n, "tables", func(k, v *yaml.Node, key string) {
		schema, name, ok := splitTableName(k.Value)
		if !ok {
			w.errorf(k, key, "want a table name as schema.table or table (public is assumed)")
			return
		}
		t := &Table{Schema: schema, Name: name, Line: k.Line, colIndex: map[string]*Column{}}
		if c.tableIndex[t.QualifiedName()] != nil {
			w.errorf(k, key, "table %s is configured twice", t.QualifiedName())
			return
		}
		var colsNode *yaml.Node
		w.mapping(v, key, fields{
			"key_context": w.str(&t.KeyContext),
			"columns":     func(n *yaml.Node, _ string) { colsNode = n },
		})
		w.columns(t, colsNode, key+".columns")
		if len(t.Columns) == 0 {
			w.errorf(k, key+".columns", "a configured table needs at least one encrypted column")
		}
		w.validateTable(t, key)
		c.Tables = append(c.Tables, t)
		c.tableIndex[t.QualifiedName()] = t
	})
	w.validateSharedKeys(c)
}

func (w *walker) columns(t *Table, n *yaml.Node, key string) {
	w.entries(n, key, func(k, v *yaml.Node, ckey string) {
		if !validIdentifier(k.Value) {
			w.errorf(k, ckey, "invalid column name (1 to %d bytes)", maxIdentifier)
			return
		}
		col := &Column{Table: t, Name: k.Value, OnError: OnErrorError, Line: k.Line}
		var typ, onErr string
		var readers []string
		readersSet := false
		w.mapping(v, ckey, fields{
			"type": w.str(&typ),
			"blind_index": func(n *yaml.Node, bkey string) {
				if isNull(n) {
					return
				}
				bi := &BlindIndex{}
				var next *yaml.Node
				w.blindIndex(n, bkey, bi, fields{
					"next": func(n *yaml.Node, _ string) { next = n },
				})
				if bi.Key == "" {
					bi.Key = t.QualifiedName() + "." + col.Name
				}
				if next != nil && !isNull(next) {
					nkey := bkey + ".next"
					nb := &BlindIndex{Unique: bi.Unique}
					w.blindIndex(next, nkey, nb, nil)
					if _, set := w.nodes[nkey+".normalize"]; !set {
						nb.Normalize = bi.Normalize
					}
					if w.required(nkey+".key", nb.Key) && nb.Key == bi.Key {
						w.fail(nkey+".key", "is the current index key %q; a rotation needs a new key name", bi.Key)
					}
					if nb.Column != "" && nb.Column == bi.Column {
						w.fail(nkey+".column", "is the current blind-index column %q; the next index needs a column of its own", bi.Column)
					}
					bi.Next = nb
				}
				col.BlindIndex = bi
			},
			"readers": func(n *yaml.Node, rkey string) {
				readersSet = true
				w.strings(&readers)(n, rkey)
			},
			"on_error": func(n *yaml.Node, key string) {
				// `on_error: null`, as the docs write it, is a YAML null:
				// it names the choice null, not a missing value (an empty
				// `on_error:` is the default).
				if isNull(n) && n != nil && n.Value != "" {
					onErr = string(OnErrorNull)
					return
				}
				w.str(&onErr)(n, key)
			},
		})
		if w.required(ckey+".type", typ) {
			lt, ok := ParseLogicalType(typ)
			if !ok {
				w.fail(ckey+".type", "unknown logical type %q; want one of %s", typ, logicalTypeList())
			}
			col.Type = lt
		}
		if readersSet {
			col.Readers = append([]string{}, readers...)
		}
		switch onErr {
		case "", string(OnErrorError):
		case string(OnErrorNull):
			col.OnError = OnErrorNull
		default:
			w.fail(ckey+".on_error", "unknown choice %q; want error or null", onErr)
		}
		t.Columns = append(t.Columns, col)
		t.colIndex[col.Name] = col
	})
}

// blindIndex decodes the fields a blind index and its next (rotation)
// index share, plus extra.
func (w *walker) blindIndex(n *yaml.Node, key string, bi *BlindIndex, extra fields) {
	var norms []string
	f := fields{
		"column":    w.str(&bi.Column),
		"normalize": w.strings(&norms),
		"key":       w.str(&bi.Key),
		"unique":    w.boolean(&bi.Unique),
	}
	for k, v := range extra {
		f[k] = v
	}
	w.mapping(n, key, f)
	for i, s := range norms {
		switch nm := Normalization(s); nm {
		case NormLowercase, NormTrim, NormNFC:
			bi.Normalize = append(bi.Normalize, nm)
		default:
			w.errorf(n, key+".normalize", "item %d: unknown normalization %q; want lowercase, trim or nfc", i, s)
		}
	}
	if w.required(key+".column", bi.Column) && !validIdentifier(bi.Column) {
		w.fail(key+".column", "invalid column name (1 to %d bytes)", maxIdentifier)
	}
	if strings.HasPrefix(bi.Key, "pgveil:") {
		w.fail(key+".key", "names starting with \"pgveil:\" are reserved for pgveil's own keys")
	}
}

// validateTable checks the relations between a table's columns.
func (w *walker) validateTable(t *Table, key string) {
	if t.KeyContext != "" {
		if !validIdentifier(t.KeyContext) {
			w.fail(key+".key_context", "invalid column name")
		}
		if t.colIndex[t.KeyContext] != nil {
			w.fail(key+".key_context", "column %q is encrypted; the tenant column must be stored in plaintext", t.KeyContext)
		}
	}
	bidx := map[string]string{}
	for _, c := range t.Columns {
		bkey := key + ".columns." + c.Name + ".blind_index"
		for _, bi := range c.IndexTargets() {
			b := bi.Column
			switch {
			case b == "":
			case t.colIndex[b] != nil:
				w.fail(bkey+".column", "%q is an encrypted column; the blind index needs a column of its own", b)
			case b == t.KeyContext:
				w.fail(bkey+".column", "%q is the key_context column", b)
			case bidx[b] != "":
				w.fail(bkey+".column", "%q is already the blind index of %s", b, bidx[b])
			}
			bidx[b] = c.Name
			bkey += ".next"
		}
	}
}

// validateSharedKeys checks that columns naming the same index key hash the
// same way, since a JOIN between them compares their blind indexes.
func (w *walker) validateSharedKeys(c *Config) {
	type use struct {
		col *Column
		bi  *BlindIndex
	}
	first := map[string]use{}
	for _, t := range c.Tables {
		for _, col := range t.Columns {
			key := "tables." + t.QualifiedName() + ".columns." + col.Name + ".blind_index"
			for _, bi := range col.IndexTargets() {
				k := bi.Key
				prev, seen := first[k]
				if !seen {
					first[k] = use{col, bi}
					key += ".next"
					continue
				}
				if prev.col.Type != col.Type {
					w.fail(key+".key", "shares index key %q with %s but has type %s, not %s", k, prev.col.QualifiedName(), col.Type, prev.col.Type)
				}
				if !sameNorms(prev.bi.Normalize, bi.Normalize) {
					w.fail(key+".normalize", "shares index key %q with %s but normalizes differently", k, prev.col.QualifiedName())
				}
				key += ".next"
			}
		}
	}
}

func sameNorms(a, b []Normalization) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// splitTableName splits "schema.table" (or "table", meaning public).
func splitTableName(s string) (schema, name string, ok bool) {
	schema, name, found := strings.Cut(s, ".")
	if !found {
		schema, name = "public", s
	}
	return schema, name, validIdentifier(schema) && validIdentifier(name) && !strings.Contains(name, ".")
}

func validIdentifier(s string) bool {
	return s != "" && len(s) <= maxIdentifier && !strings.ContainsAny(s, "\x00")
}

func logicalTypeList() string {
	names := make([]string, len(LogicalTypes))
	for i, t := range LogicalTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}
