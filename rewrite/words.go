package rewrite

import "errors"

// WordKind classifies a Word.
type WordKind uint8

// Kinds of Word.
const (
	WordName   WordKind = iota // an identifier or keyword, quoted or not
	WordString                 // a string constant of any form; its text is dropped
	WordOther                  // a number, parameter, operator or punctuation
)

// Word is one token of SQL or PL/pgSQL source, for code outside this
// package that reads source textually (`pgveil check` reads trigger
// functions). Comments are gone, and string constants carry no text, so
// nothing in a comment or a literal can be taken for code.
type Word struct {
	Kind WordKind
	// Text is, for a WordName, the name PostgreSQL resolves: an unquoted
	// one folded to lower case, a quoted one without its quotes. For a
	// WordOther it is the source text: "(", ".", ":", "=", ">>", "42".
	Text   string
	Quoted bool // a "quoted" identifier: never a keyword
}

// errUnterminated is Words' error for source the lexer cannot finish.
var errUnterminated = errors.New("unterminated quoted string, identifier or comment")

// Words splits source into Words with the lexer the planner uses (nested
// /* */ comments, E'…' escapes, $tag$ quoting, "quoted" identifiers), with
// standard_conforming_strings on. It returns the words read so far and an
// error when a string, quoted identifier or comment does not end.
func Words(src string) ([]Word, error) {
	l := lexer{s: src}
	var out []Word
	for {
		t := l.next()
		switch t.kind {
		case tEOF:
			return out, nil
		case tError:
			return out, errUnterminated
		case tIdent, tQIdent:
			out = append(out, Word{Kind: WordName, Text: identValue(l.text(t), t.kind), Quoted: t.kind == tQIdent})
		case tString, tBitString:
			out = append(out, Word{Kind: WordString})
		default:
			out = append(out, Word{Kind: WordOther, Text: l.text(t)})
		}
	}
}
