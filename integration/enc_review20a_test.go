package integration

// Review 20a: the statement LOWs left by reviews 19 and 19b (each failed
// closed; each answered otherwise than PostgreSQL).
//
//   1. LOW TestReview20aDeallocateAllKeepsRewrittenUnnamed: DEALLOCATE
//      ALL or DISCARD ALL through the extended protocol dropped pgveil's
//      upstream statement for the client's rewritten unnamed statement,
//      which PostgreSQL keeps: a later Bind of it got 26000. Fix: the
//      unnamed statement is prepared anew upstream at its next Bind or
//      Describe (unnamedLost).
//   3. LOW TestReview20aDeallocateParsedEarlier: an extended-protocol
//      DEALLOCATE parsed in one round and run in a later one took the
//      name out of pgveil's view at its Parse: a Parse of the name in
//      between got ParseComplete where PostgreSQL answers 42P05. Fix: a
//      DEALLOCATE or DISCARD ALL through the extended protocol changes
//      the view at each Execute of its portals, as a simple Query does
//      when it is sent.
//   HIGH TestReview20aRefusedParseAfterSwap (found here): a Parse of the
//      name of a pass-through statement with another text, refused by the
//      server (42P05; or an unnamed Parse skipped after an error), after a
//      view swap: the record took the kept text for one planned under the
//      new catalog, and a Bind ran it with the client's plaintext into
//      contacts.note. Fix: ptStmt.stale (planned again at the next Bind).
//   HIGH TestReview20aBindOfSQLPrepared (found here): a statement made by
//      SQL PREPARE, bound through the extended protocol after its table
//      became a view over an encrypted column, was not checked (only its
//      EXECUTE was): the Bind wrote the client's plaintext into
//      contacts.note. Fix: replanOnPathChange checks an SQL-prepared name
//      as replanExecuted does (replanSQLPrepared).
//   5. LOW TestReview20aServerUnnamedGone: the texts the server's own
//      unnamed statement may hold (srvUnnamed) were kept after the server
//      confirmed it gone (pgveil's Close of it, a simple Query): after a
//      view swap a Bind of the unnamed statement got 0A000 where
//      PostgreSQL answers 26000. Fix: tracker.unnamedDropSeq.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestReview20aDeallocateAllKeepsRewrittenUnnamed: the client's unnamed
// statement is one pgveil rewrites (an INSERT into users); DEALLOCATE ALL
// or DISCARD ALL runs through the extended protocol as a named statement,
// in a later round or in the same pipeline; then the unnamed statement is
// described and bound without a new Parse. PostgreSQL keeps the unnamed
// statement apart from the named ones: the same answers through pgveil
// as from PostgreSQL (a mirror of the table, unencrypted).
func TestReview20aDeallocateAllKeepsRewrittenUnnamed(t *testing.T) {
	relayLeakCheck(t)
	r17Engines(t, 26000, func(t *testing.T, e *r17Env) {
		org := e.orgs[0]
		id := int64(26000 + 1000*(org%1000/100))
		describe := []pgproto3.FrontendMessage{&pgproto3.Describe{ObjectType: 'S'}}
		for j, all := range []string{"DEALLOCATE ALL", "DISCARD ALL"} {
			run := []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: "all"}, &pgproto3.Execute{}}
			e.same(all+": parse", nil, &pgproto3.Parse{Query: r17Ins}, &pgproto3.Parse{Name: "all", Query: all}, &pgproto3.Sync{})
			e.same(all+": run", nil, cat(run, sync1)...)
			e.same(all+": describe unnamed after", nil, cat(describe, sync1)...)
			id++
			e.same(all+": bind unnamed after", nil, cat(e.insBind("", id, org, fmt.Sprint("a", j)), sync1)...)
			id++
			e.same(all+": bind unnamed again", nil, cat(e.insBind("", id, org, fmt.Sprint("b", j)), sync1)...)
			// Parsed, closed and bound in one pipeline.
			id++
			e.same(all+": pipelined", nil, cat([]pgproto3.FrontendMessage{&pgproto3.Parse{Query: r17Ins}}, run, e.insBind("", id, org, fmt.Sprint("c", j)), sync1)...)
			e.same(all+": close all", nil, &pgproto3.Close{ObjectType: 'S', Name: "all"}, &pgproto3.Sync{})
			// A DEALLOCATE ALL the server does not run (an aborted block):
			// the unnamed statement runs after the block, as before.
			e.same(all+": parse again", nil, &pgproto3.Parse{Query: r17Ins}, &pgproto3.Parse{Name: "all", Query: all}, &pgproto3.Sync{})
			e.same(all+": aborted", nil, cat(query("BEGIN"), query("SELECT 1/0"), run, sync1, query("ROLLBACK"))...)
			id++
			e.same(all+": bind after the aborted block", nil, cat(e.insBind("", id, org, fmt.Sprint("d", j)), sync1)...)
			e.same(all+": close all again", nil, &pgproto3.Close{ObjectType: 'S', Name: "all"}, &pgproto3.Sync{})
			if all == "DEALLOCATE ALL" {
				// A portal of the unnamed statement, open across the
				// DEALLOCATE ALL (it keeps portals), run after it; then
				// the unnamed statement bound again.
				id++
				bind := e.insBind("", id, org, fmt.Sprint("p", j))[0].(*pgproto3.Bind)
				bind.DestinationPortal = "p1"
				e.same(all+": begin", nil, query("BEGIN")...)
				got := e.same(all+": portal across", nil, &pgproto3.Parse{Query: r17Ins}, &pgproto3.Parse{Name: "all", Query: all}, bind,
					&pgproto3.Bind{PreparedStatement: "all"}, &pgproto3.Execute{}, &pgproto3.Execute{Portal: "p1"}, &pgproto3.Sync{})
				if !strings.Contains(strings.Join(got, " | "), "CommandComplete INSERT 0 1") {
					t.Errorf("portal across: %s", strings.Join(got, " | "))
				}
				id++
				e.same(all+": bind unnamed in the block", nil, cat(e.insBind("", id, org, fmt.Sprint("q", j)), sync1)...)
				e.same(all+": commit", nil, query("COMMIT")...)
				id++
				e.same(all+": bind unnamed after the block", nil, cat(e.insBind("", id, org, fmt.Sprint("r", j)), sync1)...)
			}
		}
		// The table read (a simple Query drops the unnamed statement, and
		// pgveil's for it): nothing left upstream.
		e.check("end")
		if got := strings.Join(r17Trace(e.ctx, e.px, query("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgveil%'")...), " | "); got != `RowDescription(count:20/8/-1/0) | DataRow("0") | CommandComplete SELECT 1 | ReadyForQuery I` {
			t.Errorf("upstream statements: %s", got)
		}
	})
}

// TestReview20aDeallocateParsedEarlier: a DEALLOCATE (of a name, ALL,
// DISCARD ALL) parsed through the extended protocol in one round and run
// in a later one; a Parse of the name between them, and after. The same
// answers as PostgreSQL: the name is taken until the DEALLOCATE runs.
func TestReview20aDeallocateParsedEarlier(t *testing.T) {
	relayLeakCheck(t)
	r17Engines(t, 26200, func(t *testing.T, e *r17Env) {
		org := e.orgs[0]
		id := int64(26200 + 1000*(org%1000/100))
		// (A named DEALLOCATE of a statement pgveil rewrote is refused at
		// its Parse: its upstream name would be fixed then.)
		for j, c := range []struct{ name, sql string }{
			{"d", "DEALLOCATE ALL"},
			{"d", "DISCARD ALL"},
			{"", "DEALLOCATE x"}, // the unnamed statement: pgveil names its own statement
		} {
			what := fmt.Sprintf("%d %q", j, c.sql)
			e.same(what+": prepare x", nil, &pgproto3.Parse{Name: "x", Query: r17Ins}, &pgproto3.Sync{})
			e.same(what+": parse the DEALLOCATE", nil, &pgproto3.Parse{Name: c.name, Query: c.sql}, &pgproto3.Sync{})
			e.same(what+": parse x between", nil, &pgproto3.Parse{Name: "x", Query: r17Ins}, &pgproto3.Sync{})
			id++
			e.same(what+": bind x between", nil, cat(e.insBind("x", id, org, fmt.Sprint("e", j)), sync1)...)
			e.same(what+": run the DEALLOCATE", nil, &pgproto3.Bind{PreparedStatement: c.name}, &pgproto3.Execute{}, &pgproto3.Sync{})
			id++
			e.same(what+": bind x after", nil, cat(e.insBind("x", id, org, fmt.Sprint("f", j)), sync1)...)
			e.same(what+": parse x after", nil, &pgproto3.Parse{Name: "x", Query: r17Ins}, &pgproto3.Sync{})
			id++
			e.same(what+": bind x again", nil, cat(e.insBind("x", id, org, fmt.Sprint("g", j)), sync1)...)
			e.same(what+": close", nil, &pgproto3.Close{ObjectType: 'S', Name: "x"}, &pgproto3.Close{ObjectType: 'S', Name: c.name}, &pgproto3.Sync{})
		}
		e.check("end")
		if got := strings.Join(r17Trace(e.ctx, e.px, query("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgveil%'")...), " | "); got != `RowDescription(count:20/8/-1/0) | DataRow("0") | CommandComplete SELECT 1 | ReadyForQuery I` {
			t.Errorf("upstream statements: %s", got)
		}
	})
}

// TestReview20aServerUnnamedGone: the unnamed statement passed through
// (it writes a plain table), then an unnamed Parse pgveil rewrites (pgveil
// closes the server's unnamed statement, and the server confirms it), or
// a simple Query (the server drops its unnamed statement at each); the
// client closes its unnamed statement; the table becomes a view over an
// encrypted column. A Bind of the unnamed statement gets PostgreSQL's
// 26000 (there is none), not pgveil's 0A000; the plaintext is never
// written.
func TestReview20aServerUnnamedGone(t *testing.T) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			org := int64(26400 + i)
			p := startEncProxy(t, org)
			rewritten := &pgproto3.Parse{Query: "SELECT email FROM contacts WHERE id = $1 AND $2::text IS NOT NULL"}
			for j, between := range [][]pgproto3.FrontendMessage{
				{rewritten, &pgproto3.Sync{}, &pgproto3.Close{ObjectType: 'S'}, &pgproto3.Sync{}},
				{&pgproto3.Query{String: "SELECT 1"}},
				{rewritten, &pgproto3.Sync{}, &pgproto3.Query{String: "SELECT 1"}},
			} {
				rel := fmt.Sprintf("r20a_vu%d", j)
				swap := rev15ViewSwap(t, ctx, p, rel)
				secret := fmt.Sprintf("r20a-unnamed-%d-%d", org, j)
				p.remember(secret)
				app := connectPgx(t, ctx, p.url())
				via := connectPgx(t, ctx, p.url()).PgConn()
				direct := superConn(t, ctx).PgConn()
				steps := [][]pgproto3.FrontendMessage{
					{&pgproto3.Parse{Query: "INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{}},
					between,
				}
				for k, msgs := range steps {
					got := strings.Join(r17Trace(ctx, via, msgs...), " | ")
					want := strings.Join(r17Trace(ctx, direct, msgs...), " | ")
					if got != want {
						t.Fatalf("%d step %d:\n got %s\nwant %s", j, k, got, want)
					}
				}
				bind := []pgproto3.FrontendMessage{&pgproto3.Bind{Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{}}
				want := strings.Join(r17Trace(ctx, direct, bind...), " | ")
				if !strings.HasPrefix(want, "ErrorResponse 26000") {
					t.Fatalf("%d: PostgreSQL ran the unnamed statement: %s", j, want)
				}
				swap(app)
				if got := strings.Join(r17Trace(ctx, via, bind...), " | "); got != want {
					t.Errorf("%d: bound after the swap:\n got %s\nwant %s", j, got, want)
				}
				rev15NoPlainNote(t, ctx, secret)
			}
		})
	}
}

// TestReview20aRefusedParseAfterSwap: a statement passed through (it
// writes a plain table); the table becomes a view over an encrypted
// column; a Parse of the name with another text (the server refuses it,
// 42P05, and keeps the first): a Bind of the name runs the first text,
// which must be checked under the new catalog, not taken as planned
// under it with the new text.
func TestReview20aRefusedParseAfterSwap(t *testing.T) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			org := int64(26700 + i)
			p := startEncProxy(t, org)
			rel := "r20a_vsw"
			swap := rev15ViewSwap(t, ctx, p, rel)
			secret := fmt.Sprintf("r20a-swap-%d", org)
			p.remember(secret)
			app := connectPgx(t, ctx, p.url())
			c := connectPgx(t, ctx, p.url()).PgConn()
			trace := func(msgs ...pgproto3.FrontendMessage) string {
				return strings.Join(r17Trace(ctx, c, msgs...), " | ")
			}
			if got := trace(&pgproto3.Parse{Name: "ins", Query: "INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
				t.Fatalf("parse: %s", got)
			}
			swap(app)
			if got := trace(&pgproto3.Parse{Name: "ins", Query: "SELECT $1::int8, $2::text"}, &pgproto3.Sync{}); !strings.HasPrefix(got, "ErrorResponse 42P05") {
				t.Fatalf("parse again: %s", got)
			}
			got := trace(&pgproto3.Bind{PreparedStatement: "ins", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
			if !strings.HasPrefix(got, "ErrorResponse 0A000") {
				t.Errorf("bound after the swap: %s", got)
			}
			rev15NoPlainNote(t, ctx, secret)

			// The unnamed statement: its next Parse skipped after an error
			// (the server keeps the first text), after the swap.
			rel2 := "r20a_vsw2"
			swap2 := rev15ViewSwap(t, ctx, p, rel2)
			secret2 := secret + "-unnamed"
			p.remember(secret2)
			if got := trace(&pgproto3.Parse{Query: "INSERT INTO " + rel2 + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
				t.Fatalf("parse unnamed: %s", got)
			}
			swap2(app)
			if got := trace(&pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{}, &pgproto3.Parse{Query: "SELECT $1::int8, $2::text"}, &pgproto3.Sync{}); got != r18DivZeroTrace+" | ReadyForQuery I" {
				t.Fatalf("skipped parse: %s", got)
			}
			got = trace(&pgproto3.Bind{Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret2)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
			if !strings.HasPrefix(got, "ErrorResponse 0A000") {
				t.Errorf("unnamed bound after the swap: %s", got)
			}
			rev15NoPlainNote(t, ctx, secret2)
		})
	}
}

// TestReview20aBindOfSQLPrepared: a statement prepared with SQL PREPARE
// (it writes a plain table), bound through the extended protocol after
// the table became a view over an encrypted column: the Bind runs the
// server's statement with the client's values, so it must be checked as
// an EXECUTE of it is.
func TestReview20aBindOfSQLPrepared(t *testing.T) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			org := int64(26800 + i)
			p := startEncProxy(t, org)
			rel := "r20a_vsp"
			swap := rev15ViewSwap(t, ctx, p, rel)
			secret := fmt.Sprintf("r20a-sqlprep-%d", org)
			p.remember(secret)
			app := connectPgx(t, ctx, p.url())
			c := connectPgx(t, ctx, p.url()).PgConn()
			trace := func(msgs ...pgproto3.FrontendMessage) string {
				return strings.Join(r17Trace(ctx, c, msgs...), " | ")
			}
			if got := trace(query("PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)")...); got != "CommandComplete PREPARE | ReadyForQuery I" {
				t.Fatalf("prepare: %s", got)
			}
			swap(app)
			got := trace(&pgproto3.Bind{PreparedStatement: "ins", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
			if !strings.HasPrefix(got, "ErrorResponse 0A000") {
				t.Errorf("bound after the swap: %s", got)
			}
			rev15NoPlainNote(t, ctx, secret)

			// A Parse of the name pipelined before the Bind (the server
			// refuses it, 42P05, and the Bind, after its Sync, runs the
			// SQL-prepared statement): checked too, whether or not pgveil
			// has the Parse's answer when the Bind goes.
			rel2 := "r20a_vsp2"
			swap2 := rev15ViewSwap(t, ctx, p, rel2)
			secret2 := secret + "-parsed"
			p.remember(secret2)
			if got := trace(query("PREPARE ins2 AS INSERT INTO " + rel2 + " (org_id, note) VALUES ($1, $2)")...); got != "CommandComplete PREPARE | ReadyForQuery I" {
				t.Fatalf("prepare: %s", got)
			}
			swap2(app)
			got = trace(&pgproto3.Parse{Name: "ins2", Query: "SELECT $1::int8, $2::text"}, &pgproto3.Sync{},
				&pgproto3.Bind{PreparedStatement: "ins2", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret2)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
			if !strings.HasPrefix(got, "ErrorResponse 42P05") || !strings.Contains(got, "ReadyForQuery I | ErrorResponse 0A000") {
				t.Errorf("parsed and bound after the swap: %s", got)
			}
			rev15NoPlainNote(t, ctx, secret2)
		})
	}
}
