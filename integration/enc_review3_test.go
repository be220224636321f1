package integration

// Review 3 of f7261f2 (a multi-row INSERT … ON CONFLICT DO UPDATE SET
// col = v seals v once under the first row's tenant; Stmt.SameTenant and
// the proxy's sameTenant check) and 13cd963 (the hidden tenant named by
// rel.colIn), end to end: the real pgveil binary in front of PostgreSQL 15.
//
// Failing at the time of the review (defects):
//   TestEncReview3FoundTwoUpserts     HIGH: a statement with two multi-row
//                                     upserts (one in a data-modifying CTE)
//                                     keeps only the last one's
//                                     Stmt.SameTenant: the CTE's rows of
//                                     orgs 9801 and 10801 pass, and the
//                                     value its SET writes, sealed under
//                                     9801, lands in the row of 10801
//                                     (extended and simple protocol).
//   TestEncReview3FoundOtherTable     HIGH: sameTenant takes the table from
//                                     the last Encrypt parameter (or slot);
//                                     when that is contacts (no key_context:
//                                     a data-modifying CTE writing it), every
//                                     tenant reads as "" and the check
//                                     passes: the SET value sealed under
//                                     9801 lands in the row of 10801.
//   TestEncReview3FoundHiddenTenant   HIGH: the hidden tenant pgveil names
//                                     resolves to another relation: (1) the
//                                     outermost JOIN alias's column is named
//                                     after the base relation's column, but
//                                     an inner JOIN alias's column list
//                                     renamed it (j1(id, tid)), so j2.org_id
//                                     is another relation's org_id; (2) a
//                                     JOIN … USING (org_id) AS users alias
//                                     (PostgreSQL 14+) is not in pgveil's
//                                     scope; (3) an XMLTABLE's alias is not
//                                     in pgveil's scope. A client chooses the
//                                     tenant checked: an envelope of org 9801
//                                     moved into a row of org 10801 comes back
//                                     in plaintext.
//   TestEncReview3FoundHiddenRelationPlaintext HIGH: pgveil's scope keeps
//                                     the relations a JOIN's alias hides
//                                     (FROM users, (orgs users JOIN …) AS j):
//                                     users.email is taken for the hidden
//                                     orgs' column, and the literal compared
//                                     with it reaches the server in plaintext.
//   TestEncReview3FoundHiddenRelation MEDIUM: the same, in a select list:
//                                     the envelope returned undecrypted.
// Attacks withstood: TestEncReview3SameTenantHolds (equal tenants in other
// formats accepted, different ones refused, in a pipeline of Binds of one
// prepared statement, a NULL tenant, the session usable after each refusal)
// and TestEncReview3HiddenTenantHolds (the moved envelope refused through
// the forms pgveil names right).

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// rev3Phones returns email → phone (or "ERR:…" when pgveil refuses to
// open it) for the rows of the given emails, read through pgveil one by
// one.
func rev3Phones(t *testing.T, ctx context.Context, url string, emails ...string) map[string]string {
	t.Helper()
	conn := connectPgx(t, ctx, url)
	out := map[string]string{}
	for _, e := range emails {
		var ph *string
		err := conn.QueryRow(ctx, `SELECT phone FROM users WHERE email = $1`, e).Scan(&ph)
		switch {
		case err != nil:
			out[e] = "ERR:" + err.Error()
		case ph == nil:
			out[e] = "NULL"
		default:
			out[e] = *ph
		}
	}
	return out
}

// rev3Rows stores a row of org 9801 (email a) and one of org 10801
// (email b), both with phone ph-old.
func rev3Rows(t *testing.T, ctx context.Context, p *encProxy, conn *pgx.Conn, a, b string) {
	t.Helper()
	p.remember(a, b)
	if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, email, phone) VALUES (9801, $1, 'ph-old'), (10801, $2, 'ph-old')`, a, b); err != nil {
		t.Fatal(err)
	}
}

// rev3Args renames the emails r3-a@… and r3-b@… of args after case name.
func rev3Args(name string, args []any) []any {
	out := make([]any, len(args))
	for i, v := range args {
		if s, ok := v.(string); ok {
			v = strings.NewReplacer("r3-a@", "r3-"+name+"-a@", "r3-b@", "r3-"+name+"-b@").Replace(s)
		}
		out[i] = v
	}
	return out
}

func rev3Setup(t *testing.T, ctx context.Context) (*encProxy, *pgx.Conn) {
	t.Helper()
	p := startEncProxy(t, 9801, 10801)
	conn := connectPgx(t, ctx, p.url())
	p.remember("r3-a@example.org", "r3-b@example.org", "r3-c@example.org", "r3-d@example.org", "r3-e@example.org",
		"ph-old", "ph-x", "ph-y", "ph-z")
	if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, email, phone) VALUES (9801, 'r3-a@example.org', 'ph-old'), (10801, 'r3-b@example.org', 'ph-old')`); err != nil {
		t.Fatal(err)
	}
	return p, conn
}

// TestEncReview3FoundTwoUpserts: HIGH, a value sealed under another
// tenant. The statement's first upsert (in the CTE) names orgs 9801 and
// 10801; the second, one org. pgveil checks only the second.
func TestEncReview3FoundTwoUpserts(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p, conn := rev3Setup(t, ctx)
	for _, c := range []struct {
		name string
		sql  string
		args []any
	}{
		{"extended", `WITH w AS (INSERT INTO users (org_id, email) VALUES ($1, $2), ($3, $4) ON CONFLICT (email) DO UPDATE SET phone = $5 RETURNING 1)
INSERT INTO users (org_id, email) VALUES ($6, $7), ($8, $9) ON CONFLICT (email) DO UPDATE SET phone = $10`,
			[]any{9801, "r3-a@example.org", 10801, "r3-b@example.org", "ph-x", 9801, "r3-c@example.org", 9801, "r3-d@example.org", "ph-y"}},
		{"simple", `WITH w AS (INSERT INTO users (org_id, email) VALUES (9801, 'r3-a@example.org'), (10801, 'r3-b@example.org') ON CONFLICT (email) DO UPDATE SET phone = 'ph-z' RETURNING 1)
INSERT INTO users (org_id, email) VALUES (9801, 'r3-c@example.org'), (9801, 'r3-e@example.org') ON CONFLICT (email) DO UPDATE SET phone = 'ph-z'`,
			[]any{pgx.QueryExecModeSimpleProtocol}},
	} {
		a, b := "r3-"+c.name+"-a@example.org", "r3-"+c.name+"-b@example.org"
		rev3Rows(t, ctx, p, conn, a, b)
		_, err := conn.Exec(ctx, strings.NewReplacer("r3-a@", "r3-"+c.name+"-a@", "r3-b@", "r3-"+c.name+"-b@").Replace(c.sql), rev3Args(c.name, c.args)...)
		if err == nil || !strings.Contains(err.Error(), "more than one tenant") {
			t.Errorf("%s: two tenants in the CTE's upsert: %v, want the refusal (more than one tenant)", c.name, err)
		}
		if got := rev3Phones(t, ctx, p.url(), b)[b]; got != "ph-old" {
			t.Errorf("%s: the row of org 10801 now holds %q: a value sealed under org 9801 was written into it", c.name, got)
		}
	}
}

// TestEncReview3FoundOtherTable: HIGH, a value sealed under another
// tenant. sameTenant checks the tenants against the table of the last
// Encrypt parameter; a CTE writing contacts (no key_context) makes that
// table contacts, and every tenant compares equal ("").
func TestEncReview3FoundOtherTable(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p, conn := rev3Setup(t, ctx)
	p.remember("r3-contact@example.org")
	for _, c := range []struct {
		name string
		sql  string
		args []any
	}{
		{"param", `WITH w AS (INSERT INTO contacts (org_id, email) VALUES (9801, $6) RETURNING 1)
INSERT INTO users (org_id, email) VALUES ($1, $2), ($3, $4) ON CONFLICT (email) DO UPDATE SET phone = $5`,
			[]any{9801, "r3-a@example.org", 10801, "r3-b@example.org", "ph-x", "r3-contact@example.org"}},
		{"literal", `WITH w AS (INSERT INTO contacts (org_id, email) VALUES (9801, 'r3-contact@example.org') RETURNING 1)
INSERT INTO users (org_id, email) VALUES ($1, $2), ($3, $4) ON CONFLICT (email) DO UPDATE SET phone = $5`,
			[]any{9801, "r3-a@example.org", 10801, "r3-b@example.org", "ph-y"}},
	} {
		a, b := "r3-"+c.name+"-a@example.org", "r3-"+c.name+"-b@example.org"
		rev3Rows(t, ctx, p, conn, a, b)
		_, err := conn.Exec(ctx, c.sql, rev3Args(c.name, c.args)...)
		if err == nil || !strings.Contains(err.Error(), "more than one tenant") {
			t.Errorf("%s: two tenants beside a write to contacts: %v, want the refusal (more than one tenant)", c.name, err)
		}
		if got := rev3Phones(t, ctx, p.url(), b)[b]; got != "ph-old" {
			t.Errorf("%s: the row of org 10801 now holds %q: a value sealed under org 9801 was written into it", c.name, got)
		}
	}
}

// TestEncReview3SameTenantHolds: attacks on the check that hold.
func TestEncReview3SameTenantHolds(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p, conn := rev3Setup(t, ctx)
	const up = `INSERT INTO users (org_id, email) VALUES ($1, $2), ($3, $4) ON CONFLICT (email) DO UPDATE SET phone = $5`
	refused := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "more than one tenant") {
			t.Fatalf("%s: %v, want the refusal", what, err)
		}
		// The session stays usable.
		var one int
		if err := conn.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil || one != 1 {
			t.Fatalf("%s: the session after the refusal: %v", what, err)
		}
	}
	// Different tenants: binary int8 beside text (pgx sends a string as
	// text), and an int8 beside the text of another.
	_, err := conn.Exec(ctx, up, 9801, "r3-a@example.org", "10801", "r3-b@example.org", "ph-x")
	refused("9801 (binary) beside '10801' (text)", err)
	_, err = conn.Exec(ctx, up, "9801", "r3-a@example.org", int64(10801), "r3-b@example.org", "ph-x")
	refused("'9801' (text) beside 10801 (binary)", err)
	// A NULL tenant.
	if _, err := conn.Exec(ctx, up, 9801, "r3-a@example.org", nil, "r3-b@example.org", "ph-x"); err == nil {
		t.Fatal("a NULL tenant was accepted")
	}
	// Equal tenants in other formats: accepted (9801 binary, '09801' text, ' 9801' text).
	if _, err := conn.Exec(ctx, up, 9801, "r3-a@example.org", "09801", "r3-c@example.org", "ph-y"); err != nil {
		t.Fatalf("9801 beside '09801': %v", err)
	}
	// A pipeline of Binds of one prepared statement: the second names two
	// tenants and alone is refused.
	b := &pgx.Batch{}
	b.Queue(up, 9801, "r3-a@example.org", 9801, "r3-c@example.org", "ph-z")
	b.Queue(up, 9801, "r3-a@example.org", 10801, "r3-b@example.org", "ph-x")
	br := conn.SendBatch(ctx, b)
	_, err1 := br.Exec()
	_, err2 := br.Exec()
	br.Close()
	if err1 != nil || err2 == nil || !strings.Contains(err2.Error(), "more than one tenant") {
		t.Fatalf("pipeline: %v / %v", err1, err2)
	}
	// Literal tenants, simple protocol: '9801', 9801::int8 and '09801' are one tenant.
	if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, email) VALUES ('9801', 'r3-a@example.org'), (9801::int8, 'r3-c@example.org'), ('09801', 'r3-d@example.org') ON CONFLICT (email) DO UPDATE SET phone = 'ph-z'`,
		pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("literal tenants of one org: %v", err)
	}
	_, err = conn.Exec(ctx, `INSERT INTO users (org_id, email) VALUES ('9801', 'r3-a@example.org'), ('10801', 'r3-b@example.org') ON CONFLICT (email) DO UPDATE SET phone = 'ph-x'; SELECT 1`,
		pgx.QueryExecModeSimpleProtocol)
	refused("literal tenants of two orgs, two statements in one Query", err)
	got := rev3Phones(t, ctx, p.url(), "r3-a@example.org", "r3-b@example.org", "r3-c@example.org", "r3-d@example.org")
	want := map[string]string{"r3-a@example.org": "ph-z", "r3-b@example.org": "ph-old", "r3-c@example.org": "ph-z", "r3-d@example.org": "NULL"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	verifyAtRest(t, ctx, []string{"ph-x", "ph-y", "ph-z", "r3-c@example.org"})
}

// rev3Moved starts pgveil with orgs 9801 and 10801, stores a secret email
// in a row of org 9801 and (as an attacker with write access to the
// database) copies its envelope into a new row of org 10801.
func rev3Moved(t *testing.T, ctx context.Context, secret string) (*encProxy, int64) {
	t.Helper()
	p := startEncProxy(t, 9801, 10801)
	p.remember(secret)
	app := connectPgx(t, ctx, p.url())
	var victim, moved int64
	if err := app.QueryRow(ctx, `INSERT INTO users (org_id, name, email) VALUES (9801, 'victim', $1) RETURNING id`, secret).Scan(&victim); err != nil {
		t.Fatal(err)
	}
	su := superConn(t, ctx)
	if err := su.QueryRow(ctx, `INSERT INTO users (org_id, name, email) SELECT 10801, 'moved', email FROM users WHERE id = $1 RETURNING id`, victim).Scan(&moved); err != nil {
		t.Fatal(err)
	}
	var e string
	if err := app.QueryRow(ctx, `SELECT email FROM users WHERE id = $1`, moved).Scan(&e); err == nil {
		t.Fatalf("premise: the moved envelope was opened: %q", e)
	}
	return p, moved
}

// rev3Leaks runs sql ($1 = the moved row's id) and reports whether the
// secret came back.
func rev3Leaks(t *testing.T, ctx context.Context, url, sql string, moved int64, secret string) (string, bool) {
	t.Helper()
	conn := connectPgx(t, ctx, url)
	rows, err := conn.Query(ctx, sql, moved)
	if err != nil {
		return "error: " + err.Error(), false
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return "error: " + err.Error(), false
		}
		for _, v := range vals {
			switch v := v.(type) {
			case string:
				out = append(out, v)
			case []byte:
				out = append(out, string(v))
			default:
				out = append(out, fmt.Sprint(v))
			}
		}
	}
	if err := rows.Err(); err != nil {
		return "error: " + err.Error(), false
	}
	s := strings.Join(out, " | ")
	return s, strings.Contains(s, secret)
}

// TestEncReview3FoundHiddenTenant: HIGH, a value opened under another
// row's (here: the client's) tenant. Each query reads the moved row's
// email; pgveil adds the tenant under a name PostgreSQL resolves to a
// relation holding 9801.
func TestEncReview3FoundHiddenTenant(t *testing.T) {
	relayLeakCheck(t)
	const secret = "r3-secret@example.org"
	ctx := testCtx(t, time.Minute)
	p, moved := rev3Moved(t, ctx, secret)
	for _, sql := range []string{
		// (1) The appended tenant field: j2.org_id is x.org_id (j1 renamed users' org_id to tid).
		`SELECT email FROM ((users u JOIN (SELECT 1 AS one) z ON true) AS j1(id, tid) JOIN (SELECT 9801::int8 AS org_id) x ON true) AS j2 WHERE j2.id = $1`,
		// (1) The same in JSON.
		`SELECT json_build_array(email) FROM ((users u JOIN (SELECT 1 AS one) z ON true) AS j1(id, tid) JOIN (SELECT 9801::int8 AS org_id) x ON true) AS j2 WHERE j2.id = $1`,
		// (2) users.org_id is the JOIN … USING alias's org_id.
		`SELECT (SELECT json_build_array(email) FROM (SELECT 9801::int8 AS org_id) a JOIN (SELECT 9801::int8 AS org_id) b USING (org_id) AS users) FROM users WHERE id = $1`,
		// (3) users.org_id is the XMLTABLE's org_id.
		`SELECT (SELECT json_build_array(public.users.email) FROM XMLTABLE('/r' PASSING CAST('<r><a>9801</a></r>' AS xml) COLUMNS org_id int8 PATH 'a') AS users) FROM users WHERE id = $1`,
	} {
		if got, leaked := rev3Leaks(t, ctx, p.url(), sql, moved, secret); leaked {
			t.Errorf("%s\n returned the moved envelope of org 9801 in plaintext from a row of org 10801: %s", sql, got)
		}
	}
}

// TestEncReview3HiddenTenantHolds: the forms pgveil names right keep the
// moved envelope closed.
func TestEncReview3HiddenTenantHolds(t *testing.T) {
	relayLeakCheck(t)
	const secret = "r3-secret2@example.org"
	ctx := testCtx(t, time.Minute)
	p, moved := rev3Moved(t, ctx, secret)
	for _, sql := range []string{
		`SELECT email FROM ((users u JOIN (SELECT 1 AS one) z ON true) AS j1(id, tid) JOIN (SELECT 9801::int8 AS xo) x ON true) WHERE j1.id = $1`,
		`SELECT email FROM (users u JOIN (SELECT 9801::int8 AS org_id) x ON true) AS j(i, o) WHERE j.i = $1`,
		`SELECT email FROM ((users u JOIN (SELECT 9801::int8 AS oid2) x ON true) AS j1 JOIN (SELECT id AS oid, name AS oname FROM orgs) o ON o.oid = 9801) AS j2 WHERE j2.id = $1`,
		`SELECT (SELECT json_build_array(public.users.email) FROM (SELECT 9801::int8 AS org_id) users) FROM users WHERE id = $1`,
		`SELECT (SELECT json_build_array(email) FROM (VALUES (9801::int8)) v(org_id) JOIN (SELECT 1) q(x) ON true) FROM users WHERE id = $1`,
		`SELECT email FROM users JOIN (SELECT 9801::int8 AS org_id) x USING (org_id) AS users2 WHERE users.id = $1`,
		`SELECT u.email FROM users u, LATERAL (SELECT 9801::int8 AS org_id) l WHERE u.id = $1`,
		`WITH users AS (SELECT id, 9801::int8 AS org_id FROM public.users) SELECT p.email FROM public.users p JOIN users ON users.id = p.id WHERE p.id = $1`,
	} {
		if got, leaked := rev3Leaks(t, ctx, p.url(), sql, moved, secret); leaked {
			t.Errorf("%s\n returned the moved envelope in plaintext: %s", sql, got)
		} else {
			t.Logf("%s\n -> %s", sql, got)
		}
	}
}

// TestEncReview3FoundHiddenRelation: MEDIUM, undecrypted results returned
// silently. pgveil's scope keeps the relations a JOIN's alias hides, and
// finds a name there first: users.email is taken for a column of the
// hidden "orgs users" (not encrypted), while PostgreSQL reads the visible
// users' email. The client gets the envelope's bytes as if they were the
// value. (13cd963's colIn uses the same scope.find: it refuses a tenant
// name a hidden relation shares, LOW, and does not see the JOIN … USING
// and XMLTABLE aliases of TestEncReview3FoundHiddenTenant.)
func TestEncReview3FoundHiddenRelation(t *testing.T) {
	relayLeakCheck(t)
	const secret = "r3-secret3@example.org"
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9801, 10801)
	p.remember(secret)
	conn := connectPgx(t, ctx, p.url())
	var id int64
	if err := conn.QueryRow(ctx, `INSERT INTO users (org_id, email) VALUES (9801, $1) RETURNING id`, secret).Scan(&id); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`SELECT users.email FROM users, (orgs users JOIN orgs o ON true) AS j WHERE users.id = $1 LIMIT 1`,
		`SELECT (SELECT users.email FROM (orgs users JOIN orgs o ON true) AS j LIMIT 1) FROM users WHERE users.id = $1`,
	} {
		var got []byte
		err := conn.QueryRow(ctx, sql, id).Scan(&got)
		if err == nil && string(got) != secret {
			t.Errorf("%s\n returned %q (the envelope), neither the value nor a refusal", sql, got)
		}
	}
}

// TestEncReview3FoundHiddenRelationPlaintext: HIGH, plaintext to the
// server. The same hidden "orgs users" makes pgveil take users.email in a
// WHERE for a column it does not manage: the literal compared with the
// encrypted column reaches PostgreSQL as written (current_query() shows
// the text the server received), where it is logged and kept in
// pg_stat_statements.
func TestEncReview3FoundHiddenRelationPlaintext(t *testing.T) {
	relayLeakCheck(t)
	const leak = "r3-leak@example.org"
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9801, 10801)
	p.remember(leak)
	conn := connectPgx(t, ctx, p.url())
	if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, name) VALUES (9801, 'r3')`); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`SELECT current_query() FROM users, (orgs users JOIN orgs o ON true) AS j WHERE users.email = '` + leak + `' OR true LIMIT 1`,
		`SELECT (SELECT current_query() FROM (orgs users JOIN orgs o ON true) AS j WHERE users.ssn = '` + leak + `' OR true LIMIT 1) FROM users LIMIT 1`,
		`UPDATE users SET name = current_query() FROM (orgs users JOIN orgs o ON true) AS j WHERE users.email = '` + leak + `' OR true RETURNING users.name`,
	} {
		var got string
		err := conn.QueryRow(ctx, sql, pgx.QueryExecModeSimpleProtocol).Scan(&got)
		if err == nil && strings.Contains(got, leak) {
			t.Errorf("%s\n the server received the plaintext compared with an encrypted column: %s", sql, got)
		}
	}
}
