package integration

// Review 14 (values computed on or copied inside the server, and values
// whose path pgveil misjudges), end to end; planner side and the full
// explanation: rewrite/review14_test.go and proxy/review14_test.go.
//   TestEncReview14FoundArrayLiteral HIGH: an array literal compared with
//     an encrypted column is split by a parser of the server's own output,
//     not as PostgreSQL's array_in reads it: the same statement on users
//     through pgveil and on a plaintext table of the same values directly
//     count different rows, and DELETE … WHERE ssn <> ALL('{a, null}')
//     (NULL for every row in PostgreSQL: nothing deleted) deletes rows.
//   TestEncReview14FoundParenValue MEDIUM (HIGH for a physical text
//     column): UPDATE users SET email = ($1) is sent as SET email = ($1,
//     email_bidx = $2), which PostgreSQL rejects for bytea (and stores as
//     '(pgv1:…,f)' for text).
//   TestEncReview14FoundMergePlainTarget HIGH: MERGE into a table pgveil
//     does not configure skipped its SET values; a literal compared there
//     with an encrypted column of the source reached the server.
//   TestEncReview14FoundDeclaredTenant HIGH: a tenant parameter declared
//     numeric (9142.6) for the bigint org_id names tenant "9142.6" while
//     PostgreSQL stores 9143: the row's values never open (PV001).

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestEncReview14FoundArrayLiteral(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9140)
	values := []string{"r14-a", "r14-b", "r14-b c", "null", "r14-a,b", "r14-x"}
	p.remember(values...)
	su := superConn(t, ctx)
	if _, err := su.Exec(ctx, `DROP TABLE IF EXISTS r14_ref; CREATE TABLE r14_ref (org_id int8, ssn text)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := su.Exec(ctx, `DROP TABLE IF EXISTS r14_ref`); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	conn := connectPgx(t, ctx, p.url())
	for _, v := range values {
		if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, name, ssn) VALUES (9140, 'r14', $1)`, v); err != nil {
			t.Fatal(err)
		}
		if _, err := su.Exec(ctx, `INSERT INTO r14_ref (org_id, ssn) VALUES (9140, $1)`, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, where := range []string{
		`ssn = ANY('{r14-a, r14-b}')`,
		`ssn = ANY('{ "r14-b c" , r14-x }')`,
		`ssn = ANY('{r14-a\,b}')`,
		`ssn = ANY('{"r14-a" }')`,
		`ssn = ANY('{NULL, Null}')`,
		`ssn <> ALL('{r14-x, null}')`,
	} {
		var viaVeil, direct int64
		err := conn.QueryRow(ctx, `SELECT count(*) FROM users WHERE org_id = 9140 AND `+where, pgx.QueryExecModeSimpleProtocol).Scan(&viaVeil)
		if err != nil {
			t.Errorf("%s through pgveil: %v", where, err)
			continue
		}
		if err := su.QueryRow(ctx, `SELECT count(*) FROM r14_ref WHERE org_id = 9140 AND `+where).Scan(&direct); err != nil {
			t.Fatal(err)
		}
		if viaVeil != direct {
			t.Errorf("%s: %d rows through pgveil, %d in PostgreSQL on a plaintext table", where, viaVeil, direct)
		}
	}
	del := `DELETE FROM %s WHERE org_id = 9140 AND ssn <> ALL('{r14-a, null}')`
	tag, err := conn.Exec(ctx, fmt.Sprintf(del, "users"), pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := su.Exec(ctx, fmt.Sprintf(del, "r14_ref"))
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() != ref.RowsAffected() {
		t.Errorf("%s deleted %d rows through pgveil, %d in PostgreSQL on a plaintext table", del, tag.RowsAffected(), ref.RowsAffected())
	}
}

func TestEncReview14FoundParenValue(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9141)
	const old, neu = "r14-old@example.org", "r14-new@example.org"
	p.remember(old, neu)
	conn := connectPgx(t, ctx, p.url())
	if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, name, email) VALUES (9141, 'r14p', $1)`, old); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		if _, err := conn.Exec(ctx, `UPDATE users SET email = ($1) WHERE org_id = 9141 AND name = 'r14p'`, mode, neu); err != nil {
			t.Errorf("%v: UPDATE … SET email = ($1): %v", mode, err)
			continue
		}
		var got string
		if err := conn.QueryRow(ctx, `SELECT email FROM users WHERE email = $1`, neu).Scan(&got); err != nil || got != neu {
			t.Errorf("%v: after SET email = ($1) the row is not found by its new value: %q, %v", mode, got, err)
		}
		if _, err := conn.Exec(ctx, `UPDATE users SET email = $1 WHERE org_id = 9141`, old); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO contacts (org_id, email) VALUES (9141, (($1)))`, neu); err != nil {
		t.Errorf("INSERT … VALUES (($1)): %v", err)
	}
}

// TestEncReview14FoundDeclaredTenant: a tenant parameter the client
// declares as numeric (pgjdbc's setBigDecimal) for the bigint org_id is
// assigned by PostgreSQL with rounding (9142.6 is stored as 9143), while
// pgveil sealed the row's values under tenant "9142.6": the INSERT
// succeeds and the row's email never opens again (silent data loss).
// PostgreSQL's numeric → bigint assignment is mirrored for values
// (fromDeclared refuses a fraction), not for the tenant.
func TestEncReview14FoundDeclaredTenant(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9142, 9143)
	const email = "r14-tenant@example.org"
	p.remember(email)
	conn := connectPgx(t, ctx, p.url())
	pc := conn.PgConn()
	if _, err := pc.Prepare(ctx, "r14t", `INSERT INTO users (org_id, name, email) VALUES ($1, 'r14t', $2)`, []uint32{1700, 25}); err != nil {
		t.Fatal(err)
	}
	res := pc.ExecPrepared(ctx, "r14t", [][]byte{[]byte("9142.6"), []byte(email)}, nil, nil).Read()
	if res.Err != nil {
		return // refused before anything was written: right
	}
	var got string
	err := conn.QueryRow(ctx, `SELECT email FROM users WHERE name = 'r14t'`).Scan(&got)
	if err != nil || got != email {
		t.Errorf("a row written with tenant $1 = 9142.6 (numeric) reads back as %q, %v: its value was sealed under another tenant than the org_id PostgreSQL stored", got, err)
	}
}

// TestEncReview14FoundMergePlainTarget: MERGE into orgs (a table pgveil
// does not configure) with a SET value comparing an encrypted column of
// the source with a literal: the server received the literal in plaintext
// (current_query() stored in the row shows the text it got).
func TestEncReview14FoundMergePlainTarget(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9144)
	const email, leak = "r14-merge@example.org", "r14-merge-leak@example.org"
	p.remember(email, leak)
	conn := connectPgx(t, ctx, p.url())
	if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, name, email) VALUES (9144, 'r14m', $1)`, email); err != nil {
		t.Fatal(err)
	}
	sql := `MERGE INTO orgs o USING users u ON o.id = u.org_id AND u.name = 'r14m' WHEN MATCHED THEN UPDATE SET name = CASE WHEN u.email = '` + leak + `' THEN current_query() ELSE current_query() END`
	_, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	su := superConn(t, ctx)
	var stored string
	if qerr := su.QueryRow(ctx, `SELECT name FROM orgs WHERE id = 9144`).Scan(&stored); qerr != nil {
		t.Fatal(qerr)
	}
	if strings.Contains(stored, leak) {
		t.Errorf("%s (%v)\n the server received the literal compared with an encrypted column in plaintext: %s", sql, err, stored)
	}
}
