package integration

// Review 21g: review of 21c's fixes to the records of prepared
// statements.
//
//   HIGH TestReview21gExecutePortalAfterSwap: a portal whose work the
//      server plans at its Execute (EXECUTE ins(…), EXPLAIN ANALYZE
//      EXECUTE ins(…), CREATE TABLE … AS EXECUTE insw(…), a DO block
//      running EXECUTE 'EXECUTE ins(…)' or an INSERT) takes no lock at
//      its Bind: bound in a transaction block before a view swap and
//      executed after it, the plaintext went into contacts.note. Checked
//      again at its first Execute now (proxy/laterportal.go).
//   HIGH TestReview21gSkippedCloseAndRewrittenParseKeepsPrepare: Close pp
//      and a Parse of pp pgveil rewrites, skipped in one pipeline after an
//      error: 21c kept pp's text (ptHeld) but the rewritten Parse's notes
//      replaced pp's SQL PREPAREs; pp bound (or EXECUTE pp) prepared ins
//      again unrecorded, and after a view swap Bind ins / EXECUTE ins
//      wrote the plaintext into contacts.note.
//   MEDIUM TestReview21gNameReuseMirror: a Close of x skipped after an
//      error, then Close x and a Parse of x pgveil rewrites in the next
//      pipeline: 42P05 (heldUnclosed read the skipped close as the one
//      pending) where PostgreSQL prepares it. Else holds: names closed and
//      prepared again as drivers do, in aborted blocks, savepoints,
//      DISCARD ALL, 20 re-Parses of a name.
//   MEDIUM rewrite TestReview21gCreateNamingExecuteAccepted: a function
//      with dynamic SQL and RAISE NOTICE 'execute …' was refused as one
//      running SQL EXECUTE of a prepared statement.
//   LOW proxy TestReview21gChangesPathSchemaColumn: UPDATE … SET schema =
//      in function code made it a path function (a round trip per call).
//   Pending (MEDIUM, fail closed): TestReview21gSkippedRewrittenUnnamed-
//      Mirror (enc_review21g_pending_test.go).
//   Hold: TestReview21gPortalOfExecuteBoundBeforeRePrepare,
//      TestReview21gSkippedRewrittenUnnamedKeepsPrepare,
//      TestReview21gExecuteOfPathFunction, TestReview21gExecutePortalsMirror.

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestReview21gPortalOfExecuteBoundBeforeRePrepare: x is a protocol
// statement EXECUTE sp, sp a harmless SQL PREPARE; x bound to portal px
// in a transaction block; sp deallocated and prepared again as a
// set_config of the path; px executed after. The INSERT after follows
// PostgreSQL's path. Holds.
func TestReview21gPortalOfExecuteBoundBeforeRePrepare(t *testing.T) {
	r21cEngines(t, 31000, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		r21cPlainSchema(t, ctx, trace)
		secret := fmt.Sprintf("r21g-pb-%d", org)
		p.remember(secret)
		if got := trace(query("SET search_path = r21c_plain, public; PREPARE sp AS SELECT 1")...); !strings.HasSuffix(got, "CommandComplete PREPARE | ReadyForQuery I") {
			t.Fatalf("set, prepare: %s", got)
		}
		if got := trace(&pgproto3.Parse{Name: "x", Query: "EXECUTE sp"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
			t.Fatalf("parse: %s", got)
		}
		trace(query("BEGIN")...)
		if got := trace(&pgproto3.Bind{PreparedStatement: "x", DestinationPortal: "px"}, &pgproto3.Sync{}); got != "BindComplete | ReadyForQuery T" {
			t.Fatalf("bind: %s", got)
		}
		if got := trace(query("DEALLOCATE sp; PREPARE sp AS SELECT pg_catalog.set_config('search_path', 'public', false)")...); !strings.Contains(got, "CommandComplete PREPARE") {
			t.Fatalf("prepare again: %s", got)
		}
		t.Logf("execute px: %s", trace(&pgproto3.Execute{Portal: "px"}, &pgproto3.Sync{}))
		trace(query("COMMIT")...)
		r21cInsertFollowsPath(t, ctx, trace, "px", org, secret)
		trace(query("DEALLOCATE ALL")...)

		// The same through the protocol, in one pipeline: x bound, sp
		// deallocated and prepared again, the portal executed.
		if got := trace(query("SET search_path = r21c_plain, public; PREPARE sp AS SELECT 1")...); !strings.HasSuffix(got, "CommandComplete PREPARE | ReadyForQuery I") {
			t.Fatalf("set, prepare: %s", got)
		}
		trace(&pgproto3.Parse{Name: "x", Query: "EXECUTE sp"}, &pgproto3.Sync{})
		got := trace(query("BEGIN")[0], &pgproto3.Bind{PreparedStatement: "x", DestinationPortal: "px"},
			&pgproto3.Parse{Name: "d", Query: "DEALLOCATE sp"}, &pgproto3.Bind{PreparedStatement: "d"}, &pgproto3.Execute{},
			&pgproto3.Parse{Name: "d2", Query: "PREPARE sp AS SELECT pg_catalog.set_config('search_path', 'public', false)"}, &pgproto3.Bind{PreparedStatement: "d2"}, &pgproto3.Execute{},
			&pgproto3.Execute{Portal: "px"}, &pgproto3.Sync{})
		t.Logf("pipeline: %s", got)
		trace(query("COMMIT")...)
		r21cInsertFollowsPath(t, ctx, trace, "pipeline", org, secret+"-p")
		trace(query("DEALLOCATE ALL")...)
	})
}

// TestReview21gExecutePortalAfterSwap: ins an SQL PREPARE of an INSERT
// into a plain table; a protocol statement running it (EXECUTE ins(…),
// EXPLAIN ANALYZE EXECUTE ins(…)) bound to portal q in a transaction
// block before a view swap (a utility portal takes no lock on the
// table), q executed after pgveil read the new catalog. The server plans
// ins again over the view: refused, the plaintext never written.
func TestReview21gExecutePortalAfterSwap(t *testing.T) {
	r21cEngines(t, 31100, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		app := connectPgx(t, ctx, p.url())
		for j, f := range []string{
			"EXECUTE ins(%d, '%s')",
			"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE ins(%d, '%s')",
			"DO $$BEGIN EXECUTE 'EXECUTE ins(%d, ''%s'')'; END$$",
			"DO $$BEGIN INSERT INTO r21g_ep3 (org_id, note) VALUES (%d, '%s'); END$$",
			"CREATE TEMP TABLE r21g_ct AS EXECUTE insw(%d, '%s')",
		} {
			rel := fmt.Sprintf("r21g_ep%d", j)
			swap := rev15ViewSwap(t, ctx, p, rel)
			secret := fmt.Sprintf("r21g-ep-%d-%d", org, j)
			p.remember(secret)
			if got := trace(query("PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2); " +
				"PREPARE insw AS WITH w AS (INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2) RETURNING org_id) SELECT org_id FROM w")...); !strings.HasSuffix(got, "CommandComplete PREPARE | ReadyForQuery I") {
				t.Fatalf("%d prepare: %s", j, got)
			}
			if got := trace(&pgproto3.Parse{Name: "e", Query: fmt.Sprintf(f, org, secret)}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
				t.Logf("%d parse refused: %s", j, got)
				swap(app)
				trace(query("DEALLOCATE ALL")...)
				continue
			}
			trace(query("BEGIN")...)
			if got := trace(&pgproto3.Bind{PreparedStatement: "e", DestinationPortal: "q"}, &pgproto3.Sync{}); got != "BindComplete | ReadyForQuery T" {
				t.Fatalf("%d bind: %s", j, got)
			}
			swap(app)
			trace(query("SELECT 1")...)
			if got := trace(&pgproto3.Execute{Portal: "q"}, &pgproto3.Sync{}); !strings.HasPrefix(got, "ErrorResponse 0A000") || !strings.HasSuffix(got, "ReadyForQuery E") {
				t.Errorf("%d execute q after the swap: %s", j, got)
			}
			trace(query("COMMIT")...)
			rev15NoPlainNote(t, ctx, secret)
			trace(query("ROLLBACK")...)
			trace(query("DEALLOCATE ALL")...)
			trace(&pgproto3.Close{ObjectType: 'S', Name: "e"}, &pgproto3.Sync{})
		}
	})
}

// TestReview21gNameReuseMirror: a name closed and prepared again, with a
// text pgveil rewrites or passes through, the way drivers do (pgx's
// statement cache evicting: Close then Parse of the same name; JDBC's
// S_n, Rails' an after DEALLOCATE; a pooler's DISCARD ALL), with closes
// in aborted transaction blocks, rolled-back savepoints, skipped after
// errors, and in one pipeline with the Parse; a name parsed again 20
// times. Holds: message for message what PostgreSQL sends.
func TestReview21gNameReuseMirror(t *testing.T) {
	relayLeakCheck(t)
	r17Engines(t, 31200, func(t *testing.T, e *r17Env) {
		org := e.orgs[0]
		rw := func(name string) *pgproto3.Parse {
			return &pgproto3.Parse{Name: name, Query: "SELECT email FROM users WHERE org_id = $1 ORDER BY id"}
		}
		pt := func(name string) *pgproto3.Parse {
			return &pgproto3.Parse{Name: name, Query: "SELECT $1::int8 * 2"}
		}
		run := func(name string) []pgproto3.FrontendMessage {
			return []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: name, Parameters: [][]byte{[]byte(fmt.Sprint(org))}}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}}
		}
		closeS := func(name string) *pgproto3.Close { return &pgproto3.Close{ObjectType: 'S', Name: name} }
		dz := []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{}}
		e.same("seed", nil, cat(e.ins(31200, org, "nr"), sync1)...)
		for k, steps := range [][][]pgproto3.FrontendMessage{
			// pgx: Close, Sync, then Parse of the same name.
			{{pt("s1"), &pgproto3.Sync{}}, run("s1"), {closeS("s1"), &pgproto3.Sync{}}, {rw("s1"), &pgproto3.Describe{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{}}, run("s1"), {closeS("s1"), &pgproto3.Sync{}}},
			// Close and Parse in one pipeline, both ways round.
			{{pt("s1"), &pgproto3.Sync{}}, {closeS("s1"), rw("s1"), &pgproto3.Sync{}}, run("s1"), {closeS("s1"), pt("s1"), &pgproto3.Sync{}}, run("s1"), {closeS("s1"), &pgproto3.Sync{}}},
			// A Close in an aborted transaction block, then a Parse.
			{{pt("s1"), &pgproto3.Sync{}}, query("BEGIN"), query("SELECT 1/0"), {closeS("s1"), &pgproto3.Sync{}}, query("ROLLBACK"), {rw("s1"), &pgproto3.Sync{}}, run("s1"), {closeS("s1"), &pgproto3.Sync{}}},
			// DEALLOCATE in an aborted block (refused), then a Parse.
			{{pt("s1"), &pgproto3.Sync{}}, query("BEGIN"), query("SELECT 1/0"), query("DEALLOCATE s1"), query("ROLLBACK"), {rw("s1"), &pgproto3.Sync{}}, run("s1"), {closeS("s1"), &pgproto3.Sync{}}},
			// DEALLOCATE in a savepoint rolled back: it stays done.
			{{pt("s1"), &pgproto3.Sync{}}, query("BEGIN; SAVEPOINT a; DEALLOCATE s1; ROLLBACK TO a"), {rw("s1"), &pgproto3.Sync{}}, query("COMMIT"), run("s1"), {closeS("s1"), &pgproto3.Sync{}}},
			// A Close skipped after an error, again after the Sync.
			{{pt("s1"), &pgproto3.Sync{}}, cat(dz, []pgproto3.FrontendMessage{closeS("s1"), &pgproto3.Sync{}}), {closeS("s1"), rw("s1"), &pgproto3.Sync{}}, run("s1"), {closeS("s1"), closeS("dz"), &pgproto3.Sync{}}},
			// DISCARD ALL and DEALLOCATE ALL between.
			{{pt("s1"), rw("s2"), &pgproto3.Sync{}}, query("DISCARD ALL"), {rw("s1"), pt("s2"), &pgproto3.Sync{}}, run("s1"), run("s2"), query("DEALLOCATE ALL"), {pt("s1"), rw("s2"), &pgproto3.Sync{}}, run("s1"), run("s2")},
			// Rails after DEALLOCATE: the same name, another text.
			{query("PREPARE a1 AS SELECT $1::int8 * 2"), query("DEALLOCATE a1"), {rw("a1"), &pgproto3.Sync{}}, run("a1"), query("DEALLOCATE a1"), {pt("a1"), &pgproto3.Sync{}}, run("a1")},
		} {
			for j, msgs := range steps {
				e.same(fmt.Sprintf("%d.%d", k, j), nil, msgs...)
			}
			e.same(fmt.Sprintf("%d end", k), nil, query("DEALLOCATE ALL")...)
		}
		// A name parsed again 20 times, closed between, in one pipeline
		// and one Sync each.
		var many []pgproto3.FrontendMessage
		for i := 0; i < 20; i++ {
			p := pt("m")
			if i%2 == 1 {
				p = rw("m")
			}
			many = append(many, p, &pgproto3.Bind{PreparedStatement: "m", Parameters: [][]byte{[]byte(fmt.Sprint(org))}}, &pgproto3.Execute{}, closeS("m"))
		}
		e.same("many", nil, append(many, &pgproto3.Sync{})...)
		for i := 0; i < 20; i++ {
			e.same(fmt.Sprintf("many %d", i), nil, rw("m"), &pgproto3.Sync{})
			e.same(fmt.Sprintf("many %d run", i), nil, run("m")...)
			e.same(fmt.Sprintf("many %d close", i), nil, closeS("m"), &pgproto3.Sync{})
		}
		e.check("end")
	})
}

// TestReview21gSkippedCloseAndRewrittenParseKeepsPrepare: pp is PREPARE
// ins AS INSERT INTO a plain table, run once, ins deallocated; the Close
// of pp and a Parse of pp that pgveil rewrites, in one pipeline after an
// error (both skipped: the server keeps pp). pp bound and run prepares
// ins again; after a view swap, ins bound or executed: refused, the
// plaintext never written.
func TestReview21gSkippedCloseAndRewrittenParseKeepsPrepare(t *testing.T) {
	r21cEngines(t, 31300, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		app := connectPgx(t, ctx, p.url())
		for j, how := range []string{"bind", "execute"} {
			rel := fmt.Sprintf("r21g_sk%d%d", org%10, j)
			swap := rev15ViewSwap(t, ctx, p, rel)
			secret := fmt.Sprintf("r21g-sk-%d-%d", org, j)
			p.remember(secret)
			if got := trace(&pgproto3.Parse{Name: "pp", Query: "PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Bind{PreparedStatement: "pp"}, &pgproto3.Execute{}, &pgproto3.Sync{}); got != "ParseComplete | BindComplete | CommandComplete PREPARE | ReadyForQuery I" {
				t.Fatalf("%s parse, run: %s", how, got)
			}
			if got := trace(query("DEALLOCATE ins")...); !strings.HasPrefix(got, "CommandComplete DEALLOCATE") {
				t.Fatalf("%s deallocate: %s", how, got)
			}
			got := trace(&pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'S', Name: "pp"},
				&pgproto3.Parse{Name: "pp", Query: fmt.Sprintf("SELECT note FROM contacts WHERE org_id = %d", org)}, &pgproto3.Sync{})
			if !strings.Contains(got, "ErrorResponse 22012") {
				t.Fatalf("%s skipped: %s", how, got)
			}
			if how == "bind" {
				got = trace(&pgproto3.Bind{PreparedStatement: "pp"}, &pgproto3.Execute{}, &pgproto3.Sync{})
			} else {
				got = trace(query("EXECUTE pp")...)
			}
			if !strings.Contains(got, "CommandComplete PREPARE") {
				t.Fatalf("%s pp again: %s", how, got)
			}
			swap(app)
			got = trace(&pgproto3.Bind{PreparedStatement: "ins", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
			if !strings.HasPrefix(got, "ErrorResponse 0A000") {
				t.Errorf("%s bind ins after the swap: %s", how, got)
			}
			got = trace(query(fmt.Sprintf("EXECUTE ins(%d, '%s-x')", org, secret))...)
			if !strings.HasPrefix(got, "ErrorResponse 0A000") {
				t.Errorf("%s execute ins after the swap: %s", how, got)
			}
			rev15NoPlainNote(t, ctx, secret)
			trace(query("DEALLOCATE ALL")...)
			trace(&pgproto3.Close{ObjectType: 'S', Name: "dz"}, &pgproto3.Sync{})
		}
	})
}

// TestReview21gSkippedRewrittenUnnamedKeepsPrepare: the unnamed
// statement is PREPARE ins AS INSERT INTO a plain table, run once, ins
// deallocated (through the protocol: a Query would drop the unnamed
// statement); an unnamed Parse pgveil rewrites skipped after an error
// (the server keeps the PREPARE); the unnamed statement bound and run
// prepares ins again. After a view swap, ins bound or executed: refused,
// the plaintext never written. Holds (the view refuses the Bind).
func TestReview21gSkippedRewrittenUnnamedKeepsPrepare(t *testing.T) {
	r21cEngines(t, 31400, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		app := connectPgx(t, ctx, p.url())
		rel := fmt.Sprintf("r21g_su%d", org%10)
		swap := rev15ViewSwap(t, ctx, p, rel)
		secret := fmt.Sprintf("r21g-su-%d", org)
		p.remember(secret)
		if got := trace(&pgproto3.Parse{Query: "PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}); got != "ParseComplete | BindComplete | CommandComplete PREPARE | ReadyForQuery I" {
			t.Fatalf("parse, run: %s", got)
		}
		if got := trace(&pgproto3.Parse{Name: "d", Query: "DEALLOCATE ins"}, &pgproto3.Bind{PreparedStatement: "d"}, &pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'S', Name: "d"}, &pgproto3.Sync{}); !strings.Contains(got, "CommandComplete DEALLOCATE") {
			t.Fatalf("deallocate: %s", got)
		}
		got := trace(&pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: fmt.Sprintf("SELECT note FROM contacts WHERE org_id = %d", org)}, &pgproto3.Sync{})
		if !strings.Contains(got, "ErrorResponse 22012") {
			t.Fatalf("skipped: %s", got)
		}
		// PostgreSQL runs the PREPARE again; pgveil's view still holds
		// the skipped Parse (26000 today: TestReview21gSkippedRewritten-
		// UnnamedMirror, pending). Either way ins must not run unchecked.
		t.Logf("unnamed again: %s", trace(&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}))
		swap(app)
		got = trace(&pgproto3.Bind{PreparedStatement: "ins", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if !strings.HasPrefix(got, "ErrorResponse 0A000") && !strings.HasPrefix(got, "ErrorResponse 26000") {
			t.Errorf("bind ins after the swap: %s", got)
		}
		got = trace(query(fmt.Sprintf("EXECUTE ins(%d, '%s-x')", org, secret))...)
		if !strings.HasPrefix(got, "ErrorResponse 0A000") && !strings.HasPrefix(got, "ErrorResponse 26000") {
			t.Errorf("execute ins after the swap: %s", got)
		}
		rev15NoPlainNote(t, ctx, secret)
	})
}

// TestReview21gExecuteOfPathFunction: sp, an SQL PREPARE of SELECT f(),
// f a function whose code changes the path (no set_config in sp's own
// text); EXECUTE sp (a Query, a protocol statement, EXPLAIN ANALYZE)
// changes the server's path. The INSERT after follows PostgreSQL's path.
// Holds.
func TestReview21gExecuteOfPathFunction(t *testing.T) {
	r21cEngines(t, 31600, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		su := superConn(t, ctx)
		if _, err := su.Exec(ctx, `CREATE OR REPLACE FUNCTION public.r21g_sp() RETURNS text LANGUAGE sql AS $f$ SELECT pg_catalog.set_config('search_path', 'public', false) $f$`); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { su.Exec(context.Background(), `DROP FUNCTION IF EXISTS public.r21g_sp()`) })
		r21cPlainSchema(t, ctx, trace)
		for j, how := range []string{"query", "protocol", "explain"} {
			secret := fmt.Sprintf("r21g-pf-%d-%d", org, j)
			p.remember(secret)
			if got := trace(query("SET search_path = r21c_plain, public; PREPARE sp AS SELECT public.r21g_sp()")...); !strings.HasSuffix(got, "CommandComplete PREPARE | ReadyForQuery I") {
				t.Fatalf("%s set, prepare: %s", how, got)
			}
			trace(query("SELECT count(*) FROM contacts")...)
			var got string
			switch how {
			case "query":
				got = trace(query("EXECUTE sp")...)
			case "protocol":
				got = trace(&pgproto3.Parse{Name: "x", Query: "EXECUTE sp"}, &pgproto3.Bind{PreparedStatement: "x"}, &pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'S', Name: "x"}, &pgproto3.Sync{})
			case "explain":
				got = trace(query("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE sp")...)
			}
			t.Logf("%s: %s", how, got)
			r21cInsertFollowsPath(t, ctx, trace, how, org, secret)
			trace(query("DEALLOCATE ALL")...)
		}
	})
}

// TestReview21gExecutePortalsMirror: portals of EXECUTE, EXPLAIN ANALYZE
// EXECUTE and DO bound in a transaction block, DDL between (the catalog
// changes: each is checked again at its Execute), executed with and
// without a row limit: message for message what PostgreSQL sends. Holds.
func TestReview21gExecutePortalsMirror(t *testing.T) {
	relayLeakCheck(t)
	r17Engines(t, 31800, func(t *testing.T, e *r17Env) {
		e.same("seed", nil, cat(e.ins(31800+e.orgs[0]%1000, e.orgs[0], "ep"), sync1)...)
		e.same("prepare", nil, query("PREPARE sq AS SELECT g FROM generate_series(1, $1::int) g")...)
		for k, text := range []string{"EXECUTE sq(3)", "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE sq(3)", "DO $$BEGIN PERFORM 1; END$$"} {
			e.same(fmt.Sprintf("%d parse", k), nil, &pgproto3.Parse{Name: "e", Query: text}, &pgproto3.Sync{})
			e.same(fmt.Sprintf("%d begin", k), nil, query("BEGIN")...)
			e.same(fmt.Sprintf("%d bind", k), nil, &pgproto3.Bind{PreparedStatement: "e", DestinationPortal: "q"}, &pgproto3.Bind{PreparedStatement: "e", DestinationPortal: "q2"}, &pgproto3.Sync{})
			e.same(fmt.Sprintf("%d ddl", k), nil, query("CREATE TEMP TABLE r21g_t (); DROP TABLE r21g_t")...)
			e.same(fmt.Sprintf("%d execute", k), nil, &pgproto3.Execute{Portal: "q", MaxRows: 1}, &pgproto3.Execute{Portal: "q"}, &pgproto3.Execute{Portal: "q2"}, &pgproto3.Sync{})
			e.same(fmt.Sprintf("%d commit", k), nil, query("COMMIT")...)
			e.same(fmt.Sprintf("%d close", k), nil, &pgproto3.Close{ObjectType: 'S', Name: "e"}, &pgproto3.Sync{})
		}
		e.same("end", nil, query("DEALLOCATE ALL")...)
	})
}
