package integration

// Review 5 of 5250378, end to end (planner side: rewrite/review5_test.go).
//   TestEncReview5FoundOnClausePlaintext HIGH: a name in a JOIN's ON clause
//     that PostgreSQL resolves in the enclosing query (the ON clause sees
//     only the join's own sides) is resolved by pgveil to an earlier
//     same-level FROM item without encryption: the literal compared with
//     users.email reaches the server in plaintext.
//   TestEncReview5FoundRenamedJSONUndecrypted MEDIUM: a JSON column of
//     encrypted values renamed away by a join alias column list over a
//     relation pgveil cannot list: the envelope is returned in the JSON.
//   TestEncReview5FoundMergedTenantNumeric LOW (fails closed): an aliased
//     JOIN … USING (org_id) takes the tenant as j.org_id, the merged column,
//     which is the left side's value in its common type ((SELECT 9953.0 AS
//     org_id) s JOIN users u USING (org_id)) AS j: '9953.0'): the value is
//     opened under the wrong scope and the session is terminated (FATAL
//     PV001 wrong_scope) for a legitimate query; u.org_id is not reachable
//     under j, so a refusal (or u's column through another name) is due.

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const rev5Leak = "r5-leak@example.org"

func TestEncReview5FoundOnClausePlaintext(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9950, 10950)
	p.remember(rev5Leak, "r5-user@example.org")
	conn := connectPgx(t, ctx, p.url())
	if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, name, email) VALUES (9950, 'r5', 'r5-user@example.org')`); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`SELECT current_query() FROM users x WHERE EXISTS (SELECT 1 FROM (SELECT 'a'::text AS email) x, (SELECT 1 AS z) o JOIN (SELECT 2 AS y) o2 ON x.email = '` + rev5Leak + `' OR true) LIMIT 1`,
		`SELECT current_query() FROM users x WHERE EXISTS (SELECT 1 FROM (SELECT 'a'::text AS email) x, (SELECT 1 AS z) o JOIN (SELECT 2 AS y) o2 ON email = '` + rev5Leak + `' OR true) LIMIT 1`,
	} {
		var got string
		err := conn.QueryRow(ctx, sql, pgx.QueryExecModeSimpleProtocol).Scan(&got)
		if err == nil && strings.Contains(got, rev5Leak) {
			t.Errorf("%s\n the server received the plaintext compared with users.email: %s", sql, got)
		}
	}
}

func TestEncReview5FoundRenamedJSONUndecrypted(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9951, 10951)
	p.remember("r5-json@example.org")
	conn := connectPgx(t, ctx, p.url())
	if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, name, email) VALUES (9951, 'r5j', 'r5-json@example.org')`); err != nil {
		t.Fatal(err)
	}
	sql := `SELECT j.js::text FROM (generate_series(1, 1) g JOIN (SELECT json_build_array(email) AS js, org_id FROM users WHERE name = 'r5j') s ON true) AS j(a)`
	var got string
	if err := conn.QueryRow(ctx, sql).Scan(&got); err == nil && !strings.Contains(got, "r5-json@example.org") {
		t.Errorf("%s\n returned %q: users.email's envelope undecrypted, want the plaintext or a refusal", sql, got)
	}
}

func TestEncReview5FoundMergedTenantNumeric(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9953, 10953)
	p.remember("r5-n@example.org")
	conn := connectPgx(t, ctx, p.url())
	if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, name, email) VALUES (9953, 'r5n', 'r5-n@example.org')`); err != nil {
		t.Fatal(err)
	}
	sql := `SELECT j.email FROM ((SELECT 9953.0 AS org_id) s JOIN users u USING (org_id)) AS j WHERE j.name = 'r5n'`
	var got []byte
	err := conn.QueryRow(ctx, sql).Scan(&got)
	if err != nil && strings.Contains(err.Error(), "wrong_scope") {
		t.Errorf("%s: %v\n the tenant j.org_id is the merged column ('9953.0'), not users.org_id: want the plaintext or a refusal before the server", sql, err)
	} else if err == nil && string(got) != "r5-n@example.org" {
		t.Errorf("%s: returned %q", sql, got)
	}
}
