package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// notesPolicy mixes physical types: email and body in bytea columns (the
// recommended layout), score (an int4 the application sees) in a text column.
const notesPolicy = `tables:
  public.notes:
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

const notesRows = 100000

var notesSchema = fmt.Sprintf(`
CREATE TABLE notes (
  id bigserial PRIMARY KEY,
  org_id int4 NOT NULL,
  email bytea,
  email_bidx bytea,
  body bytea,
  score text
);
CREATE INDEX notes_email_bidx_idx ON notes (email_bidx);
INSERT INTO notes (id, org_id, email, body, score)
SELECT g, 1 + g %% 3, convert_to('n' || g || '@example.org', 'UTF8'),
       convert_to('body of note ' || g || ' — ünïcode', 'UTF8'), (g %% 1000)::text
FROM generate_series(1, %d) g;
SELECT setval('notes_id_seq', %d);
ANALYZE notes;`, notesRows, notesRows)

type note struct {
	org         int32
	email, body *string
	score       *int32
}

func seedNote(id int64) note {
	s := int32(id % 1000)
	return note{org: int32(1 + id%3), email: sp(fmt.Sprintf("n%d@example.org", id)), body: sp(fmt.Sprintf("body of note %d — ünïcode", id)), score: &s}
}

func sameNote(a, b note) bool {
	return a.org == b.org && eqPtr(a.email, b.email) && eqPtr(a.body, b.body) &&
		((a.score == nil) == (b.score == nil)) && (a.score == nil || *a.score == *b.score)
}

func fmtNote(n note) string {
	score := "NULL"
	if n.score != nil {
		score = strconv.Itoa(int(*n.score))
	}
	return fmt.Sprintf("{org %d, %s, %s, %s}", n.org, fmtPtr(n.email), fmtPtr(n.body), score)
}

// noteWriter updates and inserts notes through pgveil until stopped.
type noteWriter struct {
	mu      sync.Mutex
	changed map[int64]note
	writes  int
	stop    chan struct{}
	done    chan error
}

func startNoteWriter(ctx context.Context, url string) *noteWriter {
	w := &noteWriter{changed: map[int64]note{}, stop: make(chan struct{}), done: make(chan error, 1)}
	go func() { w.done <- w.run(ctx, url) }()
	return w
}

func (w *noteWriter) run(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; ; i++ {
		select {
		case <-w.stop:
			return nil
		default:
		}
		var id int64
		score := int32(i)
		n := note{body: sp(fmt.Sprintf("rewritten %d", i)), score: &score}
		if i%3 == 0 {
			n.org, n.email = int32(1+i%3), sp(fmt.Sprintf("w%d@example.org", i))
			if err := conn.QueryRow(ctx, `INSERT INTO notes (org_id, email, body, score) VALUES ($1, $2, $3, $4) RETURNING id`,
				n.org, *n.email, *n.body, *n.score).Scan(&id); err != nil {
				return fmt.Errorf("insert through pgveil: %w", err)
			}
		} else {
			id = 1 + rng.Int64N(notesRows)
			w.mu.Lock()
			cur, ok := w.changed[id]
			w.mu.Unlock()
			if !ok {
				cur = seedNote(id)
			}
			n.org, n.email = cur.org, cur.email
			if _, err := conn.Exec(ctx, `UPDATE notes SET body = $1, score = $2 WHERE id = $3 AND org_id = $4`, *n.body, *n.score, id, n.org); err != nil {
				return fmt.Errorf("update through pgveil: %w", err)
			}
		}
		w.mu.Lock()
		w.changed[id] = n
		w.writes++
		w.mu.Unlock()
	}
}

func (w *noteWriter) finish(t *testing.T) map[int64]note {
	t.Helper()
	close(w.stop)
	if err := <-w.done; err != nil {
		t.Fatalf("application writer: %v", err)
	}
	t.Logf("application wrote %d times through pgveil", w.writes)
	return w.changed
}

// readNotes reads every note through conn and compares with want.
func readNotes(t *testing.T, ctx context.Context, conn *pgx.Conn, want map[int64]note) {
	t.Helper()
	rs, err := conn.Query(ctx, `SELECT id, org_id, email, body, score FROM notes ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	seen, bad := 0, 0
	for rs.Next() {
		var id int64
		var n note
		if err := rs.Scan(&id, &n.org, &n.email, &n.body, &n.score); err != nil {
			t.Fatal(err)
		}
		seen++
		if w, ok := want[id]; !ok || !sameNote(n, w) {
			if bad++; bad <= 5 {
				t.Errorf("note %d reads %s, want %s", id, fmtNote(n), fmtNote(w))
			}
		}
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(want) || bad > 0 {
		t.Fatalf("read %d notes, want %d; %d differ", seen, len(want), bad)
	}
}

// keyIDs lists pgveil.keys ids of encryption keys in a state.
func keyIDs(t *testing.T, ctx context.Context, c *pgx.Conn, state string) map[int64]bool {
	t.Helper()
	rs, err := c.Query(ctx, `SELECT key_id FROM pgveil.keys WHERE purpose = 'enc' AND state = $1`, state)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rs, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]bool{}
	for _, id := range ids {
		out[id] = true
	}
	return out
}

// storedKeyIDs counts values by the key id in their envelope, per column.
func storedKeyIDs(t *testing.T, ctx context.Context, c *pgx.Conn) map[string]map[int64]int {
	t.Helper()
	out := map[string]map[int64]int{}
	for _, q := range []struct{ col, expr string }{
		{"email", "get_byte(email, 1) << 24 | get_byte(email, 2) << 16 | get_byte(email, 3) << 8 | get_byte(email, 4)"},
		{"body", "get_byte(body, 1) << 24 | get_byte(body, 2) << 16 | get_byte(body, 3) << 8 | get_byte(body, 4)"},
		{"score", "('x' || encode(substr(decode(translate(substr(score, 6, 8), '-_', '+/'), 'base64'), 2, 4), 'hex'))::bit(32)::int"},
	} {
		rs, err := c.Query(ctx, fmt.Sprintf("SELECT (%s)::int8, count(*) FROM notes GROUP BY 1", q.expr))
		if err != nil {
			t.Fatal(err)
		}
		out[q.col] = map[int64]int{}
		for rs.Next() {
			var id int64
			var n int
			if err := rs.Scan(&id, &n); err != nil {
				t.Fatal(err)
			}
			out[q.col][id] = n
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestOpsRotateOnline rotates every data key of a table while the
// application writes through pgveil: every value ends under the new
// versions and reads back exactly, the old versions are destroyed. Then
// the master key is rotated (rewrap, rows untouched) and a pgveil that
// knows only the new master key reads everything; last, the table is
// decrypted for leaving pgveil.
func TestOpsRotateOnline(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	e := newOpsEnv(t, "ops_rotate", notesPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, notesSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	before := keyIDs(t, ctx, su, "active")
	if len(before) != 9 {
		t.Fatalf("want 3 columns × 3 tenants = 9 active keys, have %d", len(before))
	}

	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	want := map[int64]note{}
	for id := int64(1); id <= notesRows; id++ {
		want[id] = seedNote(id)
	}
	readNotes(t, ctx, app, want)

	w := startNoteWriter(ctx, e.appURL(p))
	r := e.run(ctx, 0, "rotate", "-c", cfg, "--grace", "3s", "--progress-every", "500ms")
	rows, rate := rowsPerSecond(r.stdout, "re-encrypt public.notes")
	t.Logf("rotation: %d rows re-encrypted at %d rows/s (3 columns, application writing meanwhile)\n%s", rows, rate, r.stdout)
	for id, n := range w.finish(t) {
		want[id] = n
	}

	active := keyIDs(t, ctx, su, "active")
	if len(active) != 9 {
		t.Fatalf("want 9 active keys after rotation, have %d", len(active))
	}
	for id := range before {
		if active[id] {
			t.Fatalf("key %d is still active", id)
		}
	}
	if n := len(keyIDs(t, ctx, su, "retired")); n != 0 {
		t.Fatalf("%d retired keys were not dropped", n)
	}
	shredded := keyIDs(t, ctx, su, "shredded")
	for id := range before {
		if !shredded[id] {
			t.Fatalf("old key %d is not a tombstone", id)
		}
	}
	for colName, byID := range storedKeyIDs(t, ctx, su) {
		for id, n := range byID {
			if !active[id] {
				t.Fatalf("%d values of %s are under key %d, not a new version", n, colName, id)
			}
		}
	}
	readNotes(t, ctx, app, want)

	// Master key rotation: a new key file, the old one as previous.
	newKey := e.dir + "/master2.key"
	e.run(ctx, 0, "keygen", "-o", newKey)
	cfg2 := e.writeConfig("pgveil2.yaml", e.config(newKey, e.key))
	r = e.run(ctx, 0, "rotate", "-c", cfg2, "--master")
	if !strings.Contains(r.stdout, "rewrapped") {
		t.Fatalf("rotate --master:\n%s", r.stdout)
	}
	var masters int
	var masterID string
	if err := su.QueryRow(ctx, `SELECT count(DISTINCT master_key_id), min(master_key_id) FROM pgveil.keys WHERE state <> 'shredded'`).Scan(&masters, &masterID); err != nil {
		t.Fatal(err)
	}
	if masters != 1 {
		t.Fatalf("%d master key ids after rewrap", masters)
	}
	// A pgveil that has only the new master key reads every value; check
	// agrees that the old key is no longer needed.
	onlyNew := e.config(newKey)
	e.run(ctx, 0, "check", "-c", e.writeConfig("pgveil3.yaml", onlyNew))
	p2 := e.proxy(onlyNew)
	app2 := e.appConn(ctx, p2)
	readNotes(t, ctx, app2, want)

	// Leaving pgveil: decrypt in place; blind indexes cleared; pgveil keeps
	// reading the table (state decrypting) as plaintext.
	r = e.run(ctx, 0, "migrate", "-c", cfg2, "--decrypt")
	if !strings.Contains(r.stdout, fmt.Sprintf("%d envelopes to decrypt", len(want))) || !strings.Contains(r.stdout, "blind indexes to clear") {
		t.Fatalf("decrypt plan:\n%s", r.stdout)
	}
	r = e.run(ctx, 0, "migrate", "-c", cfg2, "--decrypt", "--apply")
	if !strings.Contains(r.stdout, "every value is plaintext") {
		t.Fatalf("decrypt:\n%s", r.stdout)
	}
	if s := e.tableState(ctx, su, "public.notes"); s != "decrypting" {
		t.Fatalf("state after decrypt: %q", s)
	}
	var sealed, bidx int
	if err := su.QueryRow(ctx, `SELECT count(*) FILTER (WHERE get_byte(email, 0) = 1 OR get_byte(body, 0) = 1 OR score LIKE 'pgv1:%'),
		count(email_bidx) FROM notes`).Scan(&sealed, &bidx); err != nil {
		t.Fatal(err)
	}
	if sealed != 0 || bidx != 0 {
		t.Fatalf("after decrypt: %d rows still sealed, %d blind indexes left", sealed, bidx)
	}
	var body []byte
	var score string
	if err := su.QueryRow(ctx, `SELECT body, score FROM notes WHERE id = 7`).Scan(&body, &score); err != nil {
		t.Fatal(err)
	}
	if w := want[7]; string(body) != *w.body || score != strconv.Itoa(int(*w.score)) {
		t.Fatalf("note 7 at rest after decrypt: %q %q, want %s", body, score, fmtNote(w))
	}
	readNotes(t, ctx, app2, want)
}
