package integration

// Review 17, the LOW sweep: the known LOW protocol and planner defects,
// each through the real pgveil binary in front of PostgreSQL 15 and
// compared message for message with the same sequence sent directly to
// the plaintext mirror (prEnv, enc_proto_review_test.go).

import (
	"context"
	"encoding/binary"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestLowSweepBinaryLength (item 1): a binary parameter of the wrong
// length for an encrypted column's logical type. PostgreSQL's receive
// function runs out of data (08P01 "insufficient data left in message")
// or leaves some (22P03 "incorrect binary data format in bind parameter
// N"); pgveil answered 22P02 with a message of its own.
func TestLowSweepBinaryLength(t *testing.T) {
	e := newPrEnv(t)
	org := []byte("7301")
	for _, c := range []struct {
		what string
		col  string
		v    []byte
	}{
		{"int8 short", "api_token", []byte{0, 0, 1}},
		{"int8 long", "api_token", make([]byte, 9)},
		{"int8 empty", "api_token", []byte{}},
		{"date short", "birth_date", []byte{0, 1}},
		{"date long", "birth_date", make([]byte, 5)},
	} {
		e.same(c.what+" (INSERT)",
			&pgproto3.Parse{Query: "INSERT INTO users (org_id, name, " + c.col + ") VALUES ($1, 'bl', $2)"},
			&pgproto3.Bind{Parameters: [][]byte{org, c.v}, ParameterFormatCodes: []int16{0, 1}},
			&pgproto3.Execute{},
			&pgproto3.Sync{})
	}
	for _, c := range []struct {
		what string
		oid  uint32
		v    []byte
	}{
		{"declared int4, short", 23, []byte{0, 0, 1}},
		{"declared int4, long", 23, make([]byte, 5)},
		{"declared float8, short", 701, make([]byte, 4)},
		{"declared float4, long", 700, make([]byte, 8)},
		{"declared int8, long", 20, make([]byte, 9)},
	} {
		e.same(c.what+" (INSERT)",
			&pgproto3.Parse{Query: "INSERT INTO users (org_id, name, api_token) VALUES ($1, 'bl', $2)", ParameterOIDs: []uint32{20, c.oid}},
			&pgproto3.Bind{Parameters: [][]byte{org, c.v}, ParameterFormatCodes: []int16{0, 1}},
			&pgproto3.Execute{},
			&pgproto3.Sync{})
	}
	ok := binary.BigEndian.AppendUint64(nil, 11)
	e.same("int8 written by UPDATE, right length, then wrong",
		&pgproto3.Parse{Name: "bl1", Query: "UPDATE users SET api_token = $2 WHERE org_id = $1 AND name = 'a' RETURNING name, api_token"},
		&pgproto3.Bind{PreparedStatement: "bl1", Parameters: [][]byte{org, ok}, ParameterFormatCodes: []int16{0, 1}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Bind{PreparedStatement: "bl1", Parameters: [][]byte{org, ok[:7]}, ParameterFormatCodes: []int16{0, 1}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Bind{PreparedStatement: "bl1", Parameters: [][]byte{org, append(ok, 0)}, ParameterFormatCodes: []int16{0, 1}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Bind{PreparedStatement: "bl1", Parameters: [][]byte{org, ok}, ParameterFormatCodes: []int16{1}},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
}

// TestLowSweepBindAfterClose (item 2): a Bind of a statement closed
// earlier in the same pipeline. PostgreSQL: 26000, the statement is gone,
// whatever the Bind carries.
func TestLowSweepBindAfterClose(t *testing.T) {
	e := newPrEnv(t)
	email := []byte(prRows[0].email)
	for _, q := range []string{"SELECT name FROM users WHERE email = $1", "SELECT $1::text"} {
		for _, name := range []string{"bc", ""} {
			for _, params := range [][][]byte{{email}, nil, {email, email}} {
				e.same("closed then bound in one pipeline: "+q+" name "+name,
					&pgproto3.Parse{Name: name, Query: q},
					&pgproto3.Sync{},
					&pgproto3.Close{ObjectType: 'S', Name: name},
					&pgproto3.Bind{PreparedStatement: name, Parameters: params},
					&pgproto3.Execute{},
					&pgproto3.Sync{})
				e.same("and in the next pipeline",
					&pgproto3.Bind{PreparedStatement: name, Parameters: params},
					&pgproto3.Execute{},
					&pgproto3.Sync{})
			}
		}
	}
	e.same("Describe and Close again after a Close in the same pipeline",
		&pgproto3.Parse{Name: "bd", Query: "SELECT name, email FROM users WHERE email = $1"},
		&pgproto3.Sync{},
		&pgproto3.Close{ObjectType: 'S', Name: "bd"},
		&pgproto3.Close{ObjectType: 'S', Name: "bd"},
		&pgproto3.Describe{ObjectType: 'S', Name: "bd"},
		&pgproto3.Sync{},
		&pgproto3.Parse{Name: "bd", Query: "SELECT name, email FROM users WHERE email = $1"},
		&pgproto3.Close{ObjectType: 'S', Name: "bd"},
		&pgproto3.Parse{Name: "bd", Query: "SELECT name FROM users WHERE email = $1"},
		&pgproto3.Bind{PreparedStatement: "bd", Parameters: [][]byte{email}},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	e.same("a Close the server skips keeps the statement",
		&pgproto3.Parse{Name: "bk", Query: "SELECT name FROM users WHERE email = $1"},
		&pgproto3.Sync{},
		&pgproto3.Parse{Query: "SELECT 1/0"},
		&pgproto3.Bind{},
		&pgproto3.Execute{},
		&pgproto3.Close{ObjectType: 'S', Name: "bk"},
		&pgproto3.Bind{PreparedStatement: "bk"},
		&pgproto3.Sync{},
		&pgproto3.Bind{PreparedStatement: "bk"},
		&pgproto3.Sync{},
		&pgproto3.Bind{PreparedStatement: "bk", Parameters: [][]byte{email}},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
}

// TestLowSweepUnnamedShadow (item 3): a pass-through unnamed Parse after
// a rewritten unnamed one; the Bind, Describe and Execute that follow
// must reach the pass-through statement.
func TestLowSweepUnnamedShadow(t *testing.T) {
	e := newPrEnv(t)
	e.both("DROP TABLE IF EXISTS lsplain; CREATE TABLE lsplain (v text)")
	email := []byte(prRows[0].email)
	e.same("one pipeline",
		&pgproto3.Parse{Query: "SELECT name, email FROM users WHERE email = $1"},
		&pgproto3.Parse{Query: "INSERT INTO lsplain (v) VALUES ($1) RETURNING v"},
		&pgproto3.Describe{ObjectType: 'S'},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("plain-1")}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	e.same("two pipelines, the rewritten one bound first",
		&pgproto3.Parse{Query: "SELECT name, email FROM users WHERE email = $1"},
		&pgproto3.Bind{Parameters: [][]byte{email}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Parse{Query: "SELECT $1::text AS v, 'x' AS w"},
		&pgproto3.Sync{},
		&pgproto3.Describe{ObjectType: 'S'},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("plain-2")}},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	e.same("closed, then a plain one",
		&pgproto3.Parse{Query: "SELECT name, email FROM users WHERE email = $1"},
		&pgproto3.Close{ObjectType: 'S'},
		&pgproto3.Parse{Query: "SELECT $1::text AS v"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("plain-3")}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("plain-4")}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Query{String: "SELECT v FROM lsplain ORDER BY v"})
	e.same("one pgveil refuses, then a Bind",
		&pgproto3.Parse{Query: "UPDATE users SET name = 'shadowed' WHERE email = $1"},
		&pgproto3.Sync{},
		&pgproto3.Parse{Query: "SELECT name FROM users WHERE"},
		&pgproto3.Sync{},
		&pgproto3.Bind{Parameters: [][]byte{email}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Describe{ObjectType: 'S'},
		&pgproto3.Sync{},
		&pgproto3.Query{String: "SELECT count(*) FROM users WHERE name = 'shadowed'"})
	e.same("a pass-through one, then one pgveil refuses, then a Bind",
		&pgproto3.Parse{Query: "INSERT INTO lsplain (v) VALUES ($1)"},
		&pgproto3.Sync{},
		&pgproto3.Parse{Query: "SELECT name FROM users WHERE"},
		&pgproto3.Sync{},
		&pgproto3.Bind{Parameters: [][]byte{email}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Query{String: "SELECT count(*) FROM lsplain"})
	e.same("one pgveil refuses for its own reasons, then a Bind",
		&pgproto3.Parse{Query: "UPDATE users SET name = 'shadowed' WHERE email = $1"},
		&pgproto3.Sync{},
		&pgproto3.Parse{Query: "SELECT name FROM users WHERE email = $1; SELECT 1"},
		&pgproto3.Sync{},
		&pgproto3.Bind{Parameters: [][]byte{email}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Query{String: "SELECT count(*) FROM users WHERE name = 'shadowed'"})
	// Kept (fail closed): refused in a pipeline the server skips after an
	// error, PostgreSQL keeps the old statement; pgveil has dropped it.
	got := prTrace(e.ctx, e.px,
		&pgproto3.Parse{Query: "UPDATE users SET name = 'shadowed' WHERE email = $1"},
		&pgproto3.Sync{},
		&pgproto3.Parse{Name: "z", Query: "SELECT 1/0"},
		&pgproto3.Bind{PreparedStatement: "z"},
		&pgproto3.Execute{},
		&pgproto3.Parse{Query: "SELECT name FROM users WHERE"},
		&pgproto3.Sync{},
		&pgproto3.Bind{Parameters: [][]byte{email}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Query{String: "SELECT count(*) FROM users WHERE name = 'shadowed'"})
	if j := strings.Join(got, " | "); !strings.Contains(j, "ErrorResponse 26000 unnamed prepared statement does not exist") || !strings.Contains(j, `DataRow("0")`) {
		t.Errorf("refused after an error in the pipeline: %s", prShort(got))
	}
	e.same("a plain one the server refuses, then a Bind",
		&pgproto3.Parse{Query: "INSERT INTO lsplain (v) VALUES ($1)"},
		&pgproto3.Sync{},
		&pgproto3.Parse{Query: "SELECT name, email FROM users WHERE email = $1"},
		&pgproto3.Sync{},
		&pgproto3.Parse{Query: "SELECT v FROM lsnosuchtable WHERE v = $1"},
		&pgproto3.Sync{},
		&pgproto3.Bind{Parameters: [][]byte{email}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Describe{ObjectType: 'S'},
		&pgproto3.Sync{},
		&pgproto3.Query{String: "SELECT count(*) FROM lsplain"})
}

// TestLowSweepDescribeAfterDDL (item 4): Describe of a prepared statement
// after DDL changed its types.
func TestLowSweepDescribeAfterDDL(t *testing.T) {
	e := newPrEnv(t)
	e.same("prepared",
		&pgproto3.Parse{Name: "dd1", Query: "SELECT name, email FROM users WHERE name = $1 AND email = $2"},
		&pgproto3.Parse{Name: "dd2", Query: "SELECT name FROM users WHERE name = $1"},
		&pgproto3.Describe{ObjectType: 'S', Name: "dd1"},
		&pgproto3.Sync{})
	e.both("ALTER TABLE users ALTER COLUMN name TYPE varchar(40)")
	e.same("described after DDL",
		&pgproto3.Describe{ObjectType: 'S', Name: "dd1"},
		&pgproto3.Describe{ObjectType: 'S', Name: "dd2"},
		&pgproto3.Sync{})
	e.same("SELECT * prepared",
		&pgproto3.Parse{Name: "dd3", Query: "SELECT * FROM users WHERE email = $1"},
		&pgproto3.Parse{Name: "dd4", Query: "SELECT * FROM users WHERE name = $1"},
		&pgproto3.Sync{})
	e.both("ALTER TABLE users ADD COLUMN extra int")
	e.same("SELECT * described after ADD COLUMN",
		&pgproto3.Describe{ObjectType: 'S', Name: "dd3"},
		&pgproto3.Sync{},
		&pgproto3.Describe{ObjectType: 'S', Name: "dd4"},
		&pgproto3.Sync{},
		&pgproto3.Bind{PreparedStatement: "dd3", Parameters: [][]byte{[]byte(prRows[0].email)}},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	e.same("bound after DDL",
		&pgproto3.Bind{PreparedStatement: "dd1", Parameters: [][]byte{[]byte("a"), []byte(prRows[0].email)}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Describe{ObjectType: 'S', Name: "dd1"},
		&pgproto3.Sync{})
}

// TestLowSweepViewRenameColumn (item 5): ALTER VIEW … RENAME COLUMN on a
// view over encrypted columns.
func TestLowSweepViewRenameColumn(t *testing.T) {
	e := newPrEnv(t)
	su := superConn(t, e.ctx)
	if _, err := su.Exec(e.ctx, "DROP VIEW IF EXISTS public.lsv, prplain.lsv; CREATE VIEW public.lsv AS SELECT id, org_id, name, email, email_bidx, phone FROM public.users; CREATE VIEW prplain.lsv AS SELECT id, org_id, name, email, email_bidx, phone FROM prplain.users; ALTER VIEW public.lsv OWNER TO scram_user; ALTER VIEW prplain.lsv OWNER TO scram_user"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { su.Exec(context.Background(), "DROP VIEW IF EXISTS public.lsv, prplain.lsv") })
	// DDL through pgveil: every session plans with a new catalog.
	e.both("DROP TABLE IF EXISTS lsdummy; CREATE TABLE lsdummy (a int)")
	e.same("before", &pgproto3.Query{String: "SELECT name, email, phone FROM lsv ORDER BY id LIMIT 2"})
	// In a transaction after DDL pgveil plans by name until the catalog
	// is read again: the view is refused (fail closed), where PostgreSQL
	// runs the statement.
	got := prTrace(e.ctx, e.px,
		&pgproto3.Query{String: "BEGIN; ALTER VIEW lsv RENAME COLUMN email TO mail"},
		&pgproto3.Parse{Query: "SELECT name, mail FROM lsv WHERE mail = $1"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte(prRows[1].email)}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Query{String: "ROLLBACK"})
	if j := strings.Join(got, " | "); !strings.Contains(j, "ErrorResponse 0A000 pgveil: view public.lsv reads encrypted columns") {
		t.Errorf("renamed in a transaction: %s", prShort(got))
	}
	e.both("ALTER VIEW lsv RENAME COLUMN email TO mail")
	e.both("ALTER TABLE lsv RENAME COLUMN phone TO email")
	e.same("after, simple",
		&pgproto3.Query{String: "SELECT name, mail, email FROM lsv ORDER BY id LIMIT 2"})
	e.same("after, extended, compared",
		&pgproto3.Parse{Query: "SELECT name, mail, email FROM lsv WHERE mail = $1"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte(prRows[1].email)}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	e.both("ALTER VIEW lsv RENAME COLUMN mail TO email2")
	e.same("renamed again",
		&pgproto3.Query{String: "SELECT name, email2, email FROM lsv ORDER BY id LIMIT 2"})
	// Renamed directly on the database, out of pgveil's sight.
	if _, err := su.Exec(e.ctx, "ALTER VIEW public.lsv RENAME COLUMN email2 TO email3; ALTER VIEW prplain.lsv RENAME COLUMN email2 TO email3"); err != nil {
		t.Fatal(err)
	}
	got = prTrace(e.ctx, e.px,
		&pgproto3.Parse{Query: "SELECT name, email3 FROM lsv WHERE email3 = $1"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte(prRows[1].email)}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Query{String: "SELECT name, email3 FROM lsv ORDER BY id LIMIT 2"})
	if j := strings.Join(got, " | "); strings.Count(j, "ErrorResponse 42703") != 2 || strings.Contains(j, "DataRow") {
		t.Errorf("renamed directly (pgveil's catalog older than the view): %s", prShort(got))
	}
	// Once pgveil reads its catalog again, it is PostgreSQL's answer.
	if err := e.p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "pgveil to read the renamed view", func() (bool, error) {
		_, err := e.px.Exec(e.ctx, "SELECT email3 FROM lsv LIMIT 1").ReadAll()
		return err == nil, nil
	})
	e.same("renamed directly, after SIGHUP",
		&pgproto3.Parse{Query: "SELECT name, email3 FROM lsv WHERE email3 = $1"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte(prRows[1].email)}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Query{String: "SELECT name, email3 FROM lsv ORDER BY id LIMIT 2"})
}

// TestLowSweepSQLPrepareClash (item 6): SQL PREPARE of a name the client
// prepared in the protocol (pgveil prepared it upstream under its own
// name), and the other way round.
func TestLowSweepSQLPrepareClash(t *testing.T) {
	e := newPrEnv(t)
	email := []byte(prRows[2].email)
	e.same("protocol first",
		&pgproto3.Parse{Name: "sp1", Query: "SELECT name FROM users WHERE email = $1"},
		&pgproto3.Sync{},
		&pgproto3.Query{String: "PREPARE sp1 AS SELECT 1"},
		&pgproto3.Bind{PreparedStatement: "sp1", Parameters: [][]byte{email}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Query{String: "DEALLOCATE sp1"},
		&pgproto3.Parse{Name: "sp1", Query: "SELECT 2"},
		&pgproto3.Bind{PreparedStatement: "sp1"},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	// SQL first: pgveil asks the server whether the name is taken. Each
	// pipeline waits for the previous one's answers (pgveil's view of the
	// statement is decided when the Bind goes out: pipelined right behind
	// the Parse, the Bind goes to pgveil's statement, which the server
	// skipped, and gets 26000).
	e.same("SQL first: PREPARE", &pgproto3.Query{String: "PREPARE sp2 AS SELECT 1"})
	e.same("SQL first: Parse of the name, rewritten",
		&pgproto3.Parse{Name: "sp2", Query: "SELECT name FROM users WHERE email = $1"},
		&pgproto3.Sync{})
	e.same("SQL first: Bind of the name",
		&pgproto3.Bind{PreparedStatement: "sp2", Parameters: [][]byte{email}},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	e.same("SQL first: Bind of the name, no parameters",
		&pgproto3.Bind{PreparedStatement: "sp2"},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	e.same("SQL first: EXECUTE", &pgproto3.Query{String: "EXECUTE sp2"})
	e.same("SQL first: DEALLOCATE, then the Parse again",
		&pgproto3.Query{String: "DEALLOCATE sp2"},
		&pgproto3.Parse{Name: "sp2", Query: "SELECT name FROM users WHERE email = $1"},
		&pgproto3.Bind{PreparedStatement: "sp2", Parameters: [][]byte{email}},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	e.same("a PREPARE that failed does not take the name",
		&pgproto3.Query{String: "PREPARE sp3 AS SELECT nosuchcolumn"},
		&pgproto3.Parse{Name: "sp3", Query: "SELECT name FROM users WHERE email = $1"},
		&pgproto3.Bind{PreparedStatement: "sp3", Parameters: [][]byte{email}},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	e.same("PREPARE after DEALLOCATE in one string",
		&pgproto3.Parse{Name: "sp4", Query: "SELECT name FROM users WHERE email = $1"},
		&pgproto3.Sync{},
		&pgproto3.Query{String: "DEALLOCATE sp4; PREPARE sp4 AS SELECT 4"})
	e.same("and EXECUTE it", &pgproto3.Query{String: "EXECUTE sp4"})
	// A name of pgveil's own upstream statements: refused before it is
	// sent (reserved), so none of pgveil's statements is replaced.
	got := prTrace(e.ctx, e.px,
		&pgproto3.Parse{Name: "sp5", Query: "SELECT name FROM users WHERE email = $1"},
		&pgproto3.Sync{},
		&pgproto3.Query{String: "PREPARE pgveil_0123456789ab_1 AS SELECT 1"},
		&pgproto3.Bind{PreparedStatement: "sp5", Parameters: [][]byte{email}},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	if j := strings.Join(got, " | "); !strings.Contains(j, "ErrorResponse 0A000 pgveil: prepared statement names starting with") || !strings.Contains(j, `DataRow("c")`) {
		t.Errorf("PREPARE of a reserved name: %s", prShort(got))
	}
}

// TestLowSweepParamTwice (item 7): one parameter where an encrypted value
// goes and where a plain value goes. The plain place may get the
// plaintext (the application's choice); the encrypted place never.
func TestLowSweepParamTwice(t *testing.T) {
	e := newPrEnv(t)
	ctx := e.ctx
	secret := "Twice-4471@example.org"
	e.p.remember(secret)
	for _, q := range []string{
		"INSERT INTO users (org_id, email, name) VALUES ($1, $2, $2)",
		"INSERT INTO users (org_id, name, email) VALUES ($1, $2, $2)",
	} {
		got := prTrace(ctx, e.px,
			&pgproto3.Parse{Query: q},
			&pgproto3.Bind{Parameters: [][]byte{[]byte("7301"), []byte(secret)}},
			&pgproto3.Execute{},
			&pgproto3.Sync{})
		t.Logf("%s: %s", q, prShort(got))
		assertNoPlainEmail(t, ctx, secret)
	}
	// The first INSERT stored it in both: sealed in email, as sent in name.
	res := e.px.ExecParams(ctx, "SELECT email, name FROM users WHERE name = $1", [][]byte{[]byte(secret)}, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != secret || string(res.Rows[0][1]) != secret {
		t.Fatalf("read back: %v %d rows", res.Err, len(res.Rows))
	}
	for _, q := range []string{
		"SELECT name FROM users WHERE email = $1 OR name = $1",
		"SELECT name FROM users WHERE name = $1 OR email = $1",
		"UPDATE users SET name = $1 WHERE email = $1 RETURNING name",
		"UPDATE users SET email = $1 WHERE name = $1 RETURNING name",
	} {
		got := prTrace(ctx, e.px,
			&pgproto3.Parse{Query: q},
			&pgproto3.Bind{Parameters: [][]byte{[]byte(secret)}},
			&pgproto3.Execute{},
			&pgproto3.Sync{})
		t.Logf("%s: %s", q, prShort(got))
		if j := strings.Join(got, " | "); !strings.Contains(j, "CommandComplete") || strings.Contains(j, "ErrorResponse") {
			t.Errorf("%s: %s", q, prShort(got))
		}
		assertNoPlainEmail(t, ctx, secret)
	}
}

// assertNoPlainEmail fails when users.email (stored) holds secret in
// plaintext.
func assertNoPlainEmail(t *testing.T, ctx context.Context, secret string) {
	t.Helper()
	su := superConn(t, ctx)
	var n int
	if err := su.QueryRow(ctx, "SELECT count(*) FROM public.users WHERE position(convert_to($1::text, 'UTF8') in coalesce(email, ''::bytea)) > 0", secret).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("users.email holds the plaintext")
	}
}

// TestLowSweepUnnamedLookupRefused (with item 3): an unnamed Parse whose
// tenant lookup (an UPDATE without parameters, looked up at Parse) makes
// pgveil refuse it drops the unnamed statement too: PostgreSQL drops it
// before reading the new one, so a Bind of it gets 26000.
func TestLowSweepUnnamedLookupRefused(t *testing.T) {
	e := newPrEnv(t)
	su := superConn(t, e.ctx)
	if _, err := su.Exec(e.ctx, "INSERT INTO orgs (id, name) VALUES (7302, 'other') ON CONFLICT DO NOTHING"); err != nil {
		t.Fatal(err)
	}
	other := "Other-4471@example.org"
	e.p.remember(other)
	if res := e.px.ExecParams(e.ctx, "INSERT INTO users (org_id, name, email) VALUES (7302, 'a', $1)", [][]byte{[]byte(other)}, nil, nil, nil).Read(); res.Err != nil {
		t.Fatal(res.Err)
	}
	got := prTrace(e.ctx, e.px,
		&pgproto3.Parse{Query: "UPDATE users SET name = 'shadowed' WHERE email = $1"},
		&pgproto3.Sync{},
		&pgproto3.Parse{Query: "UPDATE users SET email = 'moved-4471@example.org' WHERE name = 'a'"},
		&pgproto3.Sync{},
		&pgproto3.Bind{Parameters: [][]byte{[]byte(prRows[0].email)}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Query{String: "SELECT count(*) FROM users WHERE name = 'shadowed'"})
	j := strings.Join(got, " | ")
	if !strings.Contains(j, "more than one tenant") || !strings.Contains(j, "ErrorResponse 26000 unnamed prepared statement does not exist") || !strings.Contains(j, `DataRow("0")`) {
		t.Errorf("a Bind after an unnamed Parse the tenant lookup refused: %s", prShort(got))
	}
}
