package integration

// Review 21b (the defect review 20c reported): while a table is
// migrating, a UNIQUE blind index compared only rows whose blind index is
// filled, and the table's own UNIQUE index on the plaintext column
// compared an envelope with plaintext. So a sign-up with an email a row
// not yet backfilled holds succeeded, `ON CONFLICT (email) DO NOTHING`
// inserted a second row, and the backfill then stopped on the blind
// index's UNIQUE index (exit 1) until someone removed the duplicate by
// hand. Now pgveil fills, in the same statement, the blind index of the
// legacy rows holding the value it writes (rewrite/unique.go), and the
// UNIQUE index decides as it does on a complete table.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const review21bPolicy = `tables:
  public.members:
    key_context: org
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase]
          unique: true
      phone:
        type: text
        blind_index:
          column: phone_bidx
  public.notes:
    columns:
      body:
        type: text
        blind_index:
          column: body_bidx
`

// want23505 fails unless err is the server's unique violation on the
// blind index, without the value (secret) in any field.
func want23505(t *testing.T, what string, err error, secret string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		t.Errorf("%s: got %v, want 23505 as before pgveil", what, err)
		return
	}
	if pe.ConstraintName != "members_email_bidx_idx" {
		t.Errorf("%s: constraint %q, want members_email_bidx_idx", what, pe.ConstraintName)
	}
	all := strings.ToLower(pe.Message + pe.Detail + pe.Hint + pe.Where)
	if strings.Contains(all, strings.ToLower(secret)) {
		t.Errorf("%s: the error carries the value", what)
	}
}

func TestReview21bUniqueWhileMigrating(t *testing.T) {
	ctx := testCtx(t, 4*time.Minute)
	e := newOpsEnv(t, "ops_review21b_uniq", review21bPolicy)
	su := e.conn(ctx)
	// Each UPDATE statement on members or notes is counted (a statement
	// trigger fires also for an UPDATE of no row): pgveil's fill is an
	// UPDATE, so the count shows whether a write paid for it.
	if _, err := su.Exec(ctx, `CREATE TABLE members (id serial PRIMARY KEY, org int8 NOT NULL, email text NOT NULL UNIQUE, phone text);
		INSERT INTO members (org, email, phone) SELECT 1, 'm' || g || '@x.io', '555' FROM generate_series(1, 100) g;
		CREATE TABLE notes (id serial PRIMARY KEY, body text);
		INSERT INTO notes (body) SELECT 'n' || g FROM generate_series(1, 10) g;
		CREATE TABLE upd_stmts (tbl text);
		CREATE FUNCTION count_upd() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO upd_stmts VALUES (TG_TABLE_NAME); RETURN NULL; END $$;
		CREATE TRIGGER members_upd AFTER UPDATE ON members FOR EACH STATEMENT EXECUTE FUNCTION count_upd();
		CREATE TRIGGER notes_upd AFTER UPDATE ON notes FOR EACH STATEMENT EXECUTE FUNCTION count_upd();`); err != nil {
		t.Fatal(err)
	}
	updates := func(tbl string) int {
		t.Helper()
		var n int
		if err := su.QueryRow(ctx, `SELECT count(*) FROM upd_stmts WHERE tbl = $1`, tbl).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	count := func(where string) int {
		t.Helper()
		var n int
		if err := su.QueryRow(ctx, `SELECT count(*) FROM members WHERE `+where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--prepare")
	if s := e.tableState(ctx, su, "public.members"); s != "migrating" {
		t.Fatalf("state %q, want migrating", s)
	}
	p := e.proxy(e.config(""))
	c := e.appConn(ctx, p)

	// The application moved to pgveil; the backfill has not run yet.
	const ins = `INSERT INTO members (org, email) VALUES (1, $1)`
	_, err := c.Exec(ctx, ins, "m5@x.io") // extended protocol
	want23505(t, "INSERT (extended) of an email a legacy row holds", err, "m5@x.io")
	_, err = c.Exec(ctx, ins, pgx.QueryExecModeSimpleProtocol, "m7@x.io")
	want23505(t, "INSERT (simple) of an email a legacy row holds", err, "m7@x.io")
	_, err = c.Exec(ctx, ins, pgx.QueryExecModeExec, "m28@x.io") // unnamed statement
	want23505(t, "INSERT (unnamed statement) of an email a legacy row holds", err, "m28@x.io")
	_, err = c.Exec(ctx, `INSERT INTO members (org, email) VALUES (1, 'M8@X.io')`) // a literal, normalised
	want23505(t, "INSERT of a literal a legacy row holds in another case", err, "m8@x.io")
	r := runPsql(t, ctx, e.appURL(p), []byte(`INSERT INTO members (org, email) VALUES (1, 'm9@x.io');`+"\n"), nil, "-v", "ON_ERROR_STOP=1")
	if r.Code != 3 || !strings.Contains(r.Stderr, `duplicate key value violates unique constraint "members_email_bidx_idx"`) {
		t.Errorf("psql INSERT of an email a legacy row holds: exit %d, stderr %q; want 23505", r.Code, r.Stderr)
	}
	if n := count(`email_bidx IS NULL`); n != 100 {
		t.Errorf("after the refused INSERTs %d legacy rows lack their blind index, want 100 (the fill rolls back with the statement)", n)
	}

	// ON CONFLICT DO NOTHING: 0 rows, also in another case (normalize:
	// lowercase), with RETURNING, in both protocols.
	for _, m := range []struct {
		mode     pgx.QueryExecMode
		vals     []string
		returned string
	}{
		{pgx.QueryExecModeCacheStatement, []string{"M6@x.io", "m10@x.io"}, "m11@x.io"},
		{pgx.QueryExecModeSimpleProtocol, []string{"M22@x.io", "m23@x.io"}, "m24@x.io"},
	} {
		mode := m.mode
		for _, v := range m.vals {
			tag, err := c.Exec(ctx, `INSERT INTO members (org, email) VALUES (1, $1) ON CONFLICT (email) DO NOTHING`, mode, v)
			if err != nil {
				t.Fatalf("DO NOTHING (%v): %v", mode, err)
			}
			if tag.RowsAffected() != 0 {
				t.Errorf("ON CONFLICT (email) DO NOTHING (%v) of an email a legacy row holds inserted %d row(s), want 0", mode, tag.RowsAffected())
			}
		}
		rows, err := c.Query(ctx, `INSERT INTO members (org, email) VALUES (1, $1) ON CONFLICT DO NOTHING RETURNING id`, mode, m.returned)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		if rows.Close(); rows.Err() != nil || n != 0 {
			t.Errorf("DO NOTHING RETURNING (%v): %d rows, err %v; want 0 rows", mode, n, rows.Err())
		}
	}
	// Multi-row: each row for itself under DO NOTHING; a plain INSERT
	// fails as a whole.
	tag, err := c.Exec(ctx, `INSERT INTO members (org, email) VALUES (1, $1), (1, $2), (1, $3) ON CONFLICT DO NOTHING`, "m12@x.io", "new1@x.io", "M13@x.io")
	if err != nil || tag.RowsAffected() != 1 {
		t.Errorf("multi-row DO NOTHING with two legacy emails: %v, %d rows; want 1", err, tag.RowsAffected())
	}
	_, err = c.Exec(ctx, `INSERT INTO members (org, email) VALUES (1, $1), (1, $2)`, "new2@x.io", "m14@x.io")
	want23505(t, "multi-row INSERT with one legacy email", err, "m14@x.io")
	// A pipeline: each Execute is checked with its own parameters.
	b := &pgx.Batch{}
	for _, v := range []string{"m15@x.io", "new3@x.io", "M16@x.io"} {
		b.Queue(`INSERT INTO members (org, email) VALUES (1, $1) ON CONFLICT DO NOTHING`, v)
	}
	br := c.SendBatch(ctx, b)
	for i, want := range []int64{0, 1, 0} {
		tag, err := br.Exec()
		if err != nil || tag.RowsAffected() != want {
			t.Errorf("batch item %d: %v, %d rows; want %d", i, err, tag.RowsAffected(), want)
		}
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	// A value written through pgveil: its blind index holds it.
	if _, err := c.Exec(ctx, ins, "fresh@x.io"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(ctx, ins, "Fresh@x.io")
	want23505(t, "second INSERT of an email written through pgveil", err, "fresh@x.io")

	// DO UPDATE: a conflict with a backfilled row updates it, a new value
	// inserts; an email only a legacy row holds fails with 23505 (fail
	// closed: PostgreSQL would update the legacy row, which pgveil cannot
	// do in the same statement; no second row either way).
	const upsert = `INSERT INTO members (org, email, phone) VALUES (1, $1, $2) ON CONFLICT (email) DO UPDATE SET phone = EXCLUDED.phone`
	if tag, err := c.Exec(ctx, upsert, "fresh@x.io", "556"); err != nil || tag.RowsAffected() != 1 {
		t.Errorf("DO UPDATE of a row written through pgveil: %v, %d rows", err, tag.RowsAffected())
	}
	if tag, err := c.Exec(ctx, upsert, "new4@x.io", "557"); err != nil || tag.RowsAffected() != 1 {
		t.Errorf("DO UPDATE of a new email: %v, %d rows", err, tag.RowsAffected())
	}
	_, err = c.Exec(ctx, upsert, "M17@x.io", "558")
	want23505(t, "DO UPDATE of an email a legacy row holds", err, "m17@x.io")

	// UPDATE: to an email another legacy row holds fails; to its own
	// (an ORM saving every column of a legacy row) or a new one passes.
	const upd = `UPDATE members SET email = $1 WHERE org = 1 AND id = $2`
	_, err = c.Exec(ctx, upd, "m18@x.io", 1)
	want23505(t, "UPDATE to an email another legacy row holds", err, "m18@x.io")
	for _, x := range []struct {
		v  string
		id int
	}{{"m19@x.io", 19}, {"M20@x.io", 20}, {"moved21@x.io", 21}} {
		if tag, err := c.Exec(ctx, upd, x.v, x.id); err != nil || tag.RowsAffected() != 1 {
			t.Errorf("UPDATE of row %d: %v, %d rows; want 1", x.id, err, tag.RowsAffected())
		}
	}

	// The same without the tenant: pgveil looks it up first (lookup.go).
	const updLookup = `UPDATE members SET email = $1 WHERE id = $2`
	_, err = c.Exec(ctx, updLookup, "m26@x.io", 25)
	want23505(t, "UPDATE (tenant looked up) to an email another legacy row holds", err, "m26@x.io")
	if tag, err := c.Exec(ctx, updLookup, "m27@x.io", 27); err != nil || tag.RowsAffected() != 1 {
		t.Errorf("UPDATE (tenant looked up) of a legacy row to its own email: %v, %d rows; want 1", err, tag.RowsAffected())
	}
	_, err = c.Exec(ctx, updLookup, pgx.QueryExecModeSimpleProtocol, "m26@x.io", 25)
	want23505(t, "UPDATE (simple, tenant looked up) to an email another legacy row holds", err, "m26@x.io")

	// Refused: COPY FROM (each row cannot be checked).
	if _, err := c.PgConn().CopyFrom(ctx, strings.NewReader("1\tcopy@x.io\n"), `COPY members (org, email) FROM STDIN`); err == nil ||
		!strings.Contains(err.Error(), "0A000") || !strings.Contains(err.Error(), "public.members.email") {
		t.Errorf("COPY FROM into a migrating table with a unique blind index: got %v, want a 0A000 refusal naming the column", err)
	}

	// A non-unique blind index pays nothing: no UPDATE statement for an
	// INSERT into notes, a duplicate phone is fine.
	before := updates("notes")
	if _, err := c.Exec(ctx, `INSERT INTO notes (body) VALUES ($1)`, "n3"); err != nil {
		t.Fatal(err)
	}
	if n := updates("notes"); n != before {
		t.Errorf("INSERT into a table whose blind index is not unique ran %d UPDATE statement(s), want none", n-before)
	}
	if _, err := c.Exec(ctx, `INSERT INTO members (org, email, phone) VALUES (1, $1, $2)`, "new5@x.io", "555"); err != nil {
		t.Errorf("a duplicate of a non-unique blind index: %v", err)
	}

	// A legacy row being deleted: the check waits for the deleting
	// transaction, as PostgreSQL's own index check would, and then finds
	// the row gone (commit: the INSERT passes) or there (rollback: 23505).
	for _, x := range []struct {
		id     int
		v, end string
	}{{30, "m30@x.io", "COMMIT"}, {31, "m31@x.io", "ROLLBACK"}} {
		d := e.conn(ctx)
		if _, err := d.Exec(ctx, `BEGIN`); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Exec(ctx, `DELETE FROM members WHERE id = $1`, x.id); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := c.Exec(ctx, ins, x.v)
			done <- err
		}()
		waitFor(t, 30*time.Second, "the INSERT to wait for the deleting transaction", func() (bool, error) {
			var n int
			err := su.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
			return n == 1, err
		})
		if _, err := d.Exec(ctx, x.end); err != nil {
			t.Fatal(err)
		}
		err := <-done
		if x.end == "COMMIT" && err != nil {
			t.Errorf("INSERT of the email of a legacy row deleted meanwhile: %v, want success", err)
		}
		if x.end == "ROLLBACK" {
			want23505(t, "INSERT of the email of a legacy row whose DELETE rolled back", err, x.v)
		}
	}

	// No duplicate was made: the backfill completes.
	// Through pgveil a lookup sees legacy rows and sealed ones alike.
	again := []string{"m5@x.io", "m6@x.io", "m7@x.io", "m8@x.io", "m9@x.io", "m10@x.io", "m11@x.io", "m12@x.io", "m13@x.io", "m14@x.io",
		"m15@x.io", "m16@x.io", "m17@x.io", "m18@x.io", "m19@x.io", "m20@x.io", "m22@x.io", "m26@x.io", "m27@x.io", "m28@x.io", "m23@x.io", "m24@x.io", "m30@x.io", "m31@x.io",
		"new1@x.io", "new3@x.io", "fresh@x.io", "new4@x.io"}
	holders := func(when string) {
		t.Helper()
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM members WHERE email = ANY($1)`, again).Scan(&n); err != nil || n != len(again) {
			t.Errorf("%s: %d rows hold the %d emails written again (%v), want one each", when, n, len(again), err)
		}
	}
	holders("before the backfill")
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	if s := e.tableState(ctx, su, "public.members"); s != "complete" {
		t.Fatalf("state %q after the backfill, want complete", s)
	}
	holders("after the backfill")

	// A complete table: the plain path, no UPDATE statement; a statement
	// prepared while the table migrated is prepared anew without the fill.
	c2 := e.appConn(ctx, p) // a new session: no statement prepared while migrating
	defer c2.Close(context.Background())
	before = updates("members")
	if _, err := c.Exec(ctx, ins, "late2@x.io"); err != nil {
		t.Fatalf("a statement prepared while the table migrated, after the backfill: %v", err)
	}
	if _, err := c2.Exec(ctx, ins, "late@x.io"); err != nil {
		t.Fatal(err)
	}
	_, err = c2.Exec(ctx, ins, "m5@x.io")
	want23505(t, "INSERT of a backfilled email on a complete table", err, "m5@x.io")
	tag, err = c2.Exec(ctx, `INSERT INTO members (org, email) VALUES (1, $1) ON CONFLICT (email) DO NOTHING`, "M6@x.io")
	if err != nil || tag.RowsAffected() != 0 {
		t.Errorf("DO NOTHING on a complete table: %v, %d rows", err, tag.RowsAffected())
	}
	if n := updates("members"); n != before {
		t.Errorf("INSERTs into a complete table ran %d UPDATE statement(s), want none", n-before)
	}
}

// TestReview21bLegacyDuplicates: two rows present before pgveil whose
// values are equal after normalisation still stop the backfill, naming
// the index and the rows' primary keys; a write through pgveil of that
// value meets the same 23505.
func TestReview21bLegacyDuplicates(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_review21b_dups", `tables:
  public.members:
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase]
          unique: true
`)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `CREATE TABLE members (id int PRIMARY KEY, email text NOT NULL UNIQUE);
		INSERT INTO members VALUES (1, 'a@x.io'), (2, 'b@x.io'), (3, 'B@x.io')`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--prepare")
	p := e.proxy(e.config(""))
	c := e.appConn(ctx, p)
	_, err := c.Exec(ctx, `INSERT INTO members (id, email) VALUES (4, $1)`, "b@X.io")
	want23505(t, "INSERT of a value two legacy rows hold", err, "b@x.io")
	r := e.run(ctx, 1, "migrate", "-c", cfg, "--apply")
	out := r.stdout + r.stderr
	for _, w := range []string{"members_email_bidx_idx", "two rows hold values that are equal after the column's normalisation", "SELECT id FROM public.members"} {
		if !strings.Contains(out, w) {
			t.Errorf("backfill over legacy duplicates: output lacks %q:\n%s", w, tail(out, 20))
		}
	}
	if strings.Contains(strings.ToLower(out), "b@x.io") {
		t.Error("the backfill's message carries the value")
	}
}
