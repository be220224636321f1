package integration

// Review 19b: the fixes of review 19 under attack.
//
//   1. HIGH TestReview19bUnnamedAfterRewrittenParse: the unnamed
//      statement passed through (a plain table), then an unnamed Parse
//      pgveil rewrites, skipped after an error earlier in its pipeline
//      (with pgveil's Close of the server's unnamed statement): the
//      server kept the first. When the client's view of the unnamed
//      statement became a pass-through one again without a Parse (a
//      Close of it, which pgveil sends for its own statement only; a
//      simple Query the server skipped too), a Bind found no record
//      (srvUnnamed was read at the next pass-through Parse only; and
//      with no named pass-through statement the check was not even
//      reached): after a view swap it wrote the client's plaintext into
//      contacts.note. Fix: replanServerUnnamed.
//   2. MEDIUM TestReview19bExtendedDeallocateAll,
//      TestReview19bExtendedDeallocatePassthrough: a DEALLOCATE through
//      the extended protocol (psycopg 3's evictions) of a pass-through
//      name marked its record closed at the Parse, and no answer ever
//      confirmed it: one record per evicted name for the session's life,
//      and a false 0A000 after a later view swap; DEALLOCATE ALL so made
//      every name of a statement pgveil rewrites unusable for good
//      (restoreUnclosed put the ghosts back: 42P05 at each Parse, 26000
//      at each Bind). Fix: such a DEALLOCATE or DISCARD ALL closes at
//      each Execute of its portals, confirmed by its CommandComplete.
//   3. MEDIUM TestReview19bExecuteShapes: EXECUTE of a pass-through
//      statement in a DO block's dynamic SQL (`EXECUTE 'EXECUTE ins(…)'`)
//      was not checked: plaintext into contacts.note after a view swap.
//      Fix: rewrite.CodeExecutedNames (a name built from pieces stays
//      unseen: dynamic SQL, docs/LIMITS.md).
//   4. MEDIUM TestReview19bPrepareInDO: a statement prepared by a DO
//      block (PREPARE in its code or in EXECUTE's string) had no record:
//      after a view swap its EXECUTE or Bind wrote plaintext into
//      contacts.note. Fix: such code is refused (preparesStatement).
//   5. MEDIUM TestReview19bCloseAndPrepareAgain: a name closed and
//      prepared again in one breath (DEALLOCATE x; PREPARE x AS … in one
//      string; Close and Parse pipelined) kept the closed texts after the
//      close was confirmed (review 19's noted LOW); past 16 of them a
//      NUL sentinel refused the name for good after any DDL. Fix:
//      earlierUntil.
//   6. LOW TestReview19bExtendedDeallocateAllFails: the ghosts of an
//      extended-protocol DEALLOCATE ALL the server did not run (an aborted
//      block, an error before it: psycopg 3 sends it so) stayed ghosts: a
//      Parse of the name got ParseComplete where PostgreSQL answers 42P05,
//      and a second statement went upstream. Fix: tracker.closingAt.
//   7. LOW (no test): a session running SQL DEALLOCATEs of pass-through
//      statements and no Bind kept each confirmation (tracker.gone).
//
// TestReview19bDeallocateAllKeepsUnnamed covers a regression of fix 2
// found before it was committed: DEALLOCATE ALL or DISCARD ALL, run as a
// named statement, took the unnamed statement's record away (PostgreSQL
// keeps the unnamed statement), and a Bind ran it unchecked.
//
// Held: TestReview19bEvictionChurn (psycopg 3's churn on the wire, some
// DEALLOCATEs skipped: the session keeps step, nothing left upstream);
// TestReview19bUnnamedLikePostgres (pipelines of unnamed Parses with
// errors, Describe, Close, simple Queries: PostgreSQL's answers);
// TestReview19bUnnamedAfterPinnedParse (a pinned skipped Parse: refused);
// ops_review19b_test.go (statements sealed at Parse, re-prepared after
// rotate in a block, behind an error, in an aborted block);
// EXPLAIN ANALYZE EXECUTE and EXECUTE in a multi-statement string; DDL
// and a write in one string (CREATE VIEW over an encrypted column is
// refused).

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestReview19bUnnamedAfterRewrittenParse: the unnamed statement passed
// through (it writes a plain table); an unnamed Parse pgveil rewrites,
// skipped by the server after an error earlier in its pipeline (the
// server keeps the first statement: the Close pgveil sends for it is
// skipped too); then the client's view of the unnamed statement becomes
// a pass-through one again without a Parse: a Close of the unnamed
// statement, or a simple Query the server skipped in the same pipeline.
// After the table became a view over an encrypted column, a Bind of the
// unnamed statement must not run the first text with the client's
// plaintext.
func TestReview19bUnnamedAfterRewrittenParse(t *testing.T) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			org := int64(23100 + i)
			p := startEncProxy(t, org)
			rewritten := &pgproto3.Parse{Query: "SELECT email FROM contacts WHERE id = $1 AND $2::text IS NOT NULL"}
			for j, after := range [][]pgproto3.FrontendMessage{
				{&pgproto3.Sync{}, &pgproto3.Close{ObjectType: 'S'}, &pgproto3.Sync{}},
				{&pgproto3.Query{String: "SELECT 1"}, &pgproto3.Sync{}},
				nil, // no named statement in the session: the error is a Bind's
			} {
				rel := fmt.Sprintf("r19b_vu%d", j)
				swap := rev15ViewSwap(t, ctx, p, rel)
				secret := fmt.Sprintf("r19b-unnamed-%d-%d", org, j)
				p.remember(secret)
				app := connectPgx(t, ctx, p.url())
				c := connectPgx(t, ctx, p.url()).PgConn()
				trace := func(msgs ...pgproto3.FrontendMessage) string {
					return strings.Join(r17Trace(ctx, c, msgs...), " | ")
				}
				if got := trace(&pgproto3.Parse{Query: "INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
					t.Fatalf("parse: %s", got)
				}
				if after != nil {
					msgs := append([]pgproto3.FrontendMessage{&pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{}, rewritten}, after...)
					syncs := 0
					for _, m := range after {
						if _, ok := m.(*pgproto3.Sync); ok {
							syncs++
						}
					}
					if got := r19bTraceN(ctx, c, syncs, msgs...); !strings.HasPrefix(got, "ParseComplete | ErrorResponse 22012 division by zero | ReadyForQuery I") || strings.Contains(got, "receive:") {
						t.Fatalf("%d: skipped: %s", j, got)
					}
				} else {
					got := trace(&pgproto3.Bind{}, &pgproto3.Execute{}, rewritten, &pgproto3.Sync{}, &pgproto3.Close{ObjectType: 'S'}, &pgproto3.Sync{})
					if !strings.HasPrefix(got, "ErrorResponse 08P01 bind message supplies 0 parameters") || !strings.HasSuffix(got, "ReadyForQuery I | CloseComplete | ReadyForQuery I") {
						t.Fatalf("%d: skipped: %s", j, got)
					}
				}
				swap(app)
				got := trace(&pgproto3.Bind{Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
				if !strings.HasPrefix(got, "ErrorResponse") {
					t.Errorf("%d: the unnamed statement bound after the swap: %s", j, got)
				}
				rev15NoPlainNote(t, ctx, secret)
			}
		})
	}
}

// extDeallocate is a DEALLOCATE sent through the extended protocol, as
// psycopg 3 sends its evictions: the unnamed statement, bound and run.
func extDeallocate(name string) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "DEALLOCATE " + name}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
}

// TestReview19bExtendedDeallocateAll: DEALLOCATE ALL through the extended
// protocol, which ran, then a Parse of the name of a statement pgveil
// rewrote: PostgreSQL prepares it (the name is free), and so must pgveil
// (review 19's restoreUnclosed took the close for one the server had not
// run, and answered 42P05).
func TestReview19bExtendedDeallocateAll(t *testing.T) {
	relayLeakCheck(t)
	r18Engines(t, 23300, func(t *testing.T, e *r18Env) {
		ran := "ParseComplete | BindComplete | CommandComplete DEALLOCATE ALL | ReadyForQuery I"
		for i := 0; i < 3; i++ {
			e.expect("parse", "ParseComplete | ReadyForQuery I", &pgproto3.Parse{Name: "rp", Query: r18Q}, &pgproto3.Sync{})
			e.expect("bound", e.rows(2)+" | ReadyForQuery I", cat(e.bind("rp"), sync1)...)
			e.expect("deallocate all", ran, extDeallocate("ALL")...)
		}
		e.expect("parse after", "ParseComplete | ReadyForQuery I", &pgproto3.Parse{Name: "rp", Query: r18Q}, &pgproto3.Sync{})
		e.expect("bound after", e.rows(2)+" | ReadyForQuery I", cat(e.bind("rp"), sync1)...)
		if got := e.upstream(); got != `RowDescription(count:20/8/-1/0) | DataRow("1") | CommandComplete SELECT 1 | ReadyForQuery I` {
			t.Errorf("upstream statements: %s", got)
		}
	})
}

// TestReview19bExtendedDeallocatePassthrough: a pass-through statement
// deallocated through the extended protocol (the DEALLOCATE ran), its
// name prepared again with a text that touches nothing pgveil encrypts;
// the old text's table then becomes a view over an encrypted column. The
// new statement runs, as in PostgreSQL: the record of the old one must
// have gone with the DEALLOCATE's answer (review 19 kept it, marked
// closed, for the session's life: one per name psycopg 3 evicts).
func TestReview19bExtendedDeallocatePassthrough(t *testing.T) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			org := int64(23500 + i)
			p := startEncProxy(t, org)
			rel := "r19b_vdx"
			swap := rev15ViewSwap(t, ctx, p, rel)
			app := connectPgx(t, ctx, p.url())
			c := connectPgx(t, ctx, p.url()).PgConn()
			trace := func(msgs ...pgproto3.FrontendMessage) string {
				return strings.Join(r17Trace(ctx, c, msgs...), " | ")
			}
			if got := trace(&pgproto3.Parse{Name: "ins", Query: "INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
				t.Fatalf("parse: %s", got)
			}
			if got := trace(extDeallocate("ins")...); got != "ParseComplete | BindComplete | CommandComplete DEALLOCATE | ReadyForQuery I" {
				t.Fatalf("deallocate: %s", got)
			}
			if got := trace(&pgproto3.Parse{Name: "ins", Query: "SELECT $1::int8, $2::text"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
				t.Fatalf("parse again: %s", got)
			}
			swap(app)
			v := fmt.Sprintf("r19b-dx-%d", org)
			p.remember(v)
			got := trace(&pgproto3.Bind{PreparedStatement: "ins", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(v)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
			if want := fmt.Sprintf(`BindComplete | DataRow("%d","%s") | CommandComplete SELECT 1 | ReadyForQuery I`, org, v); got != want {
				t.Errorf("bound after the swap:\n got %s\nwant %s", got, want)
			}

			// The same DEALLOCATE skipped after an error before it: the
			// statement stays upstream, and stays checked.
			rel2 := "r19b_vdx2"
			swap2 := rev15ViewSwap(t, ctx, p, rel2)
			secret := fmt.Sprintf("r19b-dx-secret-%d", org)
			p.remember(secret)
			if got := trace(&pgproto3.Parse{Name: "ins2", Query: "INSERT INTO " + rel2 + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
				t.Fatalf("parse: %s", got)
			}
			if got := trace(cat([]pgproto3.FrontendMessage{&pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{}}, extDeallocate("ins2"))...); !strings.HasPrefix(got, "ParseComplete | ErrorResponse 22012") || strings.Contains(got, "DEALLOCATE") {
				t.Fatalf("skipped deallocate: %s", got)
			}
			swap2(app)
			got = trace(&pgproto3.Bind{PreparedStatement: "ins2", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
			if !strings.HasPrefix(got, "ErrorResponse 0A000") {
				t.Errorf("bound after the swap, its DEALLOCATE skipped: %s", got)
			}
			rev15NoPlainNote(t, ctx, secret)
		})
	}
}

// TestReview19bExecuteShapes: a protocol-level statement pgveil passed
// through (it writes a plain table), run with SQL EXECUTE in other shapes
// after the table became a view over an encrypted column: EXPLAIN
// ANALYZE, a multi-statement string, dynamic SQL in a DO block (review
// 19 checked the first two; a DO block wrote the plaintext argument into
// contacts.note).
func TestReview19bExecuteShapes(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 2*time.Minute)
	org := int64(23900)
	p := startEncProxy(t, org)
	for j, shape := range []string{
		"EXPLAIN ANALYZE EXECUTE ins(%d, '%s')",
		"SELECT 1; EXECUTE ins(%d, '%s')",
		"DO $$ BEGIN EXECUTE 'EXECUTE ins(%d, ''%s'')'; END $$",
		"DO $$ BEGIN EXECUTE format('EXECUTE %%s(%d, ''%s'')', 'ins'); END $$",
		// (A name built from pieces, 'i' || 'ns', is not seen: dynamic SQL,
		// docs/LIMITS.md.)
	} {
		rel := fmt.Sprintf("r19b_vx%d", j)
		swap := rev15ViewSwap(t, ctx, p, rel)
		secret := fmt.Sprintf("r19b-exec-%d", j)
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
		if got := trace(&pgproto3.Query{String: fmt.Sprintf(shape, org, secret)}); !strings.HasPrefix(got, "ErrorResponse 0A000") {
			t.Errorf("%d: run after the swap: %s", j, got)
		}
		rev15NoPlainNote(t, ctx, secret)
	}
}

// TestReview19bCloseAndPrepareAgain: a statement closed and prepared
// again under its name in one breath (DEALLOCATE and PREPARE in one query
// string; Close and Parse pipelined), many times with new texts, then DDL
// anywhere: the statement runs, as in PostgreSQL. The texts closed before
// must go once the server confirms the close (review 19 kept them, and
// past 16 a text no plan accepts: the name refused for good).
func TestReview19bCloseAndPrepareAgain(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 2*time.Minute)
	p := startEncProxy(t, 24100)
	p.remember("r19b-close-and-prepare")
	c := connectPgx(t, ctx, p.url()).PgConn()
	trace := func(msgs ...pgproto3.FrontendMessage) string {
		return strings.Join(r17Trace(ctx, c, msgs...), " | ")
	}
	if got := trace(&pgproto3.Query{String: "PREPARE x AS SELECT 0"}); got != "CommandComplete PREPARE | ReadyForQuery I" {
		t.Fatalf("prepare: %s", got)
	}
	if got := trace(&pgproto3.Parse{Name: "y", Query: "SELECT 0"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
		t.Fatalf("parse: %s", got)
	}
	for i := 1; i <= 20; i++ {
		if got := trace(&pgproto3.Query{String: fmt.Sprintf("DEALLOCATE x; PREPARE x AS SELECT %d", i)}); got != "CommandComplete DEALLOCATE | CommandComplete PREPARE | ReadyForQuery I" {
			t.Fatalf("%d: %s", i, got)
		}
		if got := trace(&pgproto3.Close{ObjectType: 'S', Name: "y"}, &pgproto3.Parse{Name: "y", Query: fmt.Sprintf("SELECT %d", i)}, &pgproto3.Sync{}); got != "CloseComplete | ParseComplete | ReadyForQuery I" {
			t.Fatalf("%d: %s", i, got)
		}
	}
	if got := trace(&pgproto3.Query{String: "CREATE TEMP TABLE r19b_bump (); DROP TABLE r19b_bump"}); !strings.HasSuffix(got, "CommandComplete DROP TABLE | ReadyForQuery I") {
		t.Fatalf("ddl: %s", got)
	}
	if got := trace(&pgproto3.Query{String: "EXECUTE x"}); got != `RowDescription(?column?:23/4/-1/0) | DataRow("20") | CommandComplete SELECT 1 | ReadyForQuery I` {
		t.Errorf("EXECUTE after DDL: %s", got)
	}
	if got := trace(&pgproto3.Bind{PreparedStatement: "y"}, &pgproto3.Execute{}, &pgproto3.Sync{}); got != `BindComplete | DataRow("20") | CommandComplete SELECT 1 | ReadyForQuery I` {
		t.Errorf("Bind after DDL: %s", got)
	}
}

// TestReview19bPrepareInDO: a statement prepared by a DO block's dynamic
// SQL (PREPARE in EXECUTE's string) over a plain table pgveil never saw
// prepared; the table then becomes a view over an encrypted column, and
// the statement is run with SQL EXECUTE and with a Bind: the plaintext
// must not reach the encrypted column.
func TestReview19bPrepareInDO(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 2*time.Minute)
	org := int64(24300)
	p := startEncProxy(t, org)
	rel := "r19b_vdo"
	swap := rev15ViewSwap(t, ctx, p, rel)
	secret := "r19b-do-prepare"
	p.remember(secret)
	app := connectPgx(t, ctx, p.url())
	c := connectPgx(t, ctx, p.url()).PgConn()
	trace := func(msgs ...pgproto3.FrontendMessage) string {
		return strings.Join(r17Trace(ctx, c, msgs...), " | ")
	}
	for _, do := range []string{
		"DO $$ BEGIN EXECUTE 'PREPARE dins (int8, text) AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)'; END $$",
		"DO $$ BEGIN PREPARE dins (int8, text) AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2); END $$",
	} {
		if got := trace(&pgproto3.Query{String: do}); !strings.HasPrefix(got, "ErrorResponse 0A000") {
			t.Errorf("%s: %s", do, got)
		}
	}
	if got := trace(&pgproto3.Query{String: "DO $$ BEGIN EXECUTE 'SELECT 1'; PREPARE TRANSACTION 'x'; END $$"}); strings.Contains(got, "PREPARE") {
		t.Errorf("PREPARE TRANSACTION taken for PREPARE: %s", got)
	}
	swap(app)
	if got := trace(&pgproto3.Query{String: fmt.Sprintf("EXECUTE dins(%d, '%s')", org, secret)}); !strings.HasPrefix(got, "ErrorResponse") {
		t.Errorf("execute: %s", got)
	}
	rev15NoPlainNote(t, ctx, secret)
}

// TestReview19bEvictionChurn: psycopg 3's statement cache under churn,
// on the wire: each round prepares a new name (a statement pgveil
// rewrites, or one it passes through), runs it, and deallocates the name
// prepared five rounds before through the extended protocol, in one
// pipeline; every few rounds a DEALLOCATE skipped after an error. The
// session keeps step, and the server holds no statement for no one.
func TestReview19bEvictionChurn(t *testing.T) {
	relayLeakCheck(t)
	r18Engines(t, 24500, func(t *testing.T, e *r18Env) {
		const rounds, keep = 600, 5
		for i := 0; i < rounds; i++ {
			name := fmt.Sprintf("_pg3_%d", i)
			q, want := r18Q, e.rows(2)
			args := e.args
			if i%2 == 1 {
				q, want, args = "SELECT $1::int8 + 1", fmt.Sprintf(`BindComplete | DataRow("%d") | CommandComplete SELECT 1`, e.org+1), e.args[:1]
			}
			msgs := []pgproto3.FrontendMessage{&pgproto3.Parse{Name: name, Query: q}, &pgproto3.Bind{PreparedStatement: name, Parameters: args}, &pgproto3.Execute{}}
			want = "ParseComplete | " + want
			if i >= keep {
				old := fmt.Sprintf("_pg3_%d", i-keep)
				if i%50 == 7 {
					// Skipped after an error: deallocated again next round.
					msgs = append(msgs, r18DivZero...)
					want += " | " + r18DivZeroTrace
				} else if i%50 == 8 {
					msgs = append(msgs, extDeallocate(fmt.Sprintf("_pg3_%d", i-keep-1))[:3]...)
					want += " | ParseComplete | BindComplete | CommandComplete DEALLOCATE"
				}
				msgs = append(msgs, extDeallocate(old)[:3]...)
				if i%50 != 7 {
					want += " | ParseComplete | BindComplete | CommandComplete DEALLOCATE"
				}
			}
			msgs = append(msgs, &pgproto3.Sync{})
			if got := e.trace(msgs...); got != want+" | ReadyForQuery I" {
				t.Fatalf("round %d:\n got %s\nwant %s", i, got, want+" | ReadyForQuery I")
			}
		}
		want := fmt.Sprintf(`RowDescription(count:20/8/-1/0) | DataRow("%d") | CommandComplete SELECT 1 | ReadyForQuery I`, keep)
		if got := e.trace(&pgproto3.Query{String: "SELECT count(*) FROM pg_prepared_statements"}); got != want {
			t.Errorf("statements upstream: %s, want %d", got, keep)
		}
		if got := e.upstream(); got != fmt.Sprintf(`RowDescription(count:20/8/-1/0) | DataRow("%d") | CommandComplete SELECT 1 | ReadyForQuery I`, 2) { // _pg3_596, _pg3_598
			t.Errorf("pgveil's statements upstream: %s", got)
		}
	})
}

// TestReview19bUnnamedAfterPinnedParse: as
// TestReview19bUnnamedAfterRewrittenParse, the skipped unnamed Parse one
// pgveil only pins (an unqualified name it sends schema-qualified: a
// table of a configured table's name shadows it on the path), and a
// simple Query skipped in the same pipeline: the record of the pinned
// statement stays, the server's own unnamed statement is the first one.
func TestReview19bUnnamedAfterPinnedParse(t *testing.T) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			org := int64(24900 + i)
			p := startEncProxy(t, org)
			su := superConn(t, ctx)
			if _, err := su.Exec(ctx, `DROP SCHEMA IF EXISTS r19b_s CASCADE; CREATE SCHEMA r19b_s;
				CREATE TABLE r19b_s.contacts (id int8, email text); GRANT ALL ON SCHEMA r19b_s TO scram_user; GRANT ALL ON r19b_s.contacts TO scram_user`); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { su.Exec(context.Background(), `DROP SCHEMA IF EXISTS r19b_s CASCADE`) })
			rel := "r19b_vpin"
			swap := rev15ViewSwap(t, ctx, p, rel)
			secret := fmt.Sprintf("r19b-pinned-%d", org)
			p.remember(secret)
			app := connectPgx(t, ctx, p.url())
			c := connectPgx(t, ctx, p.url()).PgConn()
			trace := func(msgs ...pgproto3.FrontendMessage) string {
				return strings.Join(r17Trace(ctx, c, msgs...), " | ")
			}
			if got := trace(&pgproto3.Query{String: "SET search_path = r19b_s, public"}); got != "CommandComplete SET | ReadyForQuery I" {
				t.Fatalf("set: %s", got)
			}
			if got := trace(&pgproto3.Parse{Query: "INSERT INTO public." + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
				t.Fatalf("parse: %s", got)
			}
			got := r19bTraceN(ctx, c, 1, &pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{},
				&pgproto3.Parse{Query: "SELECT id FROM contacts WHERE id = $1 AND $2::text IS NOT NULL"}, &pgproto3.Query{String: "SELECT 1"}, &pgproto3.Sync{})
			if got != "ParseComplete | ErrorResponse 22012 division by zero | ReadyForQuery I" {
				t.Fatalf("skipped: %s", got)
			}
			swap(app)
			got = trace(&pgproto3.Bind{Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
			if !strings.HasPrefix(got, "ErrorResponse") {
				t.Errorf("the unnamed statement bound after the swap: %s", got)
			}
			rev15NoPlainNote(t, ctx, secret)
		})
	}
}

// TestReview19bUnnamedLikePostgres: long pipelines of unnamed Parses,
// some skipped after errors, with Describe, portals, Close and simple
// Queries between, through pgveil and on a direct connection: the same
// answers (a Bind after a skipped Parse runs the statement the server
// kept; a simple Query drops the unnamed statement), both engines.
func TestReview19bUnnamedLikePostgres(t *testing.T) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			p := startEncProxy(t, int64(25100+i))
			p.remember("r19b-unnamed-like-postgres")
			via := connectPgx(t, ctx, p.url()).PgConn()
			direct := superConn(t, ctx).PgConn()
			sel := func(n int) *pgproto3.Parse { return &pgproto3.Parse{Query: fmt.Sprintf("SELECT %d AS n", n)} }
			run := []pgproto3.FrontendMessage{&pgproto3.Bind{}, &pgproto3.Execute{}}
			dz := []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{}}
			describe := &pgproto3.Describe{ObjectType: 'S'}
			steps := [][]pgproto3.FrontendMessage{
				cat([]pgproto3.FrontendMessage{sel(1), sel(2)}, run, []pgproto3.FrontendMessage{describe}, dz, []pgproto3.FrontendMessage{sel(3)}, run, sync1),
				cat(run, []pgproto3.FrontendMessage{describe}, sync1),
				cat(query("SELECT 5"), run, sync1),
				cat([]pgproto3.FrontendMessage{sel(6)}, dz, []pgproto3.FrontendMessage{sel(7), sel(8)}, sync1, run, sync1),
				cat([]pgproto3.FrontendMessage{&pgproto3.Close{ObjectType: 'S'}}, run, sync1, []pgproto3.FrontendMessage{sel(9)}, run, sync1),
				cat(dz, []pgproto3.FrontendMessage{&pgproto3.Close{ObjectType: 'S'}}, sync1, run, sync1),
				cat([]pgproto3.FrontendMessage{&pgproto3.Close{ObjectType: 'S', Name: "dz"}, sel(10), &pgproto3.Parse{Query: "SELECT 'x' AS n WHERE $1::int = 1"}}, dz, sync1,
					[]pgproto3.FrontendMessage{&pgproto3.Bind{Parameters: [][]byte{[]byte("1")}}, &pgproto3.Execute{}}, sync1),
			}
			for j, msgs := range steps {
				got := strings.Join(r17Trace(ctx, via, msgs...), " | ")
				want := strings.Join(r17Trace(ctx, direct, msgs...), " | ")
				if got != want {
					t.Errorf("step %d:\n got %s\nwant %s", j, got, want)
				}
			}
		})
	}
}

// r19bTraceN is r17Trace for messages whose answers end with n
// ReadyForQuery (a simple Query the server skips after an error answers
// nothing).
func r19bTraceN(ctx context.Context, c *pgconn.PgConn, n int, msgs ...pgproto3.FrontendMessage) string {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	fe := c.Frontend()
	for _, m := range msgs {
		fe.Send(m)
	}
	if err := fe.Flush(); err != nil {
		return "flush: " + err.Error()
	}
	var trace []string
	var formats []int16
	for n > 0 {
		msg, err := c.ReceiveMessage(ctx)
		if err != nil {
			return strings.Join(append(trace, "receive: "+err.Error()), " | ")
		}
		trace = append(trace, prRender(msg, &formats))
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			n--
		}
	}
	return strings.Join(trace, " | ")
}

// TestReview19bExtendedDeallocateAllFails: DEALLOCATE ALL through the
// extended protocol in an aborted block (psycopg 3 sends it so after an
// error it takes for a stale cache): the server runs none of it, the
// statements stay, and a Parse of a name pgveil rewrote gets 42P05 as
// from PostgreSQL, its Bind runs; a DEALLOCATE ALL that runs frees it.
func TestReview19bExtendedDeallocateAllFails(t *testing.T) {
	relayLeakCheck(t)
	r18Engines(t, 25300, func(t *testing.T, e *r18Env) {
		exists := `ErrorResponse 42P05 prepared statement "rp" already exists | ReadyForQuery I`
		e.expect("parse", "ParseComplete | ReadyForQuery I", &pgproto3.Parse{Name: "rp", Query: r18Q}, &pgproto3.Sync{})
		e.expect("aborted", "CommandComplete BEGIN | ReadyForQuery T | ErrorResponse 22012 division by zero | ReadyForQuery E | "+
			"ErrorResponse 25P02 current transaction is aborted, commands ignored until end of transaction block | ReadyForQuery E | CommandComplete ROLLBACK | ReadyForQuery I",
			cat(query("BEGIN"), query("SELECT 1/0"), extDeallocate("ALL"), query("ROLLBACK"))...)
		e.expect("parse again", exists, &pgproto3.Parse{Name: "rp", Query: r18Q}, &pgproto3.Sync{})
		e.expect("bound", e.rows(2)+" | ReadyForQuery I", cat(e.bind("rp"), sync1)...)
		e.expect("skipped behind an error", r18DivZeroTrace+" | ReadyForQuery I", cat(r18DivZero, extDeallocate("ALL"))...)
		e.expect("parse again", exists, &pgproto3.Parse{Name: "rp", Query: r18Q}, &pgproto3.Sync{})
		e.expect("deallocate all", "ParseComplete | BindComplete | CommandComplete DEALLOCATE ALL | ReadyForQuery I", extDeallocate("ALL")...)
		e.expect("parse after", "ParseComplete | ReadyForQuery I", &pgproto3.Parse{Name: "rp", Query: r18Q}, &pgproto3.Sync{})
		e.expect("bound after", e.rows(2)+" | ReadyForQuery I", cat(e.bind("rp"), sync1)...)
		if got := e.upstream(); got != `RowDescription(count:20/8/-1/0) | DataRow("1") | CommandComplete SELECT 1 | ReadyForQuery I` {
			t.Errorf("upstream statements: %s", got)
		}
	})
}

// TestReview19bDeallocateAllKeepsUnnamed: DEALLOCATE ALL and DISCARD ALL
// leave the unnamed statement (PostgreSQL keeps it apart from the named
// ones): run as a named statement through the extended protocol, they
// must not take pgveil's record of it away. The unnamed statement writes
// a plain table that then becomes a view over an encrypted column.
func TestReview19bDeallocateAllKeepsUnnamed(t *testing.T) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			org := int64(25500 + i)
			p := startEncProxy(t, org)
			for j, all := range []string{"DEALLOCATE ALL", "DISCARD ALL"} {
				rel := fmt.Sprintf("r19b_vall%d", j)
				swap := rev15ViewSwap(t, ctx, p, rel)
				secret := fmt.Sprintf("r19b-all-%d-%d", org, j)
				p.remember(secret)
				app := connectPgx(t, ctx, p.url())
				c := connectPgx(t, ctx, p.url()).PgConn()
				trace := func(msgs ...pgproto3.FrontendMessage) string {
					return strings.Join(r17Trace(ctx, c, msgs...), " | ")
				}
				if got := trace(&pgproto3.Parse{Name: "all", Query: all}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
					t.Fatalf("parse: %s", got)
				}
				if got := trace(&pgproto3.Parse{Query: "INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
					t.Fatalf("parse: %s", got)
				}
				if got := trace(&pgproto3.Bind{PreparedStatement: "all"}, &pgproto3.Execute{}, &pgproto3.Sync{}); got != "BindComplete | CommandComplete "+all+" | ReadyForQuery I" {
					t.Fatalf("%s: %s", all, got)
				}
				swap(app)
				got := trace(&pgproto3.Bind{Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
				// After DISCARD ALL (the search_path reset), pgveil reads
				// the path with a simple Query of its own, and the server
				// drops its unnamed statement at each: 26000, known gone
				// (review 20a), not pgveil's refusal.
				want := "ErrorResponse 0A000"
				if all == "DISCARD ALL" {
					want = "ErrorResponse 26000"
				}
				if !strings.HasPrefix(got, want) {
					t.Errorf("%s: the unnamed statement bound after the swap: %s", all, got)
				}
				rev15NoPlainNote(t, ctx, secret)
			}
		})
	}
}

// TestReview19bPsycopg3Churn: psycopg 3 itself, its statement cache
// evicting (DEALLOCATE through the extended protocol) at every
// statement, on an encrypted table and a plain one, with failed
// transactions between: every statement answers, the values read back,
// and the server holds no more statements than psycopg's cache.
func TestReview19bPsycopg3Churn(t *testing.T) {
	relayLeakCheck(t)
	dir := pythonDriver(t, "psycopg")
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 3*time.Minute)
			org := int64(25700 + i)
			p := startEncProxy(t, org)
			for j := 0; j < 7; j++ {
				p.remember(fmt.Sprintf("churn-%d-%d@example.org", org, j))
			}
			out := runDriver(t, ctx, "psycopg 3 churn", dir, debianPython, "psycopg3_churn.py", p.url(), fmt.Sprint(org), "300")
			if !strings.Contains(out, "ok churn") {
				t.Errorf("psycopg 3 churn:\n%s", tail(out, 20))
			}
		})
	}
}

// TestReview19bSQLPrepareOfLiteralWrite: an SQL PREPARE of a write of a
// literal to an encrypted column (which, sealed once, would outlive a
// rotation) is refused, as a simple Query, in a string, and through the
// extended protocol.
func TestReview19bSQLPrepareOfLiteralWrite(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	org := int64(25900)
	p := startEncProxy(t, org)
	secret := "r19b-prepared-literal@example.org"
	p.remember(secret)
	c := connectPgx(t, ctx, p.url()).PgConn()
	trace := func(msgs ...pgproto3.FrontendMessage) string {
		return strings.Join(r17Trace(ctx, c, msgs...), " | ")
	}
	prep := fmt.Sprintf("PREPARE lit AS INSERT INTO contacts (org_id, email) VALUES (%d, '%s')", org, secret)
	for _, msgs := range [][]pgproto3.FrontendMessage{
		query(prep),
		query("SELECT 1; " + prep),
		{&pgproto3.Parse{Query: prep}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
	} {
		if got := trace(msgs...); !strings.HasPrefix(got, "ErrorResponse 0A000") {
			t.Errorf("%s", got)
		}
	}
	if got := trace(query("SELECT count(*) FROM pg_prepared_statements WHERE name = 'lit'")...); got != `RowDescription(count:20/8/-1/0) | DataRow("0") | CommandComplete SELECT 1 | ReadyForQuery I` {
		t.Errorf("prepared upstream: %s", got)
	}
}
