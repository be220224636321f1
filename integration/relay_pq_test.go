package integration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/pgveil/pgveil/integration/harness"
)

// TestRelayLibPQ runs one database/sql scenario with lib/pq directly and
// through pgveil: queries of several types, a prepared statement executed
// repeatedly, transactions rolled back and committed, a unique violation,
// COPY FROM STDIN through pq.CopyIn, and LISTEN/NOTIFY through pq.Listener
// with the notification sent from another connection. Every observation
// must be the same both ways.
func TestRelayLibPQ(t *testing.T) {
	relayLeakCheck(t)
	p := startRelayProxy(t, proxyConf{})
	ctx := testCtx(t, time.Minute)

	for _, user := range []string{harness.SCRAMUser, harness.MD5User} {
		t.Run(user, func(t *testing.T) {
			want := pqScenario(t, ctx, directURL(user, "sslmode=disable"))
			got := pqScenario(t, ctx, proxyURL(p, user, "sslmode=disable"))
			if !reflect.DeepEqual(want, got) {
				t.Errorf("lib/pq through pgveil differs from direct\n direct: %q\n pgveil: %q", want, got)
			}
			joined := strings.Join(got, "\n")
			for _, s := range []string{"notification relay_pq_ch \"payload ü 🐘\" from notifier: true", "copy count 1000", "23505", "rolled back: 0", "committed: 1"} {
				if !strings.Contains(joined, s) {
					t.Errorf("lib/pq through pgveil: no %q in\n%s", s, joined)
				}
			}
		})
	}
}

// pqScenario runs the lib/pq scenario against url and returns a trace of
// everything observed.
func pqScenario(t *testing.T, ctx context.Context, url string) []string {
	t.Helper()
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s (%s): %v", what, redact(url), err)
		}
	}

	_, err = db.ExecContext(ctx, `DROP TABLE IF EXISTS relay_pq;
		CREATE TABLE relay_pq (id int PRIMARY KEY, name text, amount numeric, data bytea, at timestamptz)`)
	must("create", err)
	defer db.ExecContext(context.Background(), "DROP TABLE IF EXISTS relay_pq")

	// Queries with parameters of several types and many rows.
	rows, err := db.QueryContext(ctx, `SELECT g, 'name ' || g || ' ü', (g * 1.5)::numeric, decode(lpad(to_hex(g), 4, '0'), 'hex'),
		timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', $1::text
		FROM generate_series(1, 500) g`, "param ✓")
	must("query", err)
	n := 0
	for rows.Next() {
		var (
			id     int
			name   string
			amount string
			data   []byte
			at     time.Time
			param  string
		)
		must("scan", rows.Scan(&id, &name, &amount, &data, &at, &param))
		if n%100 == 0 {
			add("row %d %q %s %x %s %q", id, name, amount, data, at.UTC().Format(time.RFC3339), param)
		}
		n++
	}
	must("rows", rows.Err())
	add("rows %d", n)

	// NULLs and an error with the server's fields.
	var null sql.NullString
	must("null", db.QueryRowContext(ctx, "SELECT $1::text", nil).Scan(&null))
	add("null valid=%v", null.Valid)
	_, err = db.ExecContext(ctx, "SELECT 1/0")
	add("division: %s", describePqErr(err))

	// A prepared statement run many times.
	stmt, err := db.PrepareContext(ctx, "SELECT $1::int * 2, $2::text || '!'")
	must("prepare", err)
	for i := 0; i < 5; i++ {
		var (
			doubled int
			s       string
		)
		must("prepared", stmt.QueryRowContext(ctx, i, fmt.Sprintf("v%d", i)).Scan(&doubled, &s))
		add("prepared %d %q", doubled, s)
	}
	must("close stmt", stmt.Close())

	// Transactions.
	tx, err := db.BeginTx(ctx, nil)
	must("begin", err)
	_, err = tx.ExecContext(ctx, "INSERT INTO relay_pq (id, name) VALUES ($1, $2)", -1, "rolled back")
	must("insert", err)
	must("rollback", tx.Rollback())
	var count int
	must("count", db.QueryRowContext(ctx, "SELECT count(*) FROM relay_pq WHERE id = -1").Scan(&count))
	add("rolled back: %d", count)
	tx, err = db.BeginTx(ctx, nil)
	must("begin", err)
	res, err := tx.ExecContext(ctx, "INSERT INTO relay_pq (id, name, amount, data, at) VALUES ($1, $2, $3, $4, $5)",
		0, "zero ✓", "12.50", []byte{0, 1, 0xff}, time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC))
	must("insert", err)
	affected, _ := res.RowsAffected()
	add("inserted %d", affected)
	must("commit", tx.Commit())
	must("count", db.QueryRowContext(ctx, "SELECT count(*) FROM relay_pq WHERE id = 0").Scan(&count))
	add("committed: %d", count)
	_, err = db.ExecContext(ctx, "INSERT INTO relay_pq (id, name) VALUES ($1, $2)", 0, "dup")
	add("duplicate: %s", describePqErr(err))

	// An error inside a transaction aborts it until rollback.
	tx, err = db.BeginTx(ctx, nil)
	must("begin", err)
	_, err = tx.ExecContext(ctx, "INSERT INTO relay_pq (id) VALUES (0)")
	add("in tx: %s", describePqErr(err))
	_, err = tx.ExecContext(ctx, "SELECT 1")
	add("aborted: %s", describePqErr(err))
	must("rollback", tx.Rollback())

	// COPY FROM STDIN.
	tx, err = db.BeginTx(ctx, nil)
	must("begin copy", err)
	cp, err := tx.PrepareContext(ctx, pq.CopyIn("relay_pq", "id", "name", "amount", "data", "at"))
	must("copy in", err)
	for i := 1; i <= 1000; i++ {
		var name any = fmt.Sprintf("copied\t%d \\ \"q\" ü", i)
		if i%10 == 0 {
			name = nil
		}
		_, err := cp.ExecContext(ctx, i, name, fmt.Sprintf("%d.%d", i, i%10), []byte{byte(i), 0, byte(i >> 8)}, time.Unix(int64(i)*3600, 0).UTC())
		must("copy row", err)
	}
	_, err = cp.ExecContext(ctx)
	must("copy flush", err)
	must("copy close", cp.Close())
	must("copy commit", tx.Commit())
	var sum, md5 string
	must("copy check", db.QueryRowContext(ctx, `SELECT count(*)::text, md5(string_agg(id || '|' || coalesce(name, 'NULL') || '|' || amount || '|' || encode(data, 'hex') || '|' || at, ',' ORDER BY id))
		FROM relay_pq WHERE id > 0`).Scan(&sum, &md5))
	add("copy count %s md5 %s", sum, md5)

	// A COPY that fails (duplicate key) reports the server's error.
	tx, err = db.BeginTx(ctx, nil)
	must("begin copy", err)
	cp, err = tx.PrepareContext(ctx, pq.CopyIn("relay_pq", "id", "name"))
	must("copy in", err)
	for i := 1; i <= 3; i++ {
		if _, err := cp.ExecContext(ctx, i, "again"); err != nil {
			add("copy dup row: %s", describePqErr(err))
			break
		}
	}
	_, err = cp.ExecContext(ctx)
	add("copy dup: %s", describePqErr(err))
	cp.Close()
	tx.Rollback()

	// LISTEN/NOTIFY: pq.Listener on its own connection, NOTIFY from a
	// connection of the pool whose backend pid we know.
	events := make(chan string, 16)
	l := pq.NewListener(url, 10*time.Millisecond, time.Second, func(ev pq.ListenerEventType, err error) {
		select {
		case events <- fmt.Sprintf("event %d %v", ev, err):
		default:
		}
	})
	defer l.Close()
	must("listen", l.Listen("relay_pq_ch"))
	must("listener ping", l.Ping())
	notifier, err := db.Conn(ctx)
	must("notifier", err)
	defer notifier.Close()
	var notifierPID int
	must("notifier pid", notifier.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&notifierPID))
	_, err = notifier.ExecContext(ctx, "SELECT pg_notify('relay_pq_ch', $1)", "payload ü 🐘")
	must("notify", err)
	_, err = notifier.ExecContext(ctx, "NOTIFY relay_pq_ch")
	must("notify", err)
	for i := 0; i < 2; i++ {
		select {
		case nt := <-l.Notify:
			if nt == nil {
				t.Fatalf("listener reconnected (%s): events %v", redact(url), drain(events))
			}
			add("notification %s %q from notifier: %v", nt.Channel, nt.Extra, nt.BePid == notifierPID)
		case <-time.After(10 * time.Second):
			t.Fatalf("no notification within 10s (%s); events %v", redact(url), drain(events))
		}
	}
	must("unlisten", l.Unlisten("relay_pq_ch"))
	must("listener close", l.Close())
	if evs := drain(events); len(evs) > 0 {
		add("listener events %v", evs)
	}
	return out
}

func drain(ch chan string) []string {
	var out []string
	for {
		select {
		case s := <-ch:
			out = append(out, s)
		default:
			return out
		}
	}
}

// describePqErr prints the fields of a lib/pq server error.
func describePqErr(err error) string {
	if err == nil {
		return "ok"
	}
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return "non-server error: " + err.Error()
	}
	return fmt.Sprintf("%s %s %q detail=%q table=%q constraint=%q where=%q routine=%q",
		pe.Severity, pe.Code, pe.Message, pe.Detail, pe.Table, pe.Constraint, pe.Where, pe.Routine)
}
