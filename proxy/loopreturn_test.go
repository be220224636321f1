//go:build linux

package proxy

import (
	"bufio"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

// sessionBufs is the number of pooled readers and writers each session
// holds.
func sessionBufs(p *testProxy) []int {
	p.srv.mu.Lock()
	defer p.srv.mu.Unlock()
	var n []int
	for s := range p.srv.sessions {
		n = append(n, int(s.bufs.held.Load()))
	}
	return n
}

// TestLoopReturnCycles: a session a loop hands to goroutines for COPY of
// a configured table goes back to the loop once the COPY is over, every
// time, and holds no more buffers for it; what it writes and reads in
// between is encrypted and decrypted as always.
func TestLoopReturnCycles(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startHandBackProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	m := p.srv.metrics
	c, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	onLoop := func() bool { return testutil.ToFloat64(m.LoopSessions) == 1 }
	waitFor(t, onLoop)
	var bufs []int
	const cycles = 6
	for i := 1; i <= cycles; i++ {
		rows := [][]any{{fmt.Sprintf("lr-copied-%d-a", i)}, {fmt.Sprintf("lr-copied-%d-b", i)}}
		if n, err := c.CopyFrom(ctx, pgx.Identifier{"hb_secrets"}, []string{"body"}, pgx.CopyFromRows(rows)); err != nil || n != 2 {
			t.Fatalf("COPY %d: %d rows, %v", i, n, err)
		}
		if n := testutil.ToFloat64(m.LoopHandbacks); n != float64(i) {
			t.Fatalf("after COPY %d: %v hand-backs", i, n)
		}
		waitFor(t, func() bool { return testutil.ToFloat64(m.LoopReturns) == float64(i) && onLoop() })
		secret := fmt.Sprintf("lr-inserted-%d", i)
		if _, err := c.Exec(ctx, "INSERT INTO hb_secrets (body) VALUES ($1)", secret); err != nil {
			t.Fatal(err)
		}
		var got []string
		r, err := c.Query(ctx, "SELECT body FROM hb_secrets WHERE id > (SELECT max(id) - 3 FROM hb_secrets) ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			var s string
			if err := r.Scan(&s); err != nil {
				t.Fatal(err)
			}
			got = append(got, s)
		}
		if r.Err() != nil || fmt.Sprint(got) != fmt.Sprint([]string{rows[0][0].(string), rows[1][0].(string), secret}) {
			t.Fatalf("cycle %d read back %q, %v", i, got, r.Err())
		}
		if !onLoop() {
			t.Fatalf("cycle %d: the INSERT and SELECT left the loop", i)
		}
		b := sessionBufs(p)
		if len(b) != 1 {
			t.Fatalf("%d sessions", len(b))
		}
		bufs = append(bufs, b[0])
	}
	for _, b := range bufs[1:] {
		if b != bufs[0] {
			t.Fatalf("pooled buffers held per cycle: %v; want the same after each", bufs)
		}
	}
	assertNoPlaintext(t, "hb_secrets", "lr-")
}

// TestLoopReturnNotifications: notifications sent while the session
// moves back and forth all arrive, once each and in order.
func TestLoopReturnNotifications(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startHandBackProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "LISTEN lr_chan"); err != nil {
		t.Fatal(err)
	}
	const notes = 300
	sent := make(chan error, 1)
	go func() {
		n := adminConn(t)
		for i := 0; i < notes; i++ {
			if _, err := n.Exec(ctx, "SELECT pg_notify('lr_chan', $1)", fmt.Sprint(i)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	// Keep handing the session back and returning while they arrive.
	for i := 0; i < 10; i++ {
		if _, err := c.CopyFrom(ctx, pgx.Identifier{"hb_secrets"}, []string{"body"}, pgx.CopyFromRows([][]any{{"lr-note-copy"}})); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for i := 0; i < notes; i++ {
		n, err := c.WaitForNotification(wctx)
		if err != nil {
			t.Fatalf("notification %d: %v", i, err)
		}
		if n.Payload != fmt.Sprint(i) {
			t.Fatalf("notification %d has payload %q", i, n.Payload)
		}
	}
	if n := testutil.ToFloat64(p.srv.metrics.LoopReturns); n < 1 {
		t.Fatal("the session never went back to the loop: the check above proves nothing")
	}
}

// TestLoopReturnPartialHeader: at the moment the session goes back, the
// client has sent the first bytes of its next message (in the same write
// as the CopyDone); the loop gets them, and the message completes there.
func TestLoopReturnPartialHeader(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startHandBackProxy(t)
	defer p.stop(t, 10*time.Second)
	m := p.srv.metrics
	c := dialRaw(t, p)
	defer c.Close()
	waitFor(t, func() bool { return testutil.ToFloat64(m.LoopSessions) == 1 })
	w := bufio.NewWriter(c)
	r := bufio.NewReader(c)
	writeMsg(w, 'Q', []byte("COPY hb_secrets (body) FROM STDIN\x00"))
	w.Flush()
	if typ, body := readRawMsg(t, r); typ != 'G' {
		t.Fatalf("got %q %q, want CopyInResponse", typ, body)
	}
	writeMsg(w, 'd', []byte("lr-partial\n"))
	writeMsg(w, 'c', nil)
	query := []byte("SELECT body FROM hb_secrets WHERE id = (SELECT max(id) FROM hb_secrets)\x00")
	var next outBuf
	writeMsg(&next, 'Q', query)
	w.Write(next[:3]) // the type and two bytes of the length
	w.Flush()
	for _, want := range []byte{'C', 'Z'} {
		if typ, body := readRawMsg(t, r); typ != want {
			t.Fatalf("got %q %q, want %q", typ, body, want)
		}
	}
	waitFor(t, func() bool { return testutil.ToFloat64(m.LoopReturns) == 1 && testutil.ToFloat64(m.LoopSessions) == 1 })
	w.Write(next[3:])
	w.Flush()
	var row []byte
	for _, want := range []byte{'T', 'D', 'C', 'Z'} {
		typ, body := readRawMsg(t, r)
		if typ != want {
			t.Fatalf("got %q %q, want %q", typ, body, want)
		}
		if typ == 'D' {
			row = body
		}
	}
	if string(row[6:]) != "lr-partial" {
		t.Fatalf("row %q, want the value decrypted", row)
	}
	writeMsg(w, 'X', nil)
	w.Flush()
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
}

// TestAnswerBeforeNextMessageEnds: a client writes a query and the first
// bytes of its next message in one write, then waits for the answer
// before it sends the rest. The query reaches the server at once, on
// both relays (the goroutine relay used to flush only when it had read
// all it had, and waited here for the rest of the header).
func TestAnswerBeforeNextMessageEnds(t *testing.T) {
	relayCores(t, handBackSchema, hbTables, func(t *testing.T, p *testProxy) {
		c := dialRaw(t, p)
		defer c.Close()
		w := bufio.NewWriter(c)
		r := bufio.NewReader(c)
		var next outBuf
		writeMsg(&next, 'Q', []byte("SELECT 2\x00"))
		writeMsg(w, 'Q', []byte("SELECT 1\x00"))
		w.Write(next[:3])
		w.Flush()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for _, want := range []byte{'T', 'D', 'C', 'Z'} {
			if typ, body := readRawMsg(t, r); typ != want {
				t.Fatalf("got %q %q, want %q", typ, body, want)
			}
		}
		w.Write(next[3:])
		w.Flush()
		for _, want := range []byte{'T', 'D', 'C', 'Z'} {
			if typ, body := readRawMsg(t, r); typ != want {
				t.Fatalf("got %q %q, want %q", typ, body, want)
			}
		}
		writeMsg(w, 'X', nil)
		w.Flush()
		waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	})
}
