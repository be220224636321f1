package ops

import (
	"slices"
	"strings"

	"github.com/pgveil/pgveil/rewrite"
)

// rowWrites is what a PL/pgSQL trigger function's code assigns in NEW,
// the row a BEFORE ROW trigger hands back to be written.
type rowWrites struct {
	// Columns are the columns the code assigns through NEW, as stored
	// names (unquoted ones folded to lower case), each once, first first.
	Columns []string
	// Whole is how the code replaces the row as a whole ("NEW := …",
	// "SELECT … INTO NEW", "RETURN r"); "" when it does not. Which columns
	// change then, a textual test cannot tell.
	Whole string
}

// plpgsqlRowWrites reads PL/pgSQL source (pg_proc.prosrc) for assignments
// to NEW. A textual test over the words of the code, after comments and
// string constants are gone (so neither a comment nor a dynamic EXECUTE
// string counts):
//
//	NEW.col := …          anywhere (also NEW.col[i], NEW.col.field, and a
//	                      label-qualified fn.NEW.col)
//	NEW.col = …           at the start of a statement: after ;, BEGIN,
//	                      THEN, ELSE, LOOP, DECLARE or a <<label>>; elsewhere
//	                      = compares (IF NEW.col = 1 THEN)
//	… INTO [STRICT] NEW.col, …   SELECT, RETURNING, FETCH, EXECUTE targets
//	                      (not INSERT INTO or MERGE INTO)
//
// NEW is the word new in any case, or "new" quoted, or a name declared
// `ALIAS FOR NEW`; spaces and comments may stand around the dot, as
// PL/pgSQL's scanner allows. OLD.col is not NEW. `NEW := …`, `INTO NEW`
// and a RETURN of anything but NEW, OLD or NULL replace the row as a whole.
// Not seen: code that assigns a record variable and returns it, or writes
// the table with another statement (UPDATE, dynamic SQL).
func plpgsqlRowWrites(src string) (rowWrites, error) {
	words, err := rewrite.Words(src)
	if err != nil {
		return rowWrites{}, err
	}
	var out rowWrites
	rows := map[string]bool{"new": true}
	for i := 0; i+3 < len(words); i++ {
		if words[i].Kind == rewrite.WordName && keyword(words[i+1], "alias") && keyword(words[i+2], "for") &&
			words[i+3].Kind == rewrite.WordName && rows[words[i+3].Text] {
			rows[words[i].Text] = true
		}
	}
	w := rowWords{words: words, rows: rows}
	addColumn := func(c string) {
		if !slices.Contains(out.Columns, c) {
			out.Columns = append(out.Columns, c)
		}
	}
	whole := func(how string) {
		if out.Whole == "" {
			out.Whole = how
		}
	}
	for i := 0; i < len(words); i++ {
		switch {
		case w.isRow(i):
			start := i
			if i >= 2 && w.other(i-1, ".") && words[i-2].Kind == rewrite.WordName {
				start = i - 2 // a label-qualified fn.NEW
			}
			col, j := w.field(i + 1)
			switch {
			case w.other(j, ":") && w.assignOp(j+1):
			case w.assignOp(j) && w.statementStart(start):
			default:
				continue
			}
			if col == "" {
				whole("NEW := …")
			} else {
				addColumn(col)
			}
		case keyword(w.at(i), "into") && !(i > 0 && (keyword(words[i-1], "insert") || keyword(words[i-1], "merge"))):
			j := i + 1
			if keyword(w.at(j), "strict") {
				j++
			}
			for {
				if w.isRow(j) || w.at(j).Kind == rewrite.WordName && w.other(j+1, ".") && w.isRow(j+2) {
					if !w.isRow(j) {
						j += 2
					}
					var col string
					col, j = w.field(j + 1)
					if col == "" {
						whole("SELECT … INTO NEW")
					} else {
						addColumn(col)
					}
				} else if w.at(j).Kind == rewrite.WordName {
					j++
					for w.other(j, ".") && w.at(j+1).Kind == rewrite.WordName {
						j += 2
					}
				} else {
					break
				}
				if !w.other(j, ",") {
					break
				}
				j++
			}
			i = j - 1
		case keyword(w.at(i), "return") && w.statementStart(i):
			j := i + 1
			for j < len(words) && !w.other(j, ";") {
				j++
			}
			expr := words[i+1 : j]
			for len(expr) >= 2 && expr[0].Kind == rewrite.WordOther && expr[0].Text == "(" &&
				expr[len(expr)-1].Kind == rewrite.WordOther && expr[len(expr)-1].Text == ")" {
				expr = expr[1 : len(expr)-1]
			}
			switch {
			case len(expr) == 0:
			case len(expr) == 1 && expr[0].Kind == rewrite.WordName && (rows[expr[0].Text] || keyword(expr[0], "old") || keyword(expr[0], "null")):
			case expr[0].Kind == rewrite.WordName && len(expr) == 1:
				whole("RETURN " + expr[0].Text)
			case expr[0].Kind == rewrite.WordName:
				whole("RETURN " + expr[0].Text + " …")
			default:
				whole("RETURN …")
			}
			i = j
		}
	}
	return out, nil
}

// rowWords walks the words of a trigger function; rows are the names
// that stand for NEW.
type rowWords struct {
	words []rewrite.Word
	rows  map[string]bool
}

// at is the i-th word, or a zero WordOther past the end.
func (w rowWords) at(i int) rewrite.Word {
	if i < 0 || i >= len(w.words) {
		return rewrite.Word{Kind: rewrite.WordOther}
	}
	return w.words[i]
}

func (w rowWords) isRow(i int) bool {
	x := w.at(i)
	return x.Kind == rewrite.WordName && w.rows[x.Text]
}

func (w rowWords) other(i int, text string) bool {
	x := w.at(i)
	return x.Kind == rewrite.WordOther && x.Text == text
}

// field reads `.col` and what may follow it in an assignment target
// (`.field`, `[i]`) from i; it returns the column ("" when no `.col`
// follows) and where the target ends.
func (w rowWords) field(i int) (string, int) {
	if !w.other(i, ".") || w.at(i+1).Kind != rewrite.WordName {
		return "", i
	}
	col := w.at(i + 1).Text
	j := i + 2
	for {
		switch {
		case w.other(j, ".") && w.at(j+1).Kind == rewrite.WordName:
			j += 2
		case w.other(j, "["):
			depth := 0
			for ; j < len(w.words); j++ {
				if w.other(j, "[") {
					depth++
				} else if w.other(j, "]") {
					if depth--; depth == 0 {
						j++
						break
					}
				}
			}
		default:
			return col, j
		}
	}
}

// assignOp reports an = operator: "=" alone, or followed by signs that
// PostgreSQL's scanner splits off (x =-1 is x = -1).
func (w rowWords) assignOp(i int) bool {
	x := w.at(i)
	return x.Kind == rewrite.WordOther && strings.HasPrefix(x.Text, "=") && strings.Trim(x.Text[1:], "+-") == ""
}

// statementStart reports whether word i begins a PL/pgSQL statement.
func (w rowWords) statementStart(i int) bool {
	if i == 0 {
		return true
	}
	p := w.at(i - 1)
	if p.Kind == rewrite.WordOther {
		return p.Text == ";" || p.Text == ">>"
	}
	for _, kw := range []string{"begin", "then", "else", "loop", "declare"} {
		if keyword(p, kw) {
			return true
		}
	}
	return false
}

// keyword reports the unquoted keyword kw (lower case).
func keyword(x rewrite.Word, kw string) bool {
	return x.Kind == rewrite.WordName && !x.Quoted && x.Text == kw
}
