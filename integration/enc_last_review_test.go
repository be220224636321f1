package integration

// Last review of 156aa07, 4769b02 and 9ce6733 end to end: the real pgveil
// binary in front of PostgreSQL 15.
//
// Failing on lead at the time of the review (defects):
//   TestEncLastReviewFoundBodyMoveHidden     HIGH: a DO block whose UPDATE
//                                              users … SET … org_id has a ';'
//                                              in a string or comment before
//                                              org_id, or a comment after
//                                              UPDATE, passes (refused before
//                                              156aa07); the row moves to org
//                                              B with its email sealed under
//                                              org A's key: PV001.
//   TestEncLastReviewFoundBodyMoveThroughView HIGH: a DO block that UPDATEs
//                                              a view over users.org_id SET
//                                              org_id passes (the client's
//                                              own UPDATE of the view is
//                                              refused); same result.
//   TestEncLastReviewFoundCaseSampleCTE      HIGH: a CASE condition that
//                                              reads a NOT MATERIALIZED CTE
//                                              with TABLESAMPLE: rows hold the
//                                              new email under the old index
//                                              or the reverse.
//   TestEncLastReviewFoundUpdateDupState     LOW: UPDATE setting a column
//                                              twice: 42701 from pgveil for an
//                                              encrypted column, 42601 from
//                                              PostgreSQL for the others.
// TestEncLastReviewCheckDeleteSetCols holds.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestEncLastReviewFoundBodyMoveHidden (HIGH): the refused plain form
// holds; the hidden forms move the row.
func TestEncLastReviewFoundBodyMoveHidden(t *testing.T) {
	r := newLookupReview(t, 411)
	// Holds: the plain form is refused.
	{
		tag := "lastrev-body-plain"
		email := tag + "@example.org"
		id := r.insert(t, r.orgA, tag, email)
		c := r.conn(t, pgx.QueryExecModeSimpleProtocol)
		_, err := c.Exec(r.ctx, fmt.Sprintf(`DO $$ BEGIN UPDATE users SET org_id = %d WHERE id = %d; END $$`, r.orgB, id))
		c.Close(r.ctx)
		if !moveRefused(err) {
			t.Errorf("plain DO moving the row: %v, want 0A000", err)
		}
		r.wantKept(t, id, r.orgA, tag, email, "after the plain DO")
	}
	for i, body := range []string{
		`UPDATE users SET name = name || ';', org_id = %d WHERE id = %d;`,
		`UPDATE users /* tenant fix; ticket 12 */ SET org_id = %d WHERE id = %d;`,
		"UPDATE users -- tenant fix; ticket 12\n SET org_id = %d WHERE id = %d;",
		`UPDATE /* fix */ users SET org_id = %d WHERE id = %d;`,
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			tag := fmt.Sprintf("lastrev-body-%d", i)
			email := tag + "@example.org"
			id := r.insert(t, r.orgA, tag, email)
			c := r.conn(t, pgx.QueryExecModeSimpleProtocol)
			defer c.Close(r.ctx)
			sql := "DO $$ BEGIN " + fmt.Sprintf(body, r.orgB, id) + " END $$"
			_, err := c.Exec(r.ctx, sql)
			if moveRefused(err) {
				return
			}
			if err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			t.Errorf("%s was not refused", sql)
			if got := r.read(t, id); !strings.HasPrefix(got, fmt.Sprint(r.orgA)+"|") {
				t.Errorf("the row now reads %q (moved to org %d with its email sealed under org %d's key)", got, r.orgB, r.orgA)
			}
		})
	}
}

// TestEncLastReviewFoundBodyMoveThroughView (HIGH): UPDATE of a view over
// users.org_id is refused from the client (holds) and passes inside DO.
func TestEncLastReviewFoundBodyMoveThroughView(t *testing.T) {
	r := newLookupReview(t, 421)
	su := superConn(t, r.ctx)
	t.Cleanup(func() {
		su.Exec(context.Background(), `DROP VIEW IF EXISTS lastrev_user_orgs, users_lastrev`)
	})
	c := r.conn(t, pgx.QueryExecModeSimpleProtocol)
	for _, v := range []string{"lastrev_user_orgs", "users_lastrev"} {
		if _, err := c.Exec(r.ctx, `CREATE VIEW `+v+` AS SELECT id, org_id, name FROM users`); err != nil {
			t.Fatalf("creating view %s through pgveil: %v", v, err)
		}
	}
	c.Close(r.ctx)
	for i, v := range []string{"lastrev_user_orgs", "users_lastrev"} {
		t.Run(v, func(t *testing.T) {
			tag := fmt.Sprintf("lastrev-view-%d", i)
			email := tag + "@example.org"
			id := r.insert(t, r.orgA, tag, email)
			c := r.conn(t, pgx.QueryExecModeSimpleProtocol)
			defer c.Close(r.ctx)
			if _, err := c.Exec(r.ctx, fmt.Sprintf(`UPDATE %s SET org_id = %d WHERE id = %d`, v, r.orgB, id)); !moveRefused(err) {
				t.Errorf("client UPDATE of the view: %v, want 0A000", err)
			}
			sql := fmt.Sprintf(`DO $$ BEGIN UPDATE %s SET org_id = %d WHERE id = %d; END $$`, v, r.orgB, id)
			_, err := c.Exec(r.ctx, sql)
			if moveRefused(err) {
				r.wantKept(t, id, r.orgA, tag, email, "after the DO")
				return
			}
			if err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			t.Errorf("%s was not refused", sql)
			if got := r.read(t, id); !strings.HasPrefix(got, fmt.Sprint(r.orgA)+"|") {
				t.Errorf("the row now reads %q (moved to org %d with its email sealed under org %d's key)", got, r.orgB, r.orgA)
			}
		})
	}
}

// TestEncLastReviewFoundCaseSampleCTE (HIGH): as TestEncFixReviewFoundTablesample,
// with the sample in a NOT MATERIALIZED CTE the condition reads.
func TestEncLastReviewFoundCaseSampleCTE(t *testing.T) {
	const org = 431
	r := newCaseReview(t, org)
	const rows = 60
	var ids []int64
	for i := 0; i < rows; i++ {
		email := fmt.Sprintf("lastrev-ts-%d-old@example.org", i)
		r.p.remember(email)
		var id int64
		if err := r.setup.QueryRow(r.ctx, `INSERT INTO contacts (org_id, email) VALUES ($1, $2) RETURNING id`, int64(org), email).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	newer := "lastrev-ts-new@example.org"
	r.p.remember(newer)
	conn := connectMode(t, r.ctx, r.p.url(), pgx.QueryExecModeCacheStatement)
	_, err := conn.Exec(r.ctx, `WITH s AS NOT MATERIALIZED (SELECT id FROM contacts TABLESAMPLE BERNOULLI (50)) UPDATE contacts SET email = CASE WHEN id IN (SELECT id FROM s) THEN $1 ELSE email END WHERE id BETWEEN $2 AND $3`,
		newer, ids[0], ids[len(ids)-1])
	if err != nil {
		if pe := pgErr(err); pe == nil || pe.Code != "0A000" {
			t.Fatalf("UPDATE: %v, want success or 0A000", err)
		}
		return
	}
	holds := map[int64]bool{}
	rs, err := r.setup.Query(r.ctx, `SELECT id, email FROM contacts WHERE id BETWEEN $1 AND $2`, ids[0], ids[len(ids)-1])
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var id int64
		var email string
		if err := rs.Scan(&id, &email); err != nil {
			t.Fatal(err)
		}
		holds[id] = email == newer
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	found := map[int64]bool{}
	rs, err = r.setup.Query(r.ctx, `SELECT id FROM contacts WHERE email = $1 AND id BETWEEN $2 AND $3`, newer, ids[0], ids[len(ids)-1])
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var id int64
		if err := rs.Scan(&id); err != nil {
			t.Fatal(err)
		}
		found[id] = true
	}
	var wrong []string
	for _, id := range ids {
		if holds[id] != found[id] {
			wrong = append(wrong, fmt.Sprintf("%d (holds new: %v, found by its index: %v)", id, holds[id], found[id]))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d of %d rows hold an email whose blind index is another value's: %s", len(wrong), rows, strings.Join(wrong[:min(5, len(wrong))], ", "))
	}
}

// TestEncLastReviewFoundUpdateDupState (LOW): one statement shape, two
// SQLSTATEs. Also: the doubled encrypted column's value never reaches the
// server (holds: refused in pgveil; the log check of the proxy covers it).
func TestEncLastReviewFoundUpdateDupState(t *testing.T) {
	r := newLookupReview(t, 441)
	c := r.conn(t, pgx.QueryExecModeCacheStatement)
	defer c.Close(r.ctx)
	_, errPlain := c.Exec(r.ctx, `UPDATE users SET name = $1, name = $2 WHERE id = $3`, "a", "b", int64(0))
	r.p.remember("lastrev-dup-secret-1", "lastrev-dup-secret-2")
	_, errEnc := c.Exec(r.ctx, `UPDATE users SET phone = $1, phone = $2 WHERE id = $3 AND org_id = $4`, "lastrev-dup-secret-1", "lastrev-dup-secret-2", int64(0), r.orgA)
	if sqlState(errPlain) != "42601" {
		t.Fatalf("PostgreSQL's own answer: %v, want 42601", errPlain)
	}
	if s := sqlState(errEnc); s != sqlState(errPlain) {
		t.Errorf("phone set twice: %v; name set twice: %v (PostgreSQL's 42601)", errEnc, errPlain)
	}
}

// TestEncLastReviewCheckDeleteSetCols: `pgveil check` on PostgreSQL 15
// reads confdelsetcols through to_jsonb: ON DELETE SET NULL (org_id) and
// SET DEFAULT (team_id, org_id) of a composite key are reported, SET NULL
// (team_id) is not (holds).
func TestEncLastReviewCheckDeleteSetCols(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_check_lastrev_fk", checkTriggersPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `
CREATE TABLE orgs (id int8 PRIMARY KEY);
CREATE TABLE teams (org_id int8 NOT NULL REFERENCES orgs, id int8 NOT NULL, PRIMARY KEY (org_id, id));
CREATE TABLE accounts (
  id bigserial PRIMARY KEY,
  org_id int8 DEFAULT 1,
  team_id int8,
  email text,
  email_bidx bytea
);
CREATE INDEX ON accounts (email_bidx);`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	for _, c := range []struct {
		fk   string
		want bool
	}{
		{`FOREIGN KEY (org_id, team_id) REFERENCES teams (org_id, id) ON DELETE SET NULL (team_id)`, false},
		{`FOREIGN KEY (team_id, org_id) REFERENCES teams (id, org_id) ON DELETE SET NULL (team_id)`, false},
		{`FOREIGN KEY (org_id, team_id) REFERENCES teams (org_id, id) ON DELETE SET NULL (org_id)`, true},
		{`FOREIGN KEY (org_id, team_id) REFERENCES teams (org_id, id) ON DELETE SET DEFAULT (team_id, org_id)`, true},
		{`FOREIGN KEY (org_id, team_id) REFERENCES teams (org_id, id) ON DELETE SET NULL`, true},
		{`FOREIGN KEY (org_id, team_id) REFERENCES teams (org_id, id) ON DELETE CASCADE`, false},
	} {
		if _, err := su.Exec(ctx, `ALTER TABLE accounts DROP CONSTRAINT IF EXISTS lastrev_fk, ADD CONSTRAINT lastrev_fk `+c.fk); err != nil {
			t.Fatalf("%s: %v", c.fk, err)
		}
		r := e.run(ctx, -1, "check", "-c", cfg, "--format", "json")
		var rep checkJSON
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("check --format json: %v\n%s", err, r.stdout)
		}
		got := false
		for _, f := range rep.Findings {
			if f.Code == "key_context_fk_moves" {
				got = true
			}
		}
		if got != c.want {
			t.Errorf("%s: key_context_fk_moves reported %v, want %v\n%s", c.fk, got, c.want, r.stdout)
		}
	}
}
