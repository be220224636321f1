package integration

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/integration/harness"
)

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// TestRelayUpstreamUnreachable points pgveil at a port where nothing
// listens: a client gets a proper ErrorResponse (08001), /readyz says 503,
// and pgveil keeps serving; after the config is fixed and reloaded with
// SIGHUP, the same process serves clients and /readyz says 200.
func TestRelayUpstreamUnreachable(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	conf := proxyConf{upstream: closedAddr(t)}
	p := startRelayProxy(t, conf)

	for i := 0; i < 3; i++ {
		_, err := pgx.Connect(ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"))
		pe := pgErr(err)
		if pe == nil || pe.Code != "08001" {
			t.Fatalf("connect with upstream down: %v, want an ErrorResponse with SQLSTATE 08001", err)
		}
		if !strings.Contains(pe.Message, conf.upstream) {
			t.Errorf("08001 message %q does not name the upstream address", pe.Message)
		}
	}
	if code, body := adminGet(t, p, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with upstream down: %d %q, want 503", code, body)
	}
	if code, _ := adminGet(t, p, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with upstream down: %d, want 200 (the process is alive)", code)
	}

	conf.upstream = cluster.Addr()
	reloads := logCount(p, "config reloaded")
	rewriteConfig(t, p, conf.yaml())
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "config reloaded", reloads)
	conn := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"))
	var n int
	if err := conn.QueryRow(ctx, "SELECT 7").Scan(&n); err != nil || n != 7 {
		t.Fatalf("after reload: %d %v", n, err)
	}
	if code, body := adminGet(t, p, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after reload: %d %q, want 200", code, body)
	}
}

// rawSession is a connection through pgveil driven message by message with
// pgx's protocol codec, for the cases a well-behaved driver never produces.
type rawSession struct {
	pc *pgconn.PgConn
	fe *pgproto3.Frontend
}

func openRaw(t *testing.T, ctx context.Context, url string) *rawSession {
	t.Helper()
	pc, err := pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", redact(url), err)
	}
	t.Cleanup(func() { pc.Conn().Close(); pc.Close(context.Background()) })
	pc.Conn().SetDeadline(time.Now().Add(30 * time.Second))
	return &rawSession{pc: pc, fe: pc.Frontend()}
}

func (r *rawSession) send(t *testing.T, msgs ...pgproto3.FrontendMessage) {
	t.Helper()
	for _, m := range msgs {
		r.fe.Send(m)
	}
	if err := r.fe.Flush(); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// until reads backend messages until one of type T arrives.
func until[T pgproto3.BackendMessage](t *testing.T, r *rawSession) T {
	t.Helper()
	for {
		msg, err := r.fe.Receive()
		if err != nil {
			var zero T
			t.Fatalf("waiting for %T: %v", zero, err)
		}
		if m, ok := msg.(T); ok {
			return m
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			var zero T
			t.Fatalf("waiting for %T: ErrorResponse %s %s", zero, e.Code, e.Message)
		}
	}
}

// TestRelayRobustness drives one pgveil process (proxy.max_message 64KiB)
// through the ways a session can go wrong: the client disconnects while a
// query runs, in the middle of COPY FROM STDIN and of COPY TO STDOUT (the
// backend must go away: no upstream connection leaks); the server
// terminates the backend (the client gets the server's own FATAL); many
// sessions run at once; a client message over proxy.max_message (54000
// naming the setting) while a server message over it passes; malformed
// startup packets (an ErrorResponse each). A bystander session holds a
// transaction open across all of it, pgveil keeps serving throughout, and at
// the end no session is left open in it and its tracker never lost step.
func TestRelayRobustness(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 2*time.Minute)
	p := startRelayProxy(t, proxyConf{maxMessage: "64KiB"})
	super := superConn(t, ctx)
	url := func(app string) string {
		return proxyURL(p, harness.SCRAMUser, "sslmode=disable", "application_name="+app)
	}
	// A bystander session in a transaction across every case below.
	bystander := connectPgx(t, ctx, url("relay_bystander"))
	if _, err := bystander.Exec(ctx, "CREATE TEMP TABLE relay_by (i int); BEGIN; INSERT INTO relay_by VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	stillServing := func(t *testing.T) {
		t.Helper()
		conn := connectPgx(t, ctx, url("relay_check"))
		var n int
		if err := conn.QueryRow(ctx, "SELECT 40 + 2").Scan(&n); err != nil || n != 42 {
			t.Fatalf("pgveil no longer serves: %d %v", n, err)
		}
		conn.Close(ctx)
		if _, err := bystander.Exec(ctx, "INSERT INTO relay_by VALUES (2)"); err != nil {
			t.Fatalf("bystander session broken: %v", err)
		}
	}

	t.Run("disconnect mid-query", func(t *testing.T) {
		r := openRaw(t, ctx, url("relay_gone_query"))
		r.send(t, &pgproto3.Query{String: "SELECT pg_sleep(30)"})
		waitActive(t, ctx, super, "relay_gone_query", "pg_sleep")
		r.pc.Conn().Close()
		waitBackendGone(t, ctx, super, "relay_gone_query")
		stillServing(t)
	})

	t.Run("disconnect mid-copy", func(t *testing.T) {
		direct := connectPgx(t, ctx, directURL(harness.SCRAMUser, "sslmode=disable"))
		if _, err := direct.Exec(ctx, "DROP TABLE IF EXISTS relay_gone_copy; CREATE TABLE relay_gone_copy (id int, note text)"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { direct.Exec(context.Background(), "DROP TABLE IF EXISTS relay_gone_copy") })
		r := openRaw(t, ctx, url("relay_gone_copy"))
		r.send(t, &pgproto3.Query{String: "COPY relay_gone_copy FROM STDIN"})
		until[*pgproto3.CopyInResponse](t, r)
		for i := 0; i < 100; i++ {
			r.fe.Send(&pgproto3.CopyData{Data: []byte(fmt.Sprintf("%d\tpartial row\n", i))})
		}
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		waitActive(t, ctx, super, "relay_gone_copy", "COPY")
		r.pc.Conn().Close()
		waitBackendGone(t, ctx, super, "relay_gone_copy")
		var n int
		if err := direct.QueryRow(ctx, "SELECT count(*) FROM relay_gone_copy").Scan(&n); err != nil || n != 0 {
			t.Errorf("rows of an abandoned COPY: %d %v, want 0", n, err)
		}
		stillServing(t)
	})

	// The client stops reading and leaves while the server streams a large
	// COPY TO STDOUT: pgveil's writes to the client fail, and the backend
	// must still go away.
	t.Run("disconnect mid-copy-out", func(t *testing.T) {
		r := openRaw(t, ctx, url("relay_gone_copyout"))
		r.send(t, &pgproto3.Query{String: "COPY (SELECT generate_series(1, 50000000), repeat('x', 100)) TO STDOUT"})
		until[*pgproto3.CopyOutResponse](t, r)
		until[*pgproto3.CopyData](t, r)
		r.pc.Conn().Close()
		waitBackendGone(t, ctx, super, "relay_gone_copyout")
		stillServing(t)
	})

	// The server ends a session (pg_terminate_backend): the client gets the
	// server's own FATAL, as it does directly, and pgveil ends the session.
	t.Run("server terminates backend", func(t *testing.T) {
		var errs [2]string
		for i, u := range []string{
			directURL(harness.SCRAMUser, "sslmode=disable", "application_name=relay_killed_direct"),
			url("relay_killed_proxy"),
		} {
			app := []string{"relay_killed_direct", "relay_killed_proxy"}[i]
			conn := connectPgx(t, ctx, u)
			var pid int
			if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
				t.Fatal(err)
			}
			var ok bool
			if err := super.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
				t.Fatalf("pg_terminate_backend: %v %v", ok, err)
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.PgConn().WaitForNotification(wctx)
			cancel()
			errs[i] = describePgErr(err)
			waitBackendGone(t, ctx, super, app)
		}
		if errs[0] != errs[1] {
			t.Errorf("terminated backend: through pgveil differs from direct\n direct: %s\n pgveil: %s", errs[0], errs[1])
		}
		if !strings.Contains(errs[1], "FATAL 57P01") {
			t.Errorf("terminated backend through pgveil: %s, want the server's FATAL 57P01", errs[1])
		}
		stillServing(t)
	})

	// Many sessions at once, each checking its own answers.
	t.Run("concurrent sessions", func(t *testing.T) {
		const sessions, queries = 16, 100
		errc := make(chan error, sessions)
		for i := 0; i < sessions; i++ {
			go func(i int) {
				conn, err := pgx.Connect(ctx, url("relay_concurrent"))
				if err != nil {
					errc <- err
					return
				}
				defer conn.Close(context.Background())
				for q := 0; q < queries; q++ {
					var got int
					var s string
					want := i*1000 + q
					if err := conn.QueryRow(ctx, "SELECT $1::int4, repeat('c', $1::int4 % 5000)", want).Scan(&got, &s); err != nil {
						errc <- err
						return
					}
					if got != want || len(s) != want%5000 {
						errc <- fmt.Errorf("session %d query %d: got %d (%d bytes), want %d", i, q, got, len(s), want)
						return
					}
				}
				errc <- nil
			}(i)
		}
		for i := 0; i < sessions; i++ {
			if err := <-errc; err != nil {
				t.Error(err)
			}
		}
		waitBackendGone(t, ctx, super, "relay_concurrent")
	})

	t.Run("oversized query", func(t *testing.T) {
		// Just under the limit works.
		conn := connectPgx(t, ctx, url("relay_big_ok"))
		var n int
		if err := conn.QueryRow(ctx, "SELECT length('"+strings.Repeat("x", 60<<10)+"')").Scan(&n); err != nil || n != 60<<10 {
			t.Fatalf("60 KiB query under a 64 KiB limit: %d %v", n, err)
		}
		conn.Close(ctx)

		r := openRaw(t, ctx, url("relay_big"))
		r.send(t, &pgproto3.Query{String: "SELECT '" + strings.Repeat("y", 100<<10) + "'"})
		e := until[*pgproto3.ErrorResponse](t, r)
		if e.Code != "54000" || !strings.Contains(e.Message+e.Hint, "proxy.max_message") {
			t.Errorf("oversized Query: %s %s %q hint %q, want 54000 naming proxy.max_message", e.Severity, e.Code, e.Message, e.Hint)
		}
		if _, err := r.fe.Receive(); err == nil {
			t.Errorf("session still open after an oversized message")
		}
		waitBackendGone(t, ctx, super, "relay_big")
		stillServing(t)
	})

	// proxy.max_message guards what clients send. What the server sends is
	// the server's business: a result row larger than the limit must reach
	// the client as it does directly.
	t.Run("large server message under small max_message", func(t *testing.T) {
		const q = "SELECT repeat('r', 200000) || $1::text, length(repeat('r', 200000))"
		var viaDirect, viaProxy string
		var n int
		direct := connectPgx(t, ctx, directURL(harness.SCRAMUser, "sslmode=disable"))
		if err := direct.QueryRow(ctx, q, "!").Scan(&viaDirect, &n); err != nil {
			t.Fatal(err)
		}
		conn := connectPgx(t, ctx, url("relay_big_result"))
		err := conn.QueryRow(ctx, q, "!").Scan(&viaProxy, &n)
		if err != nil || viaProxy != viaDirect {
			t.Errorf("200 kB DataRow through pgveil with proxy.max_message 64KiB: %d bytes, %v; direct: %d bytes", len(viaProxy), err, len(viaDirect))
		}
		stillServing(t)
	})

	t.Run("oversized bind", func(t *testing.T) {
		conn := connectPgx(t, ctx, url("relay_big_bind"))
		_, err := conn.Exec(ctx, "SELECT length($1::text)", strings.Repeat("z", 100<<10))
		pe := pgErr(err)
		if pe == nil || pe.Code != "54000" || !strings.Contains(pe.Message+pe.Hint, "proxy.max_message") {
			t.Errorf("oversized Bind through pgx: %v, want 54000 naming proxy.max_message", err)
		}
		waitBackendGone(t, ctx, super, "relay_big_bind")
		stillServing(t)
	})

	t.Run("malformed startup", func(t *testing.T) {
		be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
		packet := func(code uint32, body string) []byte {
			b := be32(uint32(8 + len(body)))
			return append(append(b, be32(code)...), body...)
		}
		cases := []struct {
			name  string
			bytes []byte
			codes []string // acceptable SQLSTATEs
		}{
			{"length below 8", be32(4), []string{"08P01"}},
			{"negative length", be32(0xfffffff0), []string{"08P01"}},
			{"length over max_startup_message", append(be32(1<<20), be32(3<<16)...), []string{"54000", "08P01"}},
			{"unterminated parameter", packet(3<<16, "user\x00scram_user\x00database\x00ap"), []string{"08P01"}},
			{"no user", packet(3<<16, "database\x00app\x00\x00"), []string{"28000"}},
			{"unknown protocol", packet(1<<16|0, "user\x00scram_user\x00\x00"), []string{"0A000", "08P01"}},
			{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), []string{"08P01", "54000", "0A000"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				code, msg, err := rawStartup(p.Addr, tc.bytes)
				if err != nil {
					t.Fatalf("no ErrorResponse: %v", err)
				}
				ok := false
				for _, c := range tc.codes {
					ok = ok || c == code
				}
				if !ok {
					t.Errorf("got %s %q, want one of %v", code, msg, tc.codes)
				}
			})
		}
		// A client that connects and leaves without a word.
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{0, 0})
		c.Close()
		stillServing(t)
	})

	if _, err := bystander.Exec(ctx, "COMMIT"); err != nil {
		t.Fatalf("bystander commit: %v", err)
	}
	var n int
	if err := bystander.QueryRow(ctx, "SELECT count(*) FROM relay_by").Scan(&n); err != nil || n < 2 {
		t.Errorf("bystander rows %d %v", n, err)
	}
	bystander.Close(ctx)
	// No session is left behind in pgveil, and its tracker never lost step.
	waitFor(t, 15*time.Second, "pgveil_connections_open to reach 0", func() (bool, error) {
		return scrape(t, p).get("pgveil_connections_open") == 0, nil
	})
	if d := scrape(t, p).get("pgveil_tracker_desyncs_total"); d != 0 {
		t.Errorf("pgveil_tracker_desyncs_total = %v", d)
	}
}

// rawStartup sends b as the start of a connection and reads pgveil's
// answer: the SQLSTATE and message of its ErrorResponse.
func rawStartup(addr string, b []byte) (code, msg string, err error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(b); err != nil {
		return "", "", err
	}
	var hdr [5]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return "", "", fmt.Errorf("reading the answer: %w", err)
	}
	if hdr[0] != 'E' {
		return "", "", fmt.Errorf("answer of type %q, want an ErrorResponse", hdr[0])
	}
	n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
	if n < 0 || n > 1<<16 {
		return "", "", fmt.Errorf("ErrorResponse length %d", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c, body); err != nil {
		return "", "", err
	}
	var e pgproto3.ErrorResponse
	if err := e.Decode(body); err != nil {
		return "", "", err
	}
	// Nothing follows: pgveil closes the connection.
	if _, err := c.Read(hdr[:1]); !errors.Is(err, io.EOF) && !isReset(err) {
		return e.Code, e.Message, fmt.Errorf("connection not closed after the error: %v", err)
	}
	return e.Code, e.Message, nil
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
