package integration

// Review 4 of 03d771d (relations hidden by a JOIN alias skipped by name;
// an aliased JOIN's columns and offsets built from its sides; JOIN …
// USING … AS and XMLTABLE … AS named in scope; Stmt.SameTenant one set per
// multi-row upsert), end to end: the real pgveil binary in front of
// PostgreSQL 15. Planner side: rewrite/review4_test.go.
//
// Failing at the time of the review (defects):
//   TestEncReview4FoundNestedUsingAliasPlaintext HIGH (introduced by
//                             03d771d): ((a JOIN b USING (id) AS x) JOIN c
//                             ON …) AS j2 hides x in PostgreSQL, which
//                             resolves x.email to the enclosing query's
//                             users x; pgveil resolves x to the USING alias
//                             (never marked hidden: it is not among the
//                             relations join() returns) and sends the
//                             literal compared with users.email as written.
//   TestEncReview4FoundJoinOffsetsPlaintext HIGH: an aliased JOIN's column
//                             list applied at pgveil's offsets, not
//                             PostgreSQL's: (1) a side that is an unaliased
//                             JOIN … USING (PostgreSQL puts the USING
//                             column first, once): j.h is users.email, pgveil
//                             takes it for users.name; (2) a first side
//                             pgveil cannot list (generate_series): the list
//                             renames PostgreSQL's function column first,
//                             pgveil's users columns first, so j.email is
//                             not found. The literal reaches the server.
//   TestEncReview4FoundJoinOffsetsUndecrypted MEDIUM: the same two
//                             layouts in a select list: the envelope of
//                             users.email is returned to the client as is.
// Attacks withstood: TestEncReview4SameTenantHolds (a literal-only set with
// a parameter value and no literal sealed, checked at Bind; a set mixing a
// literal and a parameter tenant in a pipeline of Binds of one prepared
// statement; a CTE's parameter set beside the main statement's literal
// set) and TestEncReview4HiddenHolds (hidden and visible relations of one
// name, a USING alias hidden directly by the join alias: rewritten to the
// blind index).

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const rev4Leak = "r4-leak@example.org"

func rev4Setup(t *testing.T, ctx context.Context) (*encProxy, *pgx.Conn) {
	t.Helper()
	p := startEncProxy(t, 9904, 10904)
	p.remember(rev4Leak, "r4-user@example.org", "ph-r4", "ph-r4-x", "ph-r4-y")
	conn := connectPgx(t, ctx, p.url())
	if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, name, email) VALUES (9904, 'r4', 'r4-user@example.org')`); err != nil {
		t.Fatal(err)
	}
	return p, conn
}

// rev4ServerText runs each sql (whose first field is current_query()) in
// the simple protocol and fails the test if the text the server
// received holds the plaintext.
func rev4ServerText(t *testing.T, ctx context.Context, conn *pgx.Conn, sqls ...string) {
	t.Helper()
	for _, sql := range sqls {
		var got string
		rows, err := conn.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		if err == nil {
			for rows.Next() {
				if v, verr := rows.Values(); verr == nil && len(v) > 0 {
					got, _ = v[0].(string)
				}
			}
			rows.Close()
			err = rows.Err()
		}
		if err == nil && strings.Contains(got, rev4Leak) {
			t.Errorf("%s\n the server received the plaintext compared with an encrypted column: %s", sql, got)
		}
	}
}

// TestEncReview4FoundNestedUsingAliasPlaintext: HIGH, plaintext to the server.
func TestEncReview4FoundNestedUsingAliasPlaintext(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	_, conn := rev4Setup(t, ctx)
	const inner = `(((SELECT 1 AS id) c JOIN (SELECT 1 AS id) o USING (id) AS x) JOIN (SELECT 1 AS z) o2 ON true) AS j2`
	rev4ServerText(t, ctx, conn,
		`SELECT current_query() FROM users x WHERE EXISTS (SELECT 1 FROM `+inner+` WHERE x.email = '`+rev4Leak+`' OR true) LIMIT 1`,
		`SELECT current_query() FROM users x WHERE EXISTS (SELECT 1 FROM `+inner+` WHERE x.ssn = '`+rev4Leak+`' OR true) LIMIT 1`,
	)
}

// TestEncReview4FoundJoinOffsetsPlaintext: HIGH, plaintext to the server.
// PostgreSQL: j(a…h) over (contacts c JOIN users u USING (id)) is id,
// c.org_id, c.email, c.email_bidx, c.note, u.org_id, u.name, u.email (h);
// j(a, b, c, d) over (generate_series g JOIN users u) renames g, u.id,
// u.org_id, u.name and leaves u.email.
func TestEncReview4FoundJoinOffsetsPlaintext(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	_, conn := rev4Setup(t, ctx)
	rev4ServerText(t, ctx, conn,
		`SELECT current_query(), (SELECT count(*) FROM ((contacts c JOIN users u USING (id)) JOIN (SELECT 1 AS z) o ON true) AS j(a, b, c, d, e, f, g, h) WHERE j.h = '`+rev4Leak+`')`,
		`SELECT current_query(), (SELECT count(*) FROM (generate_series(1, 1) g JOIN users u ON true) AS j(a, b, c, d) WHERE j.email = '`+rev4Leak+`')`,
	)
}

// TestEncReview4FoundJoinOffsetsUndecrypted: MEDIUM, an envelope returned
// undecrypted, silently.
func TestEncReview4FoundJoinOffsetsUndecrypted(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	_, conn := rev4Setup(t, ctx)
	for _, sql := range []string{
		`SELECT j.h FROM ((contacts c RIGHT JOIN users u USING (id)) JOIN (SELECT 1 AS z) o ON true) AS j(a, b, c, d, e, f, g, h)`,
		`SELECT j.email FROM (generate_series(1, 1) g JOIN users u ON true) AS j(a, b, c, d)`,
	} {
		var got []byte
		err := conn.QueryRow(ctx, sql).Scan(&got)
		if err == nil && string(got) != "r4-user@example.org" {
			t.Errorf("%s\n returned %q (%d bytes), want the plaintext or a refusal: users.email's envelope undecrypted", sql, got[:min(len(got), 16)], len(got))
		}
	}
}

// TestEncReview4HiddenHolds: names PostgreSQL resolves through aliased
// joins reach the blind index.
func TestEncReview4HiddenHolds(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	_, conn := rev4Setup(t, ctx)
	for _, sql := range []string{
		`SELECT current_query(), (SELECT count(*) FROM (users u JOIN orgs o ON o.id = u.org_id) AS j, users u WHERE u.email = 'r4-user@example.org')`,
		`SELECT current_query(), (SELECT count(*) FROM users x WHERE EXISTS (SELECT 1 FROM ((SELECT 1 AS id) c JOIN (SELECT 1 AS id) o USING (id) AS x) AS j WHERE x.email = 'r4-user@example.org'))`,
		`SELECT current_query(), (SELECT count(*) FROM ((users u JOIN orgs o ON o.id = u.org_id) AS j1(i, t) JOIN (SELECT 1 AS z) y ON true) AS j2 WHERE j2.email = 'r4-user@example.org')`,
	} {
		var text string
		var n int64
		if err := conn.QueryRow(ctx, sql, pgx.QueryExecModeSimpleProtocol).Scan(&text, &n); err != nil {
			t.Errorf("%s: %v", sql, err)
			continue
		}
		if strings.Contains(text, "r4-user@example.org") || n != 1 {
			t.Errorf("%s: server text %q, count %d (want the blind index, 1 row)", sql, text, n)
		}
	}
}

// TestEncReview4SameTenantHolds: the per-upsert sets.
func TestEncReview4SameTenantHolds(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p, conn := rev4Setup(t, ctx)
	p.remember("r4-a@example.org", "r4-b@example.org", "r4-c@example.org")
	refused := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "more than one tenant") {
			t.Errorf("%s: %v, want the refusal (more than one tenant)", what, err)
		}
		var one int
		if err := conn.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil || one != 1 {
			t.Fatalf("%s: the session after the refusal: %v", what, err)
		}
	}
	// Literal tenants, a parameter value, no literal sealed: checked at Bind.
	_, err := conn.Exec(ctx, `INSERT INTO users (org_id, name) VALUES (9904, 'r4-x'), (10904, 'r4-y') ON CONFLICT (id) DO UPDATE SET phone = $1`, "ph-r4-x")
	refused("literal tenants, parameter value", err)
	// A literal and a parameter tenant, a literal value: one prepared
	// statement, Bind after Bind.
	const mixed = `INSERT INTO users (org_id, email) VALUES (9904, $1), ($2, $3) ON CONFLICT (email) DO UPDATE SET phone = 'ph-r4-y'`
	if _, err := conn.Exec(ctx, mixed, "r4-a@example.org", 9904, "r4-b@example.org"); err != nil {
		t.Errorf("one tenant: %v", err)
	}
	_, err = conn.Exec(ctx, mixed, "r4-a@example.org", 10904, "r4-c@example.org")
	refused("mixed, second Bind names another tenant", err)
	if _, err := conn.Exec(ctx, mixed, "r4-a@example.org", "9904", "r4-b@example.org"); err != nil {
		t.Errorf("one tenant (as text), third Bind: %v", err)
	}
	// A CTE's set with parameters beside the main statement's literal set.
	_, err = conn.Exec(ctx, `WITH w AS (INSERT INTO users (org_id, email) VALUES ($1, $2), ($3, $4) ON CONFLICT (email) DO UPDATE SET phone = $5 RETURNING 1)
INSERT INTO users (org_id, name) VALUES (9904, 'r4-x'), (10904, 'r4-y') ON CONFLICT (id) DO UPDATE SET phone = $6`,
		9904, "r4-a@example.org", 9904, "r4-b@example.org", "ph-r4-x", "ph-r4-y")
	refused("CTE with one tenant, main statement with two", err)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM users WHERE org_id = 10904`).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows of org 10904: %d, %v (want none written)", n, err)
	}
}
