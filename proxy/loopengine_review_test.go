package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

// Regression tests from the review of encryption on the event loop.

// relayCoreConfigs are the config lines of the two relays: the event loop
// (the default) and goroutines.
var relayCoreConfigs = []struct{ name, extra string }{{"loop", ""}, {"goroutines", "proxy:\n  event_loops: 0\n"}}

// relayCores runs f against a proxy for tables on the event loop and on
// goroutines (proxy.event_loops: 0).
func relayCores(t *testing.T, schema, tables string, f func(t *testing.T, p *testProxy)) {
	for _, core := range relayCoreConfigs {
		t.Run(core.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			if _, err := adminConn(t).Exec(context.Background(), schema); err != nil {
				t.Fatal(err)
			}
			p := startTablesProxy(t, tables+core.extra)
			defer p.stop(t, 10*time.Second)
			f(t, p)
		})
	}
}

// TestHandBackMidClientMessage: the loop hands the session back (the
// server starts a COPY TO of an encrypted table) while it is streaming a
// CopyData message of the client's to a COPY FROM of a plain table,
// pipelined behind it. The rest of that message goes upstream as it
// came, and what follows is read as messages again: a plaintext INSERT
// into the encrypted table after it is sealed. (Before the fix the rest
// was read as a header: the session failed, or later messages went
// upstream raw.)
func TestHandBackMidClientMessage(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startHandBackProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	pc, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Exec(ctx, "INSERT INTO hb_secrets (body) VALUES ($1)", "hb-copied-out"); err != nil {
		t.Fatal(err)
	}
	pc.Close(ctx)
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })

	c := dialRaw(t, p)
	defer c.Close()
	waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopSessions) == 1 })
	w, r := bufio.NewWriter(c), bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	const rows = 2000
	data := []byte(strings.Repeat("7\thb-plain-note\n", rows))
	writeMsg(w, 'Q', []byte("COPY hb_secrets (body) TO STDOUT\x00"))
	writeMsg(w, 'Q', []byte("COPY hb_plain (id, note) FROM STDIN\x00"))
	var h [5]byte
	h[0] = 'd'
	binary.BigEndian.PutUint32(h[1:], uint32(len(data)+4))
	w.Write(h[:])
	w.Write(data[:len(data)/2])
	w.Flush()
	waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopSessions) == 0 })
	w.Write(data[len(data)/2:])
	writeMsg(w, 'c', nil)
	writeMsg(w, 'Q', []byte("INSERT INTO hb_secrets (body) VALUES ('hb-after-handback')\x00"))
	writeMsg(w, 'Q', []byte("SELECT 1 /* "+strings.Repeat("x", 100000)+" */\x00"))
	w.Flush()
	var got []byte
	var copied, plainDone bool
	for zs := 0; zs < 4; {
		typ, body := readRawMsg(t, r)
		got = append(got, typ)
		switch {
		case typ == 'Z':
			zs++
		case typ == 'E':
			t.Fatalf("error after %q: %q", got, body)
		case typ == 'd' && string(body) == "hb-copied-out\n":
			copied = true
		case typ == 'C' && string(body) == "COPY 2000\x00":
			plainDone = true
		}
	}
	if !copied || !plainDone {
		t.Fatalf("messages %q: decrypted COPY row %v, plain COPY of %d rows done %v", got, copied, rows, plainDone)
	}
	assertNoPlaintext(t, "hb_secrets", "hb-after-handback")
	var n int
	if err := adminConn(t).QueryRow(ctx, "SELECT count(*) FROM hb_plain WHERE note = 'hb-plain-note'").Scan(&n); err != nil || n != rows {
		t.Fatalf("hb_plain: %d rows, %v", n, err)
	}
}

// TestPlainCopyStaysOnLoop: COPY of a table pgveil does not encrypt needs
// nothing of the goroutine relay; pgx's CopyFrom, which sends its data
// before the server's CopyInResponse, works on the loop and leaves the
// session there.
func TestPlainCopyStaysOnLoop(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startHandBackProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		c, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		rows := make([][]any, 20000)
		for j := range rows {
			rows[j] = []any{int32(j), "some note text to make the rows longer"}
		}
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		n, err := c.CopyFrom(cctx, pgx.Identifier{"hb_plain"}, []string{"id", "note"}, pgx.CopyFromRows(rows))
		cancel()
		if err != nil || n != int64(len(rows)) {
			t.Fatalf("run %d: CopyFrom: %d rows, %v", i, n, err)
		}
		if got := testutil.ToFloat64(p.srv.metrics.LoopSessions); got != 1 {
			t.Fatalf("run %d: %v sessions on the loop, want 1", i, got)
		}
		c.Close(ctx)
	}
	if n := testutil.ToFloat64(p.srv.metrics.LoopHandbacks); n != 0 {
		t.Errorf("%v sessions handed back, want 0", n)
	}
}

// TestFailedKeyLoadIsThatKeys: a row with a value under a shredded key
// (column a) and one under a key not cached yet (column b). The failed
// load of a's key makes a NULL, and b opens: on the loop, the failure of
// one key's load is not taken for another's.
func TestFailedKeyLoadIsThatKeys(t *testing.T) {
	relayCores(t, `DROP TABLE IF EXISTS hb_two; CREATE TABLE hb_two (id int, a bytea, b bytea); GRANT ALL ON hb_two TO PUBLIC;`, `tables:
  public.hb_two:
    columns:
      a:
        type: text
      b:
        type: text
`, func(t *testing.T, p *testProxy) {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "INSERT INTO hb_two (id, a, b) VALUES (1, $1, $2)", "value-a", "value-b"); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
		if _, err := adminConn(t).Exec(ctx, "UPDATE pgveil.keys SET state = 'shredded', wrapped_key = NULL WHERE scope = 'public.hb_two.a'"); err != nil {
			t.Fatal(err)
		}
		p.srv.eng.Load().keys.Forget()
		c, err = pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var a, b *string
		if err := c.QueryRow(ctx, "SELECT a, b FROM hb_two").Scan(&a, &b); err != nil {
			t.Fatal(err)
		}
		if a != nil || b == nil || *b != "value-b" {
			t.Fatalf("a=%v b=%v; want a NULL (shredded) and b %q", strOrNull(a), strOrNull(b), "value-b")
		}
	})
}

func strOrNull(s *string) string {
	if s == nil {
		return "<NULL>"
	}
	return *s
}

// TestErrorEndsResultMap: a simple query on an encrypted table that fails
// after its RowDescription (a division by zero in its second row) leaves
// no result map behind: the rows of the next query, which pgveil passes
// through, are not decoded with it.
func TestErrorEndsResultMap(t *testing.T) {
	relayCores(t, handBackSchema+"INSERT INTO hb_plain VALUES (1, 'plain-note');", hbTables, func(t *testing.T, p *testProxy) {
		ctx := context.Background()
		cfg, _ := pgx.ParseConfig(p.url())
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		for _, s := range []string{"a", "b"} {
			if _, err := c.Exec(ctx, "INSERT INTO hb_secrets (body) VALUES ($1)", s); err != nil {
				t.Fatal(err)
			}
		}
		rows, _ := c.Query(ctx, "SELECT body, 1/(id-2) FROM hb_secrets ORDER BY id")
		for rows.Next() {
		}
		if err := rows.Err(); err == nil || !strings.Contains(err.Error(), "22012") {
			t.Fatalf("the failing query: %v, want division_by_zero", err)
		}
		var note string
		if err := c.QueryRow(ctx, "SELECT note FROM hb_plain").Scan(&note); err != nil || note != "plain-note" {
			t.Fatalf("a pass-through query after it: %q, %v", note, err)
		}
	})
}

// From the second review.

// TestHandBackBothWaysAtOnce: the loop hands back while it streams a 32 MB
// CopyData of the client's (a COPY FROM of a plain table, pipelined) and
// the server has begun a large COPY TO of an encrypted table, which it
// writes without reading. What the loop left goes on each way at once:
// every row reaches the client and the client's data reaches the server.
// (Before, the client's rest was pushed first, into a server that was not
// reading: a hang.)
func TestHandBackBothWaysAtOnce(t *testing.T) {
	relayCores(t, handBackSchema, hbTables, func(t *testing.T, p *testProxy) {
		ctx := context.Background()
		pc, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.Exec(ctx, "INSERT INTO hb_secrets (body) VALUES ($1)", "hb-copied-out"); err != nil {
			t.Fatal(err)
		}
		pc.Close(ctx)
		const outRows = 200000
		if _, err := adminConn(t).Exec(ctx, "INSERT INTO hb_secrets (body) SELECT body FROM hb_secrets, generate_series(2, $1)", outRows); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
		loop := strings.HasSuffix(t.Name(), "/loop")
		c := dialRaw(t, p)
		defer c.Close()
		if loop {
			waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopSessions) == 1 })
		}
		c.SetDeadline(time.Now().Add(60 * time.Second))
		w, r := bufio.NewWriterSize(c, 1<<20), bufio.NewReader(c)
		const inRows = 2_000_000
		data := []byte(strings.Repeat("7\thb-plain-note\n", inRows)) // 32 MB
		writeMsg(w, 'Q', []byte("COPY hb_secrets (body) TO STDOUT\x00"))
		writeMsg(w, 'Q', []byte("COPY hb_plain (id, note) FROM STDIN\x00"))
		var h [5]byte
		h[0] = 'd'
		binary.BigEndian.PutUint32(h[1:], uint32(len(data)+4))
		w.Write(h[:])
		w.Write(data[:1000])
		w.Flush()
		wrote := make(chan error, 1)
		go func() {
			w.Write(data[1000:])
			writeMsg(w, 'c', nil)
			writeMsg(w, 'Q', []byte("SELECT 1\x00"))
			wrote <- w.Flush()
		}()
		copied, zs := 0, 0
		start := time.Now()
		defer func() { t.Logf("%d rows out, 2M in, in %v", copied, time.Since(start)) }()
		var done []string
		for zs < 3 {
			var hh [5]byte
			if _, err := ioReadFull(r, hh[:]); err != nil {
				t.Fatalf("%d rows copied out, %d ReadyForQuery: %v", copied, zs, err)
			}
			body := make([]byte, int(binary.BigEndian.Uint32(hh[1:]))-4)
			if _, err := ioReadFull(r, body); err != nil {
				t.Fatal(err)
			}
			switch hh[0] {
			case 'Z':
				zs++
			case 'E':
				t.Fatalf("error: %q", body)
			case 'C':
				done = append(done, strings.TrimSuffix(string(body), "\x00"))
			case 'd': // pgveil sends decrypted rows in chunks
				rows := strings.Count(string(body), "\n")
				if len(body) != rows*len("hb-copied-out\n") || strings.Count(string(body), "hb-copied-out\n") != rows {
					t.Fatalf("COPY TO data of %d bytes is not %d rows of the value", len(body), rows)
				}
				copied += rows
			}
		}
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
		if copied != outRows || len(done) != 3 || done[1] != "COPY 2000000" {
			t.Fatalf("%d rows copied out (want %d), completions %q", copied, outRows, done)
		}
		if loop {
			if n := testutil.ToFloat64(p.srv.metrics.LoopHandbacks); n != 1 {
				t.Errorf("%v hand-backs, want 1", n)
			}
		}
	})
}

// TestTwoCopyFromInOneQuery: a query string with a COPY FROM STDIN of an
// encrypted table and another COPY is refused: the data after each
// CopyInResponse could not be told apart, and the second COPY's plaintext
// went to the server raw.
func TestTwoCopyFromInOneQuery(t *testing.T) {
	relayCores(t, handBackSchema, hbTables, func(t *testing.T, p *testProxy) {
		for _, sql := range []string{
			"COPY hb_secrets (body) FROM STDIN; COPY hb_secrets (body) FROM STDIN",
			"COPY hb_plain (id, note) FROM STDIN; COPY hb_secrets (body) FROM STDIN",
		} {
			c := dialRaw(t, p)
			c.SetDeadline(time.Now().Add(20 * time.Second))
			w, r := bufio.NewWriter(c), bufio.NewReader(c)
			writeMsg(w, 'Q', []byte(sql+"\x00"))
			w.Flush()
			var got []byte
			var code string
			for {
				typ, body := readRawMsg(t, r)
				got = append(got, typ)
				switch typ {
				case 'G':
					writeMsg(w, 'd', []byte("hb-two-copies\n"))
					writeMsg(w, 'c', nil)
					w.Flush()
				case 'E':
					code = errorField(body, 'C')
				}
				if typ == 'Z' {
					break
				}
			}
			c.Close()
			if string(got) != "EZ" || code != "0A000" {
				t.Errorf("%s: messages %q, SQLSTATE %q; want a 0A000 refusal", sql, got, code)
			}
		}
		var n int
		if err := adminConn(t).QueryRow(context.Background(), "SELECT count(*) FROM hb_secrets").Scan(&n); err != nil || n != 0 {
			t.Fatalf("hb_secrets: %d rows, %v", n, err)
		}
	})
}

// TestStaleCopyPlan: a COPY FROM of an encrypted table that the server
// refuses before it starts (in a failed transaction) leaves no plan
// behind: a later COPY of a plain table in the session takes its rows as
// they are.
func TestStaleCopyPlan(t *testing.T) {
	relayCores(t, handBackSchema, hbTables, func(t *testing.T, p *testProxy) {
		c := dialRaw(t, p)
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		w, r := bufio.NewWriter(c), bufio.NewReader(c)
		q := func(sql, data string) (codes []string) {
			writeMsg(w, 'Q', []byte(sql+"\x00"))
			w.Flush()
			for {
				typ, body := readRawMsg(t, r)
				switch typ {
				case 'G':
					writeMsg(w, 'd', []byte(data))
					writeMsg(w, 'c', nil)
					w.Flush()
				case 'E':
					codes = append(codes, errorField(body, 'C'))
				}
				if typ == 'Z' {
					return codes
				}
			}
		}
		q("BEGIN", "")
		q("SELECT 1/0", "")
		if codes := q("COPY hb_secrets (body) FROM STDIN", "x\n"); len(codes) != 1 || codes[0] != "25P02" {
			t.Fatalf("COPY in a failed transaction: %q, want 25P02", codes)
		}
		q("ROLLBACK", "")
		if codes := q("COPY hb_plain (id, note) FROM STDIN", "1\thb-plain\n"); len(codes) != 0 {
			t.Fatalf("COPY of a plain table after it: %q", codes)
		}
		var note string
		if err := adminConn(t).QueryRow(context.Background(), "SELECT note FROM hb_plain WHERE id = 1").Scan(&note); err != nil || note != "hb-plain" {
			t.Fatalf("hb_plain: %q, %v", note, err)
		}
	})
}

// TestWideRowKeys: a row with 70 encrypted columns, each under its own
// key, none cached: the loop waits for each key once and returns the row.
func TestWideRowKeys(t *testing.T) {
	const n = 70
	var ddl, cfg, cols, params strings.Builder
	ddl.WriteString("DROP TABLE IF EXISTS hb_wide; CREATE TABLE hb_wide (id int")
	cfg.WriteString("tables:\n  public.hb_wide:\n    columns:\n")
	var args []any
	for i := 0; i < n; i++ {
		fmt.Fprintf(&ddl, ", c%d bytea", i)
		fmt.Fprintf(&cfg, "      c%d:\n        type: text\n", i)
		if i > 0 {
			cols.WriteString(", ")
			params.WriteString(", ")
		}
		fmt.Fprintf(&cols, "c%d", i)
		fmt.Fprintf(&params, "$%d", i+1)
		args = append(args, fmt.Sprintf("v%d", i))
	}
	ddl.WriteString("); GRANT ALL ON hb_wide TO PUBLIC;")
	relayCores(t, ddl.String(), cfg.String(), func(t *testing.T, p *testProxy) {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "INSERT INTO hb_wide ("+cols.String()+") VALUES ("+params.String()+")", args...); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
		p.srv.eng.Load().keys.Forget()
		c, err = pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		vals := make([]string, n)
		dst := make([]any, n)
		for i := range vals {
			dst[i] = &vals[i]
		}
		if err := c.QueryRow(ctx, "SELECT "+cols.String()+" FROM hb_wide").Scan(dst...); err != nil {
			t.Fatalf("SELECT of %d encrypted columns: %v", n, err)
		}
		for i, v := range vals {
			if v != fmt.Sprintf("v%d", i) {
				t.Fatalf("c%d = %q", i, v)
			}
		}
	})
}
