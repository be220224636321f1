package integration

// Review 16 (SQL that drivers and ORMs generate around the application's
// statement; WHERE CURRENT OF; partitions; COPY binary; LISTEN/NOTIFY and
// large objects), end to end; planner side and the full list:
// rewrite/review16_test.go.
//   TestEncReview16FoundMigrationDistinct HIGH (wrong rows matched): on a
//     table in migration mode (pgveil migrate --apply running), a lookup
//     compares the blind index and, for rows not yet backfilled (blind
//     index NULL), their plaintext:
//       email OP v → (email_bidx OP i OR (email_bidx IS NULL AND plain OP p))
//     The first branch also runs on rows not yet backfilled, where the
//     index is NULL. For IS NOT DISTINCT FROM NULL (Prisma's and
//     SQLAlchemy's null-safe equality, ActiveRecord's upsert_all) it is
//     true on every such row: pgveil matched every row not yet backfilled
//     (PostgreSQL 15 on the plaintext: only rows whose email is NULL), so
//     a DELETE … WHERE email IS NOT DISTINCT FROM $1 with a NULL deleted
//     them. IS DISTINCT FROM 'a' matched the not-backfilled row holding
//     'a'. Between two columns (x.email IS NOT DISTINCT FROM y.email, a
//     self-join; upsert_all's users.email IS NOT DISTINCT FROM
//     excluded.email) two rows not yet backfilled always matched, whatever
//     their values. And = / <> / IN on a not-backfilled row that does not
//     match gave NULL where PostgreSQL gives false, so NOT (email = $1)
//     and NOT (email IN (…)) missed the rows PostgreSQL returns (MEDIUM).
//     email <> ALL($1) repeated "= ANY" on the plaintext: it matched the
//     not-backfilled rows listed, exactly those PostgreSQL leaves out
//     (a DELETE … WHERE email <> ALL($1) deleted the rows to keep).
//   TestEncReview16FoundReloadOldSession HIGH (plaintext reaches the
//     server): SIGHUP, which docs/LIMITS.md gives as the way to make pgveil
//     see a partition, child or view created directly in the database,
//     started a new engine (with a new catalog snapshot) for new sessions
//     only; a session opened before kept its engine's old snapshot until
//     it closed, so through an application's pooled connections a
//     statement naming the new partition kept passing as a plain table's.
//
// Both fixed in the commits after the review (rewrite/review16_test.go
// says where).
//
// Attacks that held end to end: TestEncReview16Holds.

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestEncReview16FoundMigrationDistinct: rows of contacts not yet
// backfilled (plaintext, no blind index: r16-a, r16-b and a NULL email)
// and one written through pgveil (r16-c), with contacts in migration
// mode. Each count is PostgreSQL's on the plaintext of these four rows.
func TestEncReview16FoundMigrationDistinct(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	const org = 9161
	p := startEncProxy(t, org)
	const a, b, c = "r16-a@example.org", "r16-b@example.org", "r16-c@example.org"
	p.remember(a, b, c)
	su := superConn(t, ctx)
	setState := rev15SetState(t, ctx, su)
	t.Cleanup(func() {
		if _, err := su.Exec(context.Background(), `DELETE FROM pgveil.tables WHERE table_name = 'public.contacts'; SELECT pg_notify('pgveil_tables', 'public.contacts')`); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	conn := connectPgx(t, ctx, p.url())
	// contacts.note is encrypted too: rows are told apart by id.
	label := map[int64]string{}
	var id int64
	if err := conn.QueryRow(ctx, `INSERT INTO contacts (org_id, email) VALUES ($1, $2) RETURNING id`, org, c).Scan(&id); err != nil {
		t.Fatal(err)
	}
	label[id] = "c"
	for _, r := range []struct {
		name  string
		email any
	}{{"a", a}, {"b", b}, {"n", nil}} {
		if err := su.QueryRow(ctx, `INSERT INTO contacts (org_id, email) VALUES ($1, convert_to($2, 'UTF8')) RETURNING id`, org, r.email).Scan(&id); err != nil {
			t.Fatal(err)
		}
		label[id] = r.name
	}
	setState("migrating")
	waitFor(t, 20*time.Second, "pgveil to plan contacts in migration mode", func() (bool, error) {
		var n int64
		err := conn.QueryRow(ctx, `SELECT count(*) FROM contacts WHERE org_id = 9161 AND email = '`+a+`'`, pgx.QueryExecModeSimpleProtocol).Scan(&n)
		return n == 1, err
	})
	notes := func(where string, args ...any) string {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT id FROM contacts WHERE org_id = 9161 AND (`+where+`)`, args...)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		var got []string
		for _, id := range ids {
			got = append(got, label[id])
		}
		slices.Sort(got)
		return strings.Join(got, ",")
	}
	var null *string
	for _, c := range []struct {
		where string
		args  []any
		want  string
	}{
		{`email IS NOT DISTINCT FROM $1`, []any{null}, "n"},
		{`email IS NOT DISTINCT FROM $1`, []any{a}, "a"},
		{`email IS DISTINCT FROM $1`, []any{a}, "b,c,n"},
		{`email IS DISTINCT FROM $1`, []any{null}, "a,b,c"},
		{`NOT (email = $1)`, []any{a}, "b,c"},
		{`NOT (email <> $1)`, []any{b}, "b"},
		{`NOT ((email) = ($1))`, []any{a}, "b,c"},
		{`NOT (email IN ($1, $2))`, []any{a, c}, "b"},
		{`(email = $1) IS FALSE`, []any{c}, "a,b"},
		{`NOT (email = ANY($1))`, []any{[]string{b}}, "a,c"},
		{`email <> ALL($1)`, []any{[]string{a}}, "b,c"},
		{`email <> ALL(ARRAY[$1, $2])`, []any{a, b}, "c"},
		{`email IS NOT DISTINCT FROM NULL`, nil, "n"},
		{`email IS DISTINCT FROM '` + b + `'`, nil, "a,c,n"},
	} {
		if got := notes(c.where, c.args...); got != c.want {
			t.Errorf("WHERE %s %v: rows %q, PostgreSQL on the plaintext %q", c.where, c.args, got, c.want)
		}
	}
	// Two encrypted columns: rows not yet backfilled cannot be compared
	// with a blind index (documented: such comparisons match backfilled
	// rows only), but must never match rows whose values differ.
	var n int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM contacts x JOIN contacts y ON x.email IS NOT DISTINCT FROM y.email
WHERE x.org_id = 9161 AND y.org_id = 9161 AND x.id <> y.id`).Scan(&n); err != nil || n != 0 {
		t.Errorf("self-join on email IS NOT DISTINCT FROM: %d pairs, %v; PostgreSQL on the plaintext: 0 (every email differs)", n, err)
	}
	// ActiveRecord's upsert_all touches updated_at only when a value
	// changed: here note says which branch ran. a's email becomes NULL:
	// PostgreSQL takes the ELSE branch.
	for id, l := range label {
		if l != "a" {
			continue
		}
		if _, err := conn.Exec(ctx, `INSERT INTO "contacts" ("id","org_id","email","note") VALUES ($1, 9161, NULL, 'x')
ON CONFLICT ("id") DO UPDATE SET "note"=(CASE WHEN ("contacts"."email" IS NOT DISTINCT FROM excluded."email") THEN 'kept' ELSE 'changed' END),"email"=excluded."email" RETURNING "id"`, id); err != nil {
			t.Fatal(err)
		}
		var note string
		if err := conn.QueryRow(ctx, `SELECT note FROM contacts WHERE id = $1`, id).Scan(&note); err != nil || note != "changed" {
			t.Errorf("upsert_all's IS NOT DISTINCT FROM excluded on a row not yet backfilled: note %q, %v; PostgreSQL: changed", note, err)
		}
	}
}

// rev16Partitioned creates r16_events, partitioned by org_id with one
// partition (r16_events_a, orgs[0]), and starts pgveil with it configured.
func rev16Partitioned(t *testing.T, ctx context.Context, su *pgx.Conn, orgs ...int64) *encProxy {
	t.Helper()
	if _, err := su.Exec(ctx, `DROP TABLE IF EXISTS r16_events CASCADE;
CREATE TABLE r16_events (id int8, org_id int8 NOT NULL, email bytea, email_bidx bytea, note text) PARTITION BY LIST (org_id);
CREATE TABLE r16_events_a PARTITION OF r16_events FOR VALUES IN (`+strconv.FormatInt(orgs[0], 10)+`);
GRANT SELECT, INSERT, UPDATE, DELETE ON r16_events, r16_events_a TO scram_user`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { su.Exec(context.Background(), `DROP TABLE IF EXISTS r16_events CASCADE`) })
	return startEncProxyPolicy(t, "  level: debug\n  format: json\n", encPolicy+`  public.r16_events:
    key_context: org_id
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase, trim]
`, orgs...)
}

// TestEncReview16FoundReloadOldSession: a partition created directly in
// the database is known to pgveil from its next catalog snapshot, "after
// DDL through pgveil, SIGHUP or a restart" (docs/LIMITS.md). SIGHUP
// started a new engine with a new snapshot for new sessions only: a
// session open before it (every pooled connection of an application)
// kept the old engine's snapshot for good, so a statement naming the new
// partition still passed as a plain table's, its values in plaintext.
func TestEncReview16FoundReloadOldSession(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	su := superConn(t, ctx)
	p := rev16Partitioned(t, ctx, su, 9164, 9165)
	old := connectPgx(t, ctx, p.url())
	const email = "r16-reload@example.org"
	p.remember(email)
	if _, err := old.Exec(ctx, `INSERT INTO r16_events (id, org_id, email) VALUES (1, 9164, $1)`, email); err != nil {
		t.Fatal(err)
	}
	if _, err := su.Exec(ctx, `CREATE TABLE r16_events_c PARTITION OF r16_events FOR VALUES IN (9165); GRANT SELECT, INSERT, UPDATE, DELETE ON r16_events_c TO scram_user`); err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	refused := func(c *pgx.Conn) bool {
		_, err := c.Exec(ctx, `SELECT note FROM r16_events_c`)
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "0A000"
	}
	waitFor(t, 20*time.Second, "a new session to refuse the new partition's name", func() (bool, error) {
		c, err := pgx.Connect(ctx, p.url())
		if err != nil {
			return false, err
		}
		defer c.Close(ctx)
		return refused(c), nil
	})
	if !refused(old) {
		t.Error("a session opened before SIGHUP still plans the new partition as a plain table (a write through it would store plaintext)")
	}
	// Its prepared statements are checked again too (review 15).
	if _, err := old.Exec(ctx, `SELECT id FROM r16_events_c WHERE id = $1`, 1); err == nil {
		t.Error("a session opened before SIGHUP: a statement with parameters naming the new partition passed")
	}
}

// TestEncReview16Holds: attacks that held end to end.
func TestEncReview16Holds(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 2*time.Minute)
	const orgA, orgB = 9162, 9163
	su := superConn(t, ctx)
	p := rev16Partitioned(t, ctx, su, orgA, orgB)
	const e1, e2, e3, e4 = "r16-part@example.org", "r16-part2@example.org", "r16-cur@example.org", "r16-cur2@example.org"
	p.remember(e1, e2, e3, e4)
	conn := connectPgx(t, ctx, p.url())
	atRest := func(what, q string, args ...any) {
		t.Helper()
		var raw []byte
		if err := su.QueryRow(ctx, q, args...).Scan(&raw); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for _, s := range []string{e1, e2, e3, e4} {
			if strings.Contains(string(raw), s) {
				t.Errorf("%s: plaintext %q stored", what, s)
			}
		}
	}

	t.Run("partition created directly", func(t *testing.T) {
		// A partition the snapshot does not know: rows written through the
		// configured table are routed to it sealed and found by lookups.
		if _, err := su.Exec(ctx, `CREATE TABLE r16_events_b PARTITION OF r16_events FOR VALUES IN (9163); GRANT SELECT, INSERT, UPDATE, DELETE ON r16_events_b TO scram_user`); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO r16_events (id, org_id, email, note) VALUES (1, $1, $2, 'b')`, orgB, e1); err != nil {
			t.Fatal(err)
		}
		atRest("r16_events_b.email", `SELECT email FROM r16_events_b WHERE id = 1`)
		if _, err := conn.Exec(ctx, `UPDATE r16_events SET email = $1 WHERE email = $2`, e2, strings.ToUpper(e1)); err != nil {
			t.Fatal(err)
		}
		var got, note string
		if err := conn.QueryRow(ctx, `SELECT email, note FROM r16_events WHERE email = $1`, e2).Scan(&got, &note); err != nil || got != e2 || note != "b" {
			t.Fatalf("lookup through the parent: %q %q %v", got, note, err)
		}
		atRest("r16_events_b.email after UPDATE", `SELECT email FROM r16_events_b WHERE id = 1`)
		// COPY binary (pgx's CopyFrom) into the parent.
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"r16_events"}, []string{"id", "org_id", "email", "note"},
			pgx.CopyFromRows([][]any{{int64(2), int64(orgB), e3, "copy"}})); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, `SELECT note FROM r16_events WHERE email = $1`, e3).Scan(&note); err != nil || note != "copy" {
			t.Fatalf("lookup after a binary COPY: %q %v", note, err)
		}
		atRest("r16_events_b.email after COPY", `SELECT email FROM r16_events_b WHERE id = 2`)
		// Once pgveil reads its catalog again the partition's name is refused.
		if err := p.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "pgveil to refuse the partition's name (new session)", func() (bool, error) {
			c2, err := pgx.Connect(ctx, p.url())
			if err != nil {
				return false, err
			}
			defer c2.Close(ctx)
			_, err = c2.Exec(ctx, `SELECT note FROM r16_events_b`)
			var pe *pgconn.PgError
			return errors.As(err, &pe) && pe.Code == "0A000", nil
		})
	})

	t.Run("where current of", func(t *testing.T) {
		if _, err := conn.Exec(ctx, `INSERT INTO contacts (org_id, email, note) VALUES ($1, $2, 'cur')`, orgA, e3); err != nil {
			t.Fatal(err)
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `DECLARE c CURSOR FOR SELECT id, email FROM contacts WHERE email = $1 FOR UPDATE`, e3); err != nil {
			t.Fatal(err)
		}
		var id int64
		var got string
		if err := tx.QueryRow(ctx, `FETCH 1 FROM c`).Scan(&id, &got); err != nil || got != e3 {
			t.Fatalf("FETCH: %q %v", got, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE contacts SET email = $1 WHERE CURRENT OF c`, e4); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM contacts WHERE email = $1 AND id = $2`, e4, id).Scan(&n); err != nil || n != 1 {
			t.Fatalf("row after UPDATE … WHERE CURRENT OF: %d %v", n, err)
		}
		atRest("contacts.email after CURRENT OF", `SELECT email FROM contacts WHERE id = $1`, id)
		// users: a cursor FOR UPDATE (tenant appended), an UPDATE that
		// writes the tenant and every encrypted column, a DELETE returning
		// the value.
		var uid int64
		if err := conn.QueryRow(ctx, `INSERT INTO users (org_id, email, name) VALUES ($1, $2, 'cur') RETURNING id`, orgA, e1).Scan(&uid); err != nil {
			t.Fatal(err)
		}
		tx, err = conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `DECLARE u CURSOR FOR SELECT id, email FROM users WHERE email = $1 FOR UPDATE`, e1); err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRow(ctx, `FETCH 1 FROM u`).Scan(&id, &got); err != nil || got != e1 || id != uid {
			t.Fatalf("FETCH users: %d %q %v", id, got, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET org_id = $1, email = $2, phone = $3, ssn = $4, birth_date = $5, api_token = $6 WHERE CURRENT OF u`,
			orgB, e2, nil, nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET phone = $1 WHERE CURRENT OF u`, "x"); err == nil {
			t.Fatal("UPDATE … WHERE CURRENT OF without the tenant: planned")
		}
		tx.Rollback(ctx)
		tx, err = conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `DECLARE u CURSOR FOR SELECT id FROM users WHERE id = $1 FOR UPDATE`, uid); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `FETCH 1 FROM u`); err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRow(ctx, `DELETE FROM users WHERE CURRENT OF u RETURNING email`).Scan(&got); err != nil || got != e1 {
			t.Fatalf("DELETE … WHERE CURRENT OF … RETURNING email: %q %v", got, err)
		}
	})

	t.Run("notify", func(t *testing.T) {
		// A payload built from the column is refused; a notification passes.
		if _, err := conn.Exec(ctx, `SELECT pg_notify('r16', email) FROM contacts`); err == nil {
			t.Error("pg_notify of an encrypted column: planned")
		}
		listener := connectPgx(t, ctx, p.url())
		if _, err := listener.Exec(ctx, `LISTEN r16`); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `SELECT pg_notify('r16', 'hello') FROM contacts WHERE email = $1`, e4); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n, err := listener.WaitForNotification(wctx)
		if err != nil || n.Channel != "r16" || n.Payload != "hello" {
			t.Fatalf("notification through pgveil: %+v %v", n, err)
		}
	})
}
