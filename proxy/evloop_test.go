//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/pgveil/pgveil/integration/harness"
)

// The event loop is tested here for what the wire scripts and driver
// tests (which run on it by default) do not reach: messages far larger
// than its buffers in both directions, and a client that stops reading.

// TestEventLoopLargeMessages moves large messages each way through both
// relay cores and compares them with what the server computes.
func TestEventLoopLargeMessages(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, core := range []struct {
		name, extra string
		onLoop      float64
	}{{"event_loop", "", 1}, {"goroutines", "proxy:\n  event_loops: 0\n", 0}} {
		t.Run(core.name, func(t *testing.T) {
			p := startProxy(t, core.extra)
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, p.url())
			if err != nil {
				t.Fatal(err)
			}
			// The gauge rises when the loop has the session, just after
			// the client saw ReadyForQuery: wait for it (with the goroutine
			// core it must stay 0, which the next check after the session
			// and the per-session debug lines of the integration tests cover).
			if core.onLoop > 0 {
				waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopSessions) == core.onLoop })
			} else if got := testutil.ToFloat64(p.srv.metrics.LoopSessions); got != 0 {
				t.Errorf("pgveil_event_loop_sessions = %v with event_loops 0", got)
			}
			big := strings.Repeat("0123456789abcdef", 3<<20/16) // 3 MiB: a Bind far over the 32 KiB buffers
			for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
				var n int
				var sum string
				if err := conn.QueryRow(ctx, "SELECT length($1::text), md5($1::text)", mode, big).Scan(&n, &sum); err != nil {
					t.Fatalf("%v: %v", mode, err)
				}
				if n != len(big) || sum != fmt.Sprintf("%x", md5sum(big)) {
					t.Fatalf("%v: server saw %d bytes, md5 %s", mode, n, sum)
				}
			}
			// A 200 KB statement text (Parse and Query), and an 8 MB DataRow.
			lit := strings.Repeat("x", 200_000)
			var back string
			if err := conn.QueryRow(ctx, "SELECT '"+lit+"'::text").Scan(&back); err != nil || back != lit {
				t.Fatalf("long statement: %v (got %d bytes)", err, len(back))
			}
			if err := conn.QueryRow(ctx, "SELECT repeat('ab', 4000000)").Scan(&back); err != nil || back != strings.Repeat("ab", 4000000) {
				t.Fatalf("8 MB row: %v (got %d bytes)", err, len(back))
			}
			// Many rows across many buffer boundaries.
			rows, err := conn.Query(ctx, "SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			count := 0
			for rows.Next() {
				var g int
				var m string
				if err := rows.Scan(&g, &m); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(h, "%d %s\n", g, m)
				count++
			}
			if rows.Err() != nil || count != 20000 {
				t.Fatalf("rows: %v, %d rows", rows.Err(), count)
			}
			var want string
			if err := conn.QueryRow(ctx, "SELECT encode(sha256(string_agg(g || ' ' || md5(g::text) || E'\\n', '' ORDER BY g)::bytea), 'hex') FROM generate_series(1, 20000) g").Scan(&want); err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%x", h.Sum(nil)); got != want {
				t.Fatalf("rows differ from the server's: sha256 %s, server %s", got, want)
			}
			// COPY both ways, 5 MB.
			if _, err := conn.Exec(ctx, "CREATE TEMP TABLE loop_copy (a int, b text)"); err != nil {
				t.Fatal(err)
			}
			var in bytes.Buffer
			for i := 0; i < 50_000; i++ {
				fmt.Fprintf(&in, "%d\t%s\n", i, strings.Repeat("y", 90))
			}
			if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(in.Bytes()), "COPY loop_copy FROM STDIN"); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if _, err := conn.PgConn().CopyTo(ctx, &out, "COPY (SELECT * FROM loop_copy ORDER BY a) TO STDOUT"); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), in.Bytes()) {
				t.Fatalf("COPY round trip: %d bytes in, %d out", in.Len(), out.Len())
			}
			conn.Close(ctx)
			waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
			if got := testutil.ToFloat64(p.srv.metrics.LoopSessions); got != 0 {
				t.Errorf("pgveil_event_loop_sessions = %v after the session, want 0", got)
			}
			p.stop(t, 10*time.Second)
		})
	}
}

func md5sum(s string) [16]byte { return md5.Sum([]byte(s)) }

// TestEventLoopStalledClient: a client that stops reading a large result
// is paused, not buffered: the loop stops reading its server (which then
// waits to write, wait_event ClientWrite), keeps at most about
// loopHighWater bytes for it, and goes on serving another session.
func TestEventLoopStalledClient(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startProxy(t, "")
	ctx := context.Background()
	stalled := stallClient(t, p, "stalled-", "marker")
	defer stalled.Close()
	other, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		var n int
		if err := other.QueryRow(ctx, "SELECT $1::int + 1", i).Scan(&n); err != nil || n != i+1 {
			t.Fatalf("other session: %v", err)
		}
	}
	// After all that, what the loop holds for the stalled client, asked on its thread.
	held := make(chan int, 1)
	l := p.srv.loops[0]
	l.submit(func() {
		most := 0
		for _, sd := range l.sides.all() {
			most = max(most, sd.pending()+len(sd.in))
		}
		held <- most
	})
	if n := <-held; n > loopHighWater+4*readBufferSize {
		t.Errorf("the loop holds %d bytes for a client that does not read; want at most about %d", n, loopHighWater)
	}

	other.Close(ctx)
	stalled.Close()
	waitBackendGone(t, "stalled-marker")
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	p.stop(t, 10*time.Second)
}

// stallClient logs in on a raw connection, asks for about 200 MB of rows
// (the query carries the comment marker a+b) and never reads them; it
// returns once the server waits to write (wait_event ClientWrite).
func stallClient(t *testing.T, p *testProxy, a, b string) net.Conn {
	t.Helper()
	c := dialRaw(t, p)
	w := bufio.NewWriter(c)
	writeMsg(w, 'Q', []byte("SELECT repeat('z', 1000) /* "+a+b+" */ FROM generate_series(1, 200000)\x00"))
	w.Flush()
	waitClientWrite(t, a, b)
	return c
}

// dialRaw opens a raw connection to p and logs in as the trust user.
func dialRaw(t *testing.T, p *testProxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	startupRaw(t, c, harness.TrustUser)
	return c
}

// waitClientWrite waits until the backend running the query marked a+b
// blocks writing to its client (wait_event ClientWrite). The marker is
// split so that the query asking does not hold it.
func waitClientWrite(t *testing.T, a, b string) {
	t.Helper()
	ctx := context.Background()
	admin := adminConn(t)
	waitFor(t, func() bool {
		var n int
		admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'ClientWrite' AND query LIKE '%' || $1 || $2 || '%' AND pid <> pg_backend_pid()", a, b).Scan(&n)
		return n == 1
	})
}

// startupRaw logs user in (trust) on a raw connection and reads up to the
// first ReadyForQuery.
func startupRaw(t *testing.T, c net.Conn, user string) {
	t.Helper()
	var b []byte
	b = append(b, 0, 0, 0, 0, 0, 3, 0, 0)
	b = append(b, "user\x00"+user+"\x00database\x00"+harness.Database+"\x00\x00"...)
	b[0], b[1], b[2], b[3] = byte(len(b)>>24), byte(len(b)>>16), byte(len(b)>>8), byte(len(b))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	for {
		typ, body := readRawMsg(t, r)
		switch typ {
		case 'E':
			t.Fatalf("startup: %q", body)
		case 'Z':
			if r.Buffered() != 0 {
				t.Fatal("bytes after ReadyForQuery")
			}
			return
		}
	}
}

// TestNamesIn: the loop streams a Parse/Bind/Describe/Execute/Close once
// the names the tracker reads are buffered, and not before.
func TestNamesIn(t *testing.T) {
	for _, c := range []struct {
		typ  byte
		part string
		want bool
	}{
		{'P', "", false},
		{'P', "stmt", false},
		{'P', "stmt\x00SELECT", true},
		{'P', "\x00", true},
		{'B', "portal\x00", false},
		{'B', "portal\x00st", false},
		{'B', "\x00\x00", true},
		{'B', "p\x00s\x00\x00\x01", true},
		{'D', "S", false},
		{'D', "S\x00", true}, // kind, then the unnamed statement
		{'D', "\x00", false}, // the kind byte is not a name
		{'C', "Pname\x00", true},
		{'E', "portal", false},
		{'E', "portal\x00\x00\x00", true},
	} {
		if got := namesIn(c.typ, []byte(c.part)); got != c.want {
			t.Errorf("namesIn(%q, %q) = %v, want %v", c.typ, c.part, got, c.want)
		}
	}
}
