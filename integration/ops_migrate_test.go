package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// accountsPolicy: three encrypted columns of a text table adopted in place,
// one with a UNIQUE blind index, keys per tenant (org_id).
const accountsPolicy = `tables:
  public.accounts:
    key_context: org_id
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase, trim]
          unique: true
      name:
        type: text
      phone:
        type: text
`

const accountsRows = 200000

// accountsSchema is a plaintext table "in production": 200,000 rows.
var accountsSchema = fmt.Sprintf(`
CREATE TABLE accounts (
  id bigserial PRIMARY KEY,
  org_id int8 NOT NULL,
  email text NOT NULL,
  name text,
  phone text,
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO accounts (id, org_id, email, name, phone)
SELECT g, 1 + g %% 7,
       CASE WHEN g %% 3 = 0 THEN 'User' || g || '@Example.com' ELSE 'user' || g || '@example.com' END,
       CASE WHEN g %% 50 = 0 THEN NULL WHEN g %% 11 = 0 THEN 'Zoë ' || g ELSE 'Name ' || g END,
       '+1-555-' || lpad(g::text, 7, '0')
FROM generate_series(1, %d) g;
SELECT setval('accounts_id_seq', %d);
ANALYZE accounts;`, accountsRows, accountsRows)

// account is what a row of accounts must read as through pgveil.
type account struct {
	org                int64
	email, name, phone *string
}

func seedAccount(id int64) account {
	email := fmt.Sprintf("user%d@example.com", id)
	if id%3 == 0 {
		email = fmt.Sprintf("User%d@Example.com", id)
	}
	var name *string
	switch {
	case id%50 == 0:
	case id%11 == 0:
		name = sp(fmt.Sprintf("Zoë %d", id))
	default:
		name = sp(fmt.Sprintf("Name %d", id))
	}
	return account{org: 1 + id%7, email: sp(email), name: name, phone: sp(fmt.Sprintf("+1-555-%07d", id))}
}

// accountWriter is the application: it inserts and updates accounts through
// pgveil while migrate runs, reads back what it wrote, and remembers what
// every row it touched must hold.
type accountWriter struct {
	mu      sync.Mutex
	changed map[int64]account
	writes  int
	lookups int
	stop    chan struct{}
	done    chan error
}

func startAccountWriter(ctx context.Context, url string, seed uint64) *accountWriter {
	w := &accountWriter{changed: map[int64]account{}, stop: make(chan struct{}), done: make(chan error, 1)}
	go func() { w.done <- w.run(ctx, url, seed) }()
	return w
}

func (w *accountWriter) run(ctx context.Context, url string, seed uint64) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := 0; ; i++ {
		select {
		case <-w.stop:
			return nil
		default:
		}
		var id int64
		var a account
		switch i % 4 {
		case 0:
			a = account{org: 1 + int64(i%7), email: sp(fmt.Sprintf("new%d-%d@example.com", seed, i)), name: sp(fmt.Sprintf("New %d", i)), phone: sp(fmt.Sprintf("+44-%d", i))}
			if err := conn.QueryRow(ctx, `INSERT INTO accounts (org_id, email, name, phone) VALUES ($1, $2, $3, $4) RETURNING id`,
				a.org, *a.email, *a.name, *a.phone).Scan(&id); err != nil {
				return fmt.Errorf("insert through pgveil: %w", err)
			}
		case 1, 2:
			id = 1 + rng.Int64N(accountsRows)
			a = w.current(id)
			a.name, a.phone = sp(fmt.Sprintf("Renamed %d", i)), nil
			if i%8 == 1 {
				a.phone = sp(fmt.Sprintf("+33-%d", i))
			}
			if _, err := conn.Exec(ctx, `UPDATE accounts SET name = $1, phone = $2 WHERE id = $3 AND org_id = $4`, a.name, a.phone, id, a.org); err != nil {
				return fmt.Errorf("update through pgveil: %w", err)
			}
		case 3:
			id = 1 + rng.Int64N(accountsRows)
			a = w.current(id)
			a.email = sp(fmt.Sprintf("Moved%d-%d@Example.com", seed, i))
			if _, err := conn.Exec(ctx, `UPDATE accounts SET email = $1 WHERE id = $2 AND org_id = $3`, *a.email, id, a.org); err != nil {
				return fmt.Errorf("update email through pgveil: %w", err)
			}
		}
		w.mu.Lock()
		w.changed[id] = a
		w.writes++
		w.mu.Unlock()
		// The application sees no gap: what it wrote reads back, whether
		// the rest of the row is still plaintext or already sealed.
		if i%5 == 0 {
			var got account
			if err := conn.QueryRow(ctx, `SELECT org_id, email, name, phone FROM accounts WHERE id = $1`, id).Scan(&got.org, &got.email, &got.name, &got.phone); err != nil {
				return fmt.Errorf("read back through pgveil: %w", err)
			}
			if !sameAccount(got, a) {
				return fmt.Errorf("row %d reads %s through pgveil, want %s", id, fmtAccount(got), fmtAccount(a))
			}
		}
		// Lookups find the row whether it is backfilled yet or not
		// (migration mode: the blind index, or the plaintext while the
		// blind index is NULL; that branch scans the table, so fewer).
		if i%40 == 0 {
			var found []int64
			lookup := func() error {
				rs, err := conn.Query(ctx, `SELECT id FROM accounts WHERE email = $1`, strings.ToLower(*a.email))
				if err == nil {
					found, err = pgx.CollectRows(rs, pgx.RowTo[int64])
				}
				return err
			}
			err := lookup()
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "0A000" && pe.Message == "cached plan must not change result type" {
				// The table's state changed (complete): a prepared lookup
				// fails once and pgx prepares it again (docs/SQL.md,
				// "Migration mode").
				err = lookup()
			}
			if err != nil {
				return fmt.Errorf("lookup by email through pgveil: %w", err)
			}
			if len(found) != 1 || found[0] != id {
				return fmt.Errorf("lookup by the email of row %d during the migration found %v", id, found)
			}
			w.mu.Lock()
			w.lookups++
			w.mu.Unlock()
		}
	}
}

func (w *accountWriter) current(id int64) account {
	w.mu.Lock()
	defer w.mu.Unlock()
	if a, ok := w.changed[id]; ok {
		return a
	}
	return seedAccount(id)
}

// finish stops the writer and returns every row it changed or added.
func (w *accountWriter) finish(t *testing.T) map[int64]account {
	t.Helper()
	close(w.stop)
	if err := <-w.done; err != nil {
		t.Fatalf("application writer: %v", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("application wrote %d times and looked up %d emails through pgveil during the migration", w.writes, w.lookups)
	return w.changed
}

func sameAccount(a, b account) bool {
	return a.org == b.org && eqPtr(a.email, b.email) && eqPtr(a.name, b.name) && eqPtr(a.phone, b.phone)
}

func fmtAccount(a account) string {
	return fmt.Sprintf("{org %d, %s, %s, %s}", a.org, fmtPtr(a.email), fmtPtr(a.name), fmtPtr(a.phone))
}

// TestOpsMigrateOnline is issue 6's adoption test: a 200,000-row plaintext
// table is encrypted with `pgveil migrate --apply` while the application
// writes through pgveil; the run is killed with SIGKILL midway and run
// again. Afterwards every value is an envelope at rest, reads back exactly
// through pgveil, and every email is found by a lookup.
func TestOpsMigrateOnline(t *testing.T) {
	ctx := testCtx(t, 4*time.Minute)
	e := newOpsEnv(t, "ops_migrate", accountsPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, accountsSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))

	// Before: check names each problem; the plan shows DDL and counts and changes nothing.
	r := e.run(ctx, 1, "check", "-c", cfg)
	for _, want := range []string{
		"ALTER TABLE public.accounts ADD COLUMN email_bidx bytea;",
		"CREATE UNIQUE INDEX CONCURRENTLY accounts_email_bidx_idx ON public.accounts (email_bidx);",
		"pgveil.keys does not exist",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = e.run(ctx, 0, "migrate", "-c", cfg)
	for _, want := range []string{"ALTER TABLE public.accounts ADD COLUMN email_bidx bytea;", "200000 plaintext values to encrypt", "196000 plaintext values to encrypt", "200000 blind indexes to fill"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, r.stdout)
		}
	}
	var keysExist bool
	su.QueryRow(ctx, `SELECT to_regclass('pgveil.keys') IS NOT NULL`).Scan(&keysExist)
	if keysExist {
		t.Fatal("the plan created pgveil.keys")
	}

	// Prepare (DDL, keys, state migrating), then pgveil serves the table.
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--prepare")
	if s := e.tableState(ctx, su, "public.accounts"); s != "migrating" {
		t.Fatalf("state after --prepare: %q", s)
	}
	e.run(ctx, 0, "check", "-c", cfg)
	p := e.proxy(e.config(""))
	url := e.appURL(p)
	w := startAccountWriter(ctx, url, 1)

	// First run, killed with SIGKILL once it is well under way.
	cmd, _, stderr := e.start("migrate", "-c", cfg, "--apply", "--progress-every", "100ms")
	waitFor(t, 90*time.Second, "migrate to report progress", func() (bool, error) {
		return progressRows(stderr.String()) >= 40000, nil
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	var plain int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE phone NOT LIKE 'pgv1:%'`).Scan(&plain); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed after %d rows; %d phone values still plaintext", progressRows(stderr.String()), plain)
	if plain == 0 {
		t.Fatal("migrate finished before it was killed; the kill proved nothing")
	}
	if s := e.tableState(ctx, su, "public.accounts"); s != "migrating" {
		t.Fatalf("state after the kill: %q", s)
	}

	// Second run, stopped with Ctrl-C: the batches in flight commit, exit 130.
	cmd, stdout, stderr := e.start("migrate", "-c", cfg, "--apply", "--progress-every", "100ms")
	waitFor(t, 90*time.Second, "the second run to report progress", func() (bool, error) {
		return progressRows(stderr.String()) >= 10000, nil
	})
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 || !strings.Contains(stderr.String(), "interrupted") || !strings.Contains(stdout.String(), "run the same command again") {
		t.Fatalf("after SIGINT: exit %d (%v)\nstdout:\n%s\nstderr:\n%s", code, err, stdout.String(), tail(stderr.String(), 20))
	}
	var plain2 int
	su.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE phone NOT LIKE 'pgv1:%'`).Scan(&plain2)
	t.Logf("interrupted after %d more rows; %d phone values still plaintext", progressRows(stderr.String()), plain2)
	if plain2 == 0 || plain2 >= plain {
		t.Fatalf("the interrupted run did not stop midway: %d plaintext before, %d after", plain, plain2)
	}

	// Third run finishes the job.
	r = e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	rows, rate := rowsPerSecond(r.stdout, "encrypt public.accounts")
	t.Logf("rerun: %d rows in %s, %d rows/s (3 columns + blind index, application writing meanwhile)\n%s", rows, r.took.Round(time.Millisecond), rate, r.stdout)
	changed := w.finish(t)
	if s := e.tableState(ctx, su, "public.accounts"); s != "complete" {
		t.Fatalf("state after migrate: %q", s)
	}

	// At rest: every value is an envelope, every email has its blind index.
	var bad int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE email NOT LIKE 'pgv1:%' OR email_bidx IS NULL
		OR (name IS NOT NULL AND name NOT LIKE 'pgv1:%') OR (phone IS NOT NULL AND phone NOT LIKE 'pgv1:%')
		OR email ILIKE '%example.com%' OR name LIKE 'Name %'`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Fatalf("%d rows are not fully encrypted at rest", bad)
	}

	// Through pgveil: every value exactly, the writer's included.
	app := e.appConn(ctx, p)
	want := map[int64]account{}
	for id := int64(1); id <= accountsRows; id++ {
		want[id] = seedAccount(id)
	}
	for id, a := range changed {
		want[id] = a
	}
	rs, err := app.Query(ctx, `SELECT id, org_id, email, name, phone FROM accounts ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	seen, mismatches := 0, 0
	for rs.Next() {
		var id int64
		var a account
		if err := rs.Scan(&id, &a.org, &a.email, &a.name, &a.phone); err != nil {
			t.Fatal(err)
		}
		seen++
		if wa, ok := want[id]; !ok || !sameAccount(a, wa) {
			if mismatches++; mismatches <= 5 {
				t.Errorf("row %d reads %s, want %s", id, fmtAccount(a), fmtAccount(wa))
			}
		}
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(want) || mismatches > 0 {
		t.Fatalf("read %d rows through pgveil, want %d; %d differ", seen, len(want), mismatches)
	}

	// Lookups by email find every row (the blind index, normalised: the
	// application looks up lower case what was stored mixed case).
	ids := make([]int64, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	found := 0
	for start := 0; start < len(ids); start += 2000 {
		chunk := ids[start:min(start+2000, len(ids))]
		emails := make([]string, len(chunk))
		byEmail := map[string]int64{}
		for i, id := range chunk {
			emails[i] = strings.ToLower(*want[id].email)
			byEmail[emails[i]] = id
		}
		rs, err := app.Query(ctx, `SELECT id, email FROM accounts WHERE email = ANY($1)`, emails)
		if err != nil {
			t.Fatal(err)
		}
		for rs.Next() {
			var id int64
			var email string
			if err := rs.Scan(&id, &email); err != nil {
				t.Fatal(err)
			}
			if byEmail[strings.ToLower(email)] != id {
				t.Fatalf("lookup returned row %d for %s", id, email)
			}
			found++
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if found != len(want) {
		t.Fatalf("lookups by email found %d rows of %d", found, len(want))
	}

	// Another run finds nothing to do and keeps the state.
	r = e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	if !strings.Contains(r.stdout, "nothing to encrypt") {
		t.Fatalf("third run:\n%s", r.stdout)
	}
}
