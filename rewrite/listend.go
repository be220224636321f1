package rewrite

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"
)

// listEnd returns where a select or RETURNING list ends: the end of its last
// token before the next clause keyword, an unmatched ")" or ";" at depth 0.
// pg_query records where each target starts but not where it ends.
func (a *analyzer) listEnd(list []*pg.Node) int {
	if len(list) == 0 {
		return -1
	}
	last := list[len(list)-1].GetResTarget()
	if last == nil {
		return -1
	}
	l := lexer{s: a.sql[:a.stmtEnd], pos: int(last.Location), backslash: a.backslash}
	end := int(last.Location)
	depth := 0
	var prev token
	prevWord := func(w string) bool { return l.isKeyword(prev, w) }
	for {
		t := l.next()
		if t.kind == tEOF || t.kind == tError {
			return end
		}
		if depth == 0 {
			if l.isPunct(t, ")") || l.isPunct(t, ";") {
				return end
			}
			if t.kind == tIdent && clauseWords[strings.ToLower(l.text(t))] && !prevWord("as") && !l.isPunct(prev, ".") &&
				!(l.isKeyword(t, "from") && prevWord("distinct")) && !(l.isKeyword(t, "group") && prevWord("within")) {
				return end
			}
		}
		switch {
		case l.isPunct(t, "(") || l.isPunct(t, "["):
			depth++
		case l.isPunct(t, ")") || l.isPunct(t, "]"):
			depth--
		}
		end, prev = t.end, t
	}
}

var clauseWords = map[string]bool{
	"from": true, "into": true, "where": true, "group": true, "having": true, "window": true,
	"order": true, "limit": true, "offset": true, "fetch": true, "for": true, "union": true,
	"intersect": true, "except": true, "returning": true,
}
