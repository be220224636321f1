package integration

// Review 19: key versions and the migration-state acknowledgement against
// statements and listeners that outlive them.
//
// Findings:
//
//   1. HIGH TestOpsReview19LiteralSealedStatement: a prepared statement
//      whose literals pgveil sealed at Parse (INSERT … VALUES ('x')
//      through the extended protocol: the literal becomes an envelope in
//      the text pgveil prepares upstream) kept the data-key version of
//      that moment for its life. Run after `pgveil rotate` had retired and
//      dropped that version, it wrote a value no key opens any more: it
//      read as NULL (or PV001) for good, and rotate, whose last pass ran
//      before, could not see it. Fix: a statement remembers the key
//      versions its text was sealed under (Statement.sealed); a Bind finds
//      one that is no longer the active version of its column and tenant
//      and prepares the statement anew (reprepare), sealed under the
//      active one; a statement that cannot be (its tenant looked up at
//      Parse) is refused, to be prepared again. A tenant shredded since
//      gets a new version, as a new write does (the statement wrote under
//      the shredded key before: unreadable at once).
//   2. MEDIUM TestOpsReview19StateAckBeforeCommit: `pgveil migrate`
//      counted a replica as having read a state it had just written once
//      the replica's listener had started its reload query after a time
//      migrate took before the write. A heartbeat's reload in the moment
//      between (the advisory lock, the generation, the INSERT, the
//      commit) read the old state and counted: --decrypt could write
//      plaintext back while the replica still read the table as complete
//      (PV003, or NULL under on_error: null), and after complete a
//      replica still in migration mode sent lookups' plaintext. So did a
//      reload whose rows were read but never applied (the state key not
//      unwrapped: review 18b's LOW). Fix: SetTableState returns the
//      generation it wrote (greater than every verified row's); a
//      listener, after applying a reload, runs `SELECT <newest
//      generation applied> AS pgveil_table_states_read`; WaitStateApplied
//      waits for that text to name the generation written or a newer one.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgveil/pgveil/integration/harness"
	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestOpsReview19LiteralSealedStatement: a named and an unnamed statement
// with sealed literals, prepared before `pgveil rotate` and run after it
// dropped the version they were sealed under, on both engines: the rows
// read back as written, and no value is left under a dropped version.
func TestOpsReview19LiteralSealedStatement(t *testing.T) {
	ctx := testCtx(t, 4*time.Minute)
	e := newOpsEnv(t, "ops_r19_literal", r17Policy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	for i, loops := range []string{"0", "1"} {
		t.Run("event_loops="+loops, func(t *testing.T) {
			p := e.proxy(e.config("") + "proxy:\n  event_loops: " + loops + "\n")
			c := e.appConn(ctx, p).PgConn()
			trace := func(msgs ...pgproto3.FrontendMessage) string {
				return strings.Join(r17Trace(ctx, c, msgs...), " | ")
			}
			named, unnamed := 100+2*i, 101+2*i
			ins := func(id int) string {
				return fmt.Sprintf(`INSERT INTO rv (id, org, email, note) VALUES (%d, 1, 'lit-%d@x.org', 'literal note %d')`, id, id, id)
			}
			if got := trace(&pgproto3.Parse{Name: "ins", Query: ins(named)}, &pgproto3.Parse{Query: ins(unnamed)}, &pgproto3.Sync{}); got != "ParseComplete | ParseComplete | ReadyForQuery I" {
				t.Fatalf("parse: %s", got)
			}
			r := e.run(ctx, 0, "rotate", "-c", cfg, "--grace", "1s")
			if !strings.Contains(r.stdout, "dropped") {
				t.Fatalf("rotate dropped nothing:\n%s", r.stdout)
			}
			want := "BindComplete | CommandComplete INSERT 0 1 | BindComplete | CommandComplete INSERT 0 1 | ReadyForQuery I"
			if got := trace(&pgproto3.Bind{PreparedStatement: "ins"}, &pgproto3.Execute{}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}); got != want {
				t.Fatalf("run after the rotation:\n got %s\nwant %s", got, want)
			}
			app := e.appConn(ctx, p)
			for _, id := range []int{named, unnamed} {
				var email, note *string
				if err := app.QueryRow(ctx, `SELECT email, note FROM rv WHERE id = $1`, id).Scan(&email, &note); err != nil {
					t.Fatal(err)
				}
				if email == nil || *email != fmt.Sprintf("lit-%d@x.org", id) || note == nil || *note != fmt.Sprintf("literal note %d", id) {
					t.Errorf("row %d reads email %v, note %v: sealed under a dropped key version", id, r19Deref(email), r19Deref(note))
				}
			}
			// Every value is under a key version the store still has.
			var lost int
			if err := su.QueryRow(ctx, `SELECT count(*) FROM rv, LATERAL (VALUES (email), (note)) v(x)
				WHERE x IS NOT NULL AND NOT EXISTS (SELECT FROM pgveil.keys k WHERE k.wrapped_key IS NOT NULL
				  AND k.key_id = ('x' || encode(substr(decode(translate(substr(x, 6, 8), '-_', '+/'), 'base64'), 2, 4), 'hex'))::bit(32)::int)`).Scan(&lost); err != nil {
				t.Fatal(err)
			}
			if lost != 0 {
				t.Errorf("%d value(s) under a key version the store no longer has", lost)
			}
			if got := trace(&pgproto3.Query{String: "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgveil%'"}); got != `RowDescription(count:20/8/-1/0) | DataRow("1") | CommandComplete SELECT 1 | ReadyForQuery I` {
				t.Errorf("upstream statements: %s", got)
			}
			if i == 0 {
				// The unnamed statement whose tenant pgveil looked up at
				// Parse cannot be prepared anew: refused, as PostgreSQL
				// refuses a statement it cannot use any more.
				if got := trace(&pgproto3.Parse{Query: `UPDATE rv SET note = 'looked up' WHERE id = 5`}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
					t.Fatalf("parse: %s", got)
				}
				e.run(ctx, 0, "rotate", "-c", cfg, "--grace", "1s")
				want := "ErrorResponse 0A000 cached plan must not change result type | ReadyForQuery I"
				if got := trace(&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}); got != want {
					t.Errorf("looked-up statement after the rotation:\n got %s\nwant %s", got, want)
				}
			}
			if i == 1 {
				// A tenant shredded since: the statement writes as a new
				// write does (under a new version), never under the
				// shredded one.
				if got := trace(&pgproto3.Parse{Name: "shr", Query: `INSERT INTO rv (id, org, email) VALUES (200, 2, 'after-shred@x.org')`}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
					t.Fatalf("parse: %s", got)
				}
				e.run(ctx, 0, "shred", "-c", cfg, "--table", "rv", "--tenant", "2", "--yes")
				if got := trace(&pgproto3.Bind{PreparedStatement: "shr"}, &pgproto3.Execute{}, &pgproto3.Sync{}); got != "BindComplete | CommandComplete INSERT 0 1 | ReadyForQuery I" {
					t.Fatalf("run after the shred: %s", got)
				}
				var email *string
				if err := app.QueryRow(ctx, `SELECT email FROM rv WHERE id = 200`).Scan(&email); err != nil {
					t.Fatal(err)
				}
				if r19Deref(email) != "after-shred@x.org" {
					t.Errorf("written after the shred, reads %s: sealed under the shredded key", r19Deref(email))
				}
			}
		})
	}
}

func r19Deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

// TestOpsReview19StateAckBeforeCommit: a replica's reload that began
// after `pgveil migrate` took its start time but before the new state
// committed (a heartbeat in that moment) read the old state; it must not
// count as the replica having read the new one. The replica here is a
// connection named as a state listener that reads the states at that
// moment and nothing after; a real replica beside it confirms. (Before
// the fix the test ran the listener's reload query on it after the time
// migrate took, and WaitStateApplied counted it.)
func TestOpsReview19StateAckBeforeCommit(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_r19_ack", r17Policy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	e.proxy(e.config(""))
	pool, err := pgxpool.New(ctx, cluster.SocketURL(harness.SuperUser, e.db))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	m, err := keysource.NewMaster(ctx, policy.KeySource{Kind: policy.KeySourceLocal, Local: policy.LocalKeySource{KeyFile: e.key}})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keysource.NewKeyring(ctx, pool, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	stale := e.conn(ctx)
	if _, err := stale.Exec(ctx, "SET application_name = '"+proxy.StateListenerApp+"r19stale'"); err != nil {
		t.Fatal(err)
	}
	// The heartbeat in the moment before the commit: it reads the states
	// and says which it read, as a replica does.
	var newest int64
	if err := stale.QueryRow(ctx, "SELECT coalesce(max(generation), 0) FROM pgveil.tables").Scan(&newest); err != nil {
		t.Fatal(err)
	}
	if _, err := stale.Exec(ctx, fmt.Sprintf("SELECT %d AS pgveil_table_states_read", newest), pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	gen, err := proxy.SetTableState(ctx, pool, keys, "public.rv", proxy.TableMigrating)
	if err != nil {
		t.Fatal(err)
	}
	if gen <= newest {
		t.Errorf("generation %d written after %d", gen, newest)
	}
	total, pending, _, err := proxy.WaitStateApplied(ctx, pool, gen, 3*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if total != 2 || pending != 1 {
		t.Errorf("replicas %d, not confirmed %d; want 2 and 1 (the one that read before the commit)", total, pending)
	}
}
