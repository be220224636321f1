package rewrite

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// Review of d06b9e2: a blind-index column the client writes beside its
// encrypted column gets pgveil's index in place of the client's value.

// unreferencedPass lists the parameters of p's statements that pgveil
// forwards as the client sent them (Action Pass) although the rewritten
// text no longer names them: the server gets a value no statement text
// asked for.
func unreferencedPass(t *testing.T, sql string, p *Plan) []string {
	t.Helper()
	text, err := renderMarked(sql, p)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	used := map[int]bool{}
	l := lexer{s: text}
	for tok := l.next(); tok.kind != tEOF && tok.kind != tError; tok = l.next() {
		if tok.kind == tParam {
			if n, err := strconv.Atoi(text[tok.start+1 : tok.end]); err == nil {
				used[n] = true
			}
		}
	}
	var out []string
	for _, st := range p.Stmts {
		for j, pr := range st.Params {
			if pr.Action == Pass && !used[j+1] {
				out = append(out, "$"+strconv.Itoa(j+1)+" (the client's $"+strconv.Itoa(pr.Client+1)+")")
			}
		}
	}
	return out
}

// TestWritebackReviewSharedParamForwardedPlain (HIGH): when the client's
// parameter that pgveil drops from a blind-index column is also used
// elsewhere (or the column's own value is bound to the index column too),
// assignParams counts the dropped use neither as replaced (replaced[])
// nor as removed: paramCount != replaced, so the parameter is taken to
// keep a plain use, stays Pass at its own number, and its encrypted use
// moves to a new number. The rewritten text names it nowhere, yet the
// proxy binds the client's value as it came: the plaintext of an
// encrypted column reaches PostgreSQL (in the Bind; in its log with
// log_statement / log_min_duration_statement; the statement succeeds
// whenever the client declared the parameter's type, as pgjdbc, npgsql
// and libpq callers with paramTypes do).
//
//	INSERT INTO contacts (email, email_bidx) VALUES ($1, $1)
//	→ INSERT INTO contacts (email, email_bidx) VALUES ($2, $3)
//	  $1 = pass (the plaintext email), $2 = encrypt($1), $3 = index($1)
func TestWritebackReviewSharedParamForwardedPlain(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		// the column's value bound to its index column too
		"INSERT INTO contacts (email, email_bidx) VALUES ($1, $1)",
		"UPDATE contacts SET email = $1, email_bidx = $1 WHERE id = $2",
		// the dropped parameter is another encrypted column's value
		"INSERT INTO users (email, email_bidx, ssn, org_id) VALUES ($1, $2, $2, $3)",
		// the dropped parameter is compared with the encrypted column
		"UPDATE users SET email = $1, email_bidx = $2 WHERE email = $2 AND org_id = $3",
		// dropped in one VALUES row, the encrypted value of the next
		"INSERT INTO contacts (email, email_bidx) VALUES ($1, $2), ($2, $3)",
		// ON CONFLICT: the SET's value also bound to the SET's index
		"INSERT INTO contacts (id, email) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET email = $3, email_bidx = $3",
	} {
		pl, err := p.Plan(sql, publicPath)
		if err != nil {
			continue // a refusal is fine
		}
		if un := unreferencedPass(t, sql, pl); len(un) > 0 {
			t.Errorf("%s\n  forwards %s as sent, unused by the text:\n%s", sql, strings.Join(un, ", "), dumpPlan(sql, pl))
		}
	}
}

// TestWritebackReviewDuplicateColumns (LOW): a column listed twice.
// PostgreSQL refuses both, but pgveil first forwards the client's value of
// the first email_bidx as sent (Pass), and answers the doubled source
// column with an internal error (XX000 "overlapping rewrite") instead of
// a refusal that says what is wrong.
func TestWritebackReviewDuplicateColumns(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		"INSERT INTO contacts (email, email_bidx, email_bidx) VALUES ($1, $2, $3)",
		"UPDATE contacts SET email = $1, email_bidx = $2, email_bidx = $3",
	} {
		pl, err := p.Plan(sql, publicPath)
		if err != nil {
			continue
		}
		for _, pr := range pl.Stmts[0].Params {
			if pr.Action == Pass && pr.Client == 1 {
				t.Errorf("%s: the client's $2 of email_bidx is forwarded as sent:\n%s", sql, dumpPlan(sql, pl))
			}
		}
	}
	for _, sql := range []string{
		"INSERT INTO contacts (email, email, email_bidx) VALUES ($1, $2, $3)",
		"UPDATE contacts SET email = $1, email = $2, email_bidx = $3",
	} {
		_, err := p.Plan(sql, publicPath)
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("%s: %v, want a refusal", sql, err)
			continue
		}
		if pe.Code == CodeInternalError {
			t.Errorf("%s: internal error %q, want a refusal naming the doubled column", sql, pe.Message)
		}
	}
}

// TestWritebackReviewHeld: shapes that must store pgveil's index and never
// forward the client's value of the index column.
func TestWritebackReviewHeld(t *testing.T) {
	p := newTestPlanner(t)
	r := rotationPlanner(t)
	type c struct {
		rot  bool
		sql  string
		want string // rendered text; "" for a refusal
		code string
		prm  string // paramSummary
	}
	for _, tc := range []c{
		{sql: "INSERT INTO contacts (email, email_bidx) VALUES ($2, $1)", want: "INSERT INTO contacts (email, email_bidx) VALUES ($2, $3)", prm: "$1=ignore $2=encrypt:email $3=index:email<-$2"},
		{sql: "INSERT INTO contacts (email, email_bidx) VALUES ($1, $2), ('a', $2), (NULL, $2), (DEFAULT, $2)",
			want: "INSERT INTO contacts (email, email_bidx) VALUES ($1, $3), ({encrypt:email}, {index:email}), (NULL, NULL), (DEFAULT, DEFAULT)", prm: "$1=encrypt:email $2=ignore $3=index:email<-$1"},
		{sql: "INSERT INTO contacts (email, email_bidx) VALUES ($1, $2), ($3, 'x'), ($4, NULL), ($5, DEFAULT)",
			want: "INSERT INTO contacts (email, email_bidx) VALUES ($1, $6), ($3, $7), ($4, $8), ($5, $9)"},
		{sql: "INSERT INTO contacts (email, email_bidx, note) VALUES ($1, $2, $2) RETURNING $2", want: "INSERT INTO contacts (email, email_bidx, note) VALUES ($1, $3, $2) RETURNING $2"},
		{sql: "INSERT INTO contacts (email, email_bidx) VALUES ($1::text, ((($2))::bytea))", want: "INSERT INTO contacts (email, email_bidx) VALUES ($1, ($3))", prm: "$1=encrypt:email $2=ignore $3=index:email<-$1"},
		{sql: "WITH x AS (INSERT INTO contacts (email, email_bidx) VALUES ($1, $2) RETURNING id) SELECT * FROM x", want: "WITH x AS (INSERT INTO contacts (email, email_bidx) VALUES ($1, $3) RETURNING id) SELECT * FROM x"},
		{sql: "UPDATE contacts SET email = DEFAULT, email_bidx = $1", want: "UPDATE contacts SET email = DEFAULT, email_bidx = DEFAULT", prm: "$1=ignore"},
		{sql: "UPDATE users SET email = $1, email_bidx = $2 WHERE id = $3", prm: "$1=encrypt:email/t=lookup $2=ignore $4=index:email<-$1 $5=tenant-lookup"},
		{sql: "INSERT INTO contacts (id, email, email_bidx) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET email = $4, email_bidx = $3",
			want: "INSERT INTO contacts (id, email, email_bidx) VALUES ($1, $2, $5) ON CONFLICT (id) DO UPDATE SET email = $4, email_bidx = $6"},
		// mixed ON CONFLICT: the EXCLUDED index is the inserted value's, not the SET's
		{sql: "INSERT INTO contacts (id, email, email_bidx) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET email = $4, email_bidx = EXCLUDED.email_bidx", code: "428C9"},
		{sql: "INSERT INTO contacts (id, email, email_bidx) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, email_bidx = $4", code: "428C9"},
		{sql: "INSERT INTO contacts (id, email, email_bidx) SELECT $1, $2, $3", code: "0A000"},
		{sql: "UPDATE contacts SET email = email, email_bidx = $1", code: "0A000"},
		{sql: "UPDATE contacts SET (email, email_bidx) = ($1, $2)", code: "0A000"},
		{sql: "UPDATE contacts SET email = $1, (email_bidx) = ROW($2)", code: "428C9"},
		{sql: "UPDATE contacts SET email = COALESCE($1, 'x'), email_bidx = $2", code: "428C9"},
		{sql: "MERGE INTO contacts c USING (SELECT 1 AS id) s ON c.id = s.id WHEN NOT MATCHED THEN INSERT (email, email_bidx) VALUES ($1, $2)", code: "0A000"},
		{sql: "MERGE INTO contacts c USING (SELECT 1 AS id) s ON c.id = s.id WHEN MATCHED THEN UPDATE SET email = $1, email_bidx = $2", code: "0A000"},
		{sql: "COPY contacts (email, email_bidx) FROM STDIN", code: "428C9"},
		{sql: "PREPARE s AS INSERT INTO public.contacts (email, email_bidx) VALUES ($1, $2)", code: "0A000"},
		// rotation: the current, the next, or both listed
		{rot: true, sql: "INSERT INTO accounts (org_id, email, email_bidx) VALUES ($1, $2, $3)",
			want: "INSERT INTO accounts (org_id, email, email_bidx2, email_bidx) VALUES ($1, $2, $5, $4)", prm: "$2=encrypt:email/t=$1 $3=ignore $4=index:email<-$2 $5=index-next:email<-$2"},
		{rot: true, sql: "INSERT INTO accounts (org_id, email, email_bidx2) VALUES ($1, $2, $3)",
			want: "INSERT INTO accounts (org_id, email, email_bidx, email_bidx2) VALUES ($1, $2, $4, $5)"},
		{rot: true, sql: "INSERT INTO accounts (org_id, email, email_bidx2, email_bidx) VALUES ($1, $2, $3, $3)",
			want: "INSERT INTO accounts (org_id, email, email_bidx2, email_bidx) VALUES ($1, $2, $5, $4)", prm: "$2=encrypt:email/t=$1 $3=ignore $4=index:email<-$2 $5=index-next:email<-$2"},
		{rot: true, sql: "UPDATE accounts SET email = $1, email_bidx2 = $2 WHERE org_id = $3",
			want: "UPDATE accounts SET email = $1, email_bidx = $4, email_bidx2 = $5 WHERE org_id = $3"},
		{rot: true, sql: "INSERT INTO accounts (org_id, email, email_bidx, email_bidx2) VALUES (1, 'a', '\\x00', NULL)",
			want: "INSERT INTO accounts (org_id, email, email_bidx, email_bidx2) VALUES (1, {encrypt:email}, {index:email}, {index-next:email})"},
		{rot: true, sql: "INSERT INTO accounts (org_id, email, email_bidx) VALUES ($1, $2, $3) ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email, email_bidx = EXCLUDED.email_bidx2", code: "428C9"},
	} {
		pl := p
		if tc.rot {
			pl = r
		}
		plan, err := pl.Plan(tc.sql, publicPath)
		if tc.code != "" {
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != tc.code {
				t.Errorf("%s: %v, want %s", tc.sql, err, tc.code)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.sql, err)
			continue
		}
		got, err := renderMarked(tc.sql, plan)
		if err != nil {
			t.Fatal(err)
		}
		if tc.want != "" && got != tc.want {
			t.Errorf("%s\n  got  %s\n  want %s", tc.sql, got, tc.want)
		}
		if tc.prm != "" {
			if s := paramSummary(plan); s != tc.prm {
				t.Errorf("%s\n  params %s\n  want   %s", tc.sql, s, tc.prm)
			}
		}
		if un := unreferencedPass(t, tc.sql, plan); len(un) > 0 {
			t.Errorf("%s: forwards %v unused", tc.sql, un)
		}
	}
}

// TestWritebackReviewShapes: two texts of one shape plan alike with a
// written-back index among their literals.
func TestWritebackReviewShapes(t *testing.T) {
	for _, c := range [][2]string{
		{`INSERT INTO contacts (email, email_bidx) VALUES ('a', '\x01')`, `INSERT INTO contacts (email, email_bidx) VALUES ('much longer', '\x0203040506')`},
		{`INSERT INTO contacts (email_bidx, id, email) VALUES ('\x0101', 1, 'a'), ('', 22, 'bbbb')`, `INSERT INTO contacts (email_bidx, id, email) VALUES ('', 1000, ''), ('\x09', 2, 'c')`},
		{`INSERT INTO users (org_id, email, email_bidx) VALUES (1, 'a', $1)`, `INSERT INTO users (org_id, email, email_bidx) VALUES (12345, 'aaaaaaa', $1)`},
		{`INSERT INTO users (org_id, email, email_bidx) VALUES ($1, $2, 'x')`, `INSERT INTO users (org_id, email, email_bidx) VALUES ($1, $2, 'xyzxyz')`},
		{`UPDATE users SET email_bidx = '\x00', email = 'a' WHERE org_id = 3`, `UPDATE users SET email_bidx = '\x0000000000', email = 'abcdef' WHERE org_id = 300000`},
		{`UPDATE users SET email = 'a', email_bidx = 'b' WHERE id = 3`, `UPDATE users SET email = 'aaaa', email_bidx = 'bbbbbbb' WHERE id = 30`},
		{`INSERT INTO contacts (id, email, email_bidx) VALUES (1, 'a', 'b') ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, email_bidx = EXCLUDED.email_bidx`,
			`INSERT INTO contacts (id, email, email_bidx) VALUES (1000, 'aaaa', '') ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, email_bidx = EXCLUDED.email_bidx`},
	} {
		hit, diff := shapePair(t, c[0], c[1], publicPath, nil)
		if diff != "" {
			t.Errorf("%s\nthen %s (shape hit %v):\n%s", c[0], c[1], hit, diff)
		}
	}
}
