package rewrite

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClientPosition(t *testing.T) {
	// at is the 1-based character position of the first occurrence of
	// marker in s, as the server reports it.
	at := func(s, marker string) string {
		i := strings.Index(s, marker)
		if i < 0 {
			t.Fatalf("%q not in %q", marker, s)
		}
		return strconv.Itoa(utf8.RuneCountInString(s[:i]) + 1)
	}
	const ct = `'\x0102a1b2c3d4e5f60718293a4b5c6d7e8f'`
	for _, tc := range []struct {
		name, orig, sent string
		pos              string // in sent
		want             string // in orig; "" = not mappable
	}{
		{name: "same text", orig: "SELECT nosuch", sent: "SELECT nosuch", pos: "8", want: "8"},
		{name: "after a replaced literal",
			orig: "SELECT name FROM t WHERE email = 'a@b.c' AND nosuch = 1",
			sent: "SELECT name FROM t WHERE email_bidx = " + ct + " AND nosuch = 1",
			pos:  at("SELECT name FROM t WHERE email_bidx = "+ct+" AND nosuch = 1", "nosuch"), want: "46"},
		{name: "inside a replaced literal: its start",
			orig: "INSERT INTO t (a, b) VALUES ('x', 'plain')",
			sent: "INSERT INTO t (a, b) VALUES ('x', " + ct + ")",
			pos:  at("INSERT INTO t (a, b) VALUES ('x', "+ct+")", "a1b2"), want: "35"},
		{name: "a kept token after inserted ones",
			orig: "UPDATE t SET email = 'v' WHERE id = 1",
			sent: "UPDATE t SET email = " + ct + ", email_bidx = " + ct + " WHERE id = 1",
			pos:  at("UPDATE t SET email = "+ct+", email_bidx = "+ct+" WHERE id = 1", "WHERE"), want: "26"},
		{name: "inserted select-list column maps to the token after it",
			orig: "SELECT phone FROM t WHERE nosuch",
			sent: "SELECT phone, org_id FROM t WHERE nosuch",
			pos:  "15", want: "14"},
		{name: "a schema pinned before a name",
			orig: "INSERT INTO secrets (body) VALUES (nosuch)",
			sent: "INSERT INTO sp_other.secrets (body) VALUES (nosuch)",
			pos:  "45", want: "36"},
		{name: "pinned quoted name without a space",
			orig: `INSERT INTO"secrets"(body) VALUES (nosuch)`,
			sent: `INSERT INTO sp_other."secrets"(body) VALUES (nosuch)`,
			pos:  "46", want: "36"},
		{name: "the end of the text",
			orig: "SELECT email FROM t WHERE email = 'a' AND (",
			sent: "SELECT email, org_id FROM t WHERE email_bidx = " + ct + " AND (",
			pos:  strconv.Itoa(len("SELECT email, org_id FROM t WHERE email_bidx = "+ct+" AND (") + 1), want: strconv.Itoa(len("SELECT email FROM t WHERE email = 'a' AND (") + 1)},
		{name: "characters, not bytes",
			orig: "SELECT 'é', email FROM t WHERE email = 'ü' AND nosuch",
			sent: "SELECT 'é', email, org_id FROM t WHERE email_bidx = " + ct + " AND nosuch",
			pos:  at("SELECT 'é', email, org_id FROM t WHERE email_bidx = "+ct+" AND nosuch", "nosuch"), want: "48"},
		{name: "leading comment",
			orig: "/* c */ SELECT phone FROM t WHERE nosuch",
			sent: "/* c */ SELECT phone, org_id FROM t WHERE nosuch",
			pos:  "2", want: "2"},
		{name: "second statement",
			orig: "SELECT 1; INSERT INTO t (email) VALUES ('a'); SELECT nosuch",
			sent: "SELECT 1; INSERT INTO t (email, email_bidx) VALUES (" + ct + ", " + ct + "); SELECT nosuch",
			pos:  at("SELECT 1; INSERT INTO t (email, email_bidx) VALUES ("+ct+", "+ct+"); SELECT nosuch", "nosuch"), want: "54"},
		{name: "edits next to each other: the second of two pinned names",
			orig: "SELECT * FROM a, a",
			sent: "SELECT * FROM s.a, s.a",
			pos:  "20", want: "18"},
		{name: "the operator between a renamed column and a ciphertext",
			orig: "SELECT 1 FROM t WHERE email = 'a'",
			sent: "SELECT 1 FROM t WHERE email_bidx = " + ct,
			pos:  "34", want: "29"},
		{name: "a renamed column: the client's column",
			orig: "SELECT 1 FROM t WHERE email = 'a'",
			sent: "SELECT 1 FROM t WHERE email_bidx = " + ct,
			pos:  "27", want: "23"},
		{name: "after a long IN list of ciphertexts",
			orig: "SELECT 1 FROM t WHERE email IN (" + strings.Repeat("'p', ", 40) + "'q') AND nosuch",
			sent: "SELECT 1 FROM t WHERE email_bidx IN (" + strings.Repeat(ct+", ", 40) + ct + ") AND nosuch",
			pos:  at("SELECT 1 FROM t WHERE email_bidx IN ("+strings.Repeat(ct+", ", 40)+ct+") AND nosuch", "nosuch"),
			want: at("SELECT 1 FROM t WHERE email IN ("+strings.Repeat("'p', ", 40)+"'q') AND nosuch", "nosuch")},
		{name: "not a number", orig: "SELECT a", sent: "SELECT b", pos: "x", want: ""},
		{name: "zero", orig: "SELECT a", sent: "SELECT b", pos: "0", want: ""},
		{name: "past the end", orig: "SELECT a", sent: "SELECT b", pos: "10", want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ClientPosition(tc.sent, tc.orig, tc.pos, false)
			if tc.want == "" {
				if ok {
					t.Fatalf("mapped %s to %s, want no mapping", tc.pos, got)
				}
				return
			}
			if !ok || got != tc.want {
				n, _ := strconv.Atoi(got)
				t.Fatalf("got %s (ok %v, %q), want %s", got, ok, fromCharTest(tc.orig, n), tc.want)
			}
		})
	}
}

// TestClientPositionKeptTokens: every token the rewrite kept maps to
// itself, whatever was inserted or replaced around it.
func TestClientPositionKeptTokens(t *testing.T) {
	orig := "INSERT INTO t (org_id, email, phone, note) VALUES (7, 'a@b', '555', 'n1'), (8, 'c@d', NULL, 'n2') RETURNING id, note"
	sent := "INSERT INTO app.t (org_id, email, email_bidx, phone, note) VALUES (7, '\\xaa', '\\xbb', '\\xcc', 'n1'), (8, '\\xdd', '\\xee', NULL, 'n2') RETURNING id, note, org_id"
	for _, tok := range []string{"INSERT", "org_id", "phone", "note", "VALUES", "7", "'n1'", "8", "NULL", "'n2'", "RETURNING"} {
		i, j := strings.Index(sent, tok), strings.Index(orig, tok)
		got, ok := ClientPosition(sent, orig, strconv.Itoa(i+1), false)
		if !ok || got != strconv.Itoa(j+1) {
			t.Errorf("%s: at %d of sent, mapped to %s, want %d", tok, i+1, got, j+1)
		}
	}
}

// TestClientPositionBounded: a text beyond posMaxLen, or one that keeps
// no token in step, is not mapped rather than mapped slowly.
func TestClientPositionBounded(t *testing.T) {
	long := "SELECT " + strings.Repeat("a, ", posMaxLen/3) + "b"
	if _, ok := ClientPosition(long+" ", long, "1", false); ok {
		t.Fatal("a text over posMaxLen was mapped")
	}
	// Too many tokens: dropped without lexing further.
	parens := strings.Repeat("(", posMaxLen-1)
	if _, ok := ClientPosition(parens+")", parens, "5", false); ok {
		t.Fatal("a text over posMaxTokens was mapped")
	}
	// More than posMaxEdits tokens apart: dropped, not pointed elsewhere.
	var a, b strings.Builder
	for i := 0; i < 20000; i++ {
		a.WriteString("x" + strconv.Itoa(i) + " ")
		b.WriteString("y" + strconv.Itoa(i) + " ")
	}
	if got, ok := ClientPosition(a.String(), b.String(), "100", false); ok {
		t.Fatalf("unrelated texts mapped to %s", got)
	}
	// Just within posMaxEdits: still mapped, exactly.
	a.Reset()
	b.Reset()
	for i := 0; i < posMaxEdits/2-2; i++ {
		a.WriteString("x" + strconv.Itoa(i) + " k ")
		b.WriteString("y" + strconv.Itoa(i) + " k ")
	}
	a.WriteString("nosuch")
	b.WriteString("nosuch")
	sent, orig := a.String(), b.String()
	got, ok := ClientPosition(sent, orig, strconv.Itoa(len(sent)-5), false)
	if want := strconv.Itoa(len(orig) - 5); !ok || got != want {
		t.Fatalf("%d edits: mapped to %s (ok %v), want %s", posMaxEdits-4, got, ok, want)
	}
}

func fromCharTest(s string, pos int) string {
	n := 1
	for i := range s {
		if n == pos {
			return s[i:]
		}
		n++
	}
	return ""
}

// FuzzClientPosition: pgveil's edits insert tokens and keep the others, so
// for any text and any insertions every kept token maps to itself; and no
// input panics.
func FuzzClientPosition(f *testing.F) {
	f.Add("SELECT a, b FROM t WHERE c = 'x' AND d = 1", uint64(7), "3")
	f.Add("INSERT INTO t (a) VALUES ($1), (E'\\\\x'), ($$q$$) RETURNING *; SELECT 1", uint64(99), "12")
	f.Add("/* c */ SELECT 'é' -- x\n, \"Q\"\"x\" FROM s.t", uint64(3), "40")
	f.Fuzz(func(t *testing.T, orig string, seed uint64, pos string) {
		if len(orig) > 4000 {
			return
		}
		// Arbitrary texts and positions: any answer, no panic.
		ClientPosition(orig+" x", orig, pos, false)
		ClientPosition(orig, strings.ToUpper(orig), pos, true)
		if !utf8.ValidString(orig) {
			return
		}
		toks, _ := lexAll(orig, false)
		if len(toks) > 400 {
			return
		}
		// Insert a fresh identifier before some tokens (and at the end).
		var b strings.Builder
		kept := make([]int, len(toks)) // start of each token in sent
		prev, r := 0, seed|1
		for i, tk := range toks {
			b.WriteString(orig[prev:tk.start])
			r ^= r << 13
			r ^= r >> 7
			r ^= r << 17
			if r%3 == 0 {
				b.WriteString(" zzqins" + strconv.Itoa(i) + " ")
			}
			kept[i] = b.Len()
			b.WriteString(orig[tk.start:tk.end])
			prev = tk.end
		}
		b.WriteString(orig[prev:])
		if seed%2 == 0 {
			b.WriteString(" zzqend")
		}
		sent := b.String()
		if got, _ := lexAll(sent, false); len(got) < len(toks) {
			return // the insertion changed how the text lexes (a token cut short by an error)
		}
		chars := func(s string, off int) string { return strconv.Itoa(utf8.RuneCountInString(s[:off]) + 1) }
		for i, tk := range toks {
			if tk.kind == tError {
				continue
			}
			got, ok := ClientPosition(sent, orig, chars(sent, kept[i]), false)
			if want := chars(orig, tk.start); !ok || got != want {
				t.Fatalf("token %d %q: at %s of sent %q mapped to %s (ok %v), want %s", i, orig[tk.start:tk.end], chars(sent, kept[i]), sent, got, ok, want)
			}
		}
	})
}
