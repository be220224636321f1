package rewrite

import (
	"cmp"
	"slices"
	"strings"
)

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
	names [][]byte // lower-cased needles: configured table names, their doubled-quote forms, and "u&"
	// pair[c] has bit (d|0x20)&63 set when some needle starts with c (in
	// either case) followed by d: a two-byte filter that lets most
	// positions of ordinary SQL be skipped with one table load.
	pair  [256]uint64
	short bool // a one-byte needle exists: the last byte is checked too
}

func newPrecheck(tableNames []string) *precheck {
	// U&"..." and U&'...': any Unicode escape makes the text uncertain.
	needles := []string{"u&"}
	for _, n := range tableNames {
		needles = append(needles, n)
		if doubled := doubleQuotes(n); doubled != n {
			needles = append(needles, doubled)
		}
	}
	for i, n := range needles {
		needles[i] = lowerASCII(n)
	}
	// A needle that contains another is found whenever that one is: drop
	// it. Partitions named after their table (events_2025_01) then cost
	// the search nothing, however many there are.
	slices.SortFunc(needles, func(a, b string) int { return cmp.Compare(len(a), len(b)) })
	var kept []string
	for _, n := range needles {
		if n != "" && !slices.ContainsFunc(kept, func(k string) bool { return strings.Contains(n, k) }) {
			kept = append(kept, n)
		}
	}
	p := &precheck{}
	for _, n := range kept {
		b := []byte(n)
		p.names = append(p.names, b)
		mask := ^uint64(0)
		if len(b) > 1 {
			mask = 1 << ((b[1] | 0x20) & 63)
		} else {
			p.short = true
		}
		p.pair[b[0]] |= mask
		if b[0] >= 'a' && b[0] <= 'z' {
			p.pair[b[0]-('a'-'A')] |= mask
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

// mayReference reports whether s may reference a configured table.
func (p *precheck) mayReference(s string) bool {
	n := len(s) - 1
	for i := 0; i < n; i++ {
		m := p.pair[s[i]]
		if m == 0 || m&(1<<((s[i+1]|0x20)&63)) == 0 {
			continue
		}
		if p.matchAt(s, i) {
			return true
		}
	}
	return p.short && n >= 0 && p.matchAt(s, n)
}

// matchAt reports whether a needle occurs at s[i:], ignoring ASCII case.
func (p *precheck) matchAt(s string, i int) bool {
next:
	for _, n := range p.names {
		if len(s)-i < len(n) || lowerTable[s[i]] != n[0] {
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
func fastStmt(s string) (st Stmt, ok bool) {
	start, end := trimSpan(s, 0, len(s))
	if end > start && s[end-1] == ';' {
		end--
		_, end = trimSpan(s, start, end)
	}
	if strings.IndexByte(s[start:end], ';') >= 0 || sessionWords.mayReference(s) || containsFold(s, "u&") {
		// U&"…" identifiers may spell any name: parse.
		return Stmt{}, false
	}
	l := lexer{s: s, pos: start}
	t := l.next()
	if t.kind != tIdent {
		return Stmt{Kind: KindOther, Original: s[start:end], OriginalStart: start}, true
	}
	var buf [16]byte
	word := buf[:0]
	if t.end-t.start <= len(buf) {
		for i := t.start; i < t.end; i++ {
			word = append(word, lowerTable[s[i]])
		}
	}
	kind, ok := fastKinds[string(word)] // no allocation: map index by converted bytes
	if string(word) == "alter" {
		return Stmt{}, false // ALTER SCHEMA … RENAME names no table (reshape)
	}
	if string(word) == "create" && strings.IndexByte(s, '\\') >= 0 {
		// A function body in an E'…' string (or a '…' one while
		// standard_conforming_strings is off) may spell names with
		// escapes (E'UPDATE \165sers …'): the body check reads the
		// string's value.
		return Stmt{}, false
	}
	if string(word) == "create" && (containsFold(s, "function") || containsFold(s, "procedure")) &&
		(containsFold(s, "prepare") || containsFold(s, "deallocate") || containsFold(s, "execute")) {
		// A function body that prepares, deallocates or executes a
		// prepared statement is refused (bodyText); one of a single
		// statement (LANGUAGE sql, no ';') came here unread (review 21c
		// HIGH: CREATE FUNCTION … AS 'PREPARE ins … AS INSERT …' passed,
		// and ins, prepared in the server unseen, wrote plaintext into an
		// encrypted column after a view swap).
		return Stmt{}, false
	}
	if !ok {
		switch string(word) {
		case "set", "reset", "discard", "deallocate", "prepare", "do", "call", "declare", "fetch", "move", "close":
			// SET SCHEMA 'x' changes search_path without naming it: parse
			// every SET (their plans are cached, they repeat); DO and CALL
			// run code that may change it (Stmt.PathOpaque). DECLARE, FETCH
			// and CLOSE keep the proxy's view of cursors (Stmt.Cursor).
			return Stmt{}, false
		}
		kind = KindOther
	}
	return Stmt{Kind: kind, Original: s[start:end], OriginalStart: start}, true
}

// sessionWords finds text that may change search_path without naming a
// table: SET search_path, set_config('search_path', …), UPDATE pg_settings.
// It also finds pgveil's own prepared statement names (ReservedName), which
// EXECUTE, PREPARE and DEALLOCATE must not reach.
var sessionWords = newPrecheck([]string{"search_path", "set_config", "pg_settings", "pgveil_"})

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
