package integration

// Review of SQLAlchemy 2.0 insertmanyvalues against PostgreSQL 15 (the
// rewrite-level findings: rewrite/insertmany_review_test.go).
//
//   - HIGH (fixed): a length cast on the key_context item,
//     p0::VARCHAR(4)::BIGINT of '91711', stored tenant 9171 while pgveil
//     sealed the row's values under tenant 91711: now refused (42804,
//     naming org_id).
//   - MEDIUM (fixed): nextval('users_id_seq') among the SELECT items
//     (SQLAlchemy, explicit Sequence) was refused; now writes.
//   - LOW (fixed): ON CONFLICT … DO UPDATE SET phone = $n with this form
//     was refused; now sealed under the rows' tenant, and rows of two
//     tenants refused.
//   - LOW (fixed): a parenthesised SELECT item of an indexed column became a
//     row constructor with its index; now it writes and reads back.
//
// Held: INSERT columns in another order than the VALUES columns, with two
// blind-indexed columns (email, ssn): each value and index lands in its
// own column, under its row's tenant, found by both indexes.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestReviewInsertMany17c(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 2*time.Minute)
	const orgA, orgB = 9181, 9182
	p := startEncProxy(t, orgA, orgB)
	c := connectPgx(t, ctx, p.url())
	defer c.Close(context.Background())

	// The tenant cast: refused, nothing written.
	p.remember("imv17c-cast@example.org")
	_, err := c.Exec(ctx, `INSERT INTO users (org_id, email, name) SELECT p0::VARCHAR(4)::BIGINT, p1::VARCHAR, p2::VARCHAR
FROM (VALUES ($1::VARCHAR, $2::VARCHAR, $3::VARCHAR, 0)) AS imp_sen(p0, p1, p2, sen_counter) ORDER BY sen_counter`,
		fmt.Sprint(orgA)+"1", "imv17c-cast@example.org", "imv17c-cast")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42804" || !strings.Contains(pe.Message, "org_id") {
		t.Errorf("a length cast on the tenant: %v; want 42804 naming org_id", err)
	}
	direct := superConn(t, ctx)
	var n int
	if err := direct.QueryRow(ctx, `SELECT count(*) FROM users WHERE name = 'imv17c-cast'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("a refused insert wrote %d rows (%v)", n, err)
	}

	// Columns in another order than the VALUES columns, two indexed
	// columns, parenthesised items.
	type row struct {
		org        int64
		email, ssn string
	}
	rs := []row{{orgA, "imv17c-a@example.org", "17c-111"}, {orgB, "imv17c-b@example.org", "17c-222"}}
	var args []any
	var vals []string
	for i, r := range rs {
		p.remember(r.email, r.ssn)
		vals = append(vals, fmt.Sprintf("($%d::BIGINT, $%d::VARCHAR, $%d::VARCHAR, $%d::VARCHAR, %d)", 4*i+1, 4*i+2, 4*i+3, 4*i+4, i))
		args = append(args, r.org, r.email, fmt.Sprintf("imv17c-%d", i), r.ssn)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		if _, err := direct.Exec(ctx, `DELETE FROM users WHERE name LIKE 'imv17c-%'`); err != nil {
			t.Fatal(err)
		}
		rows, err := c.Query(ctx, `INSERT INTO users (ssn, name, org_id, email) SELECT (p3), p2, p0::BIGINT, ((p1::VARCHAR))
FROM (VALUES `+strings.Join(vals, ", ")+`) AS imp_sen(p0, p1, p2, p3, sen_counter) ORDER BY sen_counter RETURNING id`, append([]any{mode}, args...)...)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil || len(ids) != len(rs) {
			t.Fatalf("%s: %d ids, %v", mode, len(ids), err)
		}
		for i, r := range rs {
			var org int64
			var email, ssn string
			if err := c.QueryRow(ctx, "SELECT org_id, email, ssn FROM users WHERE id = $1", ids[i]).Scan(&org, &email, &ssn); err != nil {
				t.Fatalf("%s: row %d: %v", mode, i, err)
			}
			if org != r.org || email != r.email || ssn != r.ssn {
				t.Errorf("%s: id %d holds (%d, %q, %q), want %v", mode, ids[i], org, email, ssn, r)
			}
			var id int64
			if err := c.QueryRow(ctx, "SELECT id FROM users WHERE ssn = $1 AND email = $2", r.ssn, r.email).Scan(&id); err != nil || id != ids[i] {
				t.Errorf("%s: lookup by ssn and email: %d %v, want %d", mode, id, err, ids[i])
			}
		}
	}
	// ON CONFLICT … DO UPDATE SET phone = $n: sealed under the rows'
	// one tenant; rows of two tenants refused.
	const upsert = `INSERT INTO users (org_id, email, name) SELECT p0::BIGINT, p1::VARCHAR, p2::VARCHAR
FROM (VALUES ($1::BIGINT, $2::VARCHAR, $3::VARCHAR, 0), ($4::BIGINT, $5::VARCHAR, $6::VARCHAR, 1)) AS imp_sen(p0, p1, p2, sen_counter)
ORDER BY sen_counter ON CONFLICT (email) DO UPDATE SET phone = $7 RETURNING users.id`
	p.remember("imv17c-c@example.org", "+1-555-17c")
	if _, err := c.Exec(ctx, upsert, orgA, rs[0].email, "imv17c-0", orgA, "imv17c-c@example.org", "imv17c-2", "+1-555-17c"); err != nil {
		t.Fatalf("upsert: %v", err)
	}
	var phone string
	if err := c.QueryRow(ctx, "SELECT phone FROM users WHERE email = $1", rs[0].email).Scan(&phone); err != nil || phone != "+1-555-17c" {
		t.Errorf("upserted phone: %q %v", phone, err)
	}
	_, err = c.Exec(ctx, upsert, orgA, rs[0].email, "imv17c-0", orgB, rs[1].email, "imv17c-1", "+1-555-17c")
	if !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Errorf("upsert over two tenants: %v; want 0A000", err)
	}
	// SQLAlchemy's form with an explicit Sequence: nextval among the items.
	p.remember("imv17c-seq@example.org")
	var seqID int64
	if err := c.QueryRow(ctx, `INSERT INTO users (org_id, id, email, name) SELECT p0::BIGINT, nextval('users_id_seq'), p1::VARCHAR, p2::VARCHAR
FROM (VALUES ($1::BIGINT, $2::VARCHAR, $3::VARCHAR, 0)) AS imp_sen(p0, p1, p2, sen_counter) ORDER BY sen_counter RETURNING users.id`,
		orgB, "imv17c-seq@example.org", "imv17c-seq").Scan(&seqID); err != nil {
		t.Fatalf("nextval item: %v", err)
	}
	var seqEmail string
	if err := c.QueryRow(ctx, "SELECT email FROM users WHERE id = $1 AND org_id = $2", seqID, orgB).Scan(&seqEmail); err != nil || seqEmail != "imv17c-seq@example.org" {
		t.Errorf("nextval item: read back %q %v", seqEmail, err)
	}
	verifyAtRest(t, ctx, []string{"imv17c-seq@example.org", "+1-555-17c", "imv17c-c@example.org", "imv17c-a@example.org", "imv17c-b@example.org", "17c-111", "17c-222", "imv17c-cast@example.org"})
}
