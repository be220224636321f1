package integration

// Review 20e: fresh code of reviews 20a (prepared statement records) and
// 20c.
//
//   HIGH TestReview20eProtocolPrepareRunAgain: an SQL PREPARE sent
//      through the extended protocol was recorded at its Parse only; its
//      portal can run it again and again (one Bind, or a new Bind of the
//      same statement each time), after a DEALLOCATE of the name. The
//      record was gone with the DEALLOCATE's confirmation, the server
//      held the statement again: after a view swap its Bind or EXECUTE
//      ran unchecked, the client's plaintext into contacts.note.
//   HIGH TestReview20eBoundSQLPreparedSetConfig: a statement SQL PREPARE
//      made that calls set_config('search_path', …), run through the
//      extended protocol, changed the server's path unseen: the next
//      INSERT went into the table pgveil's old path named (wrong table).
//   HIGH TestReview20eParsedExecuteBoundAfterSwap: EXECUTE ins(…) parsed
//      as a protocol statement before a view swap (checked at its Parse
//      only), bound after it: the plaintext went through the view into
//      contacts.note.
//      Also nested (e runs e2, which runs ins) and the server's kept
//      unnamed statement (TestReview20eSkippedParseOverExecute).
//   HIGH rewrite TestReview20eSetConfigCastName: set_config's name or value
//      read through a text-changing cast ('search_path   '::char(20)),
//      and 20c's pg_settings row form (a temporary pg_settings, name
//      char(n)), changed search_path while pgveil read another setting.
//   Hold: TestReview20eSimplePrepareThenError, TestReview20eUnnamedAfterSimpleQuery,
//      TestReview20eRewrittenParseOverPassthrough, TestReview20ePipelines.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestReview20eProtocolPrepareRunAgain: PREPARE ins AS INSERT INTO a
// plain table, parsed through the extended protocol as a named statement
// and run; DEALLOCATE ins; the PREPARE statement bound and run again (the
// server holds ins again); the table becomes a view over an encrypted
// column; ins bound through the protocol, or run with SQL EXECUTE: refused
// (0A000), the plaintext never written.
func TestReview20eProtocolPrepareRunAgain(t *testing.T) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			org := int64(27000 + i)
			p := startEncProxy(t, org)
			app := connectPgx(t, ctx, p.url())
			c := connectPgx(t, ctx, p.url()).PgConn()
			trace := func(msgs ...pgproto3.FrontendMessage) string {
				return strings.Join(r17Trace(ctx, c, msgs...), " | ")
			}
			for j, between := range []string{"DEALLOCATE ins", "DEALLOCATE ALL", "DISCARD ALL"} {
				rel := fmt.Sprintf("r20e_pp%d", j)
				swap := rev15ViewSwap(t, ctx, p, rel)
				secret := fmt.Sprintf("r20e-pp-%d-%d", org, j)
				p.remember(secret)
				if got := trace(&pgproto3.Parse{Name: "pp", Query: "PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
					t.Fatalf("%d parse: %s", j, got)
				}
				run := []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: "pp"}, &pgproto3.Execute{}, &pgproto3.Sync{}}
				if got := trace(run...); got != "BindComplete | CommandComplete PREPARE | ReadyForQuery I" {
					t.Fatalf("%d run: %s", j, got)
				}
				if got := trace(query(between)...); !strings.HasPrefix(got, "CommandComplete") {
					t.Fatalf("%d %s: %s", j, between, got)
				}
				if between != "DEALLOCATE ins" {
					// pp went too: parsed again.
					if got := trace(&pgproto3.Parse{Name: "pp", Query: "PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
						t.Fatalf("%d parse again: %s", j, got)
					}
				}
				if got := trace(run...); got != "BindComplete | CommandComplete PREPARE | ReadyForQuery I" {
					t.Fatalf("%d run again: %s", j, got)
				}
				swap(app)
				got := trace(&pgproto3.Bind{PreparedStatement: "ins", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
				if !strings.HasPrefix(got, "ErrorResponse 0A000") {
					t.Errorf("%d bound after the swap: %s", j, got)
				}
				got = trace(query(fmt.Sprintf("EXECUTE ins(%d, '%s-x')", org, secret))...)
				if !strings.HasPrefix(got, "ErrorResponse 0A000") {
					t.Errorf("%d executed after the swap: %s", j, got)
				}
				rev15NoPlainNote(t, ctx, secret)
				trace(query("DEALLOCATE ALL")...)
			}
		})
	}
}

// TestReview20eSimplePrepareThenError: an SQL PREPARE in a simple Query
// string that fails later (the PREPARE ran: PostgreSQL keeps it, it is
// not transactional), behind other statements, rewritten ones among
// them; the table becomes a view over an encrypted column; the name
// bound and executed: refused, the plaintext never written.
func TestReview20eSimplePrepareThenError(t *testing.T) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			org := int64(27100 + i)
			p := startEncProxy(t, org)
			app := connectPgx(t, ctx, p.url())
			c := connectPgx(t, ctx, p.url()).PgConn()
			trace := func(msgs ...pgproto3.FrontendMessage) string {
				return strings.Join(r17Trace(ctx, c, msgs...), " | ")
			}
			for j, f := range []string{
				"PREPARE ins AS INSERT INTO %s (org_id, note) VALUES ($1, $2); SELECT 1/0",
				"SELECT 1; PREPARE ins AS INSERT INTO %s (org_id, note) VALUES ($1, $2); SELECT 1/0",
				"BEGIN; PREPARE ins AS INSERT INTO %s (org_id, note) VALUES ($1, $2); SELECT 1/0; COMMIT",
				"INSERT INTO contacts (org_id, note) VALUES (" + fmt.Sprint(org) + ", 'n'); PREPARE ins AS INSERT INTO %s (org_id, note) VALUES ($1, $2); SELECT 1/0",
				"SELECT note FROM contacts WHERE org_id = " + fmt.Sprint(org) + " LIMIT 1; PREPARE ins AS INSERT INTO %s (org_id, note) VALUES ($1, $2); SELECT 1/0",
				"PREPARE ins AS INSERT INTO %s (org_id, note) VALUES ($1, $2); PREPARE ins AS SELECT $1::int8, $2::text",
				"PREPARE ins AS INSERT INTO %s (org_id, note) VALUES ($1, $2); DEALLOCATE nosuch",
			} {
				rel := fmt.Sprintf("r20e_sp%d", j)
				swap := rev15ViewSwap(t, ctx, p, rel)
				secret := fmt.Sprintf("r20e-sp-%d-%d", org, j)
				p.remember(secret)
				if got := trace(query(fmt.Sprintf(f, rel))...); !strings.Contains(got, "ErrorResponse") {
					t.Fatalf("%d: %s", j, got)
				}
				trace(query("ROLLBACK")...)
				swap(app)
				got := trace(&pgproto3.Bind{PreparedStatement: "ins", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
				if !strings.HasPrefix(got, "ErrorResponse 0A000") {
					t.Errorf("%d bound after the swap: %s", j, got)
				}
				got = trace(query(fmt.Sprintf("EXECUTE ins(%d, '%s-x')", org, secret))...)
				if !strings.HasPrefix(got, "ErrorResponse 0A000") {
					t.Errorf("%d executed after the swap: %s", j, got)
				}
				rev15NoPlainNote(t, ctx, secret)
				trace(query("DEALLOCATE ALL")...)
			}
		})
	}
}

// TestReview20eUnnamedAfterSimpleQuery: the client's unnamed statement is
// one pgveil rewrites; a simple Query (any: it drops the unnamed
// statement in PostgreSQL) then a Bind of the unnamed statement without
// a new Parse. The same answers as PostgreSQL on a plain mirror.
func TestReview20eUnnamedAfterSimpleQuery(t *testing.T) {
	relayLeakCheck(t)
	r17Engines(t, 27200, func(t *testing.T, e *r17Env) {
		org := e.orgs[0]
		id := int64(27200 + 1000*(org%1000/100))
		for j, q := range []string{"SELECT 1", "DEALLOCATE ALL", "DISCARD ALL", "SELECT 1/0"} {
			e.same(q+": parse", nil, &pgproto3.Parse{Query: r17Ins}, &pgproto3.Sync{})
			e.same(q+": query", nil, query(q)...)
			id++
			e.same(q+": bind unnamed after", nil, cat(e.insBind("", id, org, fmt.Sprint("a", j)), sync1)...)
			e.same(q+": describe unnamed after", nil, &pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Sync{})
		}
		e.check("end")
	})
}

// TestReview20eRewrittenParseOverPassthrough: a named statement passed
// through (it writes a plain table); a Parse of the same name that pgveil
// rewrites (PostgreSQL refuses it, 42P05, and keeps the first); the
// client closes the name, binds it; the table becomes a view over an
// encrypted column; the name bound again. The plaintext is never written.
func TestReview20eRewrittenParseOverPassthrough(t *testing.T) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			org := int64(27300 + i)
			p := startEncProxy(t, org)
			app := connectPgx(t, ctx, p.url())
			c := connectPgx(t, ctx, p.url()).PgConn()
			trace := func(msgs ...pgproto3.FrontendMessage) string {
				return strings.Join(r17Trace(ctx, c, msgs...), " | ")
			}
			for j, close := range []bool{false, true} {
				rel := fmt.Sprintf("r20e_rw%d", j)
				swap := rev15ViewSwap(t, ctx, p, rel)
				secret := fmt.Sprintf("r20e-rw-%d-%d", org, j)
				p.remember(secret)
				ins := &pgproto3.Parse{Name: "ins", Query: "INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}
				if got := trace(ins, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
					t.Fatalf("%d parse: %s", j, got)
				}
				got := trace(&pgproto3.Parse{Name: "ins", Query: "INSERT INTO contacts (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{})
				t.Logf("%d rewritten parse of the name: %s", j, got)
				if close {
					t.Logf("%d close: %s", j, trace(&pgproto3.Close{ObjectType: 'S', Name: "ins"}, &pgproto3.Sync{}))
				}
				swap(app)
				got = trace(&pgproto3.Bind{PreparedStatement: "ins", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
				t.Logf("%d bound after the swap: %s", j, got)
				got = trace(query(fmt.Sprintf("EXECUTE ins(%d, '%s-x')", org, secret))...)
				t.Logf("%d executed after the swap: %s", j, got)
				rev15NoPlainNote(t, ctx, secret)
				trace(query("DEALLOCATE ALL")...)
			}
		})
	}
}

// TestReview20ePipelines: pipelines mixing Parse, Bind, Close, DEALLOCATE
// and DISCARD ALL, errors mid-pipeline, transaction blocks: the same
// answers through pgveil as from PostgreSQL on a plain mirror.
func TestReview20ePipelines(t *testing.T) {
	relayLeakCheck(t)
	r17Engines(t, 27400, func(t *testing.T, e *r17Env) {
		org := e.orgs[0]
		id := int64(27400 + 1000*(org%1000/100))
		bad := &pgproto3.Bind{PreparedStatement: "x", Parameters: [][]byte{[]byte("notanint")}}
		pt := &pgproto3.Parse{Name: "p", Query: "SELECT $1::int8 + 1"}
		bindP := []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: "p", Parameters: [][]byte{[]byte("41")}}, &pgproto3.Execute{}}
		nextID := func() int64 { id++; return id }
		for k, steps := range [][][]pgproto3.FrontendMessage{
			// An error before a DEALLOCATE ALL: skipped, x stays.
			{
				{&pgproto3.Parse{Name: "x", Query: r17Ins}, pt, &pgproto3.Sync{}},
				{bad, &pgproto3.Execute{}, &pgproto3.Parse{Name: "d", Query: "DEALLOCATE ALL"}, &pgproto3.Sync{}},
				{&pgproto3.Parse{Name: "x", Query: r17Ins}, &pgproto3.Sync{}},
				cat(e.insBind("x", nextID(), org, "p3"), bindP, sync1),
				{&pgproto3.Parse{Name: "d", Query: "DEALLOCATE ALL"}, &pgproto3.Bind{PreparedStatement: "d"}, &pgproto3.Execute{}, &pgproto3.Sync{}},
			},
			// DEALLOCATE ALL parsed, x parsed, then run: x gone after.
			{
				{&pgproto3.Parse{Name: "d", Query: "DEALLOCATE ALL"}, &pgproto3.Sync{}},
				{&pgproto3.Parse{Name: "x", Query: r17Ins}, pt, &pgproto3.Bind{PreparedStatement: "d"}, &pgproto3.Execute{}, &pgproto3.Sync{}},
				cat(e.insBind("x", nextID(), org, "p4"), sync1),
				cat(bindP, sync1),
				{&pgproto3.Parse{Name: "x", Query: r17Ins}, pt, &pgproto3.Sync{}},
				cat(e.insBind("x", nextID(), org, "p4b"), bindP, sync1),
				{&pgproto3.Close{ObjectType: 'S', Name: "x"}, &pgproto3.Close{ObjectType: 'S', Name: "p"}, &pgproto3.Sync{}},
			},
			// DISCARD ALL refused in a transaction block: x and p stay.
			{
				{&pgproto3.Parse{Name: "x", Query: r17Ins}, pt, &pgproto3.Sync{}},
				query("BEGIN"),
				{&pgproto3.Parse{Name: "d", Query: "DISCARD ALL"}, &pgproto3.Bind{PreparedStatement: "d"}, &pgproto3.Execute{}, &pgproto3.Sync{}},
				query("ROLLBACK"),
				cat(e.insBind("x", nextID(), org, "p5"), bindP, sync1),
				{&pgproto3.Bind{PreparedStatement: "d"}, &pgproto3.Execute{}, &pgproto3.Sync{}},
				cat(e.insBind("x", nextID(), org, "p5b"), bindP, sync1),
				{&pgproto3.Close{ObjectType: 'S', Name: "d"}, &pgproto3.Sync{}},
			},
			// DEALLOCATE in a block rolled back: not transactional.
			{
				{&pgproto3.Parse{Name: "x", Query: r17Ins}, pt, &pgproto3.Sync{}},
				query("BEGIN; DEALLOCATE x; DEALLOCATE p; ROLLBACK"),
				cat(e.insBind("x", nextID(), org, "p6"), sync1),
				cat(bindP, sync1),
				{&pgproto3.Parse{Name: "x", Query: r17Ins}, pt, &pgproto3.Sync{}},
				cat(e.insBind("x", nextID(), org, "p6b"), bindP, sync1),
				query("BEGIN"),
				{&pgproto3.Parse{Name: "d", Query: "DEALLOCATE p"}, &pgproto3.Bind{PreparedStatement: "d"}, &pgproto3.Execute{}, &pgproto3.Sync{}},
				query("ROLLBACK"),
				cat(bindP, sync1),
				{pt, &pgproto3.Close{ObjectType: 'S', Name: "d"}, &pgproto3.Close{ObjectType: 'S', Name: "x"}, &pgproto3.Sync{}},
			},
			// Close and Parse again in one pipeline, an error after.
			{
				{&pgproto3.Parse{Name: "x", Query: r17Ins}, pt, &pgproto3.Sync{}},
				cat([]pgproto3.FrontendMessage{&pgproto3.Close{ObjectType: 'S', Name: "x"}, &pgproto3.Parse{Name: "x", Query: r17Ins}}, e.insBind("x", nextID(), org, "p8"),
					[]pgproto3.FrontendMessage{&pgproto3.Close{ObjectType: 'S', Name: "p"}, pt, bad, &pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'S', Name: "x"}, &pgproto3.Sync{}}),
				cat(e.insBind("x", nextID(), org, "p8b"), bindP, sync1),
				{&pgproto3.Parse{Name: "x", Query: r17Ins}, pt, &pgproto3.Sync{}},
				query("DEALLOCATE ALL"),
				cat(e.insBind("x", nextID(), org, "p8c"), bindP, sync1),
			},
			// Simple-Query DEALLOCATE ALL in an aborted block (25P02): x
			// and p stay; SQL PREPARE in a block rolled back stays.
			{
				{&pgproto3.Parse{Name: "x", Query: r17Ins}, pt, &pgproto3.Sync{}},
				query("BEGIN"),
				query("SELECT 1/0"),
				query("DEALLOCATE ALL"),
				query("PREPARE sq AS SELECT $1::int8 * 2"),
				query("ROLLBACK"),
				cat(e.insBind("x", nextID(), org, "pa"), bindP, sync1),
				query("EXECUTE sq(1)"),
				query("BEGIN; PREPARE sq AS SELECT $1::int8 * 2; ROLLBACK"),
				query("EXECUTE sq(2)"),
				{&pgproto3.Bind{PreparedStatement: "sq", Parameters: [][]byte{[]byte("3")}}, &pgproto3.Execute{}, &pgproto3.Sync{}},
				query("BEGIN; DEALLOCATE sq; SELECT 1/0"),
				query("ROLLBACK"),
				query("EXECUTE sq(4)"),
			},
			// A portal of x open across DEALLOCATE ALL (in a block).
			{
				query("BEGIN"),
				cat([]pgproto3.FrontendMessage{&pgproto3.Parse{Name: "x", Query: r17Ins}, pt}, []pgproto3.FrontendMessage{&pgproto3.Bind{DestinationPortal: "q", PreparedStatement: "p", Parameters: [][]byte{[]byte("1")}}}, sync1),
				query("DEALLOCATE ALL"),
				{&pgproto3.Execute{Portal: "q"}, &pgproto3.Sync{}},
				cat(e.insBind("x", nextID(), org, "p9"), sync1),
				query("ROLLBACK"),
			},
		} {
			for j, msgs := range steps {
				e.same(fmt.Sprintf("%d.%d", k, j), nil, msgs...)
			}
			e.same(fmt.Sprintf("%d end", k), nil, query("DEALLOCATE ALL")...)
		}
		e.check("end")
	})
}

// TestReview20eBoundSQLPreparedSetConfig: a statement made by SQL PREPARE
// that calls set_config('search_path', …), bound and run through the
// extended protocol: the server's path changes, which pgveil must see (an
// SQL EXECUTE of it makes the path unknown). The session's path first
// puts a schema with a plain contacts table before public, or names only
// an empty schema; the prepared statement sets the path to public alone;
// an INSERT into contacts must then go where PostgreSQL puts it, into
// public.contacts, encrypted: not into the plain table pgveil resolved
// under the old path, and never as plaintext.
func TestReview20eBoundSQLPreparedSetConfig(t *testing.T) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			org := int64(27500 + i)
			p := startEncProxy(t, org)
			su := superConn(t, ctx)
			if _, err := su.Exec(ctx, `DROP SCHEMA IF EXISTS r20e_plain CASCADE; CREATE SCHEMA r20e_plain;
				DROP SCHEMA IF EXISTS r20e_empty CASCADE; CREATE SCHEMA r20e_empty;
				CREATE TABLE r20e_plain.contacts (org_id int8, note text);
				GRANT USAGE ON SCHEMA r20e_plain, r20e_empty TO scram_user; GRANT ALL ON r20e_plain.contacts TO scram_user`); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { su.Exec(context.Background(), `DROP SCHEMA IF EXISTS r20e_plain, r20e_empty CASCADE`) })
			c := connectPgx(t, ctx, p.url()).PgConn()
			trace := func(msgs ...pgproto3.FrontendMessage) string {
				return strings.Join(r17Trace(ctx, c, msgs...), " | ")
			}
			// pgveil reads its catalog again (DDL through it).
			trace(query("CREATE TEMP TABLE r20e_bump (); DROP TABLE r20e_bump")...)
			for j, run := range [][]pgproto3.FrontendMessage{
				{&pgproto3.Bind{PreparedStatement: "sp"}, &pgproto3.Execute{}, &pgproto3.Sync{}},
				{&pgproto3.Bind{PreparedStatement: "sp"}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}},
				{&pgproto3.Bind{PreparedStatement: "sp", DestinationPortal: "q"}, &pgproto3.Execute{Portal: "q"}, &pgproto3.Sync{}},
			} {
				for _, path := range []string{"r20e_plain, public", "r20e_empty"} {
					what := fmt.Sprintf("%d %s", j, path)
					secret := fmt.Sprintf("r20e-spc-%d-%d-%s", org, j, path[5:10])
					p.remember(secret)
					if got := trace(query("SET search_path = " + path)...); got != "CommandComplete SET | ReadyForQuery I" {
						t.Fatalf("%s set: %s", what, got)
					}
					if got := trace(query("PREPARE sp AS SELECT pg_catalog.set_config('search_path', 'public', false)")...); got != "CommandComplete PREPARE | ReadyForQuery I" {
						t.Fatalf("%s prepare: %s", what, got)
					}
					// The path is read again (a statement naming a
					// configured name) before the PREPARE's statement runs.
					trace(query("SELECT count(*) FROM contacts")...)
					if got := trace(run...); !strings.Contains(got, "CommandComplete SELECT 1") {
						t.Fatalf("%s run: %s", what, got)
					}
					if got := trace(query(fmt.Sprintf("INSERT INTO contacts (org_id, note) VALUES (%d, '%s')", org, secret))...); got != "CommandComplete INSERT 0 1 | ReadyForQuery I" {
						t.Errorf("%s insert after: %s", what, got)
					}
					rev15NoPlainNote(t, ctx, secret)
					var inPlain int
					if err := su.QueryRow(ctx, `SELECT count(*) FROM r20e_plain.contacts WHERE note = $1`, secret).Scan(&inPlain); err != nil {
						t.Fatal(err)
					}
					if inPlain != 0 {
						t.Errorf("%s: the row went into r20e_plain.contacts, where PostgreSQL's path (public) does not look", what)
					}
					trace(query("DEALLOCATE ALL")...)
				}
			}
		})
	}
}

// TestReview20eParsedExecuteBoundAfterSwap: EXECUTE ins(…) parsed through
// the extended protocol as a named statement before the swap (checked at
// its Parse), bound after it: the EXECUTE runs the SQL-prepared INSERT
// into what is now a view over an encrypted column; it must be checked
// again at the Bind.
func TestReview20eParsedExecuteBoundAfterSwap(t *testing.T) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			org := int64(27600 + i)
			p := startEncProxy(t, org)
			app := connectPgx(t, ctx, p.url())
			c := connectPgx(t, ctx, p.url()).PgConn()
			trace := func(msgs ...pgproto3.FrontendMessage) string {
				return strings.Join(r17Trace(ctx, c, msgs...), " | ")
			}
			for j, how := range []string{"named", "unnamed", "nested", "self"} {
				rel := fmt.Sprintf("r20e_ex%d", j)
				swap := rev15ViewSwap(t, ctx, p, rel)
				secret := fmt.Sprintf("r20e-ex-%d-%d", org, j)
				p.remember(secret)
				if got := trace(query("PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)")...); got != "CommandComplete PREPARE | ReadyForQuery I" {
					t.Fatalf("%d prepare: %s", j, got)
				}
				text := fmt.Sprintf("EXECUTE ins(%d, '%s')", org, secret)
				name := "e"
				switch how {
				case "unnamed":
					name = ""
				case "nested":
					// e runs e2, which runs ins.
					if got := trace(&pgproto3.Parse{Name: "e2", Query: text}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
						t.Fatalf("%d parse e2: %s", j, got)
					}
					text = "EXECUTE e2"
				}
				if got := trace(&pgproto3.Parse{Name: name, Query: text}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
					t.Fatalf("%d parse: %s", j, got)
				}
				if how == "self" {
					// Never done: e runs itself (PostgreSQL would recurse
					// until its stack depth limit); bound, refused.
					if got := trace(&pgproto3.Parse{Name: "self", Query: "EXECUTE self"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
						t.Fatalf("%d parse self: %s", j, got)
					}
					t.Logf("self: %s", trace(&pgproto3.Bind{PreparedStatement: "self"}, &pgproto3.Execute{}, &pgproto3.Sync{}))
				}
				swap(app)
				got := trace(&pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{})
				if !strings.HasPrefix(got, "ErrorResponse 0A000") {
					t.Errorf("%d bound after the swap: %s", j, got)
				}
				rev15NoPlainNote(t, ctx, secret)
				trace(query("DEALLOCATE ALL")...)
			}
		})
	}
}

// TestReview20eSkippedParseOverExecute: the unnamed statement is EXECUTE
// ins(…) (ins an SQL PREPARE of an INSERT into a plain table); after a
// view swap a new unnamed Parse is skipped after an error (pass-through,
// or one pgveil rewrites), so the server keeps the EXECUTE: a Bind of the
// unnamed statement must check what it executes.
func TestReview20eSkippedParseOverExecute(t *testing.T) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			org := int64(27700 + i)
			p := startEncProxy(t, org)
			app := connectPgx(t, ctx, p.url())
			c := connectPgx(t, ctx, p.url()).PgConn()
			trace := func(msgs ...pgproto3.FrontendMessage) string {
				return strings.Join(r17Trace(ctx, c, msgs...), " | ")
			}
			for j, next := range []string{"SELECT $1::int8, $2::text", "INSERT INTO contacts (org_id, note) VALUES ($1, $2)"} {
				rel := fmt.Sprintf("r20e_sk%d", j)
				swap := rev15ViewSwap(t, ctx, p, rel)
				secret := fmt.Sprintf("r20e-sk-%d-%d", org, j)
				p.remember(secret)
				if got := trace(query("PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)")...); got != "CommandComplete PREPARE | ReadyForQuery I" {
					t.Fatalf("%d prepare: %s", j, got)
				}
				if got := trace(&pgproto3.Parse{Query: fmt.Sprintf("EXECUTE ins(%d, '%s')", org, secret)}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
					t.Fatalf("%d parse: %s", j, got)
				}
				swap(app)
				if got := trace(&pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{}, &pgproto3.Parse{Query: next}, &pgproto3.Sync{}); !strings.Contains(got, "ErrorResponse 22012") {
					t.Fatalf("%d skipped parse: %s", j, got)
				}
				got := trace(&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
				if !strings.HasPrefix(got, "ErrorResponse") {
					t.Errorf("%d unnamed bound after the swap: %s", j, got)
				}
				rev15NoPlainNote(t, ctx, secret)
				got = trace(&pgproto3.Bind{Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte("two-" + secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
				t.Logf("%d bound with two parameters: %s", j, got)
				trace(query("DEALLOCATE ALL")...)
			}
		})
	}
}
