package integration

// Review 21f (an upsert by email of a row not yet backfilled gets 23505
// while the table migrates, where PostgreSQL would update the row). The
// fix it designs runs pgveil's fill of a legacy row's blind index as a
// statement of its own before the client's upsert, and may leave that
// fill committed on its own (autocommit, or a statement that fails after
// it). That is harmless only if the index the fill writes is exactly the
// one the backfill computes, and if the backfill still seals a legacy row
// whose blind index is already filled. ON CONFLICT … DO NOTHING leaves
// such rows today (rewrite/unique.go); this test pins both properties
// the design relies on. The upsert itself still fails closed with 23505
// (TestReview21bUniqueWhileMigrating).

import (
	"bytes"
	"testing"
	"time"

	"github.com/pgveil/pgveil/keysource/envelope"
)

func TestReview21fFilledLegacyRowsBackfilled(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	e := newOpsEnv(t, "ops_review21f_fill", review21bPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `CREATE TABLE members (id serial PRIMARY KEY, org int8 NOT NULL, email text NOT NULL UNIQUE, phone text);
		INSERT INTO members (org, email, phone) SELECT 1, 'm' || g || '@x.io', '555' FROM generate_series(1, 20) g;
		CREATE TABLE notes (id serial PRIMARY KEY, body text)`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--prepare")
	if s := e.tableState(ctx, su, "public.members"); s != "migrating" {
		t.Fatalf("state %q, want migrating", s)
	}
	p := e.proxy(e.config(""))
	c := e.appConn(ctx, p)

	// DO NOTHING of a legacy row's email (another case: normalised) fills
	// that row's blind index and inserts nothing; the row stays plaintext.
	tag, err := c.Exec(ctx, `INSERT INTO members (org, email) VALUES (1, $1) ON CONFLICT (email) DO NOTHING`, "M3@x.io")
	if err != nil || tag.RowsAffected() != 0 {
		t.Fatalf("DO NOTHING of a legacy email: %v, %d rows; want 0 rows", err, tag.RowsAffected())
	}
	bidx := func() (filled []byte, sealed bool) {
		t.Helper()
		if err := su.QueryRow(ctx, `SELECT email_bidx, `+envelope.SealedSQL("email", true)+` FROM members WHERE id = 3`).Scan(&filled, &sealed); err != nil {
			t.Fatal(err)
		}
		return filled, sealed
	}
	filled, sealed := bidx()
	if filled == nil || sealed {
		t.Fatalf("after DO NOTHING the legacy row has blind index %v (want filled) and sealed %v (want plaintext)", filled != nil, sealed)
	}

	// The backfill seals that row although its blind index is filled, and
	// computes the very index the fill wrote.
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	if s := e.tableState(ctx, su, "public.members"); s != "complete" {
		t.Fatalf("state %q after the backfill, want complete", s)
	}
	after, sealed := bidx()
	if !sealed {
		t.Error("the backfill left the legacy row whose blind index pgveil had filled in plaintext")
	}
	if !bytes.Equal(after, filled) {
		t.Error("the backfill wrote another blind index than the one pgveil's fill computed for the same value")
	}
	var plain, rows int
	if err := su.QueryRow(ctx, `SELECT count(*) FILTER (WHERE NOT `+envelope.SealedSQL("email", true)+` OR email_bidx IS NULL), count(*) FROM members`).Scan(&plain, &rows); err != nil {
		t.Fatal(err)
	}
	if plain != 0 || rows != 20 {
		t.Errorf("after the backfill %d of %d rows are unsealed or unindexed; want 0 of 20", plain, rows)
	}
	// Through pgveil the row is found by its email, once.
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM members WHERE email = $1`, "m3@x.io").Scan(&n); err != nil || n != 1 {
		t.Errorf("lookup of the filled row after the backfill: %d rows, %v; want 1", n, err)
	}
}
