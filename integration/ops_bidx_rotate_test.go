package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The blind-index key rotation of docs/KEYS.md, step by step, on a live
// table: add the next column, reload with blind_index.next (every write
// fills both columns), backfill with `pgveil migrate --apply` while the
// application writes, switch lookups to the new column, drop the old one.

const peopleSchema = `CREATE TABLE people (
  id bigserial PRIMARY KEY,
  org_id int8 NOT NULL,
  email bytea,
  email_bidx bytea
);
CREATE UNIQUE INDEX people_email_bidx_idx ON people (email_bidx);`

// peoplePolicy is the policy at each step of the rotation: before it
// (index "email_v1" in email_bidx), during it (next: "email_v2" in
// email_bidx2) and after the switch.
func peoplePolicy(step string) string {
	bidx := `{column: email_bidx, key: email_v1, normalize: [lowercase], unique: true}`
	switch step {
	case "dual":
		bidx = `{column: email_bidx, key: email_v1, normalize: [lowercase], unique: true, next: {column: email_bidx2, key: email_v2}}`
	case "swapped":
		bidx = `{column: email_bidx2, key: email_v2, normalize: [lowercase], unique: true, next: {column: email_bidx, key: email_v1, normalize: [lowercase]}}`
	case "switched":
		bidx = `{column: email_bidx2, key: email_v2, normalize: [lowercase], unique: true}`
	}
	return `tables:
  public.people:
    key_context: org_id
    columns:
      email:
        type: text
        blind_index: ` + bidx + "\n"
}

const peopleSeed = 4000

func seedEmail(id int64) string { return fmt.Sprintf("Seed%d@Example.org", id) }

// peopleWriter is the application during the rotation: new sessions that
// insert, update, upsert and COPY through pgveil.
type peopleWriter struct {
	mu     sync.Mutex
	emails map[int64]string // id → email, for the rows it inserted or changed
	copied []string         // emails of rows it wrote by COPY (ids unknown)
	writes int
	stop   chan struct{}
	done   chan error
}

func startPeopleWriter(ctx context.Context, url string) *peopleWriter {
	w := &peopleWriter{emails: map[int64]string{}, stop: make(chan struct{}), done: make(chan error, 1)}
	go func() { w.done <- w.run(ctx, url) }()
	return w
}

func (w *peopleWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes
}

func (w *peopleWriter) run(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; ; i++ {
		select {
		case <-w.stop:
			return nil
		default:
		}
		org := int64(1 + i%3)
		switch i % 4 {
		case 0: // INSERT, extended protocol
			email := fmt.Sprintf("New%d@Example.org", i)
			var id int64
			if err := conn.QueryRow(ctx, `INSERT INTO people (org_id, email) VALUES ($1, $2) RETURNING id`, org, email).Scan(&id); err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			w.record(id, email)
		case 1: // UPDATE of a seeded row, simple protocol
			id := 1 + rng.Int64N(peopleSeed)
			email := fmt.Sprintf("Changed%d-%d@Example.org", id, i)
			if _, err := conn.Exec(ctx, `UPDATE people SET email = $1 WHERE org_id = $2 AND id = $3`, pgx.QueryExecModeSimpleProtocol, email, 1+id%3, id); err != nil {
				return fmt.Errorf("update: %w", err)
			}
			w.record(id, email)
		case 2: // upsert: the same address in other letters replaces a row's email
			id := 1 + rng.Int64N(peopleSeed)
			w.mu.Lock()
			cur, ok := w.emails[id]
			w.mu.Unlock()
			if !ok && id%100 == 0 {
				continue // seeded without an email: nothing to conflict with
			}
			if !ok {
				cur = seedEmail(id)
			}
			email := strings.ToUpper(cur[:1]) + strings.ToLower(cur[1:])
			if i%8 == 2 {
				email = strings.ToUpper(cur)
			}
			var got int64
			if err := conn.QueryRow(ctx, `INSERT INTO people (org_id, email) VALUES ($1, $2)
				ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING id`, 1+id%3, email).Scan(&got); err != nil {
				return fmt.Errorf("upsert: %w", err)
			}
			if got != id {
				return fmt.Errorf("upsert of %q hit row %d, want %d", email, got, id)
			}
			w.record(id, email)
		case 3: // COPY FROM STDIN, text format
			email := fmt.Sprintf("Copied%d@Example.org", i)
			if _, err := conn.PgConn().CopyFrom(ctx, strings.NewReader(fmt.Sprintf("%d\t%s\n", org, email)), `COPY people (org_id, email) FROM STDIN`); err != nil {
				return fmt.Errorf("copy: %w", err)
			}
			w.mu.Lock()
			w.copied = append(w.copied, email)
			w.writes++
			w.mu.Unlock()
		}
	}
}

func (w *peopleWriter) record(id int64, email string) {
	w.mu.Lock()
	w.emails[id] = email
	w.writes++
	w.mu.Unlock()
}

func (w *peopleWriter) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	if err := <-w.done; err != nil {
		t.Fatalf("application writer: %v", err)
	}
	t.Logf("application wrote %d times through pgveil", w.writes)
}

func TestOpsBlindIndexRotation(t *testing.T) {
	ctx := testCtx(t, 4*time.Minute)
	e := newOpsEnv(t, "ops_bidx_rotate", peoplePolicy("before"))
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, peopleSchema); err != nil {
		t.Fatal(err)
	}
	p := e.proxy(e.config(""))

	// Rows written under the first index key.
	app := e.appConn(ctx, p)
	b := &pgx.Batch{}
	for id := int64(1); id <= peopleSeed; id++ {
		if id%100 == 0 {
			b.Queue(`INSERT INTO people (id, org_id, email) VALUES ($1, $2, NULL)`, id, 1+id%3)
			continue
		}
		b.Queue(`INSERT INTO people (id, org_id, email) VALUES ($1, $2, $3)`, id, 1+id%3, seedEmail(id))
	}
	if err := app.SendBatch(ctx, b).Close(); err != nil {
		t.Fatalf("seeding through pgveil: %v", err)
	}
	if _, err := su.Exec(ctx, fmt.Sprintf(`SELECT setval('people_id_seq', %d)`, peopleSeed)); err != nil {
		t.Fatal(err)
	}
	// A session of the application's pool that outlives the reload.
	old := e.appConn(ctx, p)
	if _, err := old.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}

	// The next index in the policy without its column: check says what to run.
	e.policy = peoplePolicy("dual")
	dual := e.writeConfig("dual.yaml", e.config(""))
	r := e.run(ctx, 1, "check", "-c", dual, "--format", "json")
	var rep checkJSON
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("check --format json: %v\n%s", err, r.stdout)
	}
	var fix []string
	for _, f := range rep.Findings {
		if f.Code == "bidx_missing" && f.Column == "email_bidx2" {
			fix = f.Fix
		}
	}
	if len(fix) != 2 || !strings.Contains(fix[0], "ADD COLUMN email_bidx2 bytea") || !strings.Contains(fix[1], "CREATE UNIQUE INDEX CONCURRENTLY") {
		t.Fatalf("check on the dual policy before step 1: fix %q\n%s", fix, r.stdout)
	}
	// Step 1: the operator runs that DDL.
	for _, s := range fix {
		if _, err := su.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	e.run(ctx, 0, "check", "-c", dual)

	// Step 2: reload with blind_index.next. The session that began before
	// the reload is counted until it ends.
	rewriteConfig(t, p, e.config(""))
	reloads := logCount(p, "config reloaded")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "config reloaded", reloads)
	if n := scrape(t, p).get("pgveil_sessions_previous_config"); n != 2 {
		t.Fatalf("pgveil_sessions_previous_config = %v after the reload, want 2 (the seeding session and the pooled one)", n)
	}
	app.Close(ctx)
	old.Close(ctx)
	waitFor(t, 10*time.Second, "sessions on the previous config to end", func() (bool, error) {
		return scrape(t, p).get("pgveil_sessions_previous_config") == 0, nil
	})

	// Step 3: backfill while the application writes through new sessions.
	w := startPeopleWriter(ctx, e.appURL(p))
	waitFor(t, 30*time.Second, "the application to write", func() (bool, error) { return w.count() > 20, nil })
	r = e.run(ctx, 0, "migrate", "-c", dual, "--apply", "--batch", "500")
	if !strings.Contains(r.stdout, "email_bidx2") {
		t.Errorf("migrate did not report filling email_bidx2:\n%s", r.stdout)
	}
	// Every value was sealed: no migration mode (plaintext comparisons)
	// for a backfill of blind indexes only.
	if strings.Contains(r.stdout, "state migrating") || !strings.Contains(r.stdout, "every value is sealed") {
		t.Errorf("an index-only backfill entered migration mode:\n%s", r.stdout)
	}
	// Writes after the backfill fill the next column by themselves.
	after := w.count()
	waitFor(t, 30*time.Second, "more writes after the backfill", func() (bool, error) { return w.count() > after+40, nil })
	w.finish(t)

	var missing, same, total int
	if err := su.QueryRow(ctx, `SELECT count(*) FILTER (WHERE email IS NOT NULL AND (email_bidx2 IS NULL OR email_bidx IS NULL)),
		count(*) FILTER (WHERE email_bidx2 = email_bidx), count(*) FROM people`).Scan(&missing, &same, &total); err != nil {
		t.Fatal(err)
	}
	if missing != 0 || same != 0 || total <= peopleSeed {
		t.Fatalf("after the backfill: %d rows lack an index, %d rows have equal indexes under different keys, %d rows", missing, same, total)
	}
	var nullIdx int
	su.QueryRow(ctx, `SELECT count(*) FROM people WHERE email IS NULL AND (email_bidx IS NOT NULL OR email_bidx2 IS NOT NULL)`).Scan(&nullIdx)
	if nullIdx != 0 {
		t.Fatalf("%d rows with a NULL email have an index", nullIdx)
	}

	// Step 4: switch lookups to the new column and key, still writing both.
	// A session on the step-2 policy and one on the step-4 policy each find
	// a row the other has just changed.
	onDual := e.appConn(ctx, p)
	e.policy = peoplePolicy("swapped")
	reload := func(yaml string) {
		t.Helper()
		rewriteConfig(t, p, yaml)
		n := logCount(p, "config reloaded")
		if err := p.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitLog(t, p, "config reloaded", n)
	}
	reload(e.config(""))
	onSwap := e.appConn(ctx, p)
	crossCheck := func(writer, reader *pgx.Conn, id int64, email string) {
		t.Helper()
		if _, err := writer.Exec(ctx, `UPDATE people SET email = $1 WHERE org_id = $2 AND id = $3`, email, 1+id%3, id); err != nil {
			t.Fatal(err)
		}
		w.record(id, email)
		var got int64
		if err := reader.QueryRow(ctx, `SELECT id FROM people WHERE email = $1`, strings.ToLower(email)).Scan(&got); err != nil || got != id {
			t.Fatalf("a session on the other policy looks up %q: %d %v, want %d", email, got, err, id)
		}
	}
	crossCheck(onSwap, onDual, 3, "Swapped3@Example.org")
	crossCheck(onDual, onSwap, 5, "Dual5@Example.org")
	if n := scrape(t, p).get("pgveil_sessions_previous_config"); n != 1 {
		t.Fatalf("pgveil_sessions_previous_config = %v after the swap, want 1", n)
	}
	onDual.Close(ctx)
	onSwap.Close(ctx)
	waitFor(t, 10*time.Second, "sessions on the step-2 policy to end", func() (bool, error) {
		return scrape(t, p).get("pgveil_sessions_previous_config") == 0, nil
	})

	// Step 5: stop writing the old index, drop it; check is clean and
	// every row is found by the new index.
	e.policy = peoplePolicy("switched")
	switched := e.config("")
	reload(switched)
	waitFor(t, 10*time.Second, "sessions on the step-4 policy to end", func() (bool, error) {
		return scrape(t, p).get("pgveil_sessions_previous_config") == 0, nil
	})
	if _, err := su.Exec(ctx, `ALTER TABLE people DROP COLUMN email_bidx`); err != nil {
		t.Fatal(err)
	}
	conn := e.appConn(ctx, p)
	checkPeopleLookups(t, ctx, conn, w)
	e.run(ctx, 0, "check", "-c", e.writeConfig("switched.yaml", switched))
	// Row 7's email as last written: the writer may have changed it (how
	// often it ran depends on timing).
	email7, ok := w.emails[7]
	if !ok {
		email7 = seedEmail(7)
	}
	var id int64
	if err := conn.QueryRow(ctx, `SELECT id FROM people WHERE email = $1`, strings.ToUpper(email7)).Scan(&id); err != nil || id != 7 {
		t.Fatalf("lookup after dropping the old column: %d %v", id, err)
	}
}

// checkPeopleLookups reads every row through pgveil, checks the emails the
// writer set, and finds every row by its email in other letters (so by the
// new blind index, normalised).
func checkPeopleLookups(t *testing.T, ctx context.Context, conn *pgx.Conn, w *peopleWriter) {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT id, email FROM people ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	type person struct {
		id    int64
		email *string
	}
	var all []person
	for rows.Next() {
		var p person
		if err := rows.Scan(&p.id, &p.email); err != nil {
			t.Fatal(err)
		}
		all = append(all, p)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	bad := 0
	fail := func(format string, args ...any) {
		if bad++; bad <= 5 {
			t.Errorf(format, args...)
		}
	}
	byEmail := map[string]int64{}
	for _, p := range all {
		want, changed := w.emails[p.id]
		switch {
		case p.id <= peopleSeed && p.id%100 == 0 && !changed:
			if p.email != nil {
				fail("row %d: email %q, want NULL", p.id, *p.email)
			}
			continue
		case p.id <= peopleSeed && !changed:
			want = seedEmail(p.id)
		}
		if p.email == nil {
			fail("row %d: NULL email", p.id)
			continue
		}
		if want != "" && *p.email != want {
			fail("row %d: email %q, want %q", p.id, *p.email, want)
		}
		byEmail[*p.email] = p.id
	}
	for _, c := range w.copied {
		if _, ok := byEmail[c]; !ok {
			fail("the row copied with %q is missing", c)
		}
	}
	b := &pgx.Batch{}
	var order []string
	for email := range byEmail {
		order = append(order, email)
		b.Queue(`SELECT id FROM people WHERE email = $1`, strings.ToLower(email))
	}
	res := conn.SendBatch(ctx, b)
	for _, email := range order {
		var id int64
		if err := res.QueryRow().Scan(&id); err != nil || id != byEmail[email] {
			fail("lookup of %q by the new index: %d %v, want %d", email, id, err, byEmail[email])
		}
	}
	if err := res.Close(); err != nil {
		t.Fatal(err)
	}
	if bad > 0 {
		t.Fatalf("%d problems in %d rows", bad, len(all))
	}
	t.Logf("%d rows read and found by the new blind index", len(all))
}
