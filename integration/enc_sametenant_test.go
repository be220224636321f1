package integration

// A multi-row INSERT … ON CONFLICT DO UPDATE SET col = v (Knex's
// merge({col: v}), Drizzle's onConflictDoUpdate({set: {col: v}})): v is
// sealed once, under the first row's tenant, and pgveil refuses the
// statement, before anything is sent, when the rows name several tenants.

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestEncSameTenantUpsert(t *testing.T) {
	relayLeakCheck(t)
	const org, other = 9701, 10701
	p := startEncProxy(t, encOrgs(org, 1)...)
	ctx := testCtx(t, time.Minute)
	conn := connectPgx(t, ctx, p.url())
	p.remember("st-a@example.org", "st-b@example.org", "st-c@example.org", "ph-old", "ph-merged-1", "ph-merged-2", "ph-refused")
	if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, email, phone) VALUES (9701, 'st-a@example.org', 'ph-old'), (10701, 'st-c@example.org', 'ph-old')`); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT email, phone FROM users WHERE org_id IN ($1, $2) ORDER BY id`, org, other)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for rows.Next() {
			var e, ph string
			if err := rows.Scan(&e, &ph); err != nil {
				t.Fatal(err)
			}
			out = append(out, e+" "+ph)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, ", ")
	}
	// One tenant, parameters (extended protocol): merged and inserted.
	if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, email, phone) VALUES ($1, $2, 'ph-old'), ($3, $4, 'ph-old') ON CONFLICT (email) DO UPDATE SET phone = $5`,
		org, "st-a@example.org", org, "st-b@example.org", "ph-merged-1"); err == nil {
		t.Fatal("a literal value beside parameter tenants was planned")
	}
	if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, email, phone) VALUES ($1, $2, $3), ($4, $5, $6) ON CONFLICT (email) DO UPDATE SET phone = $7`,
		org, "st-a@example.org", "ph-old", org, "st-b@example.org", "ph-old", "ph-merged-1"); err != nil {
		t.Fatalf("one tenant, parameters: %v", err)
	}
	if got, want := read(), "st-a@example.org ph-merged-1, st-c@example.org ph-old, st-b@example.org ph-old"; got != want {
		t.Fatalf("after the merge: %s, want %s", got, want)
	}
	// One tenant, literals (simple protocol).
	if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, email, phone) VALUES (9701, 'st-a@example.org', 'ph-old'), (9701, 'st-b@example.org', 'ph-old') ON CONFLICT (email) DO UPDATE SET phone = 'ph-merged-2'`,
		pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("one tenant, literals: %v", err)
	}
	if got, want := read(), "st-a@example.org ph-merged-2, st-c@example.org ph-old, st-b@example.org ph-merged-2"; got != want {
		t.Fatalf("after the literal merge: %s, want %s", got, want)
	}
	// Two tenants, in both protocols: refused, nothing changes.
	for _, c := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO users (org_id, email, phone) VALUES ($1, $2, $3), ($4, $5, $6) ON CONFLICT (email) DO UPDATE SET phone = $7`,
			[]any{org, "st-a@example.org", "ph-old", other, "st-c@example.org", "ph-old", "ph-refused"}},
		{`INSERT INTO users (org_id, email, phone) VALUES (9701, 'st-a@example.org', 'ph-old'), (10701, 'st-c@example.org', 'ph-old') ON CONFLICT (email) DO UPDATE SET phone = 'ph-refused'`,
			[]any{pgx.QueryExecModeSimpleProtocol}},
	} {
		_, err := conn.Exec(ctx, c.sql, c.args...)
		if err == nil || !strings.Contains(err.Error(), "more than one tenant") || !strings.Contains(err.Error(), "0A000") {
			t.Fatalf("two tenants: %v", err)
		}
	}
	if got, want := read(), "st-a@example.org ph-merged-2, st-c@example.org ph-old, st-b@example.org ph-merged-2"; got != want {
		t.Fatalf("after the refusals: %s, want %s", got, want)
	}
	verifyAtRest(t, ctx, []string{"ph-merged-1", "ph-merged-2", "ph-refused", "st-b@example.org"})
}
