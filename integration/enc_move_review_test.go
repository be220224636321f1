package integration

// Review tests of tenant moves (commit adddcda: an UPDATE that sets the
// key_context and keeps encrypted values is checked by a lookup and
// guarded). Tests named TestMoveReviewFound* demonstrate defects and FAIL
// on this revision; TestMoveReviewHolds* probe what held.
//
// Every test moves a row of org A that holds an email (sealed under A's
// key) to org B by some spelling. The row must afterwards still open
// through pgveil: r.read (lookupReview, enc_lookup_review_test.go) reads
// it on a fresh connection, and a value sealed under another tenant's key
// ends that session with FATAL PV001.

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

// moveRefused reports whether err is pgveil's 0A000 refusal of a move.
func moveRefused(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "0A000"
}

// wantKept checks that user id is still org|name|email|<NULL> and opens.
func (r *lookupReview) wantKept(t *testing.T, id, org int64, name, email, what string) {
	t.Helper()
	if got, want := r.read(t, id), fmt.Sprintf("%d|%s|%s|<NULL>", org, name, email); got != want {
		t.Errorf("%s: the row reads %q, want %q (a value left sealed under its old tenant's key)", what, got, want)
	}
}

// TestMoveReviewFoundCTEResealLeak: the planner's set of "columns written
// anew" (analyzer.resealed) is one per statement, not one per UPDATE: a
// data-modifying CTE that writes every encrypted column of users (here
// NULL, in an UPDATE that matches no row) makes the main UPDATE, which
// sets org_id and writes none, look as if it rewrote them all. No lookup,
// no guard: the row moves to org B keeping its email sealed under org A's
// key. The same with the move itself in a second CTE, and with an INSERT
// … ON CONFLICT DO UPDATE in the first CTE.
//
// Expected: 0A000 (a move inside WITH cannot be checked), the row
// unchanged. Got: UPDATE 1, and the row no longer opens (PV001).
func TestMoveReviewFoundCTEResealLeak(t *testing.T) {
	r := newLookupReview(t, 301)
	const nulls = `UPDATE users SET email = NULL, phone = NULL, ssn = NULL, birth_date = NULL, api_token = NULL WHERE false RETURNING id`
	stmts := []struct{ name, sql string }{
		{"main_update", `WITH w AS (` + nulls + `) UPDATE users SET org_id = $1 WHERE id = $2`},
		{"second_cte", `WITH w AS (` + nulls + `), m AS (UPDATE users SET org_id = $1 WHERE id = $2 RETURNING id) SELECT count(*) FROM m`},
	}
	for si, s := range stmts {
		for mi, mode := range reviewModes {
			t.Run(s.name+"/"+mode.String(), func(t *testing.T) {
				tag := fmt.Sprintf("mvrev-cte-%d-%d", si, mi)
				email := tag + "@example.org"
				id := r.insert(t, r.orgA, tag, email)
				c := r.conn(t, mode)
				defer c.Close(r.ctx)
				_, err := c.Exec(r.ctx, s.sql, r.orgB, id)
				if !moveRefused(err) {
					t.Errorf("a move beside a CTE writing every encrypted column: %v, want 0A000", err)
				}
				r.wantKept(t, id, r.orgA, tag, email, "after the move with a CTE")
			})
		}
	}
	// An upsert in the CTE writing every encrypted column (with literals:
	// its tenant is the VALUES row's).
	t.Run("upsert_cte", func(t *testing.T) {
		tag := "mvrev-cte-upsert"
		email := tag + "@example.org"
		id := r.insert(t, r.orgA, tag, email)
		r.p.remember("mvrev-up-a", "mvrev-up-b", "mvrev-up-c")
		c := r.conn(t, pgx.QueryExecModeSimpleProtocol)
		defer c.Close(r.ctx)
		_, err := c.Exec(r.ctx, fmt.Sprintf(`WITH w AS (INSERT INTO users (id, org_id, name) VALUES (-77, %d, 'x')
			ON CONFLICT (id) DO UPDATE SET email = 'mvrev-up-a', phone = 'mvrev-up-b', ssn = 'mvrev-up-c', birth_date = NULL, api_token = NULL RETURNING id)
			UPDATE users SET org_id = %d WHERE id = %d`, r.orgA, r.orgB, id))
		if !moveRefused(err) {
			t.Errorf("a move beside an upsert CTE writing every encrypted column: %v, want 0A000", err)
		}
		r.wantKept(t, id, r.orgA, tag, email, "after the move with an upsert CTE")
	})
}

// TestMoveReviewFoundMerge: MERGE … WHEN MATCHED THEN UPDATE SET org_id
// is another spelling of a move. pgveil refuses MERGE only when it names
// an encrypted or blind-index column; org_id is neither, so the MERGE
// passes unchanged and moves the row with its email.
//
// Expected: 0A000 (MERGE may not set the key_context of a configured
// table: pgveil does not rewrite MERGE), the row unchanged. Got: MERGE 1,
// and the row no longer opens (PV001).
func TestMoveReviewFoundMerge(t *testing.T) {
	r := newLookupReview(t, 311)
	for mi, mode := range reviewModes {
		t.Run(mode.String(), func(t *testing.T) {
			tag := fmt.Sprintf("mvrev-merge-%d", mi)
			email := tag + "@example.org"
			id := r.insert(t, r.orgA, tag, email)
			c := r.conn(t, mode)
			defer c.Close(r.ctx)
			_, err := c.Exec(r.ctx, `MERGE INTO users u USING (SELECT $1::int8 AS id) s ON u.id = s.id WHEN MATCHED THEN UPDATE SET org_id = $2`, id, r.orgB)
			if !moveRefused(err) {
				t.Errorf("MERGE … UPDATE SET org_id: %v, want 0A000", err)
			}
			r.wantKept(t, id, r.orgA, tag, email, "after MERGE")
		})
	}
}

// TestMoveReviewFoundPlainView: an auto-updatable view over users that
// returns org_id but no encrypted column (CREATE VIEW user_orgs AS SELECT
// id, org_id, name FROM users) is not among the views pgveil guards (it
// finds those by their dependence on encrypted or blind-index columns), so
// UPDATE user_orgs SET org_id = … passes unchanged and moves the row with
// its email. The view is created through pgveil, so its catalog snapshot
// knows it.
//
// Expected: 0A000 (a write through a view that sets the key_context, as
// docs/SQL.md "Views" refuses writes through views), the row unchanged.
// Got: UPDATE 1, and the row no longer opens (PV001).
func TestMoveReviewFoundPlainView(t *testing.T) {
	r := newLookupReview(t, 321)
	su := superConn(t, r.ctx)
	// (scram_user may create in public: the harness grants it.)
	t.Cleanup(func() { su.Exec(context.Background(), `DROP VIEW IF EXISTS mvrev_user_orgs`) })
	c := r.conn(t, pgx.QueryExecModeSimpleProtocol)
	defer c.Close(r.ctx)
	if _, err := c.Exec(r.ctx, `CREATE VIEW mvrev_user_orgs AS SELECT id, org_id, name FROM users`); err != nil {
		t.Fatalf("creating the view through pgveil: %v", err)
	}
	for mi, mode := range reviewModes {
		t.Run(mode.String(), func(t *testing.T) {
			tag := fmt.Sprintf("mvrev-view-%d", mi)
			email := tag + "@example.org"
			id := r.insert(t, r.orgA, tag, email)
			c := r.conn(t, mode)
			defer c.Close(r.ctx)
			_, err := c.Exec(r.ctx, `UPDATE mvrev_user_orgs SET org_id = $1 WHERE id = $2`, r.orgB, id)
			if !moveRefused(err) {
				t.Errorf("UPDATE of a view over users setting org_id: %v, want 0A000", err)
			}
			r.wantKept(t, id, r.orgA, tag, email, "after the UPDATE through the view")
		})
	}
}

// TestMoveReviewFoundDoBlock: a DO block is refused when its text names
// a configured table and one of its encrypted or blind-index columns, or
// INSERT/COPY/MERGE (rewrite.body); an UPDATE that sets only the
// key_context names none of them. (A LANGUAGE sql function BEGIN ATOMIC
// with the same UPDATE is refused, "using column org_id": only the
// textual check misses it.) The same holds for CREATE FUNCTION … LANGUAGE
// plpgsql, whose body the same check reads.
//
// Expected: 0A000, the row unchanged. Got: DO, and the row no longer
// opens (PV001).
func TestMoveReviewFoundDoBlock(t *testing.T) {
	r := newLookupReview(t, 331)
	tag := "mvrev-do"
	email := tag + "@example.org"
	id := r.insert(t, r.orgA, tag, email)
	c := r.conn(t, pgx.QueryExecModeSimpleProtocol)
	defer c.Close(r.ctx)
	_, err := c.Exec(r.ctx, fmt.Sprintf(`DO $$ BEGIN UPDATE users SET org_id = %d WHERE id = %d; END $$`, r.orgB, id))
	if !moveRefused(err) {
		t.Errorf("DO block moving a row: %v, want 0A000", err)
	}
	r.wantKept(t, id, r.orgA, tag, email, "after the DO block")
}

// A foreign key on users.org_id with ON UPDATE CASCADE moves rows inside
// the server when orgs.id changes: pgveil does not see it (orgs is not a
// configured table). `pgveil check` reports such a foreign key as a
// problem (TestOpsCheckTenantForeignKey; docs/LIMITS.md).

// TestMoveReviewFoundPrepareInternalError: SQL-level PREPARE of a move
// with a parameter panics in the planner (tenantMove indexes
// Lookup.Uses, sized by the statement's own parameter count, which is 0
// inside PREPARE) and is refused as XX000 "internal error". It fails
// closed; the error should be the 0A000 that the same PREPARE without a
// parameter gets ("SQL-level PREPARE of a statement on encrypted columns
// is not supported").
func TestMoveReviewFoundPrepareInternalError(t *testing.T) {
	r := newLookupReview(t, 351)
	c := r.conn(t, pgx.QueryExecModeSimpleProtocol)
	defer c.Close(r.ctx)
	r.p.remember("mvrev-prepare-secret")
	_, err := c.Exec(r.ctx, `PREPARE mvrev_p(int8) AS UPDATE users SET org_id = $1 WHERE id = 1`)
	if sqlState(err) != "0A000" {
		t.Errorf("PREPARE of a move with a parameter: %v, want 0A000", describePgErr(err))
	}
	_, err = c.Exec(r.ctx, `PREPARE mvrev_q AS UPDATE users SET org_id = 7 WHERE id = 1`)
	if sqlState(err) != "0A000" {
		t.Errorf("PREPARE of a move without a parameter: %v, want 0A000", describePgErr(err))
	}
}

// TestMoveReviewHoldsGuard: the guard, not the lookup, is what keeps a
// move safe: (a) a named statement executed twice with different new
// tenants, a phone added in between: the second execution is refused;
// (b) a move racing a transaction that adds a phone (the lookup sees no
// phone; the UPDATE waits for the row lock, re-checks its guard against
// the committed row and changes nothing); (c) a statement without
// parameters prepared once (its check runs at Parse only) and executed
// again after a phone was added: UPDATE 0.
func TestMoveReviewHoldsGuard(t *testing.T) {
	r := newLookupReview(t, 361)
	su := superConn(t, r.ctx)
	for mi, mode := range reviewModes {
		t.Run(mode.String(), func(t *testing.T) {
			tag := fmt.Sprintf("mvrev-guard-%d", mi)
			c := r.conn(t, mode)
			defer c.Close(r.ctx)
			var id int64
			if err := c.QueryRow(r.ctx, `INSERT INTO users (org_id, name) VALUES ($1, $2) RETURNING id`, r.orgA, tag).Scan(&id); err != nil {
				t.Fatal(err)
			}
			// (a) moves of a row without encrypted values, then with one.
			for _, org := range []int64{r.orgB, r.orgA} {
				if ct, err := c.Exec(r.ctx, `UPDATE users SET org_id = $1 WHERE id = $2`, org, id); err != nil || ct.RowsAffected() != 1 {
					t.Fatalf("moving an empty row to %d: %v", org, err)
				}
			}
			phone := tag + "-phone"
			r.p.remember(phone)
			if _, err := c.Exec(r.ctx, `UPDATE users SET phone = $1 WHERE id = $2`, phone, id); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(r.ctx, `UPDATE users SET org_id = $1 WHERE id = $2`, r.orgB, id); !moveRefused(err) {
				t.Errorf("the same statement after a phone was added: %v, want 0A000", err)
			}
			if got, want := r.read(t, id), fmt.Sprintf("%d|%s|<NULL>|%s", r.orgA, tag, phone); got != want {
				t.Errorf("after (a): %q, want %q", got, want)
			}
			if _, err := c.Exec(r.ctx, `UPDATE users SET phone = NULL WHERE id = $1 AND org_id = $2`, id, r.orgA); err != nil {
				t.Fatal(err)
			}

			// (b) the race.
			adder := r.conn(t, pgx.QueryExecModeCacheStatement)
			defer adder.Close(r.ctx)
			tx, err := adder.Begin(r.ctx)
			if err != nil {
				t.Fatal(err)
			}
			racing := tag + "-racing"
			r.p.remember(racing)
			if _, err := tx.Exec(r.ctx, `UPDATE users SET phone = $1 WHERE id = $2 AND org_id = $3`, racing, id, r.orgA); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			var rows int64
			go func() {
				ct, err := c.Exec(r.ctx, `UPDATE users SET org_id = $1 WHERE id = $2 AND name = $3`, r.orgB, id, tag)
				rows = ct.RowsAffected()
				done <- err
			}()
			waitFor(t, 20*time.Second, "the move to wait for the row lock", func() (bool, error) {
				var n int
				err := su.QueryRow(r.ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE users SET org_id = %' AND query LIKE '%name =%'`).Scan(&n)
				return n == 1, err
			})
			if err := tx.Commit(r.ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil || rows != 0 {
				t.Errorf("the move racing a new phone: %v, %d rows, want UPDATE 0", err, rows)
			}
			if got, want := r.read(t, id), fmt.Sprintf("%d|%s|<NULL>|%s", r.orgA, tag, racing); got != want {
				t.Errorf("after (b): %q, want %q", got, want)
			}
			if _, err := c.Exec(r.ctx, `UPDATE users SET phone = NULL WHERE id = $1 AND org_id = $2`, id, r.orgA); err != nil {
				t.Fatal(err)
			}

			// (c) no parameters: checked at Parse (cache modes prepare it
			// once), guarded at every execution.
			lit := fmt.Sprintf(`UPDATE users SET org_id = %d WHERE id = %d AND name = '%s'`, r.orgA, id, tag)
			if ct, err := c.Exec(r.ctx, lit); err != nil || ct.RowsAffected() != 1 {
				t.Fatalf("the literal move (same tenant): %v", err)
			}
			if _, err := c.Exec(r.ctx, `UPDATE users SET org_id = $1 WHERE id = $2`, r.orgB, id); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(r.ctx, `UPDATE users SET phone = $1 WHERE id = $2`, racing, id); err != nil {
				t.Fatal(err)
			}
			ct, err := c.Exec(r.ctx, lit)
			t.Logf("the literal move again after a phone: %v, UPDATE %d", err, ct.RowsAffected())
			if err != nil && !moveRefused(err) {
				t.Errorf("the literal move again after a phone: %v, want 0A000 or UPDATE 0", err)
			}
			if err == nil && ct.RowsAffected() != 0 {
				t.Errorf("the literal move again after a phone: UPDATE %d, want 0A000 or UPDATE 0", ct.RowsAffected())
			}
			if got, want := r.read(t, id), fmt.Sprintf("%d|%s|<NULL>|%s", r.orgB, tag, racing); got != want {
				t.Errorf("after (c): %q, want %q", got, want)
			}

			// (d) a named statement without parameters (pgx runs Exec
			// without arguments as a simple Query, so pgconn prepares it):
			// checked once at Parse, with no phone; executed after a phone
			// was added, the guard leaves the row alone (UPDATE 0).
			if mode == pgx.QueryExecModeSimpleProtocol {
				return
			}
			if _, err := c.Exec(r.ctx, `UPDATE users SET phone = NULL WHERE id = $1 AND org_id = $2`, id, r.orgB); err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("mvrev_named_%d", mi)
			named := fmt.Sprintf(`UPDATE users SET org_id = %d WHERE id = %d`, r.orgA, id)
			if _, err := c.PgConn().Prepare(r.ctx, name, named, nil); err != nil {
				t.Fatalf("preparing a named move without parameters: %v", err)
			}
			if _, err := c.Exec(r.ctx, `UPDATE users SET phone = $1 WHERE id = $2`, racing, id); err != nil {
				t.Fatal(err)
			}
			res := c.PgConn().ExecPrepared(r.ctx, name, nil, nil, nil).Read()
			t.Logf("the named move after a phone: %v, %s", res.Err, res.CommandTag)
			if res.Err != nil && !moveRefused(res.Err) || res.Err == nil && res.CommandTag.RowsAffected() != 0 {
				t.Errorf("the named move after a phone: %v, %s, want 0A000 or UPDATE 0", res.Err, res.CommandTag)
			}
			if got, want := r.read(t, id), fmt.Sprintf("%d|%s|<NULL>|%s", r.orgB, tag, racing); got != want {
				t.Errorf("after (d): %q, want %q", got, want)
			}
		})
	}
}

// TestMoveReviewHoldsShapes: spellings that must not be refused (the same
// tenant as text, with casts, as int4; every encrypted column written by
// CASE or COALESCE without the column itself; ON CONFLICT setting
// EXCLUDED.org_id) and states the check meets (a transaction that added
// a value, REPEATABLE READ, an aborted transaction, a WHERE the server
// rejects, DISCARD ALL between two checks, a Batch of a write and a move).
func TestMoveReviewHoldsShapes(t *testing.T) {
	r := newLookupReview(t, 371)
	for mi, mode := range reviewModes {
		t.Run(mode.String(), func(t *testing.T) {
			tag := fmt.Sprintf("mvrev-shape-%d", mi)
			email := tag + "@example.org"
			id := r.insert(t, r.orgA, tag, email)
			c := r.conn(t, mode)
			defer c.Close(r.ctx)

			// The same tenant, spelled otherwise: no refusal.
			phone := tag + "-ph"
			r.p.remember(phone)
			for _, s := range []struct {
				sql  string
				args []any
			}{
				{`UPDATE users SET org_id = $1, phone = $2 WHERE id = $3`, []any{int32(r.orgA), phone, id}},
				{`UPDATE users SET org_id = $1::text::int8, phone = $2 WHERE id = $3`, []any{fmt.Sprint(r.orgA), phone, id}},
				{fmt.Sprintf(`UPDATE users SET org_id = '%d' WHERE id = %d`, r.orgA, id), nil},
				{fmt.Sprintf(`UPDATE users SET org_id = %d::int8 WHERE id = %d`, r.orgA, id), nil},
				{fmt.Sprintf(`UPDATE users SET org_id = (%d) WHERE id = %d`, r.orgA, id), nil},
			} {
				if ct, err := c.Exec(r.ctx, s.sql, s.args...); err != nil || ct.RowsAffected() != 1 {
					t.Errorf("%s: %v, %d rows, want UPDATE 1", s.sql, err, ct.RowsAffected())
				}
			}
			if got, want := r.read(t, id), fmt.Sprintf("%d|%s|%s|%s", r.orgA, tag, email, phone); got != want {
				t.Errorf("after same-tenant updates: %q, want %q", got, want)
			}

			// Every encrypted column written anew by CASE/COALESCE: moves.
			moved := tag + "-moved@example.org"
			r.p.remember(moved)
			ct, err := c.Exec(r.ctx, `UPDATE users SET org_id = $1, email = CASE WHEN id = $2 THEN $3 END, phone = COALESCE($4, NULL),
				ssn = NULL, birth_date = NULL, api_token = CASE WHEN id = $2 THEN $5::int8 ELSE NULL END WHERE id = $2`, r.orgB, id, moved, phone, int64(42))
			if err != nil || ct.RowsAffected() != 1 {
				t.Errorf("a move writing every column by CASE/COALESCE: %v", err)
			}
			if got, want := r.read(t, id), fmt.Sprintf("%d|%s|%s|%s", r.orgB, tag, moved, phone); got != want {
				t.Errorf("after the CASE move: %q, want %q", got, want)
			}

			// COALESCE keeping the column: a kept value, refused.
			if _, err := c.Exec(r.ctx, `UPDATE users SET org_id = $1, phone = COALESCE($2, phone), email = $3, ssn = NULL, birth_date = NULL, api_token = NULL WHERE id = $4`, r.orgA, nil, moved, id); !moveRefused(err) {
				t.Errorf("a move keeping phone by COALESCE: %v, want 0A000", err)
			}

			// In a transaction that added the value (REPEATABLE READ).
			tx, err := c.BeginTx(r.ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(r.ctx, `UPDATE users SET phone = NULL, email = NULL, api_token = NULL WHERE id = $1 AND org_id = $2`, id, r.orgB); err != nil {
				t.Fatal(err)
			}
			if ct, err := tx.Exec(r.ctx, `UPDATE users SET org_id = $1 WHERE id = $2`, r.orgA, id); err != nil || ct.RowsAffected() != 1 {
				t.Errorf("a move after the transaction cleared the values: %v", err)
			}
			if _, err := tx.Exec(r.ctx, `UPDATE users SET phone = $1 WHERE id = $2 AND org_id = $3`, phone, id, r.orgA); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(r.ctx, `UPDATE users SET org_id = $1 WHERE id = $2`, r.orgB, id); !moveRefused(err) {
				t.Errorf("a move after the transaction added a phone: %v, want 0A000", err)
			}
			tx.Rollback(r.ctx)
			if got, want := r.read(t, id), fmt.Sprintf("%d|%s|%s|%s", r.orgB, tag, moved, phone); got != want {
				t.Errorf("after the rolled back transaction: %q, want %q", got, want)
			}

			// An aborted transaction: 25P02.
			tx, err = c.Begin(r.ctx)
			if err != nil {
				t.Fatal(err)
			}
			tx.Exec(r.ctx, `SELECT 1/0`)
			if _, err := tx.Exec(r.ctx, `UPDATE users SET org_id = $1 WHERE id = $2`, r.orgA, id); sqlState(err) != "25P02" {
				t.Errorf("a move in an aborted transaction: %v, want 25P02", describePgErr(err))
			}
			tx.Rollback(r.ctx)

			// The check's own error is the client's; the session goes on.
			if _, err := c.Exec(r.ctx, `UPDATE users SET org_id = $1 WHERE nosuch = $2`, r.orgA, id); sqlState(err) != "42703" {
				t.Errorf("a move with a bad WHERE: %v, want 42703", describePgErr(err))
			}
			if _, err := c.Exec(r.ctx, `DISCARD ALL`); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(r.ctx, `UPDATE users SET org_id = $1 WHERE id = $2`, r.orgA, id); !moveRefused(err) {
				t.Errorf("a move after DISCARD ALL: %v, want 0A000", err)
			}

			// ON CONFLICT … SET org_id = EXCLUDED.org_id: the conflicting
			// row of another tenant stays as it is.
			ct, err = c.Exec(r.ctx, `INSERT INTO users (id, org_id, name) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET org_id = EXCLUDED.org_id, name = EXCLUDED.name`, id, r.orgA, tag+"-x")
			if err != nil || ct.RowsAffected() != 0 {
				t.Errorf("an upsert moving the row: %v, %d rows, want 0", err, ct.RowsAffected())
			}
			if got, want := r.read(t, id), fmt.Sprintf("%d|%s|%s|%s", r.orgB, tag, moved, phone); got != want {
				t.Errorf("after the upsert: %q, want %q", got, want)
			}

			// A Batch: a write that adds a value, then a move; the move's
			// check reads the pipeline's own write and refuses.
			if mode == pgx.QueryExecModeSimpleProtocol {
				return
			}
			other := r.insert(t, r.orgA, tag+"-b", tag+"-b@example.org")
			if _, err := c.Exec(r.ctx, `UPDATE users SET email = NULL WHERE id = $1 AND org_id = $2`, other, r.orgA); err != nil {
				t.Fatal(err)
			}
			var b pgx.Batch
			b.Queue(`UPDATE users SET phone = $1 WHERE id = $2`, phone, other)
			b.Queue(`UPDATE users SET org_id = $1 WHERE id = $2`, r.orgB, other)
			br := c.SendBatch(r.ctx, &b)
			_, err1 := br.Exec()
			_, err2 := br.Exec()
			br.Close()
			if err1 != nil || !moveRefused(err2) {
				t.Errorf("a Batch adding a phone then moving the row: %v / %v, want ok / 0A000", err1, err2)
			}
			if got := r.read(t, other); !strings.HasPrefix(got, fmt.Sprintf("%d|%s-b|", r.orgA, tag)) {
				t.Errorf("after the Batch: %q", got)
			}
		})
	}
}

// TestMoveReviewHoldsDisconnect: the client goes away while the check is
// out (its WHERE sleeps): the server session ends, pgveil goes on.
func TestMoveReviewHoldsDisconnect(t *testing.T) {
	r := newLookupReview(t, 381)
	su := superConn(t, r.ctx)
	for mi, mode := range reviewModes {
		t.Run(mode.String(), func(t *testing.T) {
			tag := fmt.Sprintf("mvrev-disc-%d", mi)
			email := tag + "@example.org"
			id := r.insert(t, r.orgA, tag, email)
			app := fmt.Sprintf("mvrev_disc_%d", mi)
			cfg, err := pgx.ParseConfig(r.p.url("application_name=" + app))
			if err != nil {
				t.Fatal(err)
			}
			cfg.DefaultQueryExecMode = mode
			c, err := pgx.ConnectConfig(r.ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			go c.Exec(r.ctx, `UPDATE users SET org_id = $1 WHERE id = $2 AND pg_sleep(3)::text = ''`, r.orgB, id)
			waitActive(t, r.ctx, su, app, "SELECT DISTINCT")
			c.PgConn().Conn().Close()
			waitBackendGone(t, r.ctx, su, app)
			r.wantKept(t, id, r.orgA, tag, email, "after the client went away")
		})
	}
}
