package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestReview20aLookupStatementsAndDeallocate: pgveil keeps its tenant
// lookups prepared upstream (lookupStmts). A DISCARD ALL the server
// refuses (inside a transaction block, 25001) forgot them while they
// stayed upstream, without an owner (up to 64 per session); a DO block
// deallocating every statement with dynamic SQL dropped them unseen, and
// the next lookup failed with 26000 naming pgveil's statement. Now the
// DISCARD ALL leaves one lookup statement upstream, as before it, the
// DO block is refused, naming the remedy, and a DEALLOCATE pgveil cannot
// see (a function created directly) fails the next lookup once, saying
// so (then it is prepared again).
func TestReview20aLookupStatementsAndDeallocate(t *testing.T) {
	relayLeakCheck(t)
	r17Engines(t, 27000, func(t *testing.T, e *r17Env) {
		org := e.orgs[0]
		id := 27000 + org%1000
		e.same("seed", nil, cat(e.ins(id, org, "lk"), sync1)...)
		update := func(k int) []pgproto3.FrontendMessage {
			v := fmt.Sprintf("ph-r20a-%d-%d", org, k)
			e.p.remember(v)
			return cat(ext(`UPDATE users SET phone = $1 WHERE id = $2`, v, id), sync1)
		}
		lookups := func() string {
			return strings.Join(r17Trace(e.ctx, e.px, query("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgveil%' AND statement LIKE 'SELECT DISTINCT%'")...), " | ")
		}
		one := `RowDescription(count:20/8/-1/0) | DataRow("1") | CommandComplete SELECT 1 | ReadyForQuery I`
		e.same("update", nil, update(0)...)
		if got := lookups(); got != one {
			t.Fatalf("lookup statements: %s", got)
		}
		for _, all := range []string{"DISCARD ALL", "DEALLOCATE ALL"} {
			e.same(all+" refused in a block", nil, cat(query("BEGIN"), query("SELECT 1"), query(all), query("ROLLBACK"))...)
			e.same(all+": update after", nil, update(1)...)
			if got := lookups(); got != one {
				t.Errorf("%s: lookup statements: %s", all, got)
			}
		}
		for _, do := range []string{
			`DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$`,
			`DO $$ BEGIN EXECUTE 'deallocate pgveil_1'; END $$`,
			`DO $$ BEGIN EXECUTE format('DEALLOCATE %s', 'ALL'); END $$`,
		} {
			got := strings.Join(r17Trace(e.ctx, e.px, query(do)...), " | ")
			if !strings.HasPrefix(got, "ErrorResponse 0A000") || !strings.Contains(got, "DEALLOCATE") {
				t.Errorf("%s: %s", do, got)
			}
			e.same(do+": update after", nil, update(2)...)
		}
		// A function created directly (pgveil never sees its body): the
		// lookup fails once, clearly, and runs at the next try.
		su := superConn(t, e.ctx)
		if _, err := su.Exec(e.ctx, `CREATE OR REPLACE FUNCTION public.r20a_dealloc() RETURNS int LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DEALLOCATE ALL'; RETURN 1; END $$; GRANT EXECUTE ON FUNCTION public.r20a_dealloc() TO PUBLIC`); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { su.Exec(context.Background(), `DROP FUNCTION IF EXISTS public.r20a_dealloc()`) })
		if got := strings.Join(r17Trace(e.ctx, e.px, query("SELECT public.r20a_dealloc()")...), " | "); !strings.HasSuffix(got, "CommandComplete SELECT 1 | ReadyForQuery I") {
			t.Fatalf("function: %s", got)
		}
		if got := strings.Join(r17Trace(e.ctx, e.px, update(3)...), " | "); !strings.HasPrefix(got, "ParseComplete | ErrorResponse 26000 pgveil's tenant lookup statement was deallocated") {
			t.Errorf("update after the function: %s", got)
		}
		e.same("update again", nil, update(4)...)
		if got := lookups(); got != one {
			t.Errorf("after the function: lookup statements: %s", got)
		}
		// The word in a message is no DEALLOCATE.
		e.same("notice", nil, query(`DO $$ BEGIN RAISE NOTICE 'deallocated: %', 1; END $$`)...)
		e.check("end")
	})
}

// TestReview20aReservedPortalNames: pgveil's tenant lookup binds a
// portal named as its statement (pgveil_<session>_<n>, readable in
// pg_prepared_statements); a client portal or cursor of that name made
// the lookup fail (42P03) and broke the client's statement, and pgveil's
// Close of its portal could close the client's. Such names are reserved
// for portals and cursors as they are for statements: refused, naming
// the remedy; other names run as in PostgreSQL.
func TestReview20aReservedPortalNames(t *testing.T) {
	relayLeakCheck(t)
	r17Engines(t, 27200, func(t *testing.T, e *r17Env) {
		e.p.remember("r20a-reserved-portals")
		refused := func(what string, msgs ...pgproto3.FrontendMessage) {
			t.Helper()
			got := strings.Join(r17Trace(e.ctx, e.px, msgs...), " | ")
			if !strings.Contains(got, "ErrorResponse 0A000") || !strings.Contains(got, "reserved for pgveil") {
				t.Errorf("%s: %s", what, got)
			}
		}
		sel := &pgproto3.Parse{Name: "sel", Query: "SELECT 1 AS n"}
		e.same("parse", nil, sel, &pgproto3.Sync{})
		refused("bind", &pgproto3.Bind{DestinationPortal: "pgveil_x_1", PreparedStatement: "sel"}, &pgproto3.Execute{Portal: "pgveil_x_1"}, &pgproto3.Sync{})
		refused("execute", &pgproto3.Execute{Portal: "pgveil_x_2"}, &pgproto3.Sync{})
		refused("describe", &pgproto3.Describe{ObjectType: 'P', Name: "__pgveil_x"}, &pgproto3.Sync{})
		refused("close", &pgproto3.Close{ObjectType: 'P', Name: "pgveil_x_3"}, &pgproto3.Sync{})
		refused("declare", cat(query("BEGIN"), query("DECLARE pgveil_c CURSOR FOR SELECT 1"), query("ROLLBACK"))...)
		refused("fetch", cat(query("BEGIN"), query("FETCH pgveil_c"), query("ROLLBACK"))...)
		refused("close cursor", query("CLOSE pgveil_c")...)
		// Other names: as PostgreSQL.
		e.same("a portal", nil, &pgproto3.Bind{DestinationPortal: "pv_1", PreparedStatement: "sel"}, &pgproto3.Execute{Portal: "pv_1"}, &pgproto3.Sync{})
		e.same("a cursor", nil, cat(query("BEGIN"), query("DECLARE pgveilc CURSOR FOR SELECT 1"), query("FETCH pgveilc"), query("ROLLBACK"))...)
	})
}
