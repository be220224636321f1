package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/pgveil/pgveil/integration/harness"
)

const handBackSchema = `
DROP TABLE IF EXISTS hb_secrets, hb_plain;
CREATE TABLE hb_secrets (id serial PRIMARY KEY, body bytea);
CREATE TABLE hb_plain (id int, note text);
GRANT ALL ON hb_secrets, hb_plain TO PUBLIC;
GRANT ALL ON SEQUENCE hb_secrets_id_seq TO PUBLIC;
`

// hbTables is the policy of the hand-back tests: hb_secrets.body encrypted.
const hbTables = `tables:
  public.hb_secrets:
    columns:
      body:
        type: text
`

func startHandBackProxy(t *testing.T) *testProxy {
	t.Helper()
	if _, err := adminConn(t).Exec(context.Background(), handBackSchema); err != nil {
		t.Fatal(err)
	}
	return startTablesProxy(t, hbTables)
}

// TestEncryptionSessionStaysOnLoop: a session of a config with tables
// relays on the event loop, and stays there through the statements pgveil
// rewrites and the results it decrypts, in every exec mode; the first use
// of a key (not cached yet) is loaded off the loop while the message
// waits. COPY data hands the session to goroutines, where COPY works as
// always.
func TestEncryptionSessionStaysOnLoop(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startHandBackProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	m := p.srv.metrics
	loopSessions := func() float64 { return testutil.ToFloat64(m.LoopSessions) }

	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg, _ := pgx.ParseConfig(p.url())
			cfg.DefaultQueryExecMode = mode
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			waitFor(t, func() bool { return loopSessions() == 1 })
			for i := 0; i < 20; i++ {
				if _, err := c.Exec(ctx, "INSERT INTO hb_plain VALUES ($1, $2)", i, "note"); err != nil {
					t.Fatal(err)
				}
				var n int
				if err := c.QueryRow(ctx, "SELECT count(*) FROM hb_plain WHERE id <= $1", i).Scan(&n); err != nil || n < 1 {
					t.Fatalf("count: %d, %v", n, err)
				}
			}
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if got := loopSessions(); got != 1 {
				t.Fatalf("after pass-through statements, %v sessions on the loop; want 1", got)
			}
			for i := 0; i < 5; i++ {
				secret := fmt.Sprintf("hb-secret-%s-%d", mode, i)
				if _, err := c.Exec(ctx, "INSERT INTO hb_secrets (body) VALUES ($1)", secret); err != nil {
					t.Fatal(err)
				}
				var got string
				if err := c.QueryRow(ctx, "SELECT body FROM hb_secrets WHERE id = (SELECT max(id) FROM hb_secrets)").Scan(&got); err != nil || got != secret {
					t.Fatalf("read back: %q, %v", got, err)
				}
				assertNoPlaintext(t, "hb_secrets", secret)
			}
			if got := loopSessions(); got != 1 {
				t.Fatalf("after encrypted INSERTs and SELECTs, %v sessions on the loop; want 1", got)
			}
			if n := testutil.ToFloat64(m.LoopHandbacks); n != 0 {
				t.Fatalf("%v sessions handed back to goroutines; want 0", n)
			}
		})
	}
	// The first INSERT found no key cached: it waited off the loop once;
	// the statements after found it cached.
	if n := testutil.ToFloat64(m.LoopWaits.WithLabelValues("key")); n < 1 || n > 2 {
		t.Errorf("%v key waits on the loop; want 1 (the data key, first used) or 2 (and its reload)", n)
	}

	c, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	waitFor(t, func() bool { return loopSessions() == 1 })
	rows := [][]any{{"hb-copied-1"}, {"hb-copied-2"}}
	if n, err := c.CopyFrom(ctx, pgx.Identifier{"hb_secrets"}, []string{"body"}, pgx.CopyFromRows(rows)); err != nil || n != 2 {
		t.Fatalf("COPY: %d rows, %v", n, err)
	}
	if n := testutil.ToFloat64(m.LoopHandbacks); n != 1 {
		t.Fatalf("%v sessions handed back to goroutines; want 1", n)
	}
	// Back on the loop once the COPY is over (loopreturn.go).
	waitFor(t, func() bool { return testutil.ToFloat64(m.LoopReturns) == 1 && loopSessions() == 1 })
	var got string
	if err := c.QueryRow(ctx, "SELECT body FROM hb_secrets WHERE id = (SELECT max(id) FROM hb_secrets)").Scan(&got); err != nil || got != "hb-copied-2" {
		t.Fatalf("read back after COPY: %q, %v", got, err)
	}
	assertNoPlaintext(t, "hb_secrets", "hb-copied")
	if _, err := adminConn(t).Exec(ctx, "TRUNCATE hb_plain"); err != nil {
		t.Fatal(err)
	}
}

// TestHandBackMidStream: the loop hands the session back (for COPY data)
// while the server is partway through a 64 MB row the client has not read
// yet: the row arrives whole, then the answers to the COPY.
func TestHandBackMidStream(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startHandBackProxy(t)
	defer p.stop(t, 10*time.Second)
	const size = 64 << 20
	c := dialRaw(t, p)
	defer c.Close()
	waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopSessions) == 1 })
	w := bufio.NewWriter(c)
	writeMsg(w, 'Q', []byte(fmt.Sprintf("SELECT repeat('x', %d) AS big\x00", size)))
	w.Flush()
	// The server streams the row; the client reads nothing yet, so the
	// loop stops at its backlog limit with the row begun.
	waitClientWrite(t, "repeat('x', ", fmt.Sprint(size))
	writeMsg(w, 'Q', []byte("COPY hb_secrets (body) FROM STDIN\x00"))
	writeMsg(w, 'd', []byte("hb-mid-stream\n"))
	writeMsg(w, 'c', nil)
	w.Flush()
	waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopSessions) == 0 })

	r := bufio.NewReader(c)
	var got []byte
	for _, want := range []byte{'T', 'D', 'C', 'Z', 'G', 'C', 'Z'} {
		typ, body := readRawMsg(t, r)
		if typ != want {
			t.Fatalf("got message %q (%q), want %q", typ, body[:min(len(body), 80)], want)
		}
		switch {
		case typ == 'D':
			got = body
		case typ == 'C' && bytes.HasPrefix(body, []byte("COPY")):
			if string(body) != "COPY 1\x00" {
				t.Fatalf("COPY: %q", body)
			}
		}
	}
	// DataRow: count, length, then the value.
	if len(got) != 2+4+size || !bytes.Equal(got[6:], bytes.Repeat([]byte("x"), size)) {
		t.Fatalf("the row arrived with %d bytes, want %d of 'x'", len(got), 6+size)
	}
	assertNoPlaintext(t, "hb_secrets", "hb-mid-stream")
	writeMsg(w, 'X', nil)
	w.Flush()
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
}

// assertNoPlaintext checks on the server that table's body column holds
// envelopes and no row holds secret.
func assertNoPlaintext(t *testing.T, table, secret string) {
	t.Helper()
	rows, err := adminConn(t).Query(context.Background(), "SELECT body FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	bodies, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil || len(bodies) == 0 {
		t.Fatalf("%s: %d rows, %v", table, len(bodies), err)
	}
	for _, b := range bodies {
		if bytes.Contains(b, []byte(secret)) || len(b) < 29 || b[0] != 1 {
			t.Fatalf("%s holds %q, not an envelope", table, b[:min(len(b), 60)])
		}
	}
}

// TestPathReadWaitsForRest: with the search_path unknown, pgveil reads it
// again only when the server waits for a new command. After an error in an
// extended-protocol sequence the server skips everything until Sync, so a
// question sent then would never be answered and the session would hang.
func TestPathReadWaitsForRest(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startHandBackProxy(t)
	defer p.stop(t, 10*time.Second)
	c := dialRaw(t, p)
	defer c.Close()
	w, r := bufio.NewWriter(c), bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	readUntil := func(last byte) (types []byte) {
		for {
			typ, _ := readRawMsg(t, r)
			types = append(types, typ)
			if typ == last {
				return types
			}
		}
	}
	writeMsg(w, 'Q', []byte("SET search_path TO public\x00")) // the path is unknown now
	w.Flush()
	readUntil('Z')
	writeMsg(w, 'P', []byte("\x00SELECT * FROM hb_no_such_table\x00\x00\x00"))
	writeMsg(w, 'H', nil)
	w.Flush()
	readUntil('E') // the server now skips until Sync
	writeMsg(w, 'P', []byte("\x00INSERT INTO hb_secrets (body) VALUES ($1)\x00\x00\x00"))
	writeMsg(w, 'S', nil)
	w.Flush()
	if got := readUntil('Z'); string(got) != "Z" {
		t.Fatalf("after the skipped Parse and Sync: %q, want only ReadyForQuery", got)
	}
	// At rest now: the next statement reads the path and is sealed.
	writeMsg(w, 'Q', []byte("INSERT INTO hb_secrets (body) VALUES ('hb-after-skip')\x00"))
	w.Flush()
	if got := readUntil('Z'); string(got) != "CZ" {
		t.Fatalf("INSERT: %q", got)
	}
	assertNoPlaintext(t, "hb_secrets", "hb-after-skip")
	if n := testutil.ToFloat64(p.srv.metrics.SearchPathReads); n != 1 {
		t.Errorf("search_path read %v times, want 1 (after the Sync, not during the skip)", n)
	}
	// The loop asked and waited for the answer itself.
	if n := testutil.ToFloat64(p.srv.metrics.LoopSessions); n != 1 {
		t.Errorf("%v sessions on the loop, want 1", n)
	}
	if n := testutil.ToFloat64(p.srv.metrics.LoopHandbacks); n != 0 {
		t.Errorf("%v sessions handed back, want 0", n)
	}
}

// TestKeyLoadDoesNotStallLoop: a key the process has not cached is loaded
// off the loop. While the load waits (pgveil.keys locked by another
// transaction), the session that needs the key waits at that message, and
// another session on the same loop goes on; once the lock is gone the
// waiting statement completes, sealed, still on the loop.
func TestKeyLoadDoesNotStallLoop(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startHandBackProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	m := p.srv.metrics
	connect := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	other, waiter := connect(), connect()
	defer other.Close(ctx)
	defer waiter.Close(ctx)
	waitFor(t, func() bool { return testutil.ToFloat64(m.LoopSessions) == 2 })

	unlock := lockKeys(t)
	defer unlock()
	done := make(chan error, 1)
	go func() {
		_, err := waiter.Exec(ctx, "INSERT INTO hb_secrets (body) VALUES ($1)", "hb-waited")
		done <- err
	}()
	waitFor(t, func() bool { return testutil.ToFloat64(m.LoopWaits.WithLabelValues("key")) == 1 })
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for i := 0; i < 50; i++ {
		var n int
		if err := other.QueryRow(octx, "SELECT count(*) FROM hb_plain WHERE id >= $1", i).Scan(&n); err != nil {
			t.Fatalf("a session on the same loop, while a key loads: %v", err)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the INSERT ended while its key could not load: %v", err)
	default:
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatalf("the INSERT after its key loaded: %v", err)
	}
	var got string
	if err := waiter.QueryRow(ctx, "SELECT body FROM hb_secrets").Scan(&got); err != nil || got != "hb-waited" {
		t.Fatalf("read back: %q, %v", got, err)
	}
	assertNoPlaintext(t, "hb_secrets", "hb-waited")
	if n := testutil.ToFloat64(m.LoopSessions); n != 2 {
		t.Errorf("%v sessions on the loop; want 2", n)
	}
	if n := testutil.ToFloat64(m.LoopHandbacks); n != 0 {
		t.Errorf("%v sessions handed back; want 0", n)
	}
}

// TestUnknownKeyOnLoop: a value sealed under a key pgveil.keys lacks
// ends the session with PV002 on the loop as on goroutines: the loop asks
// for the key off the loop, the load fails, and the message is decoded
// again with that failure.
func TestUnknownKeyOnLoop(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startHandBackProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	m := p.srv.metrics
	env := make([]byte, 1+4+12+16+3)
	env[0] = 1
	copy(env[1:5], []byte{0x7f, 0xff, 0xff, 0x01}) // no such key id
	if _, err := adminConn(t).Exec(ctx, "INSERT INTO hb_secrets (body) VALUES ($1)", env); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	waitFor(t, func() bool { return testutil.ToFloat64(m.LoopSessions) == 1 })
	var got string
	err = c.QueryRow(ctx, "SELECT body FROM hb_secrets").Scan(&got)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != codeValueUnknownKey || pe.Severity != "FATAL" {
		t.Fatalf("reading a value under an unknown key: %q, %v; want FATAL %s", got, err, codeValueUnknownKey)
	}
	if n := testutil.ToFloat64(m.LoopWaits.WithLabelValues("key")); n != 1 {
		t.Errorf("%v key waits; want 1", n)
	}
	if n := testutil.ToFloat64(m.LoopHandbacks); n != 0 {
		t.Errorf("%v sessions handed back; want 0", n)
	}
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
}

// TestDDLStaysOnLoop: DDL sent through a session on the loop makes pgveil
// read the catalog again before the session's next statement that may name
// a configured table; the loop does the reading off the loop while that
// statement waits, and the statement is planned with the new catalog
// (SELECT * numbers the new column). Within a transaction block the
// session plans by name until the block ends, then settles the same way.
func TestDDLStaysOnLoop(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startHandBackProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	m := p.srv.metrics
	c, err := pgx.Connect(ctx, harness.BuildURL(p.addr, harness.SuperUser, harness.Passwords[harness.SuperUser], harness.Database, "sslmode=disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	waitFor(t, func() bool { return testutil.ToFloat64(m.LoopSessions) == 1 })
	if _, err := c.Exec(ctx, "ALTER TABLE hb_secrets ADD COLUMN extra int"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "INSERT INTO hb_secrets (body, extra) VALUES ($1, 7)", "hb-after-ddl"); err != nil {
		t.Fatal(err)
	}
	var body string
	if err := c.QueryRow(ctx, "SELECT body FROM (SELECT * FROM hb_secrets) s WHERE extra = 7").Scan(&body); err != nil || body != "hb-after-ddl" {
		t.Fatalf("after DDL: %q, %v", body, err)
	}
	catalogWaits := func() float64 { return testutil.ToFloat64(m.LoopWaits.WithLabelValues("catalog")) }
	if n := catalogWaits(); n < 1 {
		t.Fatalf("%v catalog waits on the loop, want at least 1", n)
	}
	before := catalogWaits()
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "ALTER TABLE hb_secrets ADD COLUMN more int"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO hb_secrets (body, extra, more) VALUES ($1, 8, 9)", "hb-in-block"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, "SELECT body FROM (SELECT * FROM hb_secrets) s WHERE more = 9").Scan(&body); err != nil || body != "hb-in-block" {
		t.Fatalf("after DDL in a block: %q, %v", body, err)
	}
	if n := catalogWaits(); n <= before {
		t.Errorf("no catalog wait after the block's DDL (%v, before %v)", n, before)
	}
	assertNoPlaintext(t, "hb_secrets", "hb-")
	if n := testutil.ToFloat64(m.LoopSessions); n != 1 {
		t.Errorf("%v sessions on the loop, want 1", n)
	}
	if n := testutil.ToFloat64(m.LoopHandbacks); n != 0 {
		t.Errorf("%v sessions handed back, want 0", n)
	}
}

// lockKeys makes every read of pgveil.keys wait (another transaction
// holds the table) until unlock, which may be called more than once.
func lockKeys(t *testing.T) (unlock func()) {
	t.Helper()
	ctx := context.Background()
	lock := adminConn(t)
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE pgveil.keys IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if err := tx.Commit(ctx); err != nil {
				t.Error(err)
			}
			lock.Close(ctx)
		})
	}
}
