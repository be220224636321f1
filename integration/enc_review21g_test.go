package integration

// Review 21g: review of 21c's fixes to the records of prepared
// statements (see the report in the commit log for the list).

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
// PostgreSQL's path.
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
