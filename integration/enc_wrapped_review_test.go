package integration

// Review of bba6c4e (Sequelize's findOrCreate: an INSERT wrapped in a
// temporary PL/pgSQL function) end to end: the real pgveil binary in
// front of PostgreSQL 15 (rewrite/wrapped_review_test.go has the list).
//
// Failing on lead at the time of the review (defects):
//
//	TestEncWrappedReviewBackslashLeak     HIGH: with standard_conforming_strings
//	                                       off, a body pgveil reads otherwise
//	                                       than the server stores a value in
//	                                       users.phone in plaintext.
//	TestEncWrappedReviewUnrecognisedCall  MEDIUM: SELECT … FROM ROWS FROM
//	                                       (pg_temp.testfunc()) or a call in
//	                                       the select list returns the row's
//	                                       envelopes to the client undecrypted.
//
// TestEncWrappedReviewHoldsSequelizeString passes: the real string with
// quotes, NULL, a date, and a caught unique violation.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// wrString is Sequelize's findOrCreate string around insert and selectList.
func wrString(tag, insert, selectList, from string) string {
	return `CREATE OR REPLACE FUNCTION pg_temp.testfunc(OUT response "users", OUT sequelize_caught_exception text) RETURNS RECORD AS $func_` + tag + `$ BEGIN ` +
		insert + ` RETURNING * INTO response; EXCEPTION WHEN unique_violation THEN GET STACKED DIAGNOSTICS sequelize_caught_exception = PG_EXCEPTION_DETAIL; END $func_` + tag + `$ LANGUAGE plpgsql; SELECT ` +
		selectList + ` FROM ` + from + `; DROP FUNCTION IF EXISTS pg_temp.testfunc()`
}

// wrExec sends sql as one simple Query through c and returns its results.
func wrExec(ctx context.Context, c *pgx.Conn, sql string) ([]*pgconn.Result, error) {
	return c.PgConn().Exec(ctx, sql).ReadAll()
}

// atRest counts the users of org whose column col holds plaintext
// (read by the superuser, bypassing pgveil).
func atRest(t *testing.T, ctx context.Context, org int64, col, plaintext string) int {
	t.Helper()
	su := superConn(t, ctx)
	var n int
	q := fmt.Sprintf(`SELECT count(*) FROM users WHERE org_id = $1 AND position(convert_to($2, 'UTF8') IN coalesce(%s, ''::bytea)) > 0`, col)
	if err := su.QueryRow(ctx, q, org, plaintext).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEncWrappedReviewBackslashLeak (HIGH): a session with
// standard_conforming_strings = off. pgveil checks plain '…' strings for
// backslashes only outside the $tag$ body, and parses the body's INSERT
// as if the setting were on. The server reads
//
//	VALUES (9301, 'b''\n', $q$<secret>$q$::bytea || $z$…$z$)
//
// (phone = the secret), pgveil reads name = 'b\' '…<secret>…' and phone =
// NULL: nothing is sealed, and the secret is stored in users.phone as
// plaintext (and sits in the CREATE FUNCTION text the server logs on any
// error). The string must be refused, as the same INSERT is at top level.
func TestEncWrappedReviewBackslashLeak(t *testing.T) {
	const org = 9301
	p := startEncProxy(t, org)
	ctx := testCtx(t, time.Minute)
	secret := "wr-review-bs-9301@example.org"
	p.remember(secret)
	c := connectMode(t, ctx, p.url(), pgx.QueryExecModeSimpleProtocol)
	if _, err := c.Exec(ctx, `SET standard_conforming_strings = off`); err != nil {
		t.Fatal(err)
	}
	// Holds: the same kind of INSERT at top level is refused.
	if _, err := wrExec(ctx, c, fmt.Sprintf(`INSERT INTO users (org_id, name, email) VALUES (%d, 'b\', 'x@example.org')`, org)); err == nil {
		t.Fatalf("a top-level INSERT with a backslash was not refused with standard_conforming_strings off")
	}
	ins := fmt.Sprintf("INSERT INTO \"users\" (\"org_id\",\"name\",\"phone\") VALUES (%d, 'b\\'\n', $q$%s$q$::bytea || $z$', NULL --$z$\n)", org, secret)
	sql := wrString("bs9301", ins, `(testfunc.response).id, testfunc.sequelize_caught_exception`, `pg_temp.testfunc()`)
	_, err := wrExec(ctx, c, sql)
	if n := atRest(t, ctx, org, "phone", secret); n > 0 {
		t.Errorf("users.phone holds the plaintext %q (%d rows): the wrapped INSERT was planned under standard_conforming_strings = off (exec error: %v)", secret, n, err)
	} else if err == nil {
		t.Errorf("the string was not refused (nothing stored in plaintext this time)")
	}
}

// TestEncWrappedReviewUnrecognisedCall (MEDIUM): the SELECT of the string
// may call the function in a form wrappedCall does not recognise; pgveil
// plans it as an unknown function and the client receives the row's email
// envelope (bytea hex) instead of the email or an error.
func TestEncWrappedReviewUnrecognisedCall(t *testing.T) {
	const org = 9302
	p := startEncProxy(t, org)
	ctx := testCtx(t, time.Minute)
	c := connectMode(t, ctx, p.url(), pgx.QueryExecModeSimpleProtocol)
	for i, form := range []struct{ list, from string }{
		{`(t.response).email, (t.response).org_id`, `ROWS FROM (pg_temp.testfunc()) AS t`},
		{`(t.response).email, (t.response).org_id`, `pg_temp.testfunc() WITH ORDINALITY AS t`},
		{`((pg_temp.testfunc()).response).email, 1`, `(VALUES (1)) AS v`},
	} {
		email := fmt.Sprintf("wr-review-call-%d@example.org", i)
		p.remember(email)
		ins := fmt.Sprintf(`INSERT INTO "users" ("id","org_id","name","email") VALUES (DEFAULT,%d,'wr-call-%d','%s')`, org, i, email)
		res, err := wrExec(ctx, c, wrString(fmt.Sprintf("call%d", i), ins, form.list, form.from))
		if err != nil {
			continue // refused: fixed
		}
		if len(res) < 2 || len(res[1].Rows) != 1 {
			t.Errorf("%s: unexpected results %v", form.from, res)
			continue
		}
		got := string(res[1].Rows[0][0])
		if got != email {
			t.Errorf("FROM %s: the client received %.40q… for the email, not %q, and no error", form.from, got, email)
		}
		if n := atRest(t, ctx, org, "email", email); n > 0 {
			t.Errorf("FROM %s: the email is stored in plaintext", form.from)
		}
	}
}

// TestEncWrappedReviewHoldsSequelizeString: the string Sequelize sends
// (quoted attributes, a quote in the values, NULL, a date) is sealed and
// decrypted; a second one violating the unique email index is caught in
// the function, and the caught detail holds the blind index, not the email.
func TestEncWrappedReviewHoldsSequelizeString(t *testing.T) {
	const org = 9303
	p := startEncProxy(t, org)
	ctx := testCtx(t, time.Minute)
	email, birth := "o'hara.wr-review@example.org", "1990-01-02"
	p.remember(email, "hara.wr-review@example.org")
	c := connectMode(t, ctx, p.url(), pgx.QueryExecModeSimpleProtocol)
	esc := strings.ReplaceAll(email, "'", "''")
	list := `(testfunc.response)."id", (testfunc.response)."org_id", (testfunc.response)."name", (testfunc.response)."email", (testfunc.response)."phone", (testfunc.response)."birth_date", (testfunc.response)."created_at", testfunc.sequelize_caught_exception`
	ins := fmt.Sprintf(`INSERT INTO "users" ("id","org_id","name","email","phone","birth_date","created_at") VALUES (DEFAULT,%d,'O''Hara','%s',NULL,'%s','2024-05-06 07:08:09.123 +00:00')`, org, esc, birth)
	res, err := wrExec(ctx, c, wrString("seq9303", ins, list, `pg_temp.testfunc()`))
	if err != nil {
		t.Fatalf("Sequelize's string: %v", err)
	}
	if len(res) != 3 || len(res[1].Rows) != 1 {
		t.Fatalf("results %v", res)
	}
	row := res[1].Rows[0]
	if string(row[2]) != "O'Hara" || string(row[3]) != email || row[4] != nil || string(row[5]) != birth || row[7] != nil {
		t.Errorf("row read back: name %q email %q phone %v birth %q caught %q", row[2], row[3], row[4], row[5], row[7])
	}
	if n := atRest(t, ctx, org, "email", email); n > 0 {
		t.Errorf("the email is stored in plaintext")
	}
	// The same email again: the unique blind index raises inside the
	// function, the handler catches it.
	res, err = wrExec(ctx, c, wrString("seq9303b", strings.Replace(ins, "'O''Hara'", "'Other'", 1), list, `pg_temp.testfunc()`))
	if err != nil {
		t.Fatalf("duplicate: %v", err)
	}
	if len(res) != 3 || len(res[1].Rows) != 1 {
		t.Fatalf("duplicate: results %v", res)
	}
	caught := string(res[1].Rows[0][7])
	if !strings.Contains(caught, "email_bidx") || strings.Contains(strings.ToLower(caught), "hara") {
		t.Errorf("caught detail %q", caught)
	}
	var n int
	if err := superConn(t, ctx).QueryRow(ctx, `SELECT count(*) FROM users WHERE org_id = $1`, org).Scan(&n); err != nil || n != 1 {
		t.Errorf("rows of org %d: %d, %v", org, n, err)
	}
}
