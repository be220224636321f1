package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

// The search_path decides whether an unqualified name is a configured
// table. Each case ends with the server's path at sp_conf (where
// sp_conf.secrets is configured) while the client's earlier statements
// named another path that the server did not keep: a proxy that believed
// what was sent would see no configured table and pass the value through
// in plaintext.
const searchPathSchema = `
DROP SCHEMA IF EXISTS sp_conf, sp_other, sp_noaccess, sp_shadow CASCADE;
CREATE SCHEMA sp_shadow; CREATE TABLE sp_shadow.secrets (id serial PRIMARY KEY, body bytea);
ALTER TABLE sp_shadow.secrets OWNER TO scram_user;
CREATE SCHEMA sp_noaccess; CREATE TABLE sp_noaccess.secrets (id serial PRIMARY KEY, body text);
CREATE OR REPLACE PROCEDURE public.sp_set_conf() LANGUAGE plpgsql AS $$
BEGIN PERFORM set_config('search_' || 'path', 'sp_conf', false); END $$;
CREATE OR REPLACE FUNCTION public.sp_to_conf() RETURNS int LANGUAGE plpgsql AS $$
BEGIN PERFORM set_config('search_' || 'path', 'sp_conf', false); RETURN 1; END $$;
CREATE OR REPLACE FUNCTION public.sp_atomic_to_conf() RETURNS text LANGUAGE sql
BEGIN ATOMIC SELECT set_config('search_path', 'sp_conf', false); END;
CREATE OR REPLACE FUNCTION public.sp_outer() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN public.sp_to_conf(); END $$;
CREATE OR REPLACE VIEW public.sp_path_view AS SELECT public.sp_to_conf() AS x;
DROP TABLE IF EXISTS public.sp_log;
CREATE TABLE public.sp_log (id serial, note text);
CREATE OR REPLACE FUNCTION public.sp_log_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM public.sp_to_conf(); RETURN NEW; END $$;
CREATE TRIGGER sp_log_t BEFORE INSERT ON public.sp_log FOR EACH ROW EXECUTE FUNCTION public.sp_log_trg();
GRANT ALL ON public.sp_path_view, public.sp_log, public.sp_log_id_seq TO scram_user;
CREATE OR REPLACE FUNCTION public.sp_tenant(t text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN PERFORM set_config('app.tenant', t, false); END $$;
CREATE OR REPLACE FUNCTION public.sp_pinned() RETURNS int LANGUAGE plpgsql SET search_path = sp_other AS $$
BEGIN PERFORM set_config('search_path', 'sp_conf', false); RETURN 1; END $$;
CREATE SCHEMA sp_conf; CREATE SCHEMA sp_other;
CREATE TABLE sp_conf.secrets (id serial PRIMARY KEY, body bytea);
CREATE TABLE sp_other.secrets (id serial PRIMARY KEY, body text);
GRANT ALL ON SCHEMA sp_conf, sp_other, sp_shadow TO scram_user;
GRANT ALL ON ALL TABLES IN SCHEMA sp_conf, sp_other, sp_shadow TO scram_user;
GRANT ALL ON ALL SEQUENCES IN SCHEMA sp_conf, sp_other, sp_shadow TO scram_user;
DO $$ BEGIN CREATE ROLE sp_role; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT sp_role TO scram_user;
DROP SCHEMA IF EXISTS sp_role CASCADE;
CREATE SCHEMA sp_role; CREATE TABLE sp_role.vault (id serial PRIMARY KEY, body bytea);
GRANT ALL ON SCHEMA sp_role TO sp_role;
GRANT ALL ON ALL TABLES IN SCHEMA sp_role TO sp_role;
GRANT ALL ON ALL SEQUENCES IN SCHEMA sp_role TO sp_role;
`

func startSearchPathProxy(t *testing.T) *testProxy {
	t.Helper()
	if _, err := adminConn(t).Exec(context.Background(), searchPathSchema); err != nil {
		t.Fatal(err)
	}
	return startTablesProxy(t, `tables:
  sp_conf.secrets:
    columns:
      body:
        type: text
  sp_role.vault:
    columns:
      body:
        type: text
`)
}

func TestSearchPathFollowsTheServer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startSearchPathProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	admin := adminConn(t)

	simple := execSimple
	// extended runs sql as Parse/Bind/Execute/Sync of the unnamed statement.
	extended := func(c *pgx.Conn, sql string) error {
		return c.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err
	}
	cases := []struct {
		name string
		// startPath is the session's search_path at connect.
		startPath string
		steps     func(c *pgx.Conn) error
		// batch, if set, is sent with the INSERT in one pgx batch instead
		// of steps: pgveil plans it all before the server answers.
		batch []string
	}{
		{"SET, simple protocol", "sp_other", func(c *pgx.Conn) error {
			return simple(c, "SET search_path TO sp_conf")
		}, nil},
		{"SET, extended protocol", "sp_other", func(c *pgx.Conn) error {
			return extended(c, "SET search_path TO sp_conf")
		}, nil},
		{"set_config", "sp_other", func(c *pgx.Conn) error {
			return simple(c, "SELECT set_config('search_path', 'sp_conf', false)")
		}, nil},
		{"SET rolled back", "sp_conf", func(c *pgx.Conn) error {
			return firstErr(simple(c, "BEGIN"), simple(c, "SET search_path TO sp_other"), simple(c, "ROLLBACK"))
		}, nil},
		{"SET rolled back, extended protocol", "sp_conf", func(c *pgx.Conn) error {
			return firstErr(extended(c, "BEGIN"), extended(c, "SET search_path TO sp_other"), extended(c, "ROLLBACK"))
		}, nil},
		{"SET LOCAL ends with its transaction", "sp_conf", func(c *pgx.Conn) error {
			return firstErr(simple(c, "BEGIN"), simple(c, "SET LOCAL search_path TO sp_other"), simple(c, "COMMIT"))
		}, nil},
		{"SET LOCAL outside a block", "sp_conf", func(c *pgx.Conn) error {
			return simple(c, "SET LOCAL search_path TO sp_other")
		}, nil},
		{"SET after a failed statement of its string", "sp_conf", func(c *pgx.Conn) error {
			if err := simple(c, "SELECT 1/0; SET search_path TO sp_other"); err == nil {
				return fmt.Errorf("division by zero succeeded")
			}
			return nil
		}, nil},
		{"ROLLBACK TO SAVEPOINT", "sp_conf", func(c *pgx.Conn) error {
			return firstErr(simple(c, "BEGIN"), simple(c, "SAVEPOINT a"), simple(c, "SET search_path TO sp_other"),
				simple(c, "ROLLBACK TO SAVEPOINT a"), simple(c, "COMMIT"))
		}, nil},
		{"path read inside the block, then a prepared ROLLBACK", "sp_conf", func(c *pgx.Conn) error {
			pc := c.PgConn()
			if _, err := pc.Prepare(ctx, "end_tx", "ROLLBACK", nil); err != nil {
				return err
			}
			var n int
			return firstErr(simple(c, "BEGIN"), simple(c, "SET search_path TO sp_other"),
				// Inside the block pgveil reads the path again (sp_other)...
				c.QueryRow(ctx, "SELECT count(*) FROM secrets", pgx.QueryExecModeSimpleProtocol).Scan(&n),
				// ...and the ROLLBACK of a prepared statement undoes it.
				pc.ExecPrepared(ctx, "end_tx", nil, nil, nil).Read().Err)
		}, nil},
		{"pipelined: BEGIN, SET LOCAL, COMMIT and the INSERT in one batch", "sp_conf", nil,
			[]string{"BEGIN", "SET LOCAL search_path TO sp_other", "COMMIT"}},
		{"pipelined: SET and the INSERT in one batch", "sp_other", nil,
			[]string{"SET search_path TO sp_conf"}},
		{"a schema the role may not use is skipped", "sp_noaccess, sp_conf", func(c *pgx.Conn) error {
			return nil
		}, nil},
		{"a DO block that changes the path", "sp_other", func(c *pgx.Conn) error {
			var n int
			return firstErr(c.QueryRow(ctx, "SELECT count(*) FROM secrets").Scan(&n), // path known: sp_other
				simple(c, `DO $$ BEGIN EXECUTE 'SET sea' || 'rch_path TO sp_conf'; END $$`))
		}, nil},
		{"a procedure that changes the path", "sp_other", func(c *pgx.Conn) error {
			var n int
			return firstErr(c.QueryRow(ctx, "SELECT count(*) FROM secrets").Scan(&n),
				extended(c, "CALL public.sp_set_conf()"))
		}, nil},
		{"a function that changes the path", "sp_other", func(c *pgx.Conn) error {
			var n int
			return firstErr(c.QueryRow(ctx, "SELECT count(*) FROM secrets").Scan(&n),
				simple(c, "SELECT 1 WHERE public.SP_TO_CONF() = 1"))
		}, nil},
		{"a BEGIN ATOMIC function that changes the path, extended protocol", "sp_other", func(c *pgx.Conn) error {
			var n int
			return firstErr(c.QueryRow(ctx, "SELECT count(*) FROM secrets").Scan(&n),
				extended(c, "SELECT public.sp_atomic_to_conf()"))
		}, nil},
		{"a function that calls one that changes the path", "sp_other", func(c *pgx.Conn) error {
			var n int
			return firstErr(c.QueryRow(ctx, "SELECT count(*) FROM secrets").Scan(&n), simple(c, "SELECT public.sp_outer()"))
		}, nil},
		{"a view that calls a function that changes the path", "sp_other", func(c *pgx.Conn) error {
			var n int
			return firstErr(c.QueryRow(ctx, "SELECT count(*) FROM secrets").Scan(&n), simple(c, "SELECT * FROM public.sp_path_view"))
		}, nil},
		{"a trigger that calls a function that changes the path", "sp_other", func(c *pgx.Conn) error {
			var n int
			return firstErr(c.QueryRow(ctx, "SELECT count(*) FROM secrets").Scan(&n), simple(c, "INSERT INTO public.sp_log (note) VALUES ('x')"))
		}, nil},
		{"EXECUTE of a prepared call of a function that changes the path", "sp_other", func(c *pgx.Conn) error {
			var n int
			return firstErr(simple(c, "PREPARE spp AS SELECT public.sp_to_conf()"),
				c.QueryRow(ctx, "SELECT count(*) FROM secrets").Scan(&n), simple(c, "EXECUTE spp"))
		}, nil},
		{"pipelined: a function that changes the path and the INSERT in one batch", "sp_other", nil,
			[]string{"SELECT public.sp_to_conf()"}},
		// A plain SET inside a function outlives the function's own SET
		// clause (PostgreSQL's CREATE FUNCTION documentation).
		{"a function with a SET search_path clause that sets the path", "sp_other", func(c *pgx.Conn) error {
			var n int
			return firstErr(c.QueryRow(ctx, "SELECT count(*) FROM secrets").Scan(&n),
				simple(c, "SELECT public.sp_pinned()"))
		}, nil},
		{"RESET to the connect-time path", "sp_conf", func(c *pgx.Conn) error {
			return firstErr(simple(c, "SET search_path TO sp_other"), simple(c, "RESET search_path"))
		}, nil},
		{"DISCARD ALL", "sp_conf", func(c *pgx.Conn) error {
			return firstErr(simple(c, "SET search_path TO sp_other"), simple(c, "DISCARD ALL"))
		}, nil},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := connectWithPath(t, p, tc.startPath)
			defer c.Close(ctx)
			secret := fmt.Sprintf("sp-secret-%d-%d", i, time.Now().UnixNano())
			if tc.batch != nil {
				b := &pgx.Batch{}
				for _, q := range tc.batch {
					b.Queue(q)
				}
				b.Queue("INSERT INTO secrets (body) VALUES ($1)", secret)
				if err := c.SendBatch(ctx, b).Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := tc.steps(c); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Exec(ctx, "INSERT INTO secrets (body) VALUES ($1)", secret); err != nil {
					t.Fatal(err)
				}
			}
			var current string
			if err := c.QueryRow(ctx, "SELECT current_schemas(false)::text").Scan(&current); err != nil || current != "{sp_conf}" {
				t.Fatalf("the case must end with the server at sp_conf: %q, %v", current, err)
			}
			assertSealedIn(t, admin, secret)
			// Read back through pgveil, by the unqualified name.
			var got string
			if err := c.QueryRow(ctx, "SELECT body FROM secrets WHERE body IS NOT NULL ORDER BY id DESC LIMIT 1").Scan(&got); err != nil || got != secret {
				t.Errorf("read back through pgveil: %q, %v", got, err)
			}
		})
	}

	// The other way round: once the server's path really is sp_other, an
	// unqualified name is that unconfigured table and its text is stored
	// as sent, not sealed by a proxy that kept guessing.
	t.Run("a changed path is used once it holds", func(t *testing.T) {
		c, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if err := simple(c, "SET search_path TO sp_other"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "INSERT INTO secrets (body) VALUES ('not-a-secret')"); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := admin.QueryRow(ctx, "SELECT body FROM sp_other.secrets ORDER BY id DESC LIMIT 1").Scan(&got); err != nil || got != "not-a-secret" {
			t.Errorf("sp_other.secrets holds %q, %v; want the text as sent", got, err)
		}
	})
	// A path changed where pgveil cannot see it: a function created on a
	// direct connection after pgveil read its catalog. pgveil still
	// believes sp_other, where secrets is unconfigured, and relays the value
	// as sent; it names the table sp_other.secrets upstream, so the value
	// lands there and never in sp_conf.secrets in plaintext.
	t.Run("a path changed behind pgveil's back cannot redirect a write", func(t *testing.T) {
		if _, err := admin.Exec(ctx, `CREATE OR REPLACE FUNCTION public.sp_late() RETURNS int LANGUAGE plpgsql AS $$
BEGIN PERFORM set_config('search_path', 'sp_conf', false); RETURN 1; END $$`); err != nil {
			t.Fatal(err)
		}
		defer admin.Exec(ctx, "DROP FUNCTION public.sp_late()")
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
			c := connectWithPath(t, p, "sp_other")
			secret := fmt.Sprintf("sp-late-%v-%d", mode, time.Now().UnixNano())
			var one int
			if err := c.QueryRow(ctx, "SELECT public.sp_late()", pgx.QueryExecModeSimpleProtocol).Scan(&one); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(ctx, "INSERT INTO secrets (body) VALUES ($1)", mode, secret+"-copy"); err != nil {
				t.Fatalf("%v: %v", mode, err)
			}
			// COPY too: pgx's CopyFrom quotes the name ("secrets").
			if n, err := c.CopyFrom(ctx, pgx.Identifier{"secrets"}, []string{"body"}, pgx.CopyFromRows([][]any{{secret}})); err != nil || n != 1 {
				t.Fatalf("%v: COPY: %d rows, %v", mode, n, err)
			}
			var current string
			if err := c.QueryRow(ctx, "SELECT current_schemas(false)::text", pgx.QueryExecModeSimpleProtocol).Scan(&current); err != nil || current != "{sp_conf}" {
				t.Fatalf("the server's path must have moved to sp_conf: %q, %v", current, err)
			}
			c.Close(ctx)
			if p.srv.eng.Load().catalog().rw.PathFunctions["sp_late"] {
				t.Fatal("pgveil's catalog knows sp_late: the case did not test a change pgveil cannot see")
			}
			var got string
			if err := admin.QueryRow(ctx, "SELECT body FROM sp_other.secrets ORDER BY id DESC LIMIT 1").Scan(&got); err != nil || got != secret {
				t.Errorf("%v: sp_other.secrets holds %q, %v; want the value as sent", mode, got, err)
			}
			var copied int
			if err := admin.QueryRow(ctx, "SELECT count(*) FROM sp_other.secrets WHERE body = $1", secret+"-copy").Scan(&copied); err != nil || copied != 1 {
				t.Errorf("%v: sp_other.secrets holds %d rows of the INSERT before the COPY, %v; want 1", mode, copied, err)
			}
			var leaked int
			if err := admin.QueryRow(ctx, "SELECT count(*) FROM sp_conf.secrets WHERE position($1::bytea in body) > 0", []byte(secret)).Scan(&leaked); err != nil || leaked != 0 {
				t.Fatalf("%v: sp_conf.secrets holds the plaintext in %d rows (%v)", mode, leaked, err)
			}
		}
	})
	// Functions that set other settings are not taken for path changers.
	fns := p.srv.eng.Load().catalog().rw.PathFunctions
	if !fns["sp_to_conf"] || !fns["sp_atomic_to_conf"] || !fns["sp_pinned"] || !fns["sp_set_conf"] || !fns["sp_outer"] || fns["sp_tenant"] {
		t.Errorf("path functions: %v", fns)
	}
	if rels := p.srv.eng.Load().catalog().rw.PathRelations; !rels["sp_path_view"] || !rels["sp_log"] || rels["secrets"] {
		t.Errorf("path relations: %v", rels)
	}
	if n := p.logs.FilterMessage("search_path read again").Len(); n == 0 {
		t.Error("pgveil never read the search_path again")
	}
	if n := testutil.ToFloat64(p.srv.metrics.SearchPathReads); n == 0 {
		t.Error("pgveil_search_path_reads_total stayed 0")
	}
}

// TestSearchPathFollowsRole: "$user" in the search_path is current_user,
// which SET ROLE changes.
func TestSearchPathFollowsRole(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startSearchPathProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	admin := adminConn(t)
	c := connectWithPath(t, p, `"$user"`)
	defer c.Close(ctx)
	secret := fmt.Sprintf("role-secret-%d", time.Now().UnixNano())
	// In one string: the rest of the string is planned by name.
	if _, err := c.Exec(ctx, "SET ROLE sp_role; INSERT INTO vault (body) VALUES ('"+secret+"')", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "INSERT INTO vault (body) VALUES ($1)", secret); err != nil {
		t.Fatal(err)
	}
	rows, err := admin.Query(ctx, "SELECT body FROM sp_role.vault")
	if err != nil {
		t.Fatal(err)
	}
	bodies, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil || len(bodies) != 2 {
		t.Fatalf("sp_role.vault: %d rows, %v", len(bodies), err)
	}
	for _, b := range bodies {
		if bytes.Contains(b, []byte(secret)) || len(b) < 29 || b[0] != 1 {
			t.Fatalf("sp_role.vault holds %q, not an envelope", b)
		}
	}
	var got []string
	rows, _ = c.Query(ctx, "SELECT body FROM vault")
	if got, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || len(got) != 2 || got[0] != secret || got[1] != secret {
		t.Fatalf("read back through pgveil: %q, %v", got, err)
	}
}

// connectWithPath connects through p with search_path set at startup; the
// caller closes it (before stopping p).
func connectWithPath(t *testing.T, p *testProxy, path string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(p.url())
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = path
	c, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// assertSealedIn checks, directly on the server, that sp_conf.secrets got
// secret sealed and nothing else got it in plaintext.
func assertSealedIn(t *testing.T, admin *pgx.Conn, secret string) {
	t.Helper()
	ctx := context.Background()
	var plain int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM sp_other.secrets WHERE body = $1", secret).Scan(&plain); err != nil {
		t.Fatal(err)
	}
	if plain != 0 {
		t.Fatalf("sp_other.secrets got the value: the server's path was sp_conf")
	}
	var body []byte
	if err := admin.QueryRow(ctx, "SELECT body FROM sp_conf.secrets ORDER BY id DESC LIMIT 1").Scan(&body); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(body, []byte(secret)) || strings.Contains(fmt.Sprintf("%x", body), fmt.Sprintf("%x", secret)) {
		t.Fatalf("sp_conf.secrets holds the plaintext: %q", body)
	}
	if len(body) < 29 || body[0] != 1 {
		t.Fatalf("sp_conf.secrets holds %d bytes starting %x, not an envelope", len(body), body[:min(len(body), 4)])
	}
}

// execSimple runs sql on c in the simple protocol.
func execSimple(c *pgx.Conn, sql string) error {
	_, err := c.Exec(context.Background(), sql, pgx.QueryExecModeSimpleProtocol)
	return err
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestPreparedUnderAnotherPath: the server plans a prepared statement
// again when search_path changes, and so does pgveil: one it passed
// through because the name meant an unconfigured table is refused once the
// name means a configured one, instead of writing plaintext there.
func TestPreparedUnderAnotherPath(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startSearchPathProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	admin := adminConn(t)
	c := connectWithPath(t, p, "sp_shadow")
	defer c.Close(ctx)
	pc := c.PgConn()
	// SQL-level PREPARE: EXECUTE does not show pgveil what runs, so a
	// write to an unqualified name is refused outright.
	_, err := c.Exec(ctx, "PREPARE sqlins(bytea) AS INSERT INTO secrets (body) VALUES ($1)", pgx.QueryExecModeSimpleProtocol)
	if pe := (*pgconn.PgError)(nil); !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("SQL PREPARE of an unqualified write: %v; want 0A000", err)
	}
	// So is a read whose filter would be on sp_conf.secrets' encrypted
	// column under another path (EXECUTE would send the value as written);
	// one that reads no encrypted column under any path is prepared.
	_, err = c.Exec(ctx, "PREPARE sqlsel(bytea) AS SELECT id FROM secrets WHERE body = $1", pgx.QueryExecModeSimpleProtocol)
	if pe := (*pgconn.PgError)(nil); !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, `naming "secrets" without a schema`) {
		t.Fatalf("SQL PREPARE of an unqualified filter: %v; want 0A000", err)
	}
	if _, err := c.Exec(ctx, "PREPARE sqlids AS SELECT id FROM secrets WHERE id > 0", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Prepare(ctx, "ins", "INSERT INTO secrets (body) VALUES ($1)", nil); err != nil {
		t.Fatal(err)
	}
	// Under the path it was prepared for, it runs as it came.
	if err := pc.ExecPrepared(ctx, "ins", [][]byte{[]byte("plain-note")}, nil, nil).Read().Err; err != nil {
		t.Fatal(err)
	}
	var note []byte
	if err := admin.QueryRow(ctx, "SELECT body FROM sp_shadow.secrets ORDER BY id DESC LIMIT 1").Scan(&note); err != nil || string(note) != "plain-note" {
		t.Fatalf("sp_shadow.secrets (same column type as sp_conf.secrets): %q, %v", note, err)
	}
	// A path change that does not change what it names: still runs.
	if _, err := c.Exec(ctx, "SET search_path TO sp_shadow, public", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if err := pc.ExecPrepared(ctx, "ins", [][]byte{[]byte("plain-note-2")}, nil, nil).Read().Err; err != nil {
		t.Fatalf("same table under a new path: %v", err)
	}
	if _, err := c.Exec(ctx, "SET search_path TO sp_conf", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	err = pc.ExecPrepared(ctx, "ins", [][]byte{[]byte("sp-prepared-secret")}, nil, nil).Read().Err
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("executing it under a path where it names a configured table: %v; want 0A000", err)
	}
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM sp_conf.secrets").Scan(&n); err != nil || n != 0 {
		t.Fatalf("sp_conf.secrets has %d rows, %v; want none", n, err)
	}
	// Prepared again, it is sealed.
	if err := pc.Deallocate(ctx, "ins"); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Prepare(ctx, "ins", "INSERT INTO secrets (body) VALUES ($1)", nil); err != nil {
		t.Fatal(err)
	}
	if err := pc.ExecPrepared(ctx, "ins", [][]byte{[]byte("sp-prepared-secret")}, nil, nil).Read().Err; err != nil {
		t.Fatal(err)
	}
	assertSealedIn(t, admin, "sp-prepared-secret")
}

// TestDDLRemovingAShadow: dropping or renaming a table that shadowed a
// configured one changes what the name means at once for the session,
// before pgveil's catalog (read over another connection, committed state
// only) knows: pgveil plans by name until the transaction is over and the
// catalog read again.
func TestDDLRemovingAShadow(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	admin := adminConn(t)
	for _, tc := range []struct {
		name string
		run  func(c *pgx.Conn, secret string) error
	}{
		{"DROP in a transaction", func(c *pgx.Conn, secret string) error {
			tx, err := c.Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, "DROP TABLE sp_shadow.secrets"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "INSERT INTO secrets (body) VALUES ($1)", secret); err != nil {
				return err
			}
			return tx.Commit(ctx)
		}},
		{"RENAME in the same string", func(c *pgx.Conn, secret string) error {
			_, err := c.Exec(ctx, "ALTER TABLE sp_shadow.secrets RENAME TO gone; INSERT INTO secrets (body) VALUES ('"+secret+"')", pgx.QueryExecModeSimpleProtocol)
			return err
		}},
		{"DROP, then a later statement", func(c *pgx.Conn, secret string) error {
			if _, err := c.Exec(ctx, "DROP TABLE sp_shadow.secrets"); err != nil {
				return err
			}
			_, err := c.Exec(ctx, "INSERT INTO secrets (body) VALUES ($1)", secret)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startSearchPathProxy(t)
			defer p.stop(t, 10*time.Second)
			c := connectWithPath(t, p, "sp_shadow, sp_conf")
			defer c.Close(ctx)
			var n int // the shadow is what the name means now
			if err := c.QueryRow(ctx, "SELECT count(*) FROM secrets").Scan(&n); err != nil {
				t.Fatal(err)
			}
			secret := "ddl-secret-" + strings.ReplaceAll(tc.name, " ", "-")
			if err := tc.run(c, secret); err != nil {
				t.Fatal(err)
			}
			assertSealedIn(t, admin, secret)
			// Afterwards, planned with the reloaded catalog.
			if _, err := c.Exec(ctx, "INSERT INTO secrets (body) VALUES ($1)", secret+"-after"); err != nil {
				t.Fatal(err)
			}
			assertSealedIn(t, admin, secret+"-after")
		})
	}
}

// TestPinnedNames: names sent schema-qualified (rewrite's pinSchema) keep
// what the client's text meant: a quoted name right after a keyword, the
// client's parameter types, a session in another client_encoding, and a
// temporary table, which the server looks up before the path.
func TestPinnedNames(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startSearchPathProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	admin := adminConn(t)
	c := connectWithPath(t, p, "sp_other")
	defer c.Close(ctx)
	simple := execSimple
	count := func(sql string, args ...any) int {
		t.Helper()
		var n int
		if err := admin.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	pinned, rewritten := testutil.ToFloat64(p.srv.metrics.stmtPinned), testutil.ToFloat64(p.srv.metrics.stmtRewritten)
	if err := simple(c, `INSERT INTO"secrets"(body) VALUES ('pin-quoted')`); err != nil {
		t.Fatalf("quoted name after a keyword: %v", err)
	}
	if dp, dr := testutil.ToFloat64(p.srv.metrics.stmtPinned)-pinned, testutil.ToFloat64(p.srv.metrics.stmtRewritten)-rewritten; dp != 1 || dr != 0 {
		t.Fatalf("a pinned INSERT counted %v pinned and %v rewritten, want 1 and 0", dp, dr)
	}
	if n := count("SELECT count(*) FROM sp_other.secrets WHERE body = 'pin-quoted'"); n != 1 {
		t.Fatalf("sp_other.secrets holds %d rows of the quoted INSERT", n)
	}
	// The error position of a pinned statement points into the client's
	// text, not the pinned one.
	for _, sql := range []string{"INSERT INTO secrets (body) VALUES (nosuch)", `SELECT * FROM"secrets"WHERE nosuch`} {
		err := simple(c, sql)
		var pe *pgconn.PgError
		if want := int32(strings.Index(sql, "nosuch") + 1); !errors.As(err, &pe) || pe.Position != want {
			t.Fatalf("%s: want an error at the position of nosuch (%d), got %v", sql, want, err)
		}
	}
	// Three parameter types declared, one used: the server sees all three.
	pc := c.PgConn()
	sd, err := pc.Prepare(ctx, "pin3", "SELECT count(*) FROM secrets WHERE body = $1", []uint32{25, 25, 23})
	if err != nil {
		t.Fatal(err)
	}
	if len(sd.ParamOIDs) != 3 {
		t.Fatalf("parameter types %v, want the three declared", sd.ParamOIDs)
	}
	if err := pc.ExecPrepared(ctx, "pin3", [][]byte{[]byte("a"), []byte("b"), []byte("1")}, nil, nil).Read().Err; err != nil {
		t.Fatalf("Bind with the three declared parameters: %v", err)
	}
	// LATIN1: pgveil changes no text for it, and refuses none of this.
	cfg, err := pgx.ParseConfig(p.url())
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = "sp_other"
	cfg.RuntimeParams["client_encoding"] = "LATIN1"
	l1, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close(ctx)
	if err := firstErr(simple(l1, "INSERT INTO secrets (body) VALUES ('pin-latin1')"), simple(l1, "SELECT count(*) FROM secrets")); err != nil {
		t.Fatalf("LATIN1 session: %v", err)
	}
	// A temporary table of the name: once pgveil's snapshot lists it, the
	// name is sent as written and the server finds the temporary table.
	if err := simple(c, "CREATE TEMP TABLE secrets (id serial, body text)"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		for _, tb := range p.srv.eng.Load().catalog().rw.Tables {
			if tb.Name == "secrets" && strings.HasPrefix(tb.Schema, "pg_temp_") {
				return true
			}
		}
		return false
	})
	if err := simple(c, "SELECT 1"); err != nil { // the session takes up the new snapshot
		t.Fatal(err)
	}
	before := count("SELECT count(*) FROM sp_other.secrets")
	if err := simple(c, "INSERT INTO secrets (body) VALUES ('pin-temp')"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "INSERT INTO secrets (body) VALUES ($1)", "pin-temp-2"); err != nil {
		t.Fatal(err)
	}
	var inTemp int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_temp.secrets", pgx.QueryExecModeSimpleProtocol).Scan(&inTemp); err != nil || inTemp != 2 {
		t.Errorf("the temporary table holds %d rows, %v; want 2", inTemp, err)
	}
	if after := count("SELECT count(*) FROM sp_other.secrets"); after != before {
		t.Errorf("sp_other.secrets got %d rows meant for the temporary table", after-before)
	}
}
