//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/pgveil/pgveil/integration/harness"
)

// Tests from the review of the way back to the event loop (loopreturn.go).

// theSession is p's only session.
func theSession(t *testing.T, p *testProxy) *session {
	t.Helper()
	p.srv.mu.Lock()
	defer p.srv.mu.Unlock()
	if len(p.srv.sessions) != 1 {
		t.Fatalf("%d sessions, want 1", len(p.srv.sessions))
	}
	for s := range p.srv.sessions {
		return s
	}
	return nil
}

// injectTap sits between pgveil and PostgreSQL like upstreamTap (it keeps
// what pgveil sends upstream), and relays the server's messages one by
// one, so that a test can add bytes of its own in the server's stream:
// after the next ReadyForQuery, in the same write (afterZ), or on their
// own (inject), while the server is at rest.
type injectTap struct {
	ln  net.Listener
	mu  sync.Mutex // guards what follows and every write to pgveil
	up  bytes.Buffer
	cur net.Conn // pgveil's side of the last connection
	srv net.Conn // the server's side of it
	// extra goes right after the next ReadyForQuery, in the same write;
	// closeAfter closes both sides after it.
	extra      []byte
	closeAfter bool
	// holding keeps the server's messages (held) from pgveil until
	// release: a server slow to answer.
	holding bool
	held    []byte
	wg      sync.WaitGroup
}

// hold keeps the server's next messages until release.
func (u *injectTap) hold() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.holding = true
}

// heldTypes are the types of the messages held.
func (u *injectTap) heldTypes() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var types []byte
	for b := u.held; len(b) >= 5; b = b[1+binary.BigEndian.Uint32(b[1:]):] {
		types = append(types, b[0])
	}
	return string(types)
}

// release sends what was held, in one write, and stops holding.
func (u *injectTap) release(t *testing.T) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	u.holding = false
	if _, err := u.cur.Write(u.held); err != nil {
		t.Fatal(err)
	}
	u.held = nil
}

func (u *injectTap) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.up.Write(p)
}

func (u *injectTap) saw(s string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return bytes.Contains(u.up.Bytes(), []byte(s))
}

// afterZ arms b to follow the next ReadyForQuery (and with close, the
// end of both connections).
func (u *injectTap) afterZ(b []byte, close bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.extra, u.closeAfter = b, close
}

// inject writes b to pgveil as if the server had sent it.
func (u *injectTap) inject(t *testing.T, b []byte) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, err := u.cur.Write(b); err != nil {
		t.Fatal(err)
	}
}

func startInjectTap(t *testing.T) *injectTap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &injectTap{ln: ln}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", cluster.Addr())
			if err != nil {
				c.Close()
				continue
			}
			u.mu.Lock()
			u.cur, u.srv = c, s
			u.mu.Unlock()
			u.wg.Add(2)
			go func() { defer u.wg.Done(); io.Copy(io.MultiWriter(s, u), c); s.Close() }()
			go func() {
				defer u.wg.Done()
				defer c.Close()
				r := bufio.NewReaderSize(s, 64*1024)
				for {
					var h [5]byte
					if _, err := io.ReadFull(r, h[:]); err != nil {
						return
					}
					msg := make([]byte, 5+int(binary.BigEndian.Uint32(h[1:]))-4)
					copy(msg, h[:])
					if _, err := io.ReadFull(r, msg[5:]); err != nil {
						return
					}
					u.mu.Lock()
					if u.holding {
						u.held = append(u.held, msg...)
						u.mu.Unlock()
						continue
					}
					closeNow := false
					if h[0] == 'Z' && u.extra != nil {
						msg = append(msg, u.extra...)
						u.extra, closeNow = nil, u.closeAfter
					}
					_, err := c.Write(msg)
					u.mu.Unlock()
					if err != nil {
						return
					}
					if closeNow {
						c.Close()
						s.Close()
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(u.close)
	return u
}

// close stops the tap and waits for its goroutines (before goleak looks).
func (u *injectTap) close() {
	u.ln.Close()
	u.mu.Lock()
	if u.cur != nil {
		u.cur.Close()
		u.srv.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

// startInjectProxy starts the hand-back proxy (on the event loop) behind
// an injectTap.
func startInjectProxy(t *testing.T) (*testProxy, *injectTap) {
	t.Helper()
	if _, err := adminConn(t).Exec(context.Background(), handBackSchema); err != nil {
		t.Fatal(err)
	}
	tap := startInjectTap(t)
	return startTablesProxyAt(t, tap.ln.Addr().String(), hbTables), tap
}

// notification is a NotificationResponse of payload on channel lr_chan.
func notification(payload string) []byte {
	var b outBuf
	writeMsg(&b, 'A', []byte("\x00\x00\x30\x39lr_chan\x00"+payload+"\x00"))
	return b
}

// rawCopyIn runs COPY hb_secrets (body) FROM STDIN on a raw connection
// with rows as its data and reads the answer up to CommandComplete (the
// ReadyForQuery is left to the caller).
func rawCopyIn(t *testing.T, w *bufio.Writer, r *bufio.Reader, rows ...string) {
	t.Helper()
	writeMsg(w, 'Q', []byte("COPY hb_secrets (body) FROM STDIN\x00"))
	w.Flush()
	if typ, body := readRawMsg(t, r); typ != 'G' {
		t.Fatalf("got %q %q, want CopyInResponse", typ, body)
	}
	for _, row := range rows {
		writeMsg(w, 'd', []byte(row+"\n"))
	}
	writeMsg(w, 'c', nil)
	w.Flush()
	if typ, body := readRawMsg(t, r); typ != 'C' {
		t.Fatalf("got %q %q, want CommandComplete", typ, body)
	}
}

// expectMsgs reads messages of the given types in order.
func expectMsgs(t *testing.T, r *bufio.Reader, types string) (bodies [][]byte) {
	t.Helper()
	for i := 0; i < len(types); i++ {
		typ, body := readRawMsg(t, r)
		if typ != types[i] {
			t.Fatalf("message %d: got %q %q, want %q (of %q)", i, typ, body, types[i], types)
		}
		bodies = append(bodies, body)
	}
	return bodies
}

// lastBody reads back the newest hb_secrets row through the raw connection.
func lastBody(t *testing.T, w *bufio.Writer, r *bufio.Reader) string {
	t.Helper()
	writeMsg(w, 'Q', []byte("SELECT body FROM hb_secrets WHERE id = (SELECT max(id) FROM hb_secrets)\x00"))
	w.Flush()
	b := expectMsgs(t, r, "TDCZ")
	return string(b[1][6:])
}

// waitStack waits until a goroutine's stack holds fn and one of inside:
// a relay goroutine blocked at a known point.
func waitStack(t *testing.T, fn string, inside ...string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	waitFor(t, func() bool {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if !strings.Contains(g, fn) {
				continue
			}
			for _, in := range inside {
				if strings.Contains(g, in) {
					return true
				}
			}
		}
		return false
	})
}

// askWhileClientMidMessage runs a COPY of row on the raw connection and
// leaves the session asked for the way back (backAsked) while
// clientToServer is inside the body of the client's next message, of
// which the client sent the first split bytes in the write of the
// CopyDone. (The server's answer to the CopyDone waits in the tap until
// clientToServer is inside that body.)
func askWhileClientMidMessage(t *testing.T, p *testProxy, tap *injectTap, w *bufio.Writer, r *bufio.Reader, row string, next []byte, split int) *session {
	t.Helper()
	writeMsg(w, 'Q', []byte("COPY hb_secrets (body) FROM STDIN\x00"))
	w.Flush()
	expectMsgs(t, r, "G")
	tap.hold()
	writeMsg(w, 'd', []byte(row+"\n"))
	writeMsg(w, 'c', nil)
	w.Write(next[:split])
	w.Flush()
	waitFor(t, func() bool { return tap.heldTypes() == "CZ" })
	waitStack(t, "proxy.(*session).clientToServer", "proxy.(*msgReader).readBody", "proxy.(*msgReader).copyN")
	tap.release(t)
	expectMsgs(t, r, "CZ")
	s := theSession(t, p)
	waitFor(t, func() bool { return s.back.Load() == backAsked })
	return s
}

// intoSwitch brings the session to the moment between the relays:
// clientToServer has stopped for the loop (backClientOut) while
// serverToClient is inside the body of a notification of which the
// server sent 20 bytes. It returns the rest of the notification, for
// tap.inject, and the notification.
func intoSwitch(t *testing.T, p *testProxy, tap *injectTap, w *bufio.Writer, r *bufio.Reader, row, payload string) (s *session, rest, note []byte) {
	t.Helper()
	var stray outBuf
	writeMsg(&stray, 'd', []byte("stray bytes the server ignores\n"))
	s = askWhileClientMidMessage(t, p, tap, w, r, row, stray, 8)
	note = notification(payload)
	tap.inject(t, note[:20])
	waitStack(t, "proxy.(*session).serverToClient", "proxy.(*msgReader).readBody", "proxy.(*msgReader).copyN")
	w.Write(stray[8:])
	w.Flush()
	waitFor(t, func() bool { return s.back.Load() == backClientOut })
	return s, note[20:], note
}

func onLoopAgain(p *testProxy, returns float64) func() bool {
	m := p.srv.metrics
	return func() bool {
		return testutil.ToFloat64(m.LoopReturns) == returns && testutil.ToFloat64(m.LoopSessions) == 1
	}
}

// TestLoopReturnServerPartialHeader: the server's ReadyForQuery that ends
// the COPY comes with the first 3 bytes of a notification. serverToClient
// stops with them in its read buffer; the loop gets them and relays the
// notification when the rest comes.
func TestLoopReturnServerPartialHeader(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, tap := startInjectProxy(t)
	defer tap.close()
	defer p.stop(t, 10*time.Second)
	c := dialRaw(t, p)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopSessions) == 1 })
	w, r := bufio.NewWriter(c), bufio.NewReader(c)
	note := notification("lr-partial-server")
	tap.afterZ(note[:3], false)
	rawCopyIn(t, w, r, "lr-sph-1")
	expectMsgs(t, r, "Z")
	waitFor(t, onLoopAgain(p, 1))
	// The loop holds the 3 bytes serverToClient had read.
	l := p.srv.loops[0]
	waitFor(t, func() bool {
		return loopProbe(l, func() bool {
			for _, sd := range l.sides.all() {
				if !sd.client && sd.w-sd.r == 3 {
					return true
				}
			}
			return false
		})
	})
	tap.inject(t, note[3:])
	if b := expectMsgs(t, r, "A"); !bytes.Contains(b[0], []byte("lr-partial-server")) {
		t.Fatalf("notification %q", b[0])
	}
	if got := lastBody(t, w, r); got != "lr-sph-1" {
		t.Fatalf("read back %q", got)
	}
	writeMsg(w, 'X', nil)
	w.Flush()
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
}

// TestLoopReturnServerBodyStraddles: clientToServer stops for the loop
// while serverToClient is inside the body of a notification (the deadline
// on the server connection strikes inside it). The rest comes: the
// notification arrives whole, then the session goes back to the loop.
func TestLoopReturnServerBodyStraddles(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, tap := startInjectProxy(t)
	defer tap.close()
	defer p.stop(t, 10*time.Second)
	c := dialRaw(t, p)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopSessions) == 1 })
	w, r := bufio.NewWriter(c), bufio.NewReader(c)
	_, rest, _ := intoSwitch(t, p, tap, w, r, "lr-sbs-1", "lr-straddle-server-"+strings.Repeat("x", 200))
	if n := testutil.ToFloat64(p.srv.metrics.LoopReturns); n != 0 {
		t.Fatalf("%v returns before the notification is whole", n)
	}
	tap.inject(t, rest)
	if b := expectMsgs(t, r, "A"); !bytes.Contains(b[0], []byte("lr-straddle-server-")) {
		t.Fatalf("notification %q", b[0])
	}
	waitFor(t, onLoopAgain(p, 1))
	if got := lastBody(t, w, r); got != "lr-sbs-1" {
		t.Fatalf("read back %q", got)
	}
	writeMsg(w, 'X', nil)
	w.Flush()
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
}

// TestLoopReturnServerAsyncBurst: the ReadyForQuery comes in one write
// with a NoticeResponse, a ParameterStatus and a notification. The client
// gets all of them once, in the server's order, whichever side of the
// switch relays them.
func TestLoopReturnServerAsyncBurst(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, tap := startInjectProxy(t)
	defer tap.close()
	defer p.stop(t, 10*time.Second)
	c := dialRaw(t, p)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopSessions) == 1 })
	w, r := bufio.NewWriter(c), bufio.NewReader(c)
	for i := 1; i <= 5; i++ {
		var burst outBuf
		writeMsg(&burst, 'N', []byte(fmt.Sprintf("SNOTICE\x00C00000\x00Mlr-notice-%d\x00\x00", i)))
		writeMsg(&burst, 'S', []byte(fmt.Sprintf("application_name\x00lr-app-%d\x00", i)))
		burst = append(burst, notification(fmt.Sprintf("lr-burst-%d", i))...)
		tap.afterZ(burst, false)
		rawCopyIn(t, w, r, fmt.Sprintf("lr-burst-row-%d", i))
		b := expectMsgs(t, r, "ZNSA")
		if !bytes.Contains(b[1], []byte(fmt.Sprintf("lr-notice-%d", i))) || !bytes.Contains(b[2], []byte(fmt.Sprintf("lr-app-%d", i))) ||
			!bytes.Contains(b[3], []byte(fmt.Sprintf("lr-burst-%d", i))) {
			t.Fatalf("cycle %d: %q", i, b)
		}
		waitFor(t, onLoopAgain(p, float64(i)))
		if got := lastBody(t, w, r); got != fmt.Sprintf("lr-burst-row-%d", i) {
			t.Fatalf("read back %q", got)
		}
	}
	writeMsg(w, 'X', nil)
	w.Flush()
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
}

// TestLoopReturnClientBodyStraddles: the client sends, with its CopyDone,
// the header and the start of an INSERT of a secret; the rest comes after
// the server side has asked for the way back (the deadline strikes inside
// the body). The INSERT is sealed, answered, and the session goes back to
// the loop after it.
func TestLoopReturnClientBodyStraddles(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, tap := startInjectProxy(t)
	defer tap.close()
	defer p.stop(t, 10*time.Second)
	c := dialRaw(t, p)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopSessions) == 1 })
	w, r := bufio.NewWriter(c), bufio.NewReader(c)
	var next outBuf
	writeMsg(&next, 'Q', []byte("INSERT INTO hb_secrets (body) VALUES ('lr-cbs-inserted')\x00"))
	askWhileClientMidMessage(t, p, tap, w, r, "lr-cbs-copied", next, 12)
	w.Write(next[12:])
	w.Flush()
	expectMsgs(t, r, "CZ")
	waitFor(t, onLoopAgain(p, 1))
	if got := lastBody(t, w, r); got != "lr-cbs-inserted" {
		t.Fatalf("read back %q", got)
	}
	writeMsg(w, 'X', nil)
	w.Flush()
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	if tap.saw("lr-cbs-") {
		t.Fatal("a plaintext went upstream")
	}
	assertNoPlaintext(t, "hb_secrets", "lr-cbs-")
}

// TestLoopReturnDesyncCountedOnce: one backend message the tracker cannot
// attribute (an unsolicited ReadyForQuery, injected) is one desync: the
// metric pgveil_tracker_desyncs_total says 1 and the error is logged once,
// however often the session then moves between the loop and goroutines.
// (Each relay phase used to count from zero what the tracker had counted:
// every hand-back and return counted and logged all earlier desyncs
// again.) First, an extended-protocol COPY FROM of a table that does not
// exist, with its data, CopyDone and a second Sync pipelined, is no
// desync: the server answers both Syncs (the tracker used to void the
// first at the client's copy data).
func TestLoopReturnDesyncCountedOnce(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, tap := startInjectProxy(t)
	defer tap.close()
	defer stopNoLogCheck(t, p)
	m := p.srv.metrics
	c := dialRaw(t, p)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	waitFor(t, func() bool { return testutil.ToFloat64(m.LoopSessions) == 1 })
	w, r := bufio.NewWriter(c), bufio.NewReader(c)
	writeMsg(w, 'P', []byte("\x00COPY lr_no_such_table FROM STDIN\x00\x00\x00"))
	writeMsg(w, 'B', []byte("\x00\x00\x00\x00\x00\x00\x00\x00"))
	writeMsg(w, 'E', []byte("\x00\x00\x00\x00\x00"))
	writeMsg(w, 'S', nil)
	writeMsg(w, 'd', []byte("x\n"))
	writeMsg(w, 'c', nil)
	writeMsg(w, 'S', nil)
	w.Flush()
	expectMsgs(t, r, "12EZZ")
	if n := testutil.ToFloat64(m.TrackerDesyncs); n != 0 {
		t.Fatalf("a COPY that failed with its data pipelined: %v desyncs", n)
	}
	var z outBuf
	writeMsg(&z, 'Z', []byte("I"))
	tap.inject(t, z)
	expectMsgs(t, r, "Z")
	waitFor(t, func() bool { return testutil.ToFloat64(m.TrackerDesyncs) == 1 })
	const cycles = 3
	for i := 1; i <= cycles; i++ {
		rawCopyIn(t, w, r, fmt.Sprintf("lr-desync-%d", i))
		expectMsgs(t, r, "Z")
		waitFor(t, onLoopAgain(p, float64(i)))
		if got := lastBody(t, w, r); got != fmt.Sprintf("lr-desync-%d", i) {
			t.Fatalf("read back %q", got)
		}
	}
	writeMsg(w, 'X', nil)
	w.Flush()
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	if n := testutil.ToFloat64(m.TrackerDesyncs); n != 1 {
		t.Errorf("pgveil_tracker_desyncs_total = %v after %d hand-backs and returns; one message was out of step", n, cycles)
	}
	if n := p.logs.FilterMessage("protocol tracker out of step with the server").Len(); n != 1 {
		t.Errorf("the desync was logged %d times; want 1", n)
	}
}

// TestLoopReturnServerFatalInSwitch: the server's ReadyForQuery after the
// COPY comes with a FATAL, and the server closes. The client gets that
// FATAL once, and no other error after it, whichever side relays it.
func TestLoopReturnServerFatalInSwitch(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, tap := startInjectProxy(t)
	defer tap.close()
	defer p.stop(t, 10*time.Second)
	for i := 0; i < 5; i++ {
		c := dialRaw(t, p)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopSessions) == 1 })
		w, r := bufio.NewWriter(c), bufio.NewReader(c)
		var fatal outBuf
		writeMsg(&fatal, 'E', []byte("SFATAL\x00VFATAL\x00C57P01\x00Mlr-terminated\x00\x00"))
		tap.afterZ(fatal, true)
		rawCopyIn(t, w, r, "lr-fatal")
		var got []byte
		var codes []string
		for {
			var h [5]byte
			if _, err := io.ReadFull(r, h[:]); err != nil {
				break
			}
			body := make([]byte, int(binary.BigEndian.Uint32(h[1:]))-4)
			if _, err := io.ReadFull(r, body); err != nil {
				break
			}
			got = append(got, h[0])
			if h[0] == 'E' {
				codes = append(codes, errorField(body, 'C'))
			}
		}
		c.Close()
		if string(got) != "ZE" || len(codes) != 1 || codes[0] != "57P01" {
			t.Fatalf("run %d: messages %q, errors %q; want the ReadyForQuery and the server's FATAL", i, got, codes)
		}
		waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	}
}

// TestLoopReturnTerminateAfterCopyDone: Terminate in the same write as the
// CopyDone, and Terminate right after the ReadyForQuery: the session ends
// cleanly (no error to the client, nothing left running).
func TestLoopReturnTerminateAfterCopyDone(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startHandBackProxy(t)
	defer p.stop(t, 10*time.Second)
	for _, sameWrite := range []bool{true, false} {
		c := dialRaw(t, p)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		w, r := bufio.NewWriter(c), bufio.NewReader(c)
		writeMsg(w, 'Q', []byte("COPY hb_secrets (body) FROM STDIN\x00"))
		w.Flush()
		expectMsgs(t, r, "G")
		writeMsg(w, 'd', []byte("lr-terminate\n"))
		writeMsg(w, 'c', nil)
		if sameWrite {
			writeMsg(w, 'X', nil)
		}
		w.Flush()
		if !sameWrite {
			expectMsgs(t, r, "CZ")
			writeMsg(w, 'X', nil)
			w.Flush()
		}
		// (With Terminate in the same write the relay closes upstream at
		// once, as it always did: the COPY's answer may not come.)
		for {
			var h [5]byte
			if _, err := io.ReadFull(r, h[:]); err != nil {
				break
			}
			body := make([]byte, int(binary.BigEndian.Uint32(h[1:]))-4)
			if _, err := io.ReadFull(r, body); err != nil {
				break
			}
			if h[0] == 'E' {
				t.Fatalf("error after Terminate: %q", body)
			}
		}
		c.Close()
		waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	}
}

// TestLoopReturnClientGoneAfterCopy: a client that closes its connection
// right after the COPY's ReadyForQuery (while the session goes back) ends
// its session and its backend.
func TestLoopReturnClientGoneAfterCopy(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startHandBackProxy(t)
	defer p.stop(t, 10*time.Second)
	for i := 0; i < 10; i++ {
		c := dialRaw(t, p)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		w, r := bufio.NewWriter(c), bufio.NewReader(c)
		rawCopyIn(t, w, r, "lr-gone")
		expectMsgs(t, r, "Z")
		c.Close()
		waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	}
	admin := adminConn(t)
	waitFor(t, func() bool {
		var n int
		admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", harness.TrustUser).Scan(&n)
		return n == 0
	})
}

// TestLoopReturnExtendedCopy: COPY FROM STDIN of the encrypted table by
// Parse, Bind, Execute and a Sync sent before the data (as libpq does),
// then the data, CopyDone and a second Sync. The session goes back to the
// loop after the second Sync's ReadyForQuery, and an extended-protocol
// INSERT after it is sealed there.
func TestLoopReturnExtendedCopy(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, tap := startInjectProxy(t)
	defer tap.close()
	defer p.stop(t, 10*time.Second)
	m := p.srv.metrics
	c := dialRaw(t, p)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	waitFor(t, func() bool { return testutil.ToFloat64(m.LoopSessions) == 1 })
	w, r := bufio.NewWriter(c), bufio.NewReader(c)
	for i := 1; i <= 3; i++ {
		writeMsg(w, 'P', []byte("\x00COPY hb_secrets (body) FROM STDIN\x00\x00\x00"))
		writeMsg(w, 'B', []byte("\x00\x00\x00\x00\x00\x00\x00\x00"))
		writeMsg(w, 'E', []byte("\x00\x00\x00\x00\x00"))
		writeMsg(w, 'S', nil)
		w.Flush()
		expectMsgs(t, r, "12G")
		writeMsg(w, 'd', []byte(fmt.Sprintf("lr-ext-copied-%d\n", i)))
		writeMsg(w, 'c', nil)
		writeMsg(w, 'S', nil)
		w.Flush()
		expectMsgs(t, r, "CZ")
		waitFor(t, onLoopAgain(p, float64(i)))
		secret := fmt.Sprintf("lr-ext-inserted-%d", i)
		writeMsg(w, 'P', []byte("\x00INSERT INTO hb_secrets (body) VALUES ($1)\x00\x00\x00"))
		bind := []byte("\x00\x00\x00\x00\x00\x01")
		bind = binary.BigEndian.AppendUint32(bind, uint32(len(secret)))
		bind = append(bind, secret...)
		bind = append(bind, 0, 0)
		writeMsg(w, 'B', bind)
		writeMsg(w, 'E', []byte("\x00\x00\x00\x00\x00"))
		writeMsg(w, 'S', nil)
		w.Flush()
		expectMsgs(t, r, "12CZ")
		if testutil.ToFloat64(m.LoopSessions) != 1 {
			t.Fatalf("cycle %d: the INSERT left the loop", i)
		}
		if got := lastBody(t, w, r); got != secret {
			t.Fatalf("read back %q", got)
		}
	}
	writeMsg(w, 'X', nil)
	w.Flush()
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	if tap.saw("lr-ext-") {
		t.Fatal("a plaintext went upstream")
	}
	assertNoPlaintext(t, "hb_secrets", "lr-ext-")
}

// TestLoopReturnAfterFailedCopy: COPYs that end in an error go back to
// the loop too: the client's CopyFail, and the server's error in the
// middle of the data (a duplicate key) after which the client still sends
// rows and CopyDone. Those late rows are sealed (or dropped), never sent
// upstream as they came, and the session ends on the loop.
func TestLoopReturnAfterFailedCopy(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, tap := startInjectProxy(t)
	defer tap.close()
	defer p.stop(t, 10*time.Second)
	m := p.srv.metrics
	c := dialRaw(t, p)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	waitFor(t, func() bool { return testutil.ToFloat64(m.LoopSessions) == 1 })
	w, r := bufio.NewWriter(c), bufio.NewReader(c)

	// CopyFail.
	writeMsg(w, 'Q', []byte("COPY hb_secrets (body) FROM STDIN\x00"))
	w.Flush()
	expectMsgs(t, r, "G")
	writeMsg(w, 'd', []byte("lr-fail-1\n"))
	writeMsg(w, 'f', []byte("client gave up\x00"))
	w.Flush()
	expectMsgs(t, r, "EZ")
	waitFor(t, onLoopAgain(p, 1))
	bufs := sessionBufs(p)

	// The server's error in the middle of the data.
	writeMsg(w, 'Q', []byte("COPY hb_secrets (id, body) FROM STDIN\x00"))
	w.Flush()
	expectMsgs(t, r, "G")
	writeMsg(w, 'd', []byte("x\tlr-fail-dup\n"))
	w.Flush()
	if b := expectMsgs(t, r, "EZ"); errorField(b[0], 'C') != "22P02" {
		t.Fatalf("error %q, want invalid_text_representation", b[0])
	}
	waitFor(t, onLoopAgain(p, 2))
	writeMsg(w, 'd', []byte("1001\tlr-fail-late\n"))
	writeMsg(w, 'c', nil)
	writeMsg(w, 'Q', []byte("INSERT INTO hb_secrets (body) VALUES ('lr-fail-after')\x00"))
	w.Flush()
	expectMsgs(t, r, "CZ")
	waitFor(t, onLoopAgain(p, 3))
	if got := lastBody(t, w, r); got != "lr-fail-after" {
		t.Fatalf("read back %q", got)
	}
	// A return straight into another hand-back (the late rows) holds no
	// more buffers.
	if b := sessionBufs(p); fmt.Sprint(b) != fmt.Sprint(bufs) {
		t.Errorf("pooled buffers held: %v, after the first return %v", b, bufs)
	}
	writeMsg(w, 'X', nil)
	w.Flush()
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	for _, s := range []string{"lr-fail-1", "lr-fail-dup", "lr-fail-late", "lr-fail-after"} {
		if tap.saw(s) {
			t.Errorf("the plaintext %q went upstream", s)
		}
	}
	if n := testutil.ToFloat64(m.LoopHandbacks); n != 3 {
		t.Errorf("%v hand-backs, want 3", n)
	}
}

// TestLoopReturnInTransaction: the COPY runs inside a transaction block;
// the session goes back to the loop with the block open ('T'), and in a
// failed block ('E'); what follows in the block runs on the loop.
func TestLoopReturnInTransaction(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, tap := startInjectProxy(t)
	defer tap.close()
	defer p.stop(t, 10*time.Second)
	m := p.srv.metrics
	c := dialRaw(t, p)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	waitFor(t, func() bool { return testutil.ToFloat64(m.LoopSessions) == 1 })
	w, r := bufio.NewWriter(c), bufio.NewReader(c)
	q := func(sql, types string) [][]byte {
		writeMsg(w, 'Q', []byte(sql+"\x00"))
		w.Flush()
		return expectMsgs(t, r, types)
	}
	q("BEGIN", "CZ")
	rawCopyIn(t, w, r, "lr-tx-copied")
	if b := expectMsgs(t, r, "Z"); b[0][0] != 'T' {
		t.Fatalf("status %q", b[0])
	}
	waitFor(t, onLoopAgain(p, 1))
	q("INSERT INTO hb_secrets (body) VALUES ('lr-tx-inserted')", "CZ")
	if b := q("SELECT body FROM hb_secrets ORDER BY id", "TDDCZ"); string(b[1][6:]) != "lr-tx-copied" || string(b[2][6:]) != "lr-tx-inserted" {
		t.Fatalf("rows %q", b)
	}
	q("COMMIT", "CZ")

	q("BEGIN", "CZ")
	rawCopyIn(t, w, r, "lr-tx-copied-2")
	expectMsgs(t, r, "Z")
	if b := q("SELECT 1/0", "EZ"); b[1][0] != 'E' {
		t.Fatalf("status %q", b[1])
	}
	waitFor(t, onLoopAgain(p, 2))
	q("INSERT INTO hb_secrets (body) VALUES ('lr-tx-aborted')", "EZ")
	q("ROLLBACK", "CZ")
	if b := q("SELECT count(*) FROM hb_secrets", "TDCZ"); string(b[1][6:]) != "2" {
		t.Fatalf("count %q", b[1])
	}
	if testutil.ToFloat64(m.LoopSessions) != 1 {
		t.Fatal("the session left the loop")
	}
	writeMsg(w, 'X', nil)
	w.Flush()
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	if tap.saw("lr-tx-") {
		t.Fatal("a plaintext went upstream")
	}
}

// TestLoopReturnShutdown: Shutdown with a session that went back to the
// loop after a COPY: it ends with 57P01 at once.
func TestLoopReturnShutdown(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startHandBackProxy(t)
	c := dialRaw(t, p)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	w, r := bufio.NewWriter(c), bufio.NewReader(c)
	rawCopyIn(t, w, r, "lr-shutdown")
	expectMsgs(t, r, "Z")
	waitFor(t, onLoopAgain(p, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if b := expectMsgs(t, r, "E"); errorField(b[0], 'C') != "57P01" {
		t.Fatalf("error %q, want 57P01", b[0])
	}
	if err := <-p.done; err != nil {
		t.Fatal(err)
	}
}

// TestLoopReturnDrainWhileAsked: the server ends a COPY with an error (a
// row it cannot read) while pgveil's client side is busy sealing the
// client's next CopyData (its key loads: pgveil.keys is locked), so the
// way back is asked for (backAsked) with clientToServer away from its
// read. Shutdown comes then: its wake-up is a read deadline on the client
// connection. When the row is sealed, the session is idle (nothing
// pending, no transaction) and must end with 57P01 at its next read, as
// it does without the way back. clientReturns, seeing the drain, sets
// the state back to backNone and clears the client's read deadline
// (loopreturn.go:71): the wake-up is gone, nothing else will come (no
// ReadyForQuery is owed), and the session waits for shutdown_timeout to
// be closed by force. (The same clear also races with the wake-up a
// ReadyForQuery 'I' sends while pgveil drains, backendControl -> s.wake(),
// when the client's message that completes after the ask is a query; and
// with askLoopReturn's own deadline, set between clientReturns's CAS and
// its clear.)
func TestLoopReturnDrainWhileAsked(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, tap := startInjectProxy(t)
	defer tap.close()
	c := dialRaw(t, p)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopSessions) == 1 })
	w, r := bufio.NewWriter(c), bufio.NewReader(c)
	writeMsg(w, 'Q', []byte("COPY hb_secrets (id, body) FROM STDIN\x00"))
	w.Flush()
	expectMsgs(t, r, "G")
	s := theSession(t, p)

	// The server's answer to a bad row waits in the tap.
	tap.hold()
	writeMsg(w, 'd', []byte("x\tlr-drain-0\n"))
	w.Flush()
	waitFor(t, func() bool { return tap.heldTypes() == "EZ" })

	// clientToServer seals the next row, and waits for its key.
	p.srv.eng.Load().keys.Forget()
	unlock := lockKeys(t)
	defer unlock()
	writeMsg(w, 'd', []byte("1\tlr-drain-1\n"))
	w.Flush()
	admin := adminConn(t)
	waitFor(t, func() bool {
		var n int
		admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()").Scan(&n)
		return n > 0
	})

	// The error and ReadyForQuery arrive: the way back is asked for.
	tap.release(t)
	if b := expectMsgs(t, r, "EZ"); errorField(b[0], 'C') != "22P02" {
		t.Fatalf("error %q", b[0])
	}
	waitFor(t, func() bool { return s.back.Load() == backAsked })

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		done <- p.srv.Shutdown(ctx)
	}()
	waitFor(t, func() bool { return p.srv.draining.Load() })
	unlock()

	var got []byte
	var code string
	for {
		var h [5]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			break
		}
		body := make([]byte, int(binary.BigEndian.Uint32(h[1:]))-4)
		if _, err := io.ReadFull(r, body); err != nil {
			break
		}
		got = append(got, h[0])
		if h[0] == 'E' {
			code = errorField(body, 'C')
		}
	}
	serr := <-done
	if err := <-p.done; err != nil {
		t.Error(err)
	}
	if string(got) != "E" || code != "57P01" {
		t.Errorf("the idle session's last messages %q (SQLSTATE %q); want 57P01", got, code)
	}
	if serr != nil {
		t.Errorf("shutdown: %v", serr)
	}
}

// TestLoopReturnBatchAfterCopy: pgx sends a batch (INSERTs of secrets and
// SELECTs, each Parse/Describe/Bind/Execute then one Sync) right after
// each CopyFrom returns, while the session is on its way back; every
// value is sealed and reads back, over many cycles, in every exec mode.
func TestLoopReturnBatchAfterCopy(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, tap := startInjectProxy(t)
	defer tap.close()
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	m := p.srv.metrics
	cycles := 0
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		cfg, _ := pgx.ParseConfig(p.url())
		cfg.DefaultQueryExecMode = mode
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 15; i++ {
			cycles++
			copied := fmt.Sprintf("lr-batch-copied-%s-%d", mode, i)
			if _, err := c.CopyFrom(ctx, pgx.Identifier{"hb_secrets"}, []string{"body"}, pgx.CopyFromRows([][]any{{copied}})); err != nil {
				t.Fatal(err)
			}
			a, b := fmt.Sprintf("lr-batch-a-%s-%d", mode, i), fmt.Sprintf("lr-batch-b-%s-%d", mode, i)
			batch := &pgx.Batch{}
			batch.Queue("INSERT INTO hb_secrets (body) VALUES ($1)", a)
			batch.Queue("INSERT INTO hb_secrets (body) VALUES ($1)", b)
			batch.Queue("SELECT body FROM hb_secrets WHERE id > (SELECT max(id) - 3 FROM hb_secrets) ORDER BY id")
			br := c.SendBatch(ctx, batch)
			for j := 0; j < 2; j++ {
				if _, err := br.Exec(); err != nil {
					t.Fatalf("%s cycle %d: %v", mode, i, err)
				}
			}
			rows, err := br.Query()
			if err != nil {
				t.Fatal(err)
			}
			got, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if err := br.Close(); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint([]string{copied, a, b}) {
				t.Fatalf("%s cycle %d: read %q", mode, i, got)
			}
		}
		c.Close(ctx)
		waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	}
	if h, r := testutil.ToFloat64(m.LoopHandbacks), testutil.ToFloat64(m.LoopReturns); h != float64(cycles) || r < 1 {
		t.Errorf("%v hand-backs (want %d), %v returns", h, cycles, r)
	}
	if tap.saw("lr-batch-") {
		t.Fatal("a plaintext went upstream")
	}
	assertNoPlaintext(t, "hb_secrets", "lr-batch-")
}

// TestLoopReturnPoolStress: a pool of connections, each running COPYs,
// INSERTs and SELECTs of secrets concurrently: every value is sealed and
// reads back; hand-backs and returns balance, and the loop gauge is right
// at the end.
func TestLoopReturnPoolStress(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, tap := startInjectProxy(t)
	defer tap.close()
	defer p.stop(t, 20*time.Second)
	ctx := context.Background()
	m := p.srv.metrics
	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for wk := 0; wk < workers; wk++ {
		wg.Add(1)
		go func(wk int) {
			defer wg.Done()
			c, err := pgx.Connect(ctx, p.url())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(ctx)
			for i := 0; i < rounds; i++ {
				copied := fmt.Sprintf("lr-pool-copied-%d-%d", wk, i)
				if _, err := c.CopyFrom(ctx, pgx.Identifier{"hb_secrets"}, []string{"body"}, pgx.CopyFromRows([][]any{{copied}})); err != nil {
					errs <- err
					return
				}
				ins := fmt.Sprintf("lr-pool-ins-%d-%d", wk, i)
				var id int
				if err := c.QueryRow(ctx, "INSERT INTO hb_secrets (body) VALUES ($1) RETURNING id", ins).Scan(&id); err != nil {
					errs <- err
					return
				}
				var got string
				if err := c.QueryRow(ctx, "SELECT body FROM hb_secrets WHERE id = $1", id).Scan(&got); err != nil || got != ins {
					errs <- fmt.Errorf("worker %d round %d: %q, %v", wk, i, got, err)
					return
				}
			}
		}(wk)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	if n := testutil.ToFloat64(m.LoopSessions); n != 0 {
		t.Errorf("LoopSessions = %v with no session", n)
	}
	if h, r := testutil.ToFloat64(m.LoopHandbacks), testutil.ToFloat64(m.LoopReturns); h != workers*rounds || r < h-workers || r > h {
		t.Errorf("%v hand-backs (want %d), %v returns", h, workers*rounds, r)
	}
	if tap.saw("lr-pool-") {
		t.Fatal("a plaintext went upstream")
	}
	assertNoPlaintext(t, "hb_secrets", "lr-pool-")
}

// TestLoopReturnCancel: a CancelRequest for a query of a session that went
// back to the loop after a COPY cancels that query.
func TestLoopReturnCancel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startHandBackProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.CopyFrom(ctx, pgx.Identifier{"hb_secrets"}, []string{"body"}, pgx.CopyFromRows([][]any{{"lr-cancel"}})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, onLoopAgain(p, 1))
	res := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "SELECT pg_sleep(20) /* lr_cancel_marker */")
		res <- err
	}()
	waitQueryRunning(t, "lr_cancel_marker")
	if err := c.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	if err = <-res; err == nil || !strings.Contains(err.Error(), "57014") {
		t.Fatalf("the cancelled query: %v, want 57014", err)
	}
	// The backend stopped sleeping: the connection answers at once.
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	defer acancel()
	var got string
	if err := c.QueryRow(actx, "SELECT body FROM hb_secrets WHERE id = (SELECT max(id) FROM hb_secrets)").Scan(&got); err != nil || got != "lr-cancel" {
		t.Fatalf("after the cancel: %q, %v", got, err)
	}
}

// TestLoopReturnCountedOnlyWhenBack: pgveil_event_loop_returns_total counts
// the times a session went back to its loop. Here the loop is gone (it
// stopped; loopFor reports none) by the time both relay goroutines have
// stopped for the way back: the session stays on goroutines, and no
// return may be counted. relay counts it before it knows
// (session.go:393: LoopReturns.Inc() before the next turn's loopFor and
// relayOnLoop, which may fail).
func TestLoopReturnCountedOnlyWhenBack(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, tap := startInjectProxy(t)
	defer tap.close()
	defer p.stop(t, 10*time.Second)
	m := p.srv.metrics
	c := dialRaw(t, p)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	waitFor(t, func() bool { return testutil.ToFloat64(m.LoopSessions) == 1 })
	w, r := bufio.NewWriter(c), bufio.NewReader(c)
	_, rest, _ := intoSwitch(t, p, tap, w, r, "lr-no-loop", "lr-no-loop-"+strings.Repeat("y", 100))
	stopEventLoops(p.srv.loops) // the loop dies
	tap.inject(t, rest)
	expectMsgs(t, r, "A")
	if got := lastBody(t, w, r); got != "lr-no-loop" {
		t.Fatalf("read back %q", got)
	}
	if n := testutil.ToFloat64(m.LoopSessions); n != 0 {
		t.Fatalf("%v sessions on a loop", n)
	}
	if n := testutil.ToFloat64(m.LoopReturns); n != 0 {
		t.Errorf("pgveil_event_loop_returns_total = %v; the session never went back (no loop)", n)
	}
	writeMsg(w, 'X', nil)
	w.Flush()
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
}

// TestLoopReturnShutdownInSwitch: Shutdown while the session is between
// the two relays (clientToServer stopped for the loop, serverToClient
// inside a notification's body). When the body comes, the session goes
// to the loop, which drains it (57P01); when it does not, Shutdown closes
// it at its timeout and nothing is left running.
func TestLoopReturnShutdownInSwitch(t *testing.T) {
	for _, bodyComes := range []bool{true, false} {
		t.Run(fmt.Sprintf("bodyComes=%v", bodyComes), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			p, tap := startInjectProxy(t)
			defer tap.close()
			c := dialRaw(t, p)
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopSessions) == 1 })
			w, r := bufio.NewWriter(c), bufio.NewReader(c)
			_, rest, _ := intoSwitch(t, p, tap, w, r, "lr-switch-shutdown", "lr-switch-shutdown-"+strings.Repeat("z", 100))
			timeout := 10 * time.Second
			if !bodyComes {
				timeout = time.Second
			}
			done := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				done <- p.srv.Shutdown(ctx)
			}()
			waitFor(t, func() bool { return p.srv.draining.Load() })
			if bodyComes {
				tap.inject(t, rest)
				expectMsgs(t, r, "A")
				if b := expectMsgs(t, r, "E"); errorField(b[0], 'C') != "57P01" {
					t.Fatalf("error %q, want 57P01", b[0])
				}
				if err := <-done; err != nil {
					t.Fatalf("shutdown: %v", err)
				}
			} else {
				if err := <-done; err == nil || !strings.Contains(err.Error(), "closed 1 busy") {
					t.Fatalf("shutdown: %v, want the session closed at the timeout", err)
				}
			}
			if err := <-p.done; err != nil {
				t.Fatal(err)
			}
			if n := p.srv.SessionCount(); n != 0 {
				t.Fatalf("%d sessions left", n)
			}
		})
	}
}

// TestLoopReturnClientGoneInSwitch: the client closes its connection while
// the session is between the relays (serverToClient inside a
// notification's body): once the body comes the session ends, with its
// upstream connection.
func TestLoopReturnClientGoneInSwitch(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, tap := startInjectProxy(t)
	defer tap.close()
	defer p.stop(t, 10*time.Second)
	c := dialRaw(t, p)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopSessions) == 1 })
	w, r := bufio.NewWriter(c), bufio.NewReader(c)
	_, rest, _ := intoSwitch(t, p, tap, w, r, "lr-gone-switch", "lr-gone-switch-"+strings.Repeat("g", 100))
	c.Close()
	tap.inject(t, rest)
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	admin := adminConn(t)
	waitFor(t, func() bool {
		var n int
		admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", harness.TrustUser).Scan(&n)
		return n == 0
	})
}

// TestLoopReturnWholeMessageBuffered: at the moment clientToServer stops
// for the loop, a whole INSERT of a secret is in its read buffer (it came
// in one write with the end of a message that needs no answer, a stray
// CopyData). The loop gets it, seals it and answers it.
func TestLoopReturnWholeMessageBuffered(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, tap := startInjectProxy(t)
	defer tap.close()
	defer p.stop(t, 10*time.Second)
	m := p.srv.metrics
	c := dialRaw(t, p)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	waitFor(t, func() bool { return testutil.ToFloat64(m.LoopSessions) == 1 })
	w, r := bufio.NewWriter(c), bufio.NewReader(c)
	var stray outBuf
	writeMsg(&stray, 'd', []byte("stray bytes the server ignores\n"))
	askWhileClientMidMessage(t, p, tap, w, r, "lr-whole-copied", stray, 8)
	w.Write(stray[8:])
	writeMsg(w, 'Q', []byte("INSERT INTO hb_secrets (body) VALUES ('lr-whole-inserted')\x00"))
	w.Flush()
	expectMsgs(t, r, "CZ")
	waitFor(t, onLoopAgain(p, 1))
	if got := lastBody(t, w, r); got != "lr-whole-inserted" {
		t.Fatalf("read back %q", got)
	}
	writeMsg(w, 'X', nil)
	w.Flush()
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	if tap.saw("lr-whole-") {
		t.Fatal("a plaintext went upstream")
	}
	assertNoPlaintext(t, "hb_secrets", "lr-whole-")
}

// stopNoLogCheck shuts p down like testProxy.stop, without its check of
// the logs (for a test that provokes a logged condition on purpose).
func stopNoLogCheck(t *testing.T, p *testProxy) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-p.done; err != nil {
		t.Errorf("serve: %v", err)
	}
}
