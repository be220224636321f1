package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/integration/harness"
)

// A service role that owns the pgveil schema, its tables and the
// configured table, but has no CREATE on the database (a DBA made the
// schema): `migrate` records table states without DDL. It used to run
// CREATE SCHEMA IF NOT EXISTS pgveil on every run, which PostgreSQL
// checks against the database's CREATE privilege before it looks for the
// schema, so such a role could never migrate.
func TestOpsServiceRoleWithoutCreate(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_nocreate", rvPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")

	const role = "ops_nocreate_svc"
	for _, s := range []string{
		"DROP ROLE IF EXISTS " + role,
		"CREATE ROLE " + role + " LOGIN",
		"ALTER SCHEMA pgveil OWNER TO " + role,
		"ALTER TABLE pgveil.keys OWNER TO " + role,
		"ALTER TABLE pgveil.tables OWNER TO " + role,
		"ALTER TABLE rv OWNER TO " + role,
	} {
		if _, err := su.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	var create bool
	if err := su.QueryRow(ctx, "SELECT has_database_privilege($1, current_database(), 'CREATE')", role).Scan(&create); err != nil || create {
		t.Fatalf("the role must not have CREATE on the database (has: %v, %v)", create, err)
	}
	svc := strings.Replace(e.config(""), cluster.SocketURL(harness.SuperUser, e.db), cluster.SocketURL(role, e.db), 1)
	r := e.run(ctx, -1, "migrate", "-c", e.writeConfig("svc.yaml", svc), "--decrypt", "--apply")
	if r.code != 0 {
		t.Fatalf("migrate --decrypt as a service role without CREATE on the database: exit %d\n%s", r.code, tail(r.stderr, 10))
	}
	if got := e.tableState(ctx, su, "public.rv"); got != "decrypting" && got != "" {
		t.Errorf("table state after --decrypt: %q", got)
	}
	var plain int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM rv WHERE email LIKE 'u%@x.org'`).Scan(&plain); err != nil || plain != 30 {
		t.Errorf("%d of 30 rows decrypted (%v)", plain, err)
	}
}
