package integration

// A concurrency stress test of the real pgveil under mixed traffic, for the
// race detector (PGVEIL_BIN=<a -race build>, GORACE=exitcode=66): many
// sessions through one pgveil with an encryption policy, each doing
// something else at once:
//
//	writers      INSERT … RETURNING, SELECT by id, blind-index lookups, one
//	             per pgx exec mode and one over TLS, and two more sending
//	             pgx batches (pipelines)
//	copier       binary COPY FROM (pgx CopyFrom), text COPY FROM, COPY TO
//	dropper      fresh connections that vanish mid-result, mid-COPY FROM,
//	             mid-COPY TO, mid-pipeline (before its Sync) and in startup
//	canceller    CancelRequest of a running statement, then the session
//	             goes on
//	reloader     SIGHUP reloads (a new engine each, every other one on a
//	             new service pool) while all that runs
//	rotator      `pgveil rotate` of one column, re-encrypting rows that the
//	             writers' tables hold
//	hog          connections opened until pgveil refuses one (53300), held
//	             while the others work, then closed
//
// Every value is a function of the row's email, so any row read anywhere
// is checked whole. At the end: every row written is there and decrypts to
// what was written, no row of an interrupted COPY is, no error but the
// expected ones (57014, 53300, the dropped connections' own), the open
// connection gauge and the pending startups back to 0, no backend of the
// test's clients left upstream, no tracker desync or decrypt failure, and
// pgveil exits cleanly having printed no data race report (harness.Proxy.Stop).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/integration/harness"
)

const stressTables = `tables:
  public.items:
    key_context: org_id
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
      body:
        type: text
      score:
        type: int4
`

// stressSeed rows are written in plaintext before `pgveil migrate`
// encrypts them.
const stressSeed = 120

var stressSchema = fmt.Sprintf(`
CREATE TABLE items (
  id bigserial PRIMARY KEY,
  org_id int4 NOT NULL,
  email bytea,
  email_bidx bytea,
  body bytea,
  score text
);
CREATE INDEX items_email_bidx ON items (email_bidx);
INSERT INTO items (org_id, email, body, score)
SELECT 1 + g %% 3, convert_to('seed' || g || '@example.org', 'UTF8'),
       convert_to('body of seed' || g || '@example.org ü', 'UTF8'), (g * 7 %% 1000)::text
FROM generate_series(1, %d) g;`, stressSeed)

const (
	stressIters     = 150 // per writer
	stressBatches   = 50  // per batch writer, 3 inserts each
	stressCopies    = 12  // rounds of the copier
	stressDrops     = 40  // connections the dropper abandons
	stressCancels   = 3
	stressReloads   = 4  // at least; more while the writers run
	stressMaxConns  = 16 // proxy.max_client_connections
	stressLongLived = 10 // writers, batchers, copier, canceller
	// stressGoroutineSlack: goroutines pgveil may run at the end beyond
	// those at the start (its admin server's connection, the service
	// pool's connections opened meanwhile).
	stressGoroutineSlack = 4
)

// stressEmail is the email of a row a test actor writes: who, round, item.
func stressEmail(who string, round, item int) string {
	return fmt.Sprintf("%s-%d-%d@example.org", who, round, item)
}

var stressEmailRe = regexp.MustCompile(`^(seed(\d+)|[a-z]+\d*-(\d+)-(\d+))@example\.org$`)

// stressRow is the row of an email: every column follows from it.
func stressRow(email string) note {
	m := stressEmailRe.FindStringSubmatch(email)
	var k int
	switch {
	case m == nil:
		k = 0
	case m[2] != "":
		fmt.Sscan(m[2], &k)
	default:
		var a, b int
		fmt.Sscan(m[3], &a)
		fmt.Sscan(m[4], &b)
		k = a*10 + b + len(email)
	}
	score := int32(k * 7 % 1000)
	return note{org: int32(1 + k%3), email: sp(email), body: sp("body of " + email + " ü"), score: &score}
}

// checkStressRow fails unless n is what its email says it must be.
func checkStressRow(n note) error {
	if n.email == nil || !stressEmailRe.MatchString(*n.email) {
		return fmt.Errorf("row read back with email %s", fmtPtr(n.email))
	}
	if want := stressRow(*n.email); !sameNote(n, want) {
		return fmt.Errorf("row reads %s, want %s", fmtNote(n), fmtNote(want))
	}
	return nil
}

// stressRun is the shared state of one run.
type stressRun struct {
	t        *testing.T
	ctx      context.Context
	e        *opsEnv
	p        *harness.Proxy
	cfgPath  string
	cfgYAML  string
	cfgMoved string // cfgYAML with another service_url

	mu      sync.Mutex
	written map[string]bool // emails committed through pgveil
	aborted map[string]bool // emails of interrupted COPYs: never stored
	refused int             // 53300 answers
	reloads int             // SIGHUP reloads done
	writing chan struct{}   // closed when the writers and batchers are done
}

func (r *stressRun) wrote(emails ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range emails {
		r.written[e] = true
	}
}

func (r *stressRun) url(app string) string {
	u := r.e.appURL(r.p) + "&application_name=" + app
	if strings.HasSuffix(app, "_tls") {
		u = strings.Replace(u, "sslmode=disable", "sslmode=verify-full&sslrootcert="+cluster.Certs.CACert, 1)
	}
	return u
}

func (r *stressRun) connect(app string, mode pgx.QueryExecMode) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(r.url(app))
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = mode
	return pgx.ConnectConfig(r.ctx, cfg)
}

// TestEncStressConcurrent: see the top of the file.
func TestEncStressConcurrent(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	// TLS to clients that ask for it: those sessions relay on goroutines,
	// the others on the event loops (unless PGVEIL_TEST_EVENT_LOOPS=0).
	e := newOpsEnv(t, "stress_race", fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\nproxy:\n  max_client_connections: %d\n  shutdown_timeout: 30s\n%s%s",
		cluster.Certs.ServerCert, cluster.Certs.ServerKey, stressMaxConns, eventLoopsSetting(), stressTables))
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, stressSchema); err != nil {
		t.Fatal(err)
	}
	r := &stressRun{t: t, ctx: ctx, e: e, written: map[string]bool{}, aborted: map[string]bool{}, writing: make(chan struct{})}
	r.cfgYAML = e.config("")
	r.cfgPath = e.writeConfig("pgveil.yaml", r.cfgYAML)
	// Every other reload moves pgveil to a new service pool: the old one
	// must close once the sessions of its engines end, and not before.
	url := cluster.SocketURL(harness.SuperUser, e.db)
	r.cfgMoved = strings.Replace(r.cfgYAML, fmt.Sprintf("service_url: %q", url), fmt.Sprintf("service_url: %q", url+"&pool_max_conns=6"), 1)
	if r.cfgMoved == r.cfgYAML {
		t.Fatal("service_url not found in the config")
	}
	e.run(ctx, 0, "migrate", "-c", r.cfgPath, "--apply")
	for g := 1; g <= stressSeed; g++ {
		r.written[fmt.Sprintf("seed%d@example.org", g)] = true
	}
	r.p = e.proxy(r.cfgYAML)
	baseline := scrape(t, r.p).get("go_goroutines")

	// The long-lived sessions open first: the hog then takes what is left.
	modes := []struct {
		name string
		mode pgx.QueryExecMode
	}{
		{"cache_statement", pgx.QueryExecModeCacheStatement},
		{"cache_describe", pgx.QueryExecModeCacheDescribe},
		{"describe_exec", pgx.QueryExecModeDescribeExec},
		{"exec", pgx.QueryExecModeExec},
		{"simple_protocol", pgx.QueryExecModeSimpleProtocol},
	}
	var conns []*pgx.Conn
	open := func(app string, mode pgx.QueryExecMode) *pgx.Conn {
		c, err := r.connect(app, mode)
		if err != nil {
			t.Fatalf("connect %s: %v", app, err)
		}
		conns = append(conns, c)
		return c
	}
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	type actor struct {
		name string
		run  func() error
	}
	var actors []actor
	for i, m := range modes {
		c := open("stress_w"+m.name, m.mode)
		actors = append(actors, actor{"writer " + m.name, func() error { return r.writer(c, fmt.Sprintf("w%d", i)) }})
	}
	tlsConn := open("stress_w_tls", pgx.QueryExecModeCacheStatement)
	actors = append(actors, actor{"writer over TLS", func() error { return r.writer(tlsConn, "wtls") }})
	for i, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec} {
		c := open(fmt.Sprintf("stress_b%d", i), mode)
		actors = append(actors, actor{fmt.Sprintf("batcher %d", i), func() error { return r.batcher(c, fmt.Sprintf("b%d", i)) }})
	}
	writers := len(actors) // the reloader goes on until these are done
	copyConn := open("stress_copy", pgx.QueryExecModeCacheStatement)
	cancelConn := open("stress_cancel", pgx.QueryExecModeCacheStatement)
	if len(conns) != stressLongLived {
		t.Fatalf("%d long-lived sessions, want %d", len(conns), stressLongLived)
	}
	actors = append(actors,
		actor{"copier", func() error { return r.copier(copyConn) }},
		actor{"canceller", func() error { return r.canceller(cancelConn) }},
		actor{"dropper", r.dropper},
		actor{"reloader", r.reloader},
		actor{"rotator", r.rotator},
		actor{"hog", r.hog},
	)

	var writersWG sync.WaitGroup
	writersWG.Add(writers)
	go func() { writersWG.Wait(); close(r.writing) }()
	errs := make([]error, len(actors))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, a := range actors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := a.run()
			if i < writers {
				writersWG.Done()
			}
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", a.name, err)
			}
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("actors done in %v; %d connections refused (53300), %d reloads", time.Since(began).Round(time.Millisecond), r.refused, r.reloads)
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if r.refused == 0 {
		t.Error("no connection was refused: the hog never reached the limit")
	}

	// Every row through a fresh session: exactly what was written.
	check, err := r.connect("stress_check", pgx.QueryExecModeCacheStatement)
	if err != nil {
		t.Fatal(err)
	}
	conns = append(conns, check)
	rows, err := check.Query(ctx, `SELECT org_id, email, body, score FROM items`)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for rows.Next() {
		var n note
		if err := rows.Scan(&n.org, &n.email, &n.body, &n.score); err != nil {
			t.Fatal(err)
		}
		if err := checkStressRow(n); err != nil {
			t.Error(err)
			continue
		}
		if seen[*n.email] {
			t.Errorf("%s stored twice", *n.email)
		}
		seen[*n.email] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for email := range r.written {
		if !seen[email] {
			t.Errorf("%s was written but is not in the table", email)
		}
	}
	for email := range seen {
		if r.aborted[email] {
			t.Errorf("%s, of an interrupted COPY, is in the table", email)
		} else if !r.written[email] {
			t.Errorf("%s is in the table but was never written", email)
		}
	}
	// Stored as ciphertext: no test plaintext in the encrypted columns.
	var plain int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM items WHERE position(convert_to('example.org', 'UTF8') in email) > 0
		OR position(convert_to('body of', 'UTF8') in body) > 0`).Scan(&plain); err != nil {
		t.Fatal(err)
	}
	if plain != 0 {
		t.Errorf("%d rows hold plaintext", plain)
	}

	for _, c := range conns {
		c.Close(context.Background())
	}
	conns = nil
	waitFor(t, 30*time.Second, "pgveil's connections to close", func() (bool, error) {
		m := scrape(t, r.p)
		return m.get("pgveil_connections_open") == 0 && m.get("pgveil_startups_pending") == 0 && m.get("pgveil_event_loop_sessions") == 0, nil
	})
	waitFor(t, 30*time.Second, "the clients' backends to end", func() (bool, error) {
		var n int
		err := su.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'stress%'`).Scan(&n)
		return err == nil && n == 0, err
	})
	// pgveil's own connections: those of one service pool (at most 6),
	// not of every pool the reloads made.
	var svcConns int
	if err := pollUntil(ctx, 30*time.Second, func() (bool, error) {
		err := su.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgveil' AND datname = current_database()`).Scan(&svcConns)
		return svcConns <= 6, err
	}); err != nil {
		t.Errorf("pgveil holds %d service connections after %d reloads: %v", svcConns, r.reloads, err)
	}
	// No goroutine left behind by the sessions, the reloads' engines, the
	// refusals (what the admin request itself runs is within the slack).
	var goroutines float64
	if err := pollUntil(ctx, 30*time.Second, func() (bool, error) {
		goroutines = scrape(t, r.p).get("go_goroutines")
		return goroutines <= baseline+stressGoroutineSlack, nil
	}); err != nil {
		t.Errorf("pgveil runs %v goroutines, %v before the test's sessions: %v", goroutines, baseline, err)
	}
	t.Logf("goroutines: %v before, %v after", baseline, goroutines)
	m := scrape(t, r.p)
	for _, series := range []string{"pgveil_tracker_desyncs_total"} {
		if v := m.get(series); v != 0 {
			t.Errorf("%s = %v", series, v)
		}
	}
	for k, v := range m {
		if strings.HasPrefix(k, "pgveil_decrypt_failures_total") && v != 0 {
			t.Errorf("%s = %v", k, v)
		}
	}
	if got := m.get(`pgveil_config_reloads_total{result="ok"}`); got != float64(r.reloads) || r.reloads < stressReloads {
		t.Errorf("%v reloads ok, %d done, want at least %d", got, r.reloads, stressReloads)
	}
	// Shutdown with idle sessions open (one having read encrypted rows):
	// they end with 57P01 and pgveil exits at once, cleanly.
	var idle []*pgx.Conn
	for i, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		c, err := r.connect("stress_idle", mode)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		if i == 0 {
			var n note
			if err := c.QueryRow(ctx, `SELECT org_id, email, body, score FROM items WHERE email = 'seed9@example.org'`).Scan(&n.org, &n.email, &n.body, &n.score); err != nil {
				t.Fatal(err)
			} else if err := checkStressRow(n); err != nil {
				t.Error(err)
			}
		}
		idle = append(idle, c)
	}
	stopped := time.Now()
	if err := r.p.Stop(); err != nil {
		t.Errorf("pgveil did not exit cleanly: %v", err)
	}
	if took := time.Since(stopped); took > 20*time.Second {
		t.Errorf("pgveil took %v to stop with only idle sessions", took)
	}
	for i, c := range idle {
		if _, err := c.Exec(ctx, "SELECT 1"); err == nil {
			t.Errorf("idle session %d still serves after the shutdown", i)
		}
	}
	log := r.p.Log()
	for _, bad := range []string{`"msg":"panic in session; session closed"`, `"msg":"protocol tracker out of step with the server"`} {
		if strings.Contains(log, bad) {
			t.Errorf("pgveil logged %s", bad)
		}
	}
	if t.Failed() {
		t.Logf("pgveil log:\n%s", tail(log, 150))
	}
}

// writer inserts rows one by one and reads each back by id, by its blind
// index, and a seeded row by id.
func (r *stressRun) writer(c *pgx.Conn, who string) error {
	ctx := r.ctx
	for i := 0; i < stressIters; i++ {
		n := stressRow(stressEmail(who, i, 0))
		var id int64
		if err := c.QueryRow(ctx, `INSERT INTO items (org_id, email, body, score) VALUES ($1, $2, $3, $4) RETURNING id`,
			n.org, *n.email, *n.body, *n.score).Scan(&id); err != nil {
			return fmt.Errorf("insert %d: %w", i, err)
		}
		r.wrote(*n.email)
		var got note
		if err := c.QueryRow(ctx, `SELECT org_id, email, body, score FROM items WHERE id = $1`, id).Scan(&got.org, &got.email, &got.body, &got.score); err != nil {
			return fmt.Errorf("select %d: %w", id, err)
		}
		if err := checkStressRow(got); err != nil || *got.email != *n.email {
			return fmt.Errorf("row %d: %v (%s)", id, err, fmtNote(got))
		}
		var lid int64
		got = note{}
		if err := c.QueryRow(ctx, `SELECT id, org_id, email, body, score FROM items WHERE email = $1 AND org_id = $2`, *n.email, n.org).
			Scan(&lid, &got.org, &got.email, &got.body, &got.score); err != nil {
			return fmt.Errorf("lookup of %s: %w", *n.email, err)
		}
		if err := checkStressRow(got); err != nil || lid != id {
			return fmt.Errorf("lookup of %s: id %d (want %d), %v", *n.email, lid, id, err)
		}
		seed := fmt.Sprintf("seed%d@example.org", 1+(i*13+len(who))%stressSeed)
		got = note{}
		if err := c.QueryRow(ctx, `SELECT org_id, email, body, score FROM items WHERE email = $1`, seed).Scan(&got.org, &got.email, &got.body, &got.score); err != nil {
			return fmt.Errorf("lookup of %s: %w", seed, err)
		}
		if err := checkStressRow(got); err != nil || *got.email != seed {
			return fmt.Errorf("lookup of %s: %v", seed, err)
		}
	}
	return nil
}

// batcher sends batches (pipelines) of three inserts and a lookup.
func (r *stressRun) batcher(c *pgx.Conn, who string) error {
	ctx := r.ctx
	for i := 0; i < stressBatches; i++ {
		b := &pgx.Batch{}
		var ns []note
		for k := 0; k < 3; k++ {
			n := stressRow(stressEmail(who, i, k))
			ns = append(ns, n)
			b.Queue(`INSERT INTO items (org_id, email, body, score) VALUES ($1, $2, $3, $4) RETURNING id`, n.org, *n.email, *n.body, *n.score)
		}
		b.Queue(`SELECT org_id, email, body, score FROM items WHERE email = $1 AND org_id = $2`, *ns[1].email, ns[1].org)
		br := c.SendBatch(ctx, b)
		var err error
		for k := 0; k < 3 && err == nil; k++ {
			var id int64
			err = br.QueryRow().Scan(&id)
		}
		var got note
		if err == nil {
			err = br.QueryRow().Scan(&got.org, &got.email, &got.body, &got.score)
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("batch %d: %w", i, err)
		}
		r.wrote(*ns[0].email, *ns[1].email, *ns[2].email)
		if err := checkStressRow(got); err != nil || *got.email != *ns[1].email {
			return fmt.Errorf("batch %d lookup: %v (%s)", i, err, fmtNote(got))
		}
	}
	return nil
}

// copier writes rows by binary and text COPY FROM and reads the table by
// COPY TO.
func (r *stressRun) copier(c *pgx.Conn) error {
	ctx := r.ctx
	for i := 0; i < stressCopies; i++ {
		var src [][]any
		var emails []string
		for k := 0; k < 8; k++ {
			n := stressRow(stressEmail("cb", i, k))
			src = append(src, []any{n.org, *n.email, *n.body, *n.score})
			emails = append(emails, *n.email)
		}
		got, err := c.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"org_id", "email", "body", "score"}, pgx.CopyFromRows(src))
		if err != nil || got != int64(len(src)) {
			return fmt.Errorf("binary COPY %d: %d rows, %v", i, got, err)
		}
		r.wrote(emails...)
		var text strings.Builder
		emails = emails[:0]
		for k := 0; k < 8; k++ {
			n := stressRow(stressEmail("ct", i, k))
			fmt.Fprintf(&text, "%d\t%s\t%s\t%d\n", n.org, *n.email, *n.body, *n.score)
			emails = append(emails, *n.email)
		}
		tag, err := c.PgConn().CopyFrom(ctx, strings.NewReader(text.String()), `COPY items (org_id, email, body, score) FROM STDIN`)
		if err != nil || tag.RowsAffected() != 8 {
			return fmt.Errorf("text COPY %d: %v %v", i, tag, err)
		}
		r.wrote(emails...)
		var out strings.Builder
		if _, err := c.PgConn().CopyTo(ctx, &out, `COPY items (org_id, email, body, score) TO STDOUT`); err != nil {
			return fmt.Errorf("COPY TO %d: %w", i, err)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) < stressSeed {
			return fmt.Errorf("COPY TO %d: %d rows", i, len(lines))
		}
		for _, line := range lines {
			if err := checkCopyLine(line); err != nil {
				return fmt.Errorf("COPY TO %d: %w", i, err)
			}
		}
	}
	return nil
}

// checkCopyLine checks a text COPY line of org_id, email, body, score.
func checkCopyLine(line string) error {
	f := strings.Split(line, "\t")
	if len(f) != 4 {
		return fmt.Errorf("line %q", line)
	}
	var n note
	var score int32
	if _, err := fmt.Sscan(f[0], &n.org); err != nil {
		return fmt.Errorf("line %q: %v", line, err)
	}
	if _, err := fmt.Sscan(f[3], &score); err != nil {
		return fmt.Errorf("line %q: %v", line, err)
	}
	n.email, n.body, n.score = sp(f[1]), sp(f[2]), &score
	return checkStressRow(n)
}

// dropper opens connections and abandons them in the middle of a result,
// of a COPY FROM and of a COPY TO. A connection refused (53300) while the
// hog holds the slots is expected.
func (r *stressRun) dropper() error {
	for i := 0; i < stressDrops; i++ {
		c, err := r.connect("stress_drop", pgx.QueryExecModeCacheStatement)
		if sqlState(err) == "53300" {
			r.mu.Lock()
			r.refused++
			r.mu.Unlock()
			continue
		}
		if err != nil {
			return fmt.Errorf("connect %d: %w", i, err)
		}
		err = r.drop(c, i)
		c.Close(context.Background())
		if err != nil {
			return fmt.Errorf("drop %d: %w", i, err)
		}
	}
	return nil
}

// errDropped is what the test's reader and writer return once they have
// closed the connection under pgx.
var errDropped = errors.New("connection dropped by the test")

func (r *stressRun) drop(c *pgx.Conn, i int) error {
	ctx := r.ctx
	netConn := c.PgConn().Conn()
	switch i % 5 {
	case 0: // mid-result: the rows of a cross join are far more than socket buffers hold
		rows, err := c.Query(ctx, `SELECT org_id, email, body, score FROM items CROSS JOIN generate_series(1, 60)`)
		if err != nil {
			return err
		}
		if !rows.Next() {
			return fmt.Errorf("no first row: %v", rows.Err())
		}
		var n note
		if err := rows.Scan(&n.org, &n.email, &n.body, &n.score); err != nil {
			return err
		}
		if err := checkStressRow(n); err != nil {
			return err
		}
		netConn.Close()
		rows.Close()
	case 1: // mid-COPY FROM: one row sent, then the socket closes
		n := stressRow(stressEmail("gone", i, 0))
		r.mu.Lock()
		r.aborted[*n.email] = true
		r.mu.Unlock()
		src := &dropReader{first: fmt.Sprintf("%d\t%s\t%s\t%d\n", n.org, *n.email, *n.body, *n.score), conn: netConn}
		if _, err := c.PgConn().CopyFrom(ctx, src, `COPY items (org_id, email, body, score) FROM STDIN`); err == nil {
			return errors.New("COPY FROM of a dropped connection succeeded")
		}
	case 2: // mid-COPY TO
		w := &dropWriter{conn: netConn}
		if _, err := c.PgConn().CopyTo(ctx, w, `COPY (SELECT org_id, email, body, score FROM items CROSS JOIN generate_series(1, 60)) TO STDOUT`); err == nil {
			return errors.New("COPY TO of a dropped connection succeeded")
		}
		if w.err != nil {
			return w.err
		}
	case 3: // mid-pipeline: inserts sent without their Sync, so never committed
		pl := c.PgConn().StartPipeline(ctx)
		for k := 0; k < 3; k++ {
			n := stressRow(stressEmail("unsynced", i, k))
			r.mu.Lock()
			r.aborted[*n.email] = true
			r.mu.Unlock()
			pl.SendQueryParams(`INSERT INTO items (org_id, email, body, score) VALUES ($1, $2, $3, $4)`,
				[][]byte{fmt.Append(nil, n.org), []byte(*n.email), []byte(*n.body), fmt.Append(nil, *n.score)},
				[]uint32{23, 25, 25, 23}, nil, nil)
		}
		if err := pl.Flush(); err != nil {
			return err
		}
		netConn.Close()
	case 4: // mid-startup: a StartupMessage, then gone
		raw, err := net.Dial("tcp", r.p.Addr)
		if err != nil {
			return err
		}
		if _, err := raw.Write(startupPacket(harness.SuperUser)); err != nil {
			raw.Close()
			return err
		}
		raw.Close()
	}
	return nil
}

// dropReader yields one line, then closes the connection.
type dropReader struct {
	first string
	sent  bool
	conn  interface{ Close() error }
}

func (d *dropReader) Read(p []byte) (int, error) {
	if !d.sent {
		d.sent = true
		return copy(p, d.first), nil
	}
	d.conn.Close()
	return 0, errDropped
}

// dropWriter checks the first line it is given, then closes the
// connection.
type dropWriter struct {
	conn interface{ Close() error }
	done bool
	err  error
}

func (d *dropWriter) Write(p []byte) (int, error) {
	if !d.done {
		d.done = true
		line, _, _ := strings.Cut(string(p), "\n")
		d.err = checkCopyLine(line)
		d.conn.Close()
	}
	return 0, errDropped
}

// canceller runs a statement that sleeps, cancels it once the backend
// runs it, and goes on in the same session.
func (r *stressRun) canceller(c *pgx.Conn) error {
	ctx := r.ctx
	watch, err := cluster.Connect(ctx, harness.SuperUser, r.e.db)
	if err != nil {
		return err
	}
	defer watch.Close(context.Background())
	for i := 0; i < stressCancels; i++ {
		seed := fmt.Sprintf("seed%d@example.org", 1+i)
		done := make(chan error, 1)
		go func() {
			var email string
			var slept any
			done <- c.QueryRow(ctx, `SELECT email, pg_sleep(30) FROM items WHERE email = $1`, seed).Scan(&email, &slept)
		}()
		if err := pollUntil(ctx, 30*time.Second, func() (bool, error) {
			var n int
			err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE application_name = 'stress_cancel' AND state = 'active' AND position('pg_sleep' in query) > 0
				  AND wait_event = 'PgSleep'`).Scan(&n) // in the sleep, not in the Parse before it (waitActive)
			return n > 0, err
		}); err != nil {
			<-done
			return fmt.Errorf("waiting for the sleep: %w", err)
		}
		if err := c.PgConn().CancelRequest(ctx); err != nil {
			<-done
			return fmt.Errorf("CancelRequest: %w", err)
		}
		if err := <-done; sqlState(err) != "57014" {
			return fmt.Errorf("cancelled statement returned %v, want 57014", err)
		}
		var got note
		if err := c.QueryRow(ctx, `SELECT org_id, email, body, score FROM items WHERE email = $1`, seed).Scan(&got.org, &got.email, &got.body, &got.score); err != nil {
			return fmt.Errorf("after the cancel: %w", err)
		}
		if err := checkStressRow(got); err != nil {
			return fmt.Errorf("after the cancel: %w", err)
		}
	}
	return nil
}

// pollUntil asks cond every 20ms until it holds (the condition is the
// synchronisation; the pause bounds CPU use).
func pollUntil(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// reloader reloads pgveil's config (SIGHUP) and waits for each reload to
// finish.
func (r *stressRun) reloader() error {
	for i := 0; i < stressReloads || !r.writersDone(); i++ {
		yaml := r.cfgYAML
		if i%2 == 0 {
			yaml = r.cfgMoved
		}
		if err := os.WriteFile(r.p.Dir+"/pgveil.yaml", []byte(yaml), 0o600); err != nil {
			return err
		}
		before := logCount(r.p, "config reloaded")
		if err := r.p.Signal(syscall.SIGHUP); err != nil {
			return err
		}
		if err := pollUntil(r.ctx, 60*time.Second, func() (bool, error) {
			if logCount(r.p, "config reload failed; keeping the running config") > 0 {
				return false, errors.New("config reload failed")
			}
			return logCount(r.p, "config reloaded") > before, nil
		}); err != nil {
			return fmt.Errorf("reload %d: %w", i, err)
		}
		r.mu.Lock()
		r.reloads++
		r.mu.Unlock()
	}
	return nil
}

// writersDone reports whether every writer and batcher has returned.
func (r *stressRun) writersDone() bool {
	select {
	case <-r.writing:
		return true
	default:
		return false
	}
}

// rotator rotates the body column's keys while everything else runs
// (keeping the retired versions: sessions still sealing under them are
// not the subject here).
func (r *stressRun) rotator() error {
	bin, err := harness.BuildPgveil()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(r.ctx, bin, "rotate", "-c", r.cfgPath, "--table", "public.items", "--column", "body", "--keep-retired", "--batch", "20")
	cmd.Env = os.Environ()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if races := harness.RaceReports(errb.String()); len(races) > 0 {
		return fmt.Errorf("pgveil rotate printed a data race report:\n%s", strings.Join(races, "\n"))
	}
	if err != nil {
		return fmt.Errorf("pgveil rotate: %v\n%s\n%s", err, out.String(), tail(errb.String(), 30))
	}
	if !strings.Contains(out.String(), "re-encrypt public.items") {
		return fmt.Errorf("pgveil rotate said:\n%s", out.String())
	}
	return nil
}

// hog opens connections until pgveil refuses one with 53300, checks that
// a running session still works meanwhile, and closes them.
func (r *stressRun) hog() error {
	var held []*pgx.Conn
	defer func() {
		for _, c := range held {
			c.Close(context.Background())
		}
	}()
	for i := 0; i <= stressMaxConns; i++ {
		c, err := r.connect("stress_hog", pgx.QueryExecModeCacheStatement)
		if sqlState(err) == "53300" {
			r.mu.Lock()
			r.refused++
			r.mu.Unlock()
			if err := holdCheck(r.ctx, held); err != nil {
				return err
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("connect %d: %w", i, err)
		}
		held = append(held, c)
	}
	return fmt.Errorf("%d connections open and none refused (limit %d)", len(held), stressMaxConns)
}

// holdCheck runs a lookup on each held connection: sessions at the limit
// serve.
func holdCheck(ctx context.Context, held []*pgx.Conn) error {
	for i, c := range held {
		seed := fmt.Sprintf("seed%d@example.org", 1+i)
		var got note
		if err := c.QueryRow(ctx, `SELECT org_id, email, body, score FROM items WHERE email = $1`, seed).Scan(&got.org, &got.email, &got.body, &got.score); err != nil {
			return fmt.Errorf("held session %d: %w", i, err)
		}
		if err := checkStressRow(got); err != nil {
			return fmt.Errorf("held session %d: %w", i, err)
		}
	}
	return nil
}

// envelopeKeyID is the SQL of the key id in a bytea envelope's header.
const envelopeKeyID = "(get_byte(%[1]s, 1)::int8 << 24 | get_byte(%[1]s, 2) << 16 | get_byte(%[1]s, 3) << 8 | get_byte(%[1]s, 4))"

// TestEncReloadRotateOldSession: a session that started before a SIGHUP
// reload keeps the engine of its config; a `pgveil rotate` after the
// reload must reach it as it reaches the new sessions (the key store's
// notification), so that its next write seals under the new version, not
// under a retired one for up to the active-key TTL. (The stress test's
// rotate failed with "rows needing work kept appearing" when its reloads
// and rotation overlapped.)
func TestEncReloadRotateOldSession(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "reload_rotate", stressTables)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, stressSchema); err != nil {
		t.Fatal(err)
	}
	yaml := e.config("")
	cfg := e.writeConfig("pgveil.yaml", yaml)
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	p := e.proxy(yaml)
	r := &stressRun{t: t, ctx: ctx, e: e, p: p}
	old, err := r.connect("reload_old", pgx.QueryExecModeCacheStatement)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close(context.Background())
	insert := func(c *pgx.Conn, email string) int64 {
		t.Helper()
		n := stressRow(email)
		n.org = 1 // one tenant: one body key
		var id int64
		if err := c.QueryRow(ctx, `INSERT INTO items (org_id, email, body, score) VALUES ($1, $2, $3, $4) RETURNING id`,
			n.org, *n.email, *n.body, *n.score).Scan(&id); err != nil {
			t.Fatalf("insert %s: %v", email, err)
		}
		return id
	}
	insert(old, "old-1-0@example.org") // caches the active key

	rewriteConfig(t, p, yaml)
	reloads := logCount(p, "config reloaded")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "config reloaded", reloads)
	e.run(ctx, 0, "rotate", "-c", cfg, "--table", "public.items", "--column", "body", "--keep-retired")
	active := keyIDs(t, ctx, su, "active")

	fresh, err := r.connect("reload_new", pgx.QueryExecModeCacheStatement)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close(context.Background())
	for _, w := range []struct {
		who, email string
		c          *pgx.Conn
	}{{"session started after the reload", "fresh-2-0@example.org", fresh}, {"session started before the reload", "old-2-0@example.org", old}} {
		id := insert(w.c, w.email)
		var kid int64
		if err := su.QueryRow(ctx, fmt.Sprintf("SELECT "+envelopeKeyID+" FROM items WHERE id = $1", "body"), id).Scan(&kid); err != nil {
			t.Fatal(err)
		}
		if !active[kid] {
			t.Errorf("%s: a write after the rotation sealed body under key %d, not an active one (%v)", w.who, kid, active)
		}
	}
}

// TestEncReloadDecryptOldSession: a session that started before a SIGHUP
// reload must follow pgveil.tables as the new sessions do: once `pgveil
// migrate --decrypt` has written the values back in plaintext (state
// decrypting), it reads them as they are, not as values that fail to open.
func TestEncReloadDecryptOldSession(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "reload_decrypt", stressTables)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, stressSchema); err != nil {
		t.Fatal(err)
	}
	yaml := e.config("")
	cfg := e.writeConfig("pgveil.yaml", yaml)
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	p := e.proxy(yaml)
	r := &stressRun{t: t, ctx: ctx, e: e, p: p}
	old, err := r.connect("reload_old", pgx.QueryExecModeCacheStatement)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close(context.Background())
	read := func(c *pgx.Conn, what string) {
		t.Helper()
		var n note
		if err := c.QueryRow(ctx, `SELECT org_id, email, body, score FROM items WHERE id = 7`).Scan(&n.org, &n.email, &n.body, &n.score); err != nil {
			t.Errorf("%s: %v", what, err)
			return
		}
		if err := checkStressRow(n); err != nil || *n.email != "seed7@example.org" {
			t.Errorf("%s: %v (%s)", what, err, fmtNote(n))
		}
	}
	read(old, "before the reload")

	rewriteConfig(t, p, yaml)
	reloads := logCount(p, "config reloaded")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "config reloaded", reloads)
	e.run(ctx, 0, "migrate", "-c", cfg, "--decrypt", "--apply")
	if st := e.tableState(ctx, su, "public.items"); st != "decrypting" {
		t.Fatalf("state after migrate --decrypt: %q", st)
	}
	fresh, err := r.connect("reload_new", pgx.QueryExecModeCacheStatement)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close(context.Background())
	read(fresh, "session started after the reload")
	read(old, "session started before the reload")
}

// TestEncReloadServiceURLOldSession: a reload that changes
// upstream.service_url replaces pgveil's service pool; a session that
// started before it still reads keys through its engine's pool, which
// must not have been closed under it; nor may a reload that fails after
// making the new pool close the pool of the engine that goes on serving.
// And a rotation after the move reaches the sessions left on the old pool
// (their engine's key-store watcher runs on for them).
func TestEncReloadServiceURLOldSession(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "reload_svcurl", stressTables)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, stressSchema); err != nil {
		t.Fatal(err)
	}
	yaml := e.config("")
	cfg := e.writeConfig("pgveil.yaml", yaml)
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	p := e.proxy(yaml)
	r := &stressRun{t: t, ctx: ctx, e: e, p: p}
	old, err := r.connect("reload_old", pgx.QueryExecModeCacheStatement)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close(context.Background())

	read := func(what string, c *pgx.Conn, id int) {
		t.Helper()
		var n note
		if err := c.QueryRow(ctx, `SELECT org_id, email, body, score FROM items WHERE id = $1`, id).Scan(&n.org, &n.email, &n.body, &n.score); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := checkStressRow(n); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	// A write caches the session's engine's active key of tenant 1.
	cacheActive := func(c *pgx.Conn, email string) {
		t.Helper()
		n := stressRow(email)
		if _, err := c.Exec(ctx, `INSERT INTO items (org_id, email, body, score) VALUES (1, $1, $2, $3)`, *n.email, *n.body, *n.score); err != nil {
			t.Fatalf("insert %s: %v", email, err)
		}
	}
	cacheActive(old, "cache-0-0@example.org")
	url := cluster.SocketURL(harness.SuperUser, e.db)
	moved := strings.Replace(yaml, fmt.Sprintf("service_url: %q", url), fmt.Sprintf("service_url: %q", url+"&pool_max_conns=5"), 1)
	if moved == yaml {
		t.Fatal("service_url not found in the config")
	}

	// A reload that makes the new pool, then fails (a configured table
	// that does not exist): pgveil goes on with the engine it had.
	rewriteConfig(t, p, moved+"  public.nosuch:\n    columns:\n      x:\n        type: text\n")
	failed := logCount(p, "config reload failed; keeping the running config")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "config reload failed; keeping the running config", failed)
	read("session started before the failed reload", old, 8)
	after, err := r.connect("reload_after_failed", pgx.QueryExecModeCacheStatement)
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close(context.Background())
	read("session started after the failed reload", after, 9)
	cacheActive(after, "cache-1-0@example.org")

	// A reload that moves to the new pool: the sessions that started
	// before it keep their engine and its pool.
	rewriteConfig(t, p, moved)
	reloads := logCount(p, "config reloaded")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "config reloaded", reloads)
	read("session started before both reloads", old, 10)
	read("session started between the reloads", after, 11)
	fresh, err := r.connect("reload_new", pgx.QueryExecModeCacheStatement)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close(context.Background())
	read("session started after the reloads", fresh, 12)

	// The sessions on the old pool still hear of a rotation: their next
	// write seals under the new version.
	e.run(ctx, 0, "rotate", "-c", cfg, "--table", "public.items", "--column", "body", "--keep-retired")
	active := keyIDs(t, ctx, su, "active")
	for i, c := range []*pgx.Conn{old, after, fresh} {
		n := stressRow(stressEmail("moved", i, 0))
		n.org = 1 // the tenant whose active key the sessions cached
		var id, kid int64
		if err := c.QueryRow(ctx, `INSERT INTO items (org_id, email, body, score) VALUES ($1, $2, $3, $4) RETURNING id`,
			n.org, *n.email, *n.body, *n.score).Scan(&id); err != nil {
			t.Fatalf("insert by session %d: %v", i, err)
		}
		if err := su.QueryRow(ctx, fmt.Sprintf("SELECT "+envelopeKeyID+" FROM items WHERE id = $1", "body"), id).Scan(&kid); err != nil {
			t.Fatal(err)
		}
		if !active[kid] {
			t.Errorf("session %d: a write after the rotation sealed body under key %d, not an active one (%v)", i, kid, active)
		}
	}
}
