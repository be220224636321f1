package integration

// Review 21i: review of 21g's fixes (portals whose work PostgreSQL plans
// at their Execute, held statements, markClosed).
//
//   HIGH TestReview21iCodePortalAfterSwap: a portal calling a PL/pgSQL
//      function or procedure that writes a plain table, or a ';DO' block
//      (21g took only a leading DO and EXECUTE), bound before a view swap
//      and executed after it (named and unnamed portals): the code wrote
//      the plaintext through the view. Every portal is checked at its
//      Execute after a catalog change now (proxy/laterportal.go).
//   HIGH TestReview21iCodePortalRowLimitAfterSwap: a portal whose
//      function reaches the table at a later row, run with a row limit,
//      the swap, the next Execute (in a block, and in an implicit
//      transaction not yet synced); a portal writing a table whose trigger
//      writes it. 21g dropped its record at the first Execute.
//   HIGH TestReview21iCursorFetchAfterSwap: a cursor declared before the
//      swap, FETCH or MOVE after it (SQL and protocol; DECLARE through the
//      protocol too): its query's code ran over the view (proxy/
//      cursorcode.go).
//   HIGH TestReview21iFunctionCursorFetchAfterSwap: the same for a cursor
//      a function opened (no DECLARE seen).
//   MEDIUM proxy TestReview21iLaterPortalsBounded, TestReview21iPortal-
//      NotesBounded: records of portals kept one per name for a session
//      binding distinct names (dead ones dropped now); LOW: their Execute
//      after the transaction ended could get 0A000 where PostgreSQL
//      answers 34000.
//   Hold: TestReview21iPortalsAcrossCatalogChangeMirror,
//      TestReview21iFunctionCursorAcrossDDLMirror, proxy
//      TestReview21iBindAllocs.

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestReview21iCodePortalAfterSwap: a portal whose Bind takes no lock on
// the table its work writes (a call of a PL/pgSQL function or procedure
// inserting into it, a DO block after a leading semicolon), bound in a
// transaction block before a view swap and executed after it: the
// server runs the code over the view. Refused: the plaintext never
// written.
func TestReview21iCodePortalAfterSwap(t *testing.T) {
	r21cEngines(t, 31900, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		app := connectPgx(t, ctx, p.url())
		for j, f := range []string{
			"SELECT r21i_f%[3]d(%[1]d, '%[2]s')",
			"CALL r21i_p%[3]d(%[1]d, '%[2]s')",
			";DO $$BEGIN INSERT INTO r21i_cp%[3]d (org_id, note) VALUES (%[1]d, '%[2]s'); END$$",
			"; /* c */ ; DO $$BEGIN EXECUTE 'EXECUTE ins(%[1]d, ''%[2]s'')'; END$$",
			"SELECT r21i_f%[3]d(%[1]d, '%[2]s')", // the unnamed portal
			"CALL r21i_p%[3]d(%[1]d, '%[2]s')",   // the unnamed portal
		} {
			portal := "q"
			if j >= 4 {
				portal = ""
			}
			rel := fmt.Sprintf("r21i_cp%d", j)
			swap := rev15ViewSwap(t, ctx, p, rel)
			secret := fmt.Sprintf("r21i-cp-%d-%d", org, j)
			p.remember(secret)
			if got := trace(query(fmt.Sprintf("CREATE OR REPLACE FUNCTION r21i_f%[1]d(o int8, n text) RETURNS int LANGUAGE plpgsql AS $$BEGIN INSERT INTO %[2]s (org_id, note) VALUES (o, n); RETURN 1; END$$; "+
				"CREATE OR REPLACE PROCEDURE r21i_p%[1]d(o int8, n text) LANGUAGE plpgsql AS $$BEGIN INSERT INTO %[2]s (org_id, note) VALUES (o, n); END$$; "+
				"PREPARE ins AS INSERT INTO %[2]s (org_id, note) VALUES ($1, $2)", j, rel))...); !strings.HasSuffix(got, "ReadyForQuery I") || strings.Contains(got, "Error") {
				t.Fatalf("%d create: %s", j, got)
			}
			if got := trace(&pgproto3.Parse{Name: "e", Query: fmt.Sprintf(f, org, secret, j)}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
				t.Fatalf("%d parse: %s", j, got)
			}
			trace(query("BEGIN")...)
			if got := trace(&pgproto3.Bind{PreparedStatement: "e", DestinationPortal: portal}, &pgproto3.Sync{}); got != "BindComplete | ReadyForQuery T" {
				t.Fatalf("%d bind: %s", j, got)
			}
			swap(app)
			if got := trace(&pgproto3.Execute{Portal: portal}, &pgproto3.Sync{}); !strings.HasPrefix(got, "ErrorResponse 0A000") || !strings.HasSuffix(got, "ReadyForQuery E") {
				t.Errorf("%d execute q after the swap: %s", j, got)
			}
			trace(query("COMMIT")...)
			rev15NoPlainNote(t, ctx, secret)
			trace(query("ROLLBACK")...)
			trace(query(fmt.Sprintf("DEALLOCATE ALL; DROP FUNCTION r21i_f%[1]d; DROP PROCEDURE r21i_p%[1]d", j))...)
			trace(&pgproto3.Close{ObjectType: 'S', Name: "e"}, &pgproto3.Sync{})
		}
	})
}

// TestReview21iPortalsAcrossCatalogChangeMirror: portals of statements
// pgveil rewrites, passes through, or whose work the server plans at
// their Execute (EXECUTE sp, a DO block), of INSERT … ON CONFLICT DO
// NOTHING, bound before DDL (this session's, another's) and executed after
// (in a transaction block, with a row limit and again), or after their
// transaction ended (34000). Holds: message for message what PostgreSQL
// sends, no false refusal.
func TestReview21iPortalsAcrossCatalogChangeMirror(t *testing.T) {
	relayLeakCheck(t)
	r17Engines(t, 32000, func(t *testing.T, e *r17Env) {
		org := e.orgs[0]
		bump := query("CREATE TEMP TABLE r21i_bump (); DROP TABLE r21i_bump")
		other := connectPgx(t, e.ctx, e.p.url())
		otherDDL := func() {
			t.Helper()
			if _, err := other.Exec(e.ctx, "CREATE TABLE r21i_bump2 (); DROP TABLE r21i_bump2"); err != nil {
				t.Fatal(err)
			}
		}
		e.same("prepare", nil, query("PREPARE sp AS SELECT 1")...)
		e.same("seed", nil, cat(e.ins(32000, org, "pa"), sync1)...)
		stmts := []struct {
			sql    string
			params [][]byte
		}{
			{"SELECT email FROM users WHERE org_id = $1 ORDER BY id", [][]byte{[]byte(fmt.Sprint(org))}},
			{"SELECT x FROM generate_series(1, 3) x", nil},
			{"EXECUTE sp", nil},
			{"/* do */ execute \"sp\"", nil},
			{"DO $$BEGIN PERFORM 1; END$$", nil},
			{"INSERT INTO users (id, org_id, name, email, phone) VALUES (32001, $1, 'do', $2, $3) ON CONFLICT DO NOTHING", [][]byte{[]byte(fmt.Sprint(org)), []byte("r21i-oc@example.org"), []byte("ph-r21i-oc")}},
		}
		e.p.remember("r21i-oc@example.org", "ph-r21i-oc")
		for k, st := range stmts {
			for _, name := range []string{"", "s1"} {
				w := fmt.Sprintf("%d %q", k, name)
				bind := &pgproto3.Bind{PreparedStatement: name, DestinationPortal: "p1", Parameters: st.params}
				e.same(w+" parse", nil, &pgproto3.Parse{Name: name, Query: st.sql}, &pgproto3.Sync{})
				// Dead at its transaction's end: 34000 after DDL.
				e.same(w+" bind", nil, bind, &pgproto3.Sync{})
				e.same(w+" ddl", nil, bump...)
				e.same(w+" execute dead", nil, &pgproto3.Execute{Portal: "p1"}, &pgproto3.Sync{})
				// Alive in a transaction block across DDL, a row limit.
				e.same(w+" begin, bind", nil, query("BEGIN")[0], bind, &pgproto3.Sync{})
				otherDDL() // pgveil reads its catalog again at the Execute
				e.same(w+" execute", nil, &pgproto3.Execute{Portal: "p1", MaxRows: 1}, &pgproto3.Sync{})
				e.same(w+" ddl in block 2", nil, bump...)
				otherDDL()
				e.same(w+" execute again", nil, &pgproto3.Execute{Portal: "p1"}, &pgproto3.Sync{})
				e.same(w+" commit", nil, query("COMMIT")...)
				if name != "" {
					e.same(w+" close", nil, &pgproto3.Close{ObjectType: 'S', Name: name}, &pgproto3.Sync{})
				}
			}
		}
		e.check("end")
	})
}

// TestReview21iCodePortalRowLimitAfterSwap: a portal over rows whose
// function writes the table only at a later row (its first Execute,
// with a row limit, took no lock on it), and a portal writing a table
// whose trigger writes it; the swap commits after the first Execute,
// in a transaction block or in the implicit transaction of a pipeline
// not yet synced (Flush). The next Execute is refused: the plaintext
// never written.
func TestReview21iCodePortalRowLimitAfterSwap(t *testing.T) {
	r21cEngines(t, 32100, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		app := connectPgx(t, ctx, p.url())
		for j, block := range []bool{true, false, true} {
			rel := fmt.Sprintf("r21i_rl%d", j)
			swap := rev15ViewSwap(t, ctx, p, rel)
			secret := fmt.Sprintf("r21i-rl-%d-%d", org, j)
			p.remember(secret)
			sql := fmt.Sprintf("SELECT r21i_g(x, %d, '%s') FROM generate_series(1, 2) x", org, secret)
			if j == 2 {
				sql = fmt.Sprintf("INSERT INTO r21i_tt SELECT %d, '%s' FROM generate_series(1, 2)", org, secret)
			}
			if got := trace(query(fmt.Sprintf("CREATE OR REPLACE FUNCTION r21i_g(x int, o int8, n text) RETURNS int LANGUAGE plpgsql AS $$BEGIN IF x = 2 THEN INSERT INTO %[1]s (org_id, note) VALUES (o, n); END IF; RETURN x; END$$; "+
				"CREATE TABLE r21i_tt (org_id int8, note text); "+
				"CREATE FUNCTION r21i_tg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO %[1]s (org_id, note) VALUES (NEW.org_id, NEW.note); RETURN NEW; END$$; "+
				"CREATE TRIGGER r21i_tt BEFORE INSERT ON r21i_tt FOR EACH ROW EXECUTE FUNCTION r21i_tg()", rel))...); strings.Contains(got, "Error") {
				t.Fatalf("%d create: %s", j, got)
			}
			if block {
				trace(query("BEGIN")...)
			}
			bind := []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{DestinationPortal: "q"}}
			if j < 2 {
				if got := trace(append(bind, &pgproto3.Execute{Portal: "q", MaxRows: 1}, &pgproto3.Flush{})...); !strings.HasSuffix(got, "PortalSuspended") {
					t.Fatalf("%d first execute: %s", j, got)
				}
			} else if got := trace(append(bind, &pgproto3.Sync{})...); !strings.HasSuffix(got, "ReadyForQuery T") {
				t.Fatalf("%d bind: %s", j, got)
			}
			swap(app)
			if got := trace(&pgproto3.Execute{Portal: "q"}, &pgproto3.Sync{}); !strings.HasPrefix(got, "ErrorResponse 0A000") {
				t.Errorf("%d execute q after the swap: %s", j, got)
			}
			trace(query("ROLLBACK")...)
			rev15NoPlainNote(t, ctx, secret)
			trace(query("DROP TABLE r21i_tt; DROP FUNCTION r21i_tg(); DROP FUNCTION r21i_g")...)
		}
	})
}

// TestReview21iCursorFetchAfterSwap: a cursor over rows whose function
// writes the table only at a later row, declared in a transaction block
// before a view swap, fetched from after it (SQL FETCH, and a protocol
// FETCH). Refused: the plaintext never written.
func TestReview21iCursorFetchAfterSwap(t *testing.T) {
	r21cEngines(t, 32200, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		app := connectPgx(t, ctx, p.url())
		for j, fetch := range [][]pgproto3.FrontendMessage{
			query("FETCH 1 FROM c"),
			{&pgproto3.Parse{Query: "FETCH 1 FROM c"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
			query("MOVE 1 IN c"),
			query("FETCH ALL FROM c"), // declared through the protocol
		} {
			rel := fmt.Sprintf("r21i_cf%d", j)
			swap := rev15ViewSwap(t, ctx, p, rel)
			secret := fmt.Sprintf("r21i-cf-%d-%d", org, j)
			p.remember(secret)
			if got := trace(query(fmt.Sprintf("CREATE OR REPLACE FUNCTION r21i_g(x int, o int8, n text) RETURNS int LANGUAGE plpgsql AS $$BEGIN IF x = 2 THEN INSERT INTO %s (org_id, note) VALUES (o, n); END IF; RETURN x; END$$", rel))...); strings.Contains(got, "Error") {
				t.Fatalf("%d create: %s", j, got)
			}
			decl := fmt.Sprintf("DECLARE c CURSOR FOR SELECT r21i_g(x, %d, '%s') FROM generate_series(1, 2) x", org, secret)
			if j == 3 {
				if got := trace(query("BEGIN")[0], &pgproto3.Parse{Name: "dc", Query: decl}, &pgproto3.Bind{PreparedStatement: "dc"}, &pgproto3.Execute{}, &pgproto3.Sync{}); strings.Contains(got, "Error") {
					t.Fatalf("%d declare: %s", j, got)
				}
				trace(query("FETCH 1 FROM c")...)
			} else if got := trace(query("BEGIN; " + decl + "; FETCH 1 FROM c")...); strings.Contains(got, "Error") {
				t.Fatalf("%d declare: %s", j, got)
			}
			swap(app)
			if got := trace(fetch...); !strings.Contains(got, "ErrorResponse 0A000") {
				t.Errorf("%d fetch after the swap: %s", j, got)
			}
			trace(query("COMMIT")...)
			rev15NoPlainNote(t, ctx, secret)
			trace(query("ROLLBACK; DROP FUNCTION r21i_g")...)
			trace(&pgproto3.Close{ObjectType: 'S', Name: "dc"}, &pgproto3.Sync{})
		}
	})
}

// TestReview21iFunctionCursorFetchAfterSwap (HIGH, fixed): a cursor a
// function opened (OPEN … FOR SELECT g(x) …, returned as a refcursor)
// before a view swap, fetched from after it: pgveil saw no DECLARE, and
// a FETCH from a cursor it did not know passed as it is; g reached the
// table at the second row, through the view. Refused now: the catalog
// changed since the transaction began.
func TestReview21iFunctionCursorFetchAfterSwap(t *testing.T) {
	r21cEngines(t, 32300, func(t *testing.T, ctx context.Context, p *encProxy, org int64, trace func(...pgproto3.FrontendMessage) string) {
		app := connectPgx(t, ctx, p.url())
		rel := "r21i_fc"
		swap := rev15ViewSwap(t, ctx, p, rel)
		secret := fmt.Sprintf("r21i-fc-%d", org)
		p.remember(secret)
		if got := trace(query(fmt.Sprintf("CREATE OR REPLACE FUNCTION r21i_g(x int, o int8, n text) RETURNS int LANGUAGE plpgsql AS $$BEGIN IF x = 2 THEN INSERT INTO %s (org_id, note) VALUES (o, n); END IF; RETURN x; END$$; "+
			"CREATE OR REPLACE FUNCTION r21i_open(o int8, n text) RETURNS refcursor LANGUAGE plpgsql AS $$DECLARE c refcursor := 'fc'; BEGIN OPEN c FOR SELECT r21i_g(x, o, n) FROM generate_series(1, 2) x; RETURN c; END$$", rel))...); strings.Contains(got, "Error") {
			t.Fatalf("create: %s", got)
		}
		if got := trace(query(fmt.Sprintf("BEGIN; SELECT r21i_open(%d, '%s'); FETCH 1 FROM fc", org, secret))...); strings.Contains(got, "Error") {
			t.Fatalf("open: %s", got)
		}
		swap(app)
		if got := trace(query("FETCH 1 FROM fc")...); !strings.Contains(got, "ErrorResponse 0A000") {
			t.Errorf("fetch after the swap: %s", got)
		}
		trace(query("COMMIT")...)
		rev15NoPlainNote(t, ctx, secret)
		trace(query("ROLLBACK; DROP FUNCTION r21i_open; DROP FUNCTION r21i_g")...)
	})
}

// TestReview21iFunctionCursorAcrossDDLMirror: a cursor a function opens,
// fetched from after DDL (another session's), with no code naming a
// view over an encrypted column in the database: as PostgreSQL answers
// (no false refusal). Holds.
func TestReview21iFunctionCursorAcrossDDLMirror(t *testing.T) {
	r17Engines(t, 32400, func(t *testing.T, e *r17Env) {
		e.p.remember("r21i-fm-unused")
		e.same("create", nil, query("CREATE FUNCTION pg_temp.r21i_open() RETURNS refcursor LANGUAGE plpgsql AS $$DECLARE c refcursor := 'oc'; BEGIN OPEN c FOR SELECT x FROM generate_series(1, 3) x; RETURN c; END$$")...)
		e.same("open", nil, query("BEGIN; SELECT pg_temp.r21i_open(); FETCH 1 FROM oc")...)
		// DDL through pgveil in another session: pgveil reads its
		// catalog again.
		if _, err := connectPgx(t, e.ctx, e.p.url()).Exec(e.ctx, "CREATE TABLE r21i_bump (); DROP TABLE r21i_bump"); err != nil {
			t.Fatal(err)
		}
		e.same("fetch", nil, query("FETCH 1 FROM oc")...)
		e.same("fetch protocol", nil, &pgproto3.Parse{Query: "FETCH 1 FROM oc"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		e.same("commit", nil, query("COMMIT")...)
	})
}
