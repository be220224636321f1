package integration

// Review 21c: the fixes review 20e made to itself (SQL PREPAREs run
// through the extended protocol, statements that EXECUTE others checked
// at each Bind, set_config through casts).
//
//   HIGH TestReview21cRefusedParseKeepsPrepare: a Parse of a name that
//      holds an SQL PREPARE statement, refused (42P05 by PostgreSQL, or by
//      pgveil for a statement it rewrites), replaced pgveil's record of
//      what the name runs; the server kept the old statement, whose
//      Execute then prepared ins unrecorded (after a DEALLOCATE of it):
//      after a view swap, Bind ins wrote the plaintext into contacts.note.
//      The same for the unnamed statement whose new Parse the server
//      skipped after an error (TestReview21cSkippedUnnamedKeepsPrepare),
//      and for the effects on the path (set_config: the next INSERT went
//      into another table than PostgreSQL's path names,
//      TestReview21cRefusedParseKeepsEffects).
//   HIGH TestReview21cPortalExecutedAfterSwap: an SQL PREPARE's portal
//      bound before a view swap (in a transaction block) and executed
//      after pgveil read the new catalog was recorded as planned under
//      the new catalog: Bind ins then ran unchecked, the plaintext into
//      contacts.note through the view.
//   HIGH TestReview21cExecuteOfRePrepared: a protocol statement EXECUTE sp
//      (or EXPLAIN ANALYZE EXECUTE sp) took its effects at the Parse,
//      from sp as it was then (SELECT 1); sp deallocated and prepared
//      again as a set_config of the path, the Execute changed the
//      server's path unseen: the INSERT after went into the table the
//      old path named.
//   HIGH TestReview21cRewrittenExecuteBoundAfterSwap: CREATE TEMP TABLE …
//      AS EXECUTE insw(…) (DDL: a statement pgveil prepares under its own
//      name; insw an SQL PREPARE of WITH … INSERT … SELECT) parsed before a
//      view swap and bound after it: only the Parse checked what it
//      executes, and the plaintext in its text went into contacts.note.
//      Holds: EXPLAIN ANALYZE EXECUTE (pass-through).
//   HIGH TestReview21cFunctionBodies: CREATE FUNCTION … LANGUAGE sql AS
//      'PREPARE ins2 … AS INSERT …' (one statement, no ';') took the
//      planner's fast path and was never read (review 19b refuses code that
//      prepares); ins2, prepared in the server unseen, wrote the plaintext
//      after a view swap. And (MEDIUM, dynamic SQL) a PL/pgSQL function
//      running EXECUTE format('EXECUTE ins(%s, %L)', …) ran ins over the
//      view at a call after the swap. Both refused at CREATE now.
//   HIGH TestReview21cFunctionSetSchema: a function whose code runs SET
//      SCHEMA 'public' (SQL's spelling of SET search_path, naming no
//      search_path) was not taken for code that changes the path: after
//      a call the INSERT went into the table the old path named.
//   HIGH TestReview21cRefusedParseOfDeallocate: d is SELECT 1; a Parse of
//      d as DEALLOCATE ins (or ALL, or DISCARD ALL) refused 42P05, or the
//      unnamed one skipped after an error; the Execute of d ran SELECT 1,
//      and its CommandComplete confirmed the DEALLOCATE pgveil took from
//      the refused text: ins's record went while the server kept ins, and
//      after a view swap Bind ins wrote the plaintext into contacts.note.
//      Now only the closes every text the name may run has are kept.
//   HIGH TestReview21cExecuteOfProtocolPrepare: pp, a Parse of PREPARE
//      ins …, run with SQL EXECUTE pp (a Query, or a protocol statement
//      EXECUTE pp parsed before) after DEALLOCATE ins: the server prepared
//      ins again, unrecorded; after a view swap Bind ins wrote the
//      plaintext into contacts.note.
//   MEDIUM TestReview21cExecuteOfProtocolDeallocate: EXECUTE d, d a Parse
//      of DEALLOCATE ALL, dropped pgveil's statements unseen: a Parse of
//      one of the client's names after got 42P05. Refused now.
//   HIGH TestReview21cSkippedCloseThenRewrittenParse: a Close of the
//      pass-through x skipped after an error, then a Parse of x that
//      pgveil rewrites: pgveil prepared it under its own name (PostgreSQL
//      answers 42P05) and dropped its record of the server's x; once the
//      client closed x, SQL EXECUTE x and a Bind of x ran the old INSERT
//      unchecked after a view swap, the plaintext into contacts.note.
//      Now 42P05, as PostgreSQL answers; and when the Close and that
//      Parse are skipped in one pipeline (TestReview21cSkippedCloseAnd-
//      RewrittenParse), the record of the server's x is kept and checked
//      at each Bind or EXECUTE of the name the view does not hold.
//   Holds today, HIGH once DateStyle tracking goes (it asks the server
//      after any set_config): TestReview21cSetConfigTempDomain:
//      set_config('search_path   '::text, …) with a domain pg_temp.text
//      (char(20)): the server reads search_path, pgveil read another name
//      (rewrite TestReview21cSetConfigTempDomainCast; fixed there).
//   Hold: TestReview21cSQLPrepareRunUnderOtherPath,
//      TestReview21cPipelinesMirror (this review's paths without a swap
//      answer as PostgreSQL does, message for message).

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// r21cEngines runs f on both relays, each with a pgveil of its own.
func r21cEngines(t *testing.T, base int64, f func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string)) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			org := base + int64(i)
			p := startEncProxy(t, org)
			c := connectPgx(t, ctx, p.url()).PgConn()
			trace := func(msgs ...pgproto3.FrontendMessage) string {
				return strings.Join(r17Trace(ctx, c, msgs...), " | ")
			}
			f(t, ctx, p, org, trace)
		})
	}
}

// TestReview21cRefusedParseKeepsPrepare: pp is PREPARE ins AS INSERT
// INTO a plain table, run once; DEALLOCATE ins; a Parse of pp with
// another text is refused (the server's 42P05, or pgveil's for a text it
// rewrites), so the server keeps the PREPARE; pp run again prepares ins
// again. After a view swap, ins bound or executed: refused, the
// plaintext never written.
func TestReview21cRefusedParseKeepsPrepare(t *testing.T) {
	r21cEngines(t, 28000, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		app := connectPgx(t, ctx, p.url())
		for j, other := range []string{"SELECT 1", "SELECT note FROM contacts WHERE org_id = $1"} {
			rel := fmt.Sprintf("r21c_rp%d", j)
			swap := rev15ViewSwap(t, ctx, p, rel)
			secret := fmt.Sprintf("r21c-rp-%d-%d", org, j)
			p.remember(secret)
			prep := &pgproto3.Parse{Name: "pp", Query: "PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}
			run := []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: "pp"}, &pgproto3.Execute{}, &pgproto3.Sync{}}
			if got := trace(prep, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
				t.Fatalf("%d parse: %s", j, got)
			}
			if got := trace(run...); got != "BindComplete | CommandComplete PREPARE | ReadyForQuery I" {
				t.Fatalf("%d run: %s", j, got)
			}
			if got := trace(query("DEALLOCATE ins")...); !strings.HasPrefix(got, "CommandComplete DEALLOCATE") {
				t.Fatalf("%d deallocate: %s", j, got)
			}
			if got := trace(&pgproto3.Parse{Name: "pp", Query: other}, &pgproto3.Sync{}); !strings.HasPrefix(got, "ErrorResponse 42P05") {
				t.Fatalf("%d parse of pp again: %s", j, got)
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

// TestReview21cSkippedUnnamedKeepsPrepare: the unnamed statement is
// PREPARE ins AS INSERT INTO a plain table, run once; DEALLOCATE ins
// (through the extended protocol: a Query would drop the unnamed
// statement); a new unnamed Parse skipped after an error; the unnamed
// statement bound again runs the PREPARE. After a view swap, ins bound
// or executed: refused, the plaintext never written.
func TestReview21cSkippedUnnamedKeepsPrepare(t *testing.T) {
	r21cEngines(t, 28100, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		app := connectPgx(t, ctx, p.url())
		for j, next := range []string{"SELECT 1", "SELECT note FROM contacts WHERE org_id = $1"} {
			rel := fmt.Sprintf("r21c_su%d", j)
			swap := rev15ViewSwap(t, ctx, p, rel)
			secret := fmt.Sprintf("r21c-su-%d-%d", org, j)
			p.remember(secret)
			run := []pgproto3.FrontendMessage{&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
			if got := trace(cat([]pgproto3.FrontendMessage{&pgproto3.Parse{Query: "PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}}, run)...); got != "ParseComplete | BindComplete | CommandComplete PREPARE | ReadyForQuery I" {
				t.Fatalf("%d run: %s", j, got)
			}
			if got := trace(&pgproto3.Parse{Name: "d", Query: "DEALLOCATE ins"}, &pgproto3.Bind{PreparedStatement: "d"}, &pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'S', Name: "d"}, &pgproto3.Sync{}); !strings.Contains(got, "CommandComplete DEALLOCATE") {
				t.Fatalf("%d deallocate: %s", j, got)
			}
			if got := trace(&pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{}, &pgproto3.Parse{Query: next}, &pgproto3.Sync{}); !strings.Contains(got, "ErrorResponse 22012") {
				t.Fatalf("%d skipped parse: %s", j, got)
			}
			got := trace(run...)
			t.Logf("%d unnamed run again: %s", j, got)
			swap(app)
			got = trace(&pgproto3.Bind{PreparedStatement: "ins", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
			if !strings.HasPrefix(got, "ErrorResponse") {
				t.Errorf("%d bound after the swap: %s", j, got)
			}
			got = trace(query(fmt.Sprintf("EXECUTE ins(%d, '%s-x')", org, secret))...)
			if !strings.HasPrefix(got, "ErrorResponse") {
				t.Errorf("%d executed after the swap: %s", j, got)
			}
			rev15NoPlainNote(t, ctx, secret)
			trace(query("DEALLOCATE ALL")...)
			trace(&pgproto3.Close{ObjectType: 'S', Name: "dz"}, &pgproto3.Sync{})
		}
	})
}

// TestReview21cRefusedParseKeepsEffects: sp calls set_config to set the
// path to public; a Parse of sp with another text is refused (42P05),
// the server keeps the set_config; sp bound and run changes the path.
// The INSERT after goes into public.contacts (sealed), as PostgreSQL's
// path says, never into r21c_plain.contacts.
func TestReview21cRefusedParseKeepsEffects(t *testing.T) {
	r21cEngines(t, 28200, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		su := superConn(t, ctx)
		if _, err := su.Exec(ctx, `DROP SCHEMA IF EXISTS r21c_plain CASCADE; CREATE SCHEMA r21c_plain;
			CREATE TABLE r21c_plain.contacts (org_id int8, note text);
			GRANT USAGE ON SCHEMA r21c_plain TO scram_user; GRANT ALL ON r21c_plain.contacts TO scram_user`); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { su.Exec(context.Background(), `DROP SCHEMA IF EXISTS r21c_plain CASCADE`) })
		trace(query("CREATE TEMP TABLE r21c_bump (); DROP TABLE r21c_bump")...)
		for j, other := range []string{"SELECT 1", "SELECT note FROM contacts WHERE org_id = $1"} {
			secret := fmt.Sprintf("r21c-re-%d-%d", org, j)
			p.remember(secret)
			if got := trace(query("SET search_path = r21c_plain, public")...); got != "CommandComplete SET | ReadyForQuery I" {
				t.Fatalf("%d set: %s", j, got)
			}
			if got := trace(&pgproto3.Parse{Name: "sp", Query: "SELECT pg_catalog.set_config('search_path', 'public', false)"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
				t.Fatalf("%d parse: %s", j, got)
			}
			if got := trace(&pgproto3.Parse{Name: "sp", Query: other}, &pgproto3.Sync{}); !strings.HasPrefix(got, "ErrorResponse 42P05") {
				t.Fatalf("%d parse of sp again: %s", j, got)
			}
			trace(query("SELECT count(*) FROM contacts")...)
			if got := trace(&pgproto3.Bind{PreparedStatement: "sp"}, &pgproto3.Execute{}, &pgproto3.Sync{}); !strings.Contains(got, "CommandComplete SELECT 1") {
				t.Fatalf("%d run: %s", j, got)
			}
			if got := trace(query(fmt.Sprintf("INSERT INTO contacts (org_id, note) VALUES (%d, '%s')", org, secret))...); got != "CommandComplete INSERT 0 1 | ReadyForQuery I" {
				t.Errorf("%d insert after: %s", j, got)
			}
			rev15NoPlainNote(t, ctx, secret)
			var inPlain int
			if err := su.QueryRow(ctx, `SELECT count(*) FROM r21c_plain.contacts WHERE note = $1`, secret).Scan(&inPlain); err != nil {
				t.Fatal(err)
			}
			if inPlain != 0 {
				t.Errorf("%d: the row went into r21c_plain.contacts, where PostgreSQL's path (public) does not look", j)
			}
			trace(query("DEALLOCATE ALL")...)
		}
	})
}

// TestReview21cPortalExecutedAfterSwap: pp (PREPARE ins AS INSERT INTO a
// plain table) run once, ins deallocated; in a transaction block, pp is
// bound to portal q before
// a view swap, and q executed after pgveil read the new catalog (a query
// between). The server prepared ins over the view: ins bound or executed
// after is refused, the plaintext never written.
func TestReview21cPortalExecutedAfterSwap(t *testing.T) {
	r21cEngines(t, 28300, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		app := connectPgx(t, ctx, p.url())
		for j, between := range []string{"SELECT 1", "SELECT count(*) FROM contacts"} {
			rel := fmt.Sprintf("r21c_pe%d", j)
			swap := rev15ViewSwap(t, ctx, p, rel)
			secret := fmt.Sprintf("r21c-pe-%d-%d", org, j)
			p.remember(secret)
			// pp run once, ins deallocated: no record of ins is left.
			if got := trace(&pgproto3.Parse{Name: "pp", Query: "PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Bind{PreparedStatement: "pp"}, &pgproto3.Execute{}, &pgproto3.Sync{}); got != "ParseComplete | BindComplete | CommandComplete PREPARE | ReadyForQuery I" {
				t.Fatalf("%d parse, run: %s", j, got)
			}
			if got := trace(query("DEALLOCATE ins")...); !strings.HasPrefix(got, "CommandComplete DEALLOCATE") {
				t.Fatalf("%d deallocate: %s", j, got)
			}
			if got := trace(query("BEGIN")...); got != "CommandComplete BEGIN | ReadyForQuery T" {
				t.Fatalf("%d begin: %s", j, got)
			}
			if got := trace(&pgproto3.Bind{PreparedStatement: "pp", DestinationPortal: "q"}, &pgproto3.Sync{}); got != "BindComplete | ReadyForQuery T" {
				t.Fatalf("%d bind: %s", j, got)
			}
			swap(app)
			trace(query(between)...)
			if got := trace(&pgproto3.Execute{Portal: "q"}, &pgproto3.Sync{}); got != "CommandComplete PREPARE | ReadyForQuery T" {
				t.Fatalf("%d execute: %s", j, got)
			}
			if got := trace(query("COMMIT")...); got != "CommandComplete COMMIT | ReadyForQuery I" {
				t.Fatalf("%d commit: %s", j, got)
			}
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
			trace(&pgproto3.Close{ObjectType: 'S', Name: "pp"}, &pgproto3.Sync{})
		}
	})
}

// TestReview21cSetConfigTempDomain: a domain pg_temp.text over char(20)
// makes 'search_path   '::text read 'search_path' in the server (a type
// name is looked up in pg_temp first, before pg_catalog). pgveil must not take the literal
// for the path: the INSERT after goes into public.contacts, sealed, as
// PostgreSQL's path says (or the set_config is refused).
func TestReview21cSetConfigTempDomain(t *testing.T) {
	r21cEngines(t, 28400, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		su := superConn(t, ctx)
		if _, err := su.Exec(ctx, `DROP SCHEMA IF EXISTS r21c_plain CASCADE; CREATE SCHEMA r21c_plain;
			CREATE TABLE r21c_plain.contacts (org_id int8, note text);
			GRANT USAGE ON SCHEMA r21c_plain TO scram_user; GRANT ALL ON r21c_plain.contacts TO scram_user`); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { su.Exec(context.Background(), `DROP SCHEMA IF EXISTS r21c_plain CASCADE`) })
		trace(query("CREATE TEMP TABLE r21c_bump (); DROP TABLE r21c_bump")...)
		t.Logf("domain: %s", trace(query("CREATE DOMAIN pg_temp.text AS char(20)")...))
		t.Logf("domain: %s", trace(query(`CREATE DOMAIN pg_temp."varchar" AS char(20)`)...))
		for j, call := range []string{
			"SELECT set_config('search_path   '::text, 'public', false)",
			`SELECT set_config('search_path   '::"varchar", 'public', false)`,
			"SELECT set_config(CAST('search_path   ' AS text), 'public', false)",
		} {
			secret := fmt.Sprintf("r21c-td-%d-%d", org, j)
			p.remember(secret)
			if got := trace(query("SET search_path = r21c_plain, public")...); got != "CommandComplete SET | ReadyForQuery I" {
				t.Fatalf("%d set: %s", j, got)
			}
			got := trace(query(call)...)
			t.Logf("%d %s: %s", j, call, got)
			if strings.HasPrefix(got, "ErrorResponse") {
				continue // refused: fine
			}
			if got := trace(query(fmt.Sprintf("INSERT INTO contacts (org_id, note) VALUES (%d, '%s')", org, secret))...); got != "CommandComplete INSERT 0 1 | ReadyForQuery I" {
				t.Errorf("%d insert after: %s", j, got)
			}
			rev15NoPlainNote(t, ctx, secret)
			var inPlain int
			if err := su.QueryRow(ctx, `SELECT count(*) FROM r21c_plain.contacts WHERE note = $1`, secret).Scan(&inPlain); err != nil {
				t.Fatal(err)
			}
			if inPlain != 0 {
				t.Errorf("%d: the row went into r21c_plain.contacts, where PostgreSQL's path (public) does not look", j)
			}
		}
	})
}

// r21cPlainSchema makes schema r21c_plain with a plain table contacts
// (org_id, note), and has pgveil read its catalog again.
func r21cPlainSchema(t *testing.T, ctx context.Context, trace func(...pgproto3.FrontendMessage) string) {
	t.Helper()
	su := superConn(t, ctx)
	if _, err := su.Exec(ctx, `DROP SCHEMA IF EXISTS r21c_plain CASCADE; CREATE SCHEMA r21c_plain;
		CREATE TABLE r21c_plain.contacts (org_id int8, note text);
		GRANT USAGE ON SCHEMA r21c_plain TO scram_user; GRANT ALL ON r21c_plain.contacts TO scram_user`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { su.Exec(context.Background(), `DROP SCHEMA IF EXISTS r21c_plain CASCADE`) })
	trace(query("CREATE TEMP TABLE r21c_bump (); DROP TABLE r21c_bump")...)
}

// r21cInsertFollowsPath inserts secret into contacts (unqualified) and
// fails when the row went anywhere but public.contacts, sealed: the
// server's path is public.
func r21cInsertFollowsPath(t *testing.T, ctx context.Context, trace func(...pgproto3.FrontendMessage) string, what string, org int64, secret string) {
	t.Helper()
	if got := trace(query(fmt.Sprintf("INSERT INTO contacts (org_id, note) VALUES (%d, '%s')", org, secret))...); got != "CommandComplete INSERT 0 1 | ReadyForQuery I" {
		t.Errorf("%s insert after: %s", what, got)
	}
	rev15NoPlainNote(t, ctx, secret)
	var inPlain int
	if err := superConn(t, ctx).QueryRow(ctx, `SELECT count(*) FROM r21c_plain.contacts WHERE note = $1`, secret).Scan(&inPlain); err != nil {
		t.Fatal(err)
	}
	if inPlain != 0 {
		t.Errorf("%s: the row went into r21c_plain.contacts, where PostgreSQL's path (public) does not look", what)
	}
}

// TestReview21cExecuteOfRePrepared: x is a protocol statement EXECUTE sp,
// parsed while sp was a harmless SQL PREPARE; sp deallocated and
// prepared again as a set_config of the path; x bound and run changes
// the server's path. The INSERT after follows PostgreSQL's path.
func TestReview21cExecuteOfRePrepared(t *testing.T) {
	r21cEngines(t, 28500, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		r21cPlainSchema(t, ctx, trace)
		for j, name := range []string{"x", "y"} {
			secret := fmt.Sprintf("r21c-xr-%d-%d", org, j)
			p.remember(secret)
			if got := trace(query("SET search_path = r21c_plain, public; PREPARE sp AS SELECT 1")...); !strings.HasSuffix(got, "CommandComplete PREPARE | ReadyForQuery I") {
				t.Fatalf("%d set, prepare: %s", j, got)
			}
			text := "EXECUTE sp"
			if name == "y" {
				text = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE sp"
			}
			if got := trace(&pgproto3.Parse{Name: name, Query: text}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
				t.Fatalf("%d parse: %s", j, got)
			}
			// A Query drops the unnamed statement: the extended protocol.
			if got := trace(&pgproto3.Parse{Name: "d", Query: "DEALLOCATE sp"}, &pgproto3.Bind{PreparedStatement: "d"}, &pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'S', Name: "d"},
				&pgproto3.Parse{Name: "d2", Query: "PREPARE sp AS SELECT pg_catalog.set_config('search_path', 'public', false)"}, &pgproto3.Bind{PreparedStatement: "d2"}, &pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'S', Name: "d2"}, &pgproto3.Sync{}); !strings.Contains(got, "CommandComplete PREPARE") {
				t.Fatalf("%d prepare again: %s", j, got)
			}
			// The path is read again here if it was unknown.
			trace(&pgproto3.Parse{Name: "c", Query: "SELECT count(*) FROM contacts"}, &pgproto3.Bind{PreparedStatement: "c"}, &pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'S', Name: "c"}, &pgproto3.Sync{})
			if got := trace(&pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{}); !strings.Contains(got, "CommandComplete") {
				t.Fatalf("%d run: %s", j, got)
			}
			r21cInsertFollowsPath(t, ctx, trace, fmt.Sprint(j), org, secret)
			trace(query("DEALLOCATE ALL")...)
		}
	})
}

// TestReview21cRewrittenExecuteBoundAfterSwap: protocol statements whose
// text runs EXECUTE of an SQL PREPARE that writes a plain table, parsed
// before a view swap (checked at the Parse) and bound after it: CREATE
// TABLE AS EXECUTE (DDL: a statement pgveil prepares under its own name)
// and EXPLAIN ANALYZE EXECUTE. Each Bind checks what it executes: refused,
// the plaintext never written.
func TestReview21cRewrittenExecuteBoundAfterSwap(t *testing.T) {
	r21cEngines(t, 28600, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		app := connectPgx(t, ctx, p.url())
		for j, f := range []string{
			"CREATE TEMP TABLE r21c_ct%d AS EXECUTE insw(%d, '%s')",
			"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE insw(%d, '%s')",
			"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE ins(%d, '%s')",
		} {
			for k, name := range []string{"e", ""} {
				rel := fmt.Sprintf("r21c_rx%d%d", j, k)
				swap := rev15ViewSwap(t, ctx, p, rel)
				secret := fmt.Sprintf("r21c-rx-%d-%d-%d", org, j, k)
				p.remember(secret)
				if got := trace(query("PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2); " +
					"PREPARE insw AS WITH w AS (INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2) RETURNING org_id) SELECT org_id FROM w")...); !strings.HasSuffix(got, "CommandComplete PREPARE | ReadyForQuery I") {
					t.Fatalf("%d %d prepare: %s", j, k, got)
				}
				text := fmt.Sprintf(f, org, secret)
				if j == 0 {
					text = fmt.Sprintf(f, k, org, secret)
				}
				got := trace(&pgproto3.Parse{Name: name, Query: text}, &pgproto3.Sync{})
				if j == 0 && strings.HasPrefix(got, "ErrorResponse 0A000") {
					// CREATE TABLE AS EXECUTE is refused when the text may
					// name a configured table or a view over one (the
					// precheck finds such a name in it: other tests' views).
					swap(app)
					trace(query("DEALLOCATE ALL")...)
					continue
				}
				if got != "ParseComplete | ReadyForQuery I" {
					t.Fatalf("%d %d parse: %s", j, k, got)
				}
				swap(app)
				got = trace(&pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{})
				if !strings.HasPrefix(got, "ErrorResponse") {
					t.Errorf("%d %d bound after the swap: %s", j, k, got)
				}
				rev15NoPlainNote(t, ctx, secret)
				trace(query("DEALLOCATE ALL")...)
			}
		}
	})
}

// TestReview21cFunctionBodies: functions created through pgveil whose
// code runs a prepared statement pgveil cannot follow: dynamic SQL that
// runs SQL EXECUTE of a name in its code (a DO block is checked when it
// runs; a function runs at any later call), and a LANGUAGE sql body of
// one statement that prepares one (no ';': the planner's fast path never
// read it). Refused (0A000); were they created, after a view swap their
// calls (or a Bind of the statement the function prepared) would write
// the plaintext into contacts.note.
func TestReview21cFunctionBodies(t *testing.T) {
	r21cEngines(t, 28700, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		app := connectPgx(t, ctx, p.url())
		for j := range 2 {
			rel := fmt.Sprintf("r21c_fx%d_%d", org%10, j)
			swap := rev15ViewSwap(t, ctx, p, rel)
			secret := fmt.Sprintf("r21c-fx-%d-%d", org, j)
			p.remember(secret)
			if got := trace(query("PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)")...); got != "CommandComplete PREPARE | ReadyForQuery I" {
				t.Fatalf("%d prepare: %s", j, got)
			}
			create := `CREATE FUNCTION pg_temp.r21c_run(o int8, n text) RETURNS void LANGUAGE plpgsql AS $f$BEGIN EXECUTE format('EXECUTE ins(%s, %L)', o, n); END$f$`
			if j == 1 {
				create = `CREATE FUNCTION pg_temp.r21c_mk() RETURNS void LANGUAGE sql AS $f$ PREPARE ins2 (int8, text) AS INSERT INTO ` + rel + ` (org_id, note) VALUES ($1, $2) $f$`
			}
			got := trace(query(create)...)
			if strings.HasPrefix(got, "ErrorResponse 0A000") {
				swap(app) // the view the cleanup drops
				trace(query("DEALLOCATE ALL")...)
				continue
			}
			t.Errorf("%d create function: %s", j, got)
			if j == 1 {
				t.Logf("%d call: %s", j, trace(query("SELECT pg_temp.r21c_mk()")...))
			}
			swap(app)
			if j == 0 {
				got = trace(query(fmt.Sprintf("SELECT pg_temp.r21c_run(%d, '%s')", org, secret))...)
			} else {
				got = trace(&pgproto3.Bind{PreparedStatement: "ins2", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
			}
			t.Logf("%d run after the swap: %s", j, got)
			rev15NoPlainNote(t, ctx, secret)
			trace(query("DEALLOCATE ALL")...)
		}
	})
}

// TestReview21cFunctionSetSchema: a function whose code runs SET SCHEMA
// 'public' (SQL's spelling of SET search_path) changes the server's path
// without naming search_path: the calls must make the path unknown. The
// INSERT after follows PostgreSQL's path.
func TestReview21cFunctionSetSchema(t *testing.T) {
	r21cEngines(t, 28800, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		su := superConn(t, ctx)
		if _, err := su.Exec(ctx, `CREATE OR REPLACE FUNCTION public.r21c_ss() RETURNS void LANGUAGE sql AS $f$ SET SCHEMA 'public' $f$;
			CREATE OR REPLACE FUNCTION public.r21c_ss2() RETURNS void LANGUAGE plpgsql AS $f$BEGIN SET LOCAL SCHEMA 'public'; END$f$`); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { su.Exec(context.Background(), `DROP FUNCTION IF EXISTS public.r21c_ss(), public.r21c_ss2()`) })
		r21cPlainSchema(t, ctx, trace)
		for j, call := range []string{"SELECT public.r21c_ss()", "BEGIN; SELECT public.r21c_ss2(); INSERT INTO contacts (org_id, note) VALUES (%d, '%s'); COMMIT"} {
			secret := fmt.Sprintf("r21c-ss-%d-%d", org, j)
			p.remember(secret)
			if got := trace(query("SET search_path = r21c_plain, public")...); got != "CommandComplete SET | ReadyForQuery I" {
				t.Fatalf("%d set: %s", j, got)
			}
			trace(query("SELECT count(*) FROM contacts")...)
			if j == 0 {
				t.Logf("%d call: %s", j, trace(query(call)...))
				r21cInsertFollowsPath(t, ctx, trace, fmt.Sprint(j), org, secret)
				continue
			}
			t.Logf("%d call: %s", j, trace(query(fmt.Sprintf(call, org, secret))...))
			rev15NoPlainNote(t, ctx, secret)
			var inPlain int
			if err := su.QueryRow(ctx, `SELECT count(*) FROM r21c_plain.contacts WHERE note = $1`, secret).Scan(&inPlain); err != nil {
				t.Fatal(err)
			}
			if inPlain != 0 {
				t.Errorf("%d: the row went into r21c_plain.contacts, where PostgreSQL's path (public) does not look", j)
			}
		}
	})
}

// TestReview21cSQLPrepareRunUnderOtherPath: ins, an SQL PREPARE of an
// INSERT into r (unqualified), made while the path finds a plain table
// r; the path then finds a view r over contacts.note first. PostgreSQL
// plans ins again under the new path at EXECUTE or a Bind: refused, the
// plaintext never written.
func TestReview21cSQLPrepareRunUnderOtherPath(t *testing.T) {
	r21cEngines(t, 28900, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		su := superConn(t, ctx)
		if _, err := su.Exec(ctx, `DROP SCHEMA IF EXISTS r21c_pa, r21c_pb CASCADE; CREATE SCHEMA r21c_pa; CREATE SCHEMA r21c_pb;
			CREATE TABLE r21c_pa.r (org_id int8, note text);
			CREATE VIEW r21c_pb.r AS SELECT org_id, note FROM public.contacts;
			GRANT USAGE ON SCHEMA r21c_pa, r21c_pb TO scram_user; GRANT ALL ON r21c_pa.r, r21c_pb.r TO scram_user`); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { su.Exec(context.Background(), `DROP SCHEMA IF EXISTS r21c_pa, r21c_pb CASCADE`) })
		trace(query("CREATE TEMP TABLE r21c_bump (); DROP TABLE r21c_bump")...)
		for j, how := range []string{"execute", "bind"} {
			secret := fmt.Sprintf("r21c-pa-%d-%d", org, j)
			p.remember(secret)
			got := trace(query("SET search_path = r21c_pa, public; PREPARE ins AS INSERT INTO r (org_id, note) VALUES ($1, $2)")...)
			t.Logf("%d prepare: %s", j, got)
			if !strings.HasSuffix(got, "CommandComplete PREPARE | ReadyForQuery I") {
				continue // refused: fine
			}
			trace(query("SET search_path = r21c_pb, public")...)
			if how == "execute" {
				got = trace(query(fmt.Sprintf("EXECUTE ins(%d, '%s')", org, secret))...)
			} else {
				got = trace(&pgproto3.Bind{PreparedStatement: "ins", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
			}
			t.Logf("%d %s under the other path: %s", j, how, got)
			rev15NoPlainNote(t, ctx, secret)
			trace(query("DEALLOCATE ALL")...)
		}
	})
}

// TestReview21cRefusedParseOfDeallocate: the statement d is SELECT 1; a
// Parse of d as DEALLOCATE ins is refused (42P05), or, for the unnamed
// statement, skipped after an error; d run executes SELECT 1, and ins (an
// SQL PREPARE of an INSERT into a plain table) stays. After a view swap
// ins bound or executed: refused, the plaintext never written.
func TestReview21cRefusedParseOfDeallocate(t *testing.T) {
	r21cEngines(t, 29000, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		app := connectPgx(t, ctx, p.url())
		for j, name := range []string{"d", ""} {
			for k, dealloc := range []string{"DEALLOCATE ins", "DEALLOCATE ALL", "DISCARD ALL"} {
				rel := fmt.Sprintf("r21c_rd%d_%d%d", org%10, j, k)
				swap := rev15ViewSwap(t, ctx, p, rel)
				secret := fmt.Sprintf("r21c-rd-%d-%d%d", org, j, k)
				p.remember(secret)
				if got := trace(query("PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)")...); got != "CommandComplete PREPARE | ReadyForQuery I" {
					t.Fatalf("%d%d prepare: %s", j, k, got)
				}
				if got := trace(&pgproto3.Parse{Name: name, Query: "SELECT 1"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
					t.Fatalf("%d%d parse: %s", j, k, got)
				}
				if name != "" {
					if got := trace(&pgproto3.Parse{Name: name, Query: dealloc}, &pgproto3.Sync{}); !strings.HasPrefix(got, "ErrorResponse 42P05") {
						t.Fatalf("%d%d parse again: %s", j, k, got)
					}
				} else if got := trace(&pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{}, &pgproto3.Parse{Query: dealloc}, &pgproto3.Sync{}); !strings.Contains(got, "ErrorResponse 22012") {
					t.Fatalf("%d%d skipped parse: %s", j, k, got)
				}
				if got := trace(&pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{}); !strings.Contains(got, "CommandComplete SELECT 1") {
					t.Fatalf("%d%d run: %s", j, k, got)
				}
				swap(app)
				got := trace(&pgproto3.Bind{PreparedStatement: "ins", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
				if !strings.HasPrefix(got, "ErrorResponse 0A000") {
					t.Errorf("%d%d bound after the swap: %s", j, k, got)
				}
				got = trace(query(fmt.Sprintf("EXECUTE ins(%d, '%s-x')", org, secret))...)
				if !strings.HasPrefix(got, "ErrorResponse 0A000") {
					t.Errorf("%d%d executed after the swap: %s", j, k, got)
				}
				rev15NoPlainNote(t, ctx, secret)
				trace(query("DEALLOCATE ALL")...)
				trace(&pgproto3.Close{ObjectType: 'S', Name: "dz"}, &pgproto3.Sync{})
			}
		}
	})
}

// TestReview21cPipelinesMirror: the paths of this review's fixes without
// a view swap — Parses of a taken name refused (42P05) over PREPARE,
// DEALLOCATE and set_config texts, unnamed Parses skipped after an
// error, SQL PREPAREs run through the extended protocol, EXECUTE of a
// statement prepared again — answer as PostgreSQL does on a plain
// mirror, message for message; the statements pgveil rewrites work
// between.
func TestReview21cPipelinesMirror(t *testing.T) {
	relayLeakCheck(t)
	r17Engines(t, 29100, func(t *testing.T, e *r17Env) {
		org := e.orgs[0]
		id := int64(29100 + 1000*(org%1000/100))
		nextID := func() int64 { id++; return id }
		dz := []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{}}
		run := func(name string) []pgproto3.FrontendMessage {
			return []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{}}
		}
		sel := &pgproto3.Parse{Name: "sq", Query: "SELECT $1::int8 * 2"}
		bindSq := []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: "sq", Parameters: [][]byte{[]byte("21")}}, &pgproto3.Execute{}}
		for k, steps := range [][][]pgproto3.FrontendMessage{
			// pp holds PREPARE sq; a Parse of pp refused; pp run again
			// after DEALLOCATE sq; sq bound, executed.
			{
				{&pgproto3.Parse{Name: "pp", Query: "PREPARE sq AS SELECT $1::int8 * 2"}, &pgproto3.Sync{}},
				run("pp"),
				query("DEALLOCATE sq"),
				{&pgproto3.Parse{Name: "pp", Query: "SELECT 1"}, &pgproto3.Sync{}},
				run("pp"),
				cat(bindSq, sync1),
				query("EXECUTE sq(4)"),
				cat(e.ins(nextID(), org, "m1"), sync1),
				{&pgproto3.Close{ObjectType: 'S', Name: "pp"}, &pgproto3.Sync{}},
			},
			// d is SELECT 1; Parses of d as DEALLOCATE refused; d run;
			// sq stays.
			{
				query("PREPARE sq AS SELECT $1::int8 * 2"),
				{&pgproto3.Parse{Name: "d", Query: "SELECT 1"}, &pgproto3.Sync{}},
				{&pgproto3.Parse{Name: "d", Query: "DEALLOCATE sq"}, &pgproto3.Sync{}},
				{&pgproto3.Parse{Name: "d", Query: "DEALLOCATE ALL"}, &pgproto3.Sync{}},
				run("d"),
				cat(bindSq, sync1),
				{sel, &pgproto3.Sync{}},
				{&pgproto3.Close{ObjectType: 'S', Name: "d"}, &pgproto3.Sync{}},
			},
			// The unnamed statement DEALLOCATE sq; a new unnamed Parse
			// skipped after an error; the unnamed statement run again.
			{
				query("PREPARE sq AS SELECT $1::int8 * 2"),
				{&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Sync{}},
				cat(dz, []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "DEALLOCATE sq"}}, sync1),
				run(""),
				cat(bindSq, sync1),
				{&pgproto3.Parse{Query: "DEALLOCATE sq"}, &pgproto3.Sync{}},
				cat(dz, []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT 2"}}, sync1),
				run(""),
				cat(bindSq, sync1),
				cat(e.ins(nextID(), org, "m3"), sync1),
				{&pgproto3.Close{ObjectType: 'S', Name: "dz"}, &pgproto3.Sync{}},
			},
			// EXECUTE x parsed over sq; sq deallocated, prepared again;
			// x run.
			{
				query("PREPARE sq AS SELECT $1::int8 * 2"),
				{&pgproto3.Parse{Name: "x", Query: "EXECUTE sq(5)"}, &pgproto3.Sync{}},
				query("DEALLOCATE sq; PREPARE sq AS SELECT $1::int8 * 3"),
				run("x"),
				{&pgproto3.Close{ObjectType: 'S', Name: "x"}, &pgproto3.Sync{}},
			},
			// PREPARE through the protocol in an aborted block (25P02),
			// and skipped after an error: sq never made.
			{
				{&pgproto3.Parse{Name: "pp", Query: "PREPARE sq AS SELECT $1::int8 * 2"}, &pgproto3.Sync{}},
				query("BEGIN"),
				query("SELECT 1/0"),
				run("pp"),
				query("ROLLBACK"),
				cat(bindSq, sync1),
				query("EXECUTE sq(1)"),
				cat(dz, run("pp")),
				cat(bindSq, sync1),
				query("EXECUTE sq(2)"),
				cat(e.ins(nextID(), org, "m4"), sync1),
				{&pgproto3.Close{ObjectType: 'S', Name: "pp"}, &pgproto3.Close{ObjectType: 'S', Name: "dz"}, &pgproto3.Sync{}},
			},
			// A pipeline: PREPARE through the protocol, run, bound, all
			// before one Sync; an error in the middle of another.
			{
				{&pgproto3.Parse{Name: "pp", Query: "PREPARE sq AS SELECT $1::int8 * 2"}, &pgproto3.Bind{PreparedStatement: "pp"}, &pgproto3.Execute{},
					bindSq[0], bindSq[1], &pgproto3.Parse{Name: "d", Query: "DEALLOCATE sq"}, &pgproto3.Bind{PreparedStatement: "d"}, &pgproto3.Execute{},
					&pgproto3.Bind{PreparedStatement: "pp"}, &pgproto3.Execute{}, bindSq[0], bindSq[1], &pgproto3.Sync{}},
				cat(dz, run("d")),
				cat(bindSq, sync1),
				run("d"),
				cat(bindSq, sync1),
				{&pgproto3.Close{ObjectType: 'S', Name: "pp"}, &pgproto3.Close{ObjectType: 'S', Name: "d"}, &pgproto3.Close{ObjectType: 'S', Name: "dz"}, &pgproto3.Sync{}},
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

// TestReview21cExecuteOfProtocolPrepare: pp, a protocol-level statement
// PREPARE ins AS INSERT INTO a plain table, run with SQL EXECUTE pp (also
// from another protocol statement, and in EXPLAIN) after DEALLOCATE ins:
// the server prepares ins again. After a view swap ins bound or
// executed: refused, the plaintext never written.
func TestReview21cExecuteOfProtocolPrepare(t *testing.T) {
	r21cEngines(t, 29200, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		app := connectPgx(t, ctx, p.url())
		for j, how := range []string{"query", "protocol"} {
			rel := fmt.Sprintf("r21c_ep%d_%d", org%10, j)
			swap := rev15ViewSwap(t, ctx, p, rel)
			secret := fmt.Sprintf("r21c-ep-%d-%d", org, j)
			p.remember(secret)
			if got := trace(&pgproto3.Parse{Name: "pp", Query: "PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
				t.Fatalf("%d parse: %s", j, got)
			}
			if got := trace(query("EXECUTE pp")...); got != "CommandComplete PREPARE | ReadyForQuery I" {
				t.Fatalf("%d execute pp: %s", j, got)
			}
			if how == "protocol" {
				// Parsed before the DEALLOCATE: its Bind and Execute record.
				if got := trace(&pgproto3.Parse{Name: "e", Query: "EXECUTE pp"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
					t.Fatalf("%d parse e: %s", j, got)
				}
			}
			if got := trace(query("DEALLOCATE ins")...); !strings.HasPrefix(got, "CommandComplete DEALLOCATE") {
				t.Fatalf("%d deallocate: %s", j, got)
			}
			if how == "query" {
				got := trace(query("EXECUTE pp")...)
				t.Logf("%d execute pp again: %s", j, got)
			} else {
				got := trace(&pgproto3.Bind{PreparedStatement: "e"}, &pgproto3.Execute{}, &pgproto3.Sync{})
				t.Logf("%d execute pp again: %s", j, got)
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
			trace(&pgproto3.Close{ObjectType: 'S', Name: "pp"}, &pgproto3.Close{ObjectType: 'S', Name: "e"}, &pgproto3.Sync{})
		}
	})
}

// TestReview21cExecuteOfProtocolDeallocate: d, a Parse of DEALLOCATE ALL
// (or DISCARD ALL), run with SQL EXECUTE d, dropped every prepared
// statement in the server, pgveil's own among them, unseen: a Parse of x
// (a statement pgveil rewrites) after got pgveil's 42P05 where PostgreSQL
// prepares it. Refused now (0A000), as code that deallocates is; x stays
// and binds. (MEDIUM: a false refusal of the client's Parse.)
func TestReview21cExecuteOfProtocolDeallocate(t *testing.T) {
	relayLeakCheck(t)
	r17Engines(t, 29300, func(t *testing.T, e *r17Env) {
		org := e.orgs[0]
		id := int64(29300 + 1000*(org%1000/100))
		for k, d := range []string{"DEALLOCATE ALL", "DISCARD ALL"} {
			id++
			e.same(fmt.Sprintf("%d parse", k), nil, &pgproto3.Parse{Name: "x", Query: r17Ins}, &pgproto3.Parse{Name: "d", Query: d}, &pgproto3.Sync{})
			for _, msgs := range [][]pgproto3.FrontendMessage{
				query("EXECUTE d"),
				{&pgproto3.Parse{Name: "e", Query: "EXECUTE d"}, &pgproto3.Bind{PreparedStatement: "e"}, &pgproto3.Execute{}, &pgproto3.Sync{}},
			} {
				if got := strings.Join(r17Trace(e.ctx, e.px, msgs...), " | "); !strings.Contains(got, "ErrorResponse 0A000") {
					t.Errorf("%d execute d: %s", k, got)
				}
			}
			e.same(fmt.Sprintf("%d bind x", k), nil, cat(e.insBind("x", id, org, fmt.Sprint("ed", k)), sync1)...)
			e.same(fmt.Sprintf("%d end", k), nil, query("DEALLOCATE ALL")...)
		}
		e.check("end")
	})
}

// TestReview21cSkippedCloseThenRewrittenParse: x, a pass-through INSERT
// into a plain table; a Close of x skipped after an error (the server
// keeps x); a Parse of x that pgveil rewrites: 42P05, as PostgreSQL
// answers (pgveil prepared it under its own name and dropped its record
// of the server's x); the client closes x; after a view swap, SQL EXECUTE
// x or a Bind of x runs the server's x, the old INSERT: refused, the
// plaintext never written.
func TestReview21cSkippedCloseThenRewrittenParse(t *testing.T) {
	r21cEngines(t, 29400, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		app := connectPgx(t, ctx, p.url())
		rel := fmt.Sprintf("r21c_sc%d", org%10)
		swap := rev15ViewSwap(t, ctx, p, rel)
		secret := fmt.Sprintf("r21c-sc-%d", org)
		p.remember(secret)
		if got := trace(&pgproto3.Parse{Name: "x", Query: "INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
			t.Fatalf("parse: %s", got)
		}
		if got := trace(&pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'S', Name: "x"}, &pgproto3.Sync{}); !strings.Contains(got, "ErrorResponse 22012") {
			t.Fatalf("skipped close: %s", got)
		}
		// PostgreSQL answers 42P05: x is still there.
		got := trace(&pgproto3.Parse{Name: "x", Query: fmt.Sprintf("SELECT note FROM contacts WHERE org_id = %d", org)}, &pgproto3.Sync{})
		if !strings.HasPrefix(got, "ErrorResponse 42P05") {
			t.Errorf("rewritten parse of x: %s", got)
		}
		got = trace(query(fmt.Sprintf("EXECUTE x(%d, '%s-0')", org, secret))...)
		t.Logf("execute x: %s", got)
		// The client closes its x (pgveil's upstream statement goes; the
		// server's x, the INSERT, stays).
		t.Logf("close x: %s", trace(&pgproto3.Close{ObjectType: 'S', Name: "x"}, &pgproto3.Sync{}))
		swap(app)
		got = trace(query(fmt.Sprintf("EXECUTE x(%d, '%s')", org, secret))...)
		t.Logf("execute x after the swap: %s", got)
		got = trace(&pgproto3.Bind{PreparedStatement: "x", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret + "-b")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
		t.Logf("bind x after the swap: %s", got)
		rev15NoPlainNote(t, ctx, secret)
	})
}

// TestReview21cSkippedCloseAndRewrittenParse: as
// TestReview21cSkippedCloseThenRewrittenParse, the Close of x and the
// Parse of x that pgveil rewrites in one pipeline after an error (both
// skipped: the server keeps x, the INSERT); after a view swap, SQL
// EXECUTE x or a Bind of x runs it: refused, the plaintext never written.
func TestReview21cSkippedCloseAndRewrittenParse(t *testing.T) {
	r21cEngines(t, 29500, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		app := connectPgx(t, ctx, p.url())
		rel := fmt.Sprintf("r21c_sk%d", org%10)
		swap := rev15ViewSwap(t, ctx, p, rel)
		secret := fmt.Sprintf("r21c-sk-%d", org)
		p.remember(secret)
		if got := trace(&pgproto3.Parse{Name: "x", Query: "INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
			t.Fatalf("parse: %s", got)
		}
		got := trace(&pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'S', Name: "x"},
			&pgproto3.Parse{Name: "x", Query: fmt.Sprintf("SELECT note FROM contacts WHERE org_id = %d", org)}, &pgproto3.Sync{})
		if !strings.Contains(got, "ErrorResponse 22012") {
			t.Fatalf("skipped: %s", got)
		}
		// A pass-through Parse of x: PostgreSQL refuses it (42P05), x stays.
		t.Logf("pass-through parse of x: %s", trace(&pgproto3.Parse{Name: "x", Query: "SELECT $1::int8, $2::text"}, &pgproto3.Sync{}))
		swap(app)
		got = trace(query(fmt.Sprintf("EXECUTE x(%d, '%s')", org, secret))...)
		t.Logf("execute x after the swap: %s", got)
		got = trace(&pgproto3.Bind{PreparedStatement: "x", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret + "-b")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
		t.Logf("bind x after the swap: %s", got)
		rev15NoPlainNote(t, ctx, secret)
	})
}
