package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/integration/harness"
)

const profilesPolicy = `tables:
  public.profiles:
    key_context: org
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase]
      ssn:
        type: text
`

var profileOrgs = []string{
	"6f1c1c1e-0000-4000-8000-00000000000a",
	"6f1c1c1e-0000-4000-8000-00000000000b",
	"6f1c1c1e-0000-4000-8000-00000000000c",
}

const profilesSchema = `
CREATE TABLE profiles (
  id serial PRIMARY KEY,
  org uuid NOT NULL,
  email text,
  email_bidx bytea,
  ssn text
);
CREATE INDEX profiles_email_bidx_idx ON profiles (email_bidx);
INSERT INTO profiles (org, email, ssn)
SELECT ('6f1c1c1e-0000-4000-8000-00000000000' || substr('abc', 1 + g % 3, 1))::uuid,
       'p' || g || '@example.net', lpad(g::text, 9, '0')
FROM generate_series(1, 300) g;`

// profileCounts reads, through one pgveil, how many of each tenant's rows
// have readable values, and checks that those values are the right ones.
func profileCounts(ctx context.Context, c *pgx.Conn) (map[string]int, error) {
	rs, err := c.Query(ctx, `SELECT id, org::text, email, ssn FROM profiles`)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := map[string]int{}
	for rs.Next() {
		var id int
		var org string
		var email, ssn *string
		if err := rs.Scan(&id, &org, &email, &ssn); err != nil {
			return nil, err
		}
		if email == nil && ssn == nil {
			continue
		}
		if email == nil || ssn == nil || *email != fmt.Sprintf("p%d@example.net", id) || *ssn != fmt.Sprintf("%09d", id) {
			return nil, fmt.Errorf("row %d reads %s %s", id, fmtPtr(email), fmtPtr(ssn))
		}
		out[org]++
	}
	return out, rs.Err()
}

// TestOpsShred crypto-shreds one tenant while two pgveil replicas serve the
// table: both read that tenant's values as NULL within the documented
// bound (one notification round trip; the deadline here is far below the
// 1-minute active-key TTL, so it is the notification that does it), other
// tenants are unaffected, the tenant's blind indexes are gone, and an audit
// line is logged. Also: shred refuses without a terminal and without --yes,
// and `pgveil healthcheck` answers for a replica.
func TestOpsShred(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_shred", profilesPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, profilesSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")

	replicas := []*harness.Proxy{e.proxy(e.config("")), e.proxy(e.config(""))}
	conns := []*pgx.Conn{e.appConn(ctx, replicas[0]), e.appConn(ctx, replicas[1])}
	for i, c := range conns {
		// Reading first puts every tenant's keys in each replica's cache.
		counts, err := profileCounts(ctx, c)
		if err != nil || counts[profileOrgs[0]] != 100 || counts[profileOrgs[1]] != 100 || counts[profileOrgs[2]] != 100 {
			t.Fatalf("replica %d before: %v %v", i, counts, err)
		}
	}

	for _, hc := range []struct {
		url  string
		want int
	}{{"http://" + replicas[0].AdminAddr + "/healthz", 0}, {"http://" + replicas[1].AdminAddr + "/readyz", 0}, {"http://127.0.0.1:1/healthz", 1}} {
		e.run(ctx, hc.want, "healthcheck", "--url", hc.url, "--timeout", "2s")
	}

	// No terminal, no --yes: refused, nothing destroyed.
	r := e.run(ctx, 2, "shred", "-c", cfg, "--table", "public.profiles", "--tenant", profileOrgs[1])
	if !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("refusal does not say what to do: %s", r.stderr)
	}
	var shredded int
	su.QueryRow(ctx, `SELECT count(*) FROM pgveil.keys WHERE state = 'shredded'`).Scan(&shredded)
	if shredded != 0 {
		t.Fatal("a refused shred destroyed keys")
	}

	// The tenant as the operator types it: upper case is the same uuid.
	victim := profileOrgs[1]
	start := time.Now()
	r = e.run(ctx, 0, "shred", "-c", cfg, "--table", "public.profiles", "--tenant", strings.ToUpper(victim), "--yes")
	if !strings.Contains(r.stdout, "2 data key(s) destroyed") || !strings.Contains(r.stdout, "blind indexes cleared in 100 row(s)") {
		t.Fatalf("shred:\n%s\n%s", r.stdout, r.stderr)
	}
	var audit string
	for _, line := range strings.Split(r.stderr, "\n") {
		if strings.Contains(line, `"audit":"shred"`) {
			audit = line
		}
	}
	for _, want := range []string{`"os_user":`, `"db_role":"postgres"`, `"table":"public.profiles"`, `"tenant":"` + victim + `"`, `"key_ids":[`, `"at":`} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit line lacks %s: %s", want, audit)
		}
	}

	for i, c := range conns {
		waitFor(t, 10*time.Second, fmt.Sprintf("replica %d to read the shredded tenant as NULL", i), func() (bool, error) {
			counts, err := profileCounts(ctx, c)
			if err != nil {
				return false, err
			}
			if counts[profileOrgs[0]] != 100 || counts[profileOrgs[2]] != 100 {
				return false, fmt.Errorf("other tenants changed: %v", counts)
			}
			return counts[victim] == 0, nil
		})
	}
	t.Logf("both replicas read the shredded tenant as NULL %s after the shred began", time.Since(start).Round(time.Millisecond))

	var idx, others int
	if err := su.QueryRow(ctx, `SELECT count(email_bidx) FILTER (WHERE org = $1), count(email_bidx) FILTER (WHERE org <> $1) FROM profiles`, victim).Scan(&idx, &others); err != nil {
		t.Fatal(err)
	}
	if idx != 0 || others != 200 {
		t.Fatalf("blind indexes: %d left for the shredded tenant, %d for the others (want 0, 200)", idx, others)
	}
	// Lookups: the shredded tenant's email finds nothing, another's is found.
	var n int
	if err := conns[0].QueryRow(ctx, `SELECT count(*) FROM profiles WHERE email = $1`, "P1@example.net").Scan(&n); err != nil || n != 0 {
		t.Fatalf("lookup of a shredded email: %d %v", n, err)
	}
	if err := conns[1].QueryRow(ctx, `SELECT count(*) FROM profiles WHERE email = $1`, "P3@example.net").Scan(&n); err != nil || n != 1 {
		t.Fatalf("lookup of another tenant's email: %d %v", n, err)
	}
	// A rerun is harmless.
	r = e.run(ctx, 0, "shred", "-c", cfg, "--table", "public.profiles", "--tenant", victim, "--yes")
	if !strings.Contains(r.stdout, "already shredded") {
		t.Fatalf("rerun:\n%s", r.stdout)
	}
}
