package rewrite

// The pre-check decides, without parsing, that a statement cannot reference
// any configured table, so that most traffic never pays for pg_query (tens of
// microseconds per statement). It is conservative: a table name anywhere in
// the text, in any letter case, even inside a string or a comment, sends the
// statement to the parser, and so does any U& escape (U&"\0075sers" spells
// users). Quoted identifiers need no special case: "Users" contains users
// when folded, so it is parsed and then resolved exactly; a configured name
// containing a double quote is also searched for in its doubled form.

var lowerTable = func() (t [256]byte) {
	for i := range t {
		c := byte(i)
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		t[i] = c
	}
	return t
}()

type precheck struct {
	names [][]byte   // lower-cased needles: configured table names, their doubled-quote forms, and "u&"
	first [256]uint8 // bit k set: needle k (k < 8) starts with this byte, in either case; 0xff: needle ≥ 8
}

func newPrecheck(tableNames []string) *precheck {
	p := &precheck{}
	add := func(n string) {
		b := []byte(n)
		for i := range b {
			b[i] = lowerTable[b[i]]
		}
		if len(b) == 0 {
			return
		}
		bit := uint8(0xff)
		if len(p.names) < 8 {
			bit = 1 << len(p.names)
		}
		p.names = append(p.names, b)
		p.first[b[0]] |= bit
		if b[0] >= 'a' && b[0] <= 'z' {
			p.first[b[0]-('a'-'A')] |= bit
		}
	}
	// U&"..." and U&'...': any Unicode escape makes the text uncertain.
	add("u&")
	for _, n := range tableNames {
		add(n)
		if doubled := doubleQuotes(n); doubled != n {
			add(doubled)
		}
	}
	return p
}

func doubleQuotes(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		out = append(out, s[i])
		if s[i] == '"' {
			out = append(out, '"')
		}
	}
	return string(out)
}

// mayReference reports whether s may reference a configured table. It
// skips eight bytes at a time while none of them can start a needle.
func (p *precheck) mayReference(s string) bool {
	f := &p.first
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if f[s[i]]|f[s[i+1]]|f[s[i+2]]|f[s[i+3]]|f[s[i+4]]|f[s[i+5]]|f[s[i+6]]|f[s[i+7]] == 0 {
			continue
		}
		for j := i; j < i+8; j++ {
			if m := f[s[j]]; m != 0 && p.matchAt(s, j, m) {
				return true
			}
		}
	}
	for ; i < len(s); i++ {
		if m := f[s[i]]; m != 0 && p.matchAt(s, i, m) {
			return true
		}
	}
	return false
}

// matchAt reports whether a needle in mask m occurs at s[i:], ignoring ASCII case.
func (p *precheck) matchAt(s string, i int, m uint8) bool {
next:
	for k, n := range p.names {
		if k < 8 && m&(1<<k) == 0 || len(s)-i < len(n) {
			continue
		}
		if k >= 8 && lowerTable[s[i]] != n[0] {
			continue
		}
		for j := 1; j < len(n); j++ {
			if lowerTable[s[i+j]] != n[j] {
				continue next
			}
		}
		return true
	}
	return false
}

// containsFold reports whether s contains the lower-case ASCII word w in any case.
func containsFold(s, w string) bool {
outer:
	for i := 0; i+len(w) <= len(s); i++ {
		if lowerTable[s[i]] != w[0] {
			continue
		}
		for j := 1; j < len(w); j++ {
			if lowerTable[s[i+j]] != w[j] {
				continue outer
			}
		}
		return true
	}
	return false
}

// fastStmt plans, without parsing, a statement string that cannot reference
// a configured table. ok is false when the string must be parsed anyway:
// it may hold several statements, or change state the proxy tracks
// (search_path, prepared statements).
func fastStmt(s string) (st *Stmt, ok bool) {
	start, end := trimSpan(s, 0, len(s))
	if end > start && s[end-1] == ';' {
		end--
		_, end = trimSpan(s, start, end)
	}
	for i := start; i < end; i++ {
		if s[i] == ';' {
			return nil, false
		}
	}
	if containsFold(s, "search_path") || containsFold(s, "set_config") {
		return nil, false
	}
	l := lexer{s: s, pos: start}
	t := l.next()
	if t.kind != tIdent {
		return &Stmt{Kind: KindOther, Original: s[start:end], OriginalStart: start}, true
	}
	var buf [16]byte
	word := buf[:0]
	if t.end-t.start <= len(buf) {
		for i := t.start; i < t.end; i++ {
			word = append(word, lowerTable[s[i]])
		}
	}
	kind, ok := fastKinds[string(word)] // no allocation: map index by converted bytes
	if !ok {
		switch string(word) {
		case "set", "reset", "discard", "deallocate", "prepare":
			// SET SCHEMA 'x' changes search_path without naming it: parse
			// every SET (their plans are cached, they repeat).
			return nil, false
		}
		kind = KindOther
	}
	return &Stmt{Kind: kind, Original: s[start:end], OriginalStart: start}, true
}

var fastKinds = map[string]Kind{
	"select": KindSelect, "values": KindSelect, "table": KindSelect,
	"insert": KindInsert, "update": KindUpdate, "delete": KindDelete,
	"copy": KindCopy, "explain": KindExplain,
	"begin": KindTransaction, "start": KindTransaction, "commit": KindTransaction,
	"end": KindTransaction, "rollback": KindTransaction, "abort": KindTransaction,
	"savepoint": KindTransaction, "release": KindTransaction,
	"create": KindDDL, "alter": KindDDL, "drop": KindDDL, "truncate": KindDDL,
	"comment": KindDDL, "grant": KindDDL, "revoke": KindDDL, "refresh": KindDDL,
	"reindex": KindDDL, "cluster": KindDDL, "import": KindDDL, "security": KindDDL,
}

// trimSpan narrows [start,end) of s past leading and trailing whitespace.
func trimSpan(s string, start, end int) (int, int) {
	for start < end && isSpace(s[start]) {
		start++
	}
	for end > start && isSpace(s[end-1]) {
		end--
	}
	return start, end
}
