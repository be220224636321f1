//go:build linux

package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"
)

// Review tests of the event-loop relay: each runs on both cores, and the
// goroutine core is the reference behaviour.

var reviewCores = []struct{ name, extra string }{
	{"event_loop", ""},
	{"goroutines", "proxy:\n  event_loops: 0\n"},
}

// all lists the registered sides (tests only; on the loop thread).
func (t *sideTable) all() []*loopSide {
	var out []*loopSide
	t.each(func(sd *loopSide) { out = append(out, sd) })
	return out
}

// loopProbe runs f on l's thread and returns its result.
func loopProbe[T any](l *eventLoop, f func() T) T {
	ch := make(chan T, 1)
	if !l.submit(func() { ch <- f() }) {
		var zero T
		return zero
	}
	return <-ch
}

// TestReviewDrainPartialHeader: an idle session whose client has sent the
// first 3 bytes of a message header is drained at once by the goroutine
// relay (the wake-up deadline strikes at a message boundary, before the
// header is complete). The loop's checkDrain requires c.r == c.w, so the
// session waits for shutdown_timeout and is force-closed without 57P01.
func TestReviewDrainPartialHeader(t *testing.T) {
	for _, core := range reviewCores {
		t.Run(core.name, func(t *testing.T) {
			p := startProxy(t, core.extra)
			c := dialRaw(t, p)
			defer c.Close()
			if _, err := c.Write([]byte{'Q', 0, 0}); err != nil {
				t.Fatal(err)
			}
			if len(p.srv.loops) > 0 {
				l := p.srv.loops[0]
				waitFor(t, func() bool {
					return loopProbe(l, func() bool {
						for _, sd := range l.sides.all() {
							if sd.client && sd.w-sd.r == 3 {
								return true
							}
						}
						return false
					})
				})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			start := time.Now()
			err := p.srv.Shutdown(ctx)
			<-p.done
			if err != nil {
				t.Errorf("Shutdown after %v: %v (an idle session mid-header was not drained)", time.Since(start).Round(time.Millisecond), err)
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			r := bufio.NewReader(c)
			var h [5]byte
			if _, err := io.ReadFull(r, h[:]); err != nil || h[0] != 'E' {
				t.Errorf("client got no ErrorResponse (57P01): %v %q", err, h[0])
			}
		})
	}
}

// TestReviewForceCloseReachesWriteRest: a stalled client (paused, ~256 KiB
// backlog) breaks the protocol. The goroutine relay's session then waits
// until Shutdown's forceClose closes the client, which ends it at once.
// On the loop, end() hands the backlog to writeRest (blocking socket,
// SO_SNDTIMEO 5 s per call) after onLoop was cleared and the net.Conns were
// closed: forceClose reaches nothing and Shutdown overruns its timeout.
func TestReviewForceCloseReachesWriteRest(t *testing.T) {
	for _, core := range reviewCores {
		t.Run(core.name, func(t *testing.T) {
			p := startProxy(t, core.extra)
			stalled := stallClient(t, p, "review-", "wr")
			defer stalled.Close()
			// A message length of 2: protocol violation (08P01).
			if _, err := stalled.Write([]byte{'Q', 0, 0, 0, 2}); err != nil {
				t.Fatal(err)
			}
			if len(p.srv.loops) > 0 {
				l := p.srv.loops[0]
				waitFor(t, func() bool { return loopProbe(l, func() bool { return l.sides.len() == 0 }) })
			}
			sctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			p.srv.Shutdown(sctx)
			<-p.done
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Shutdown with a 300ms timeout took %v: forceClose did not reach the session", d.Round(time.Millisecond))
			}
			stalled.Close()
			waitBackendGone(t, "review-wr")
		})
	}
}

// TestEventLoopStreamsLargeBind: the loop tracks a Bind from its names and
// streams the rest, so a large parameter is never held whole on the thread
// every session of the loop shares. The client sends the head of a 64 MiB
// Bind and stops: the loop must already be streaming it, holding no more
// than its buffers; then the rest arrives and the result is right.
func TestEventLoopStreamsLargeBind(t *testing.T) {
	p := startProxy(t, "")
	c := dialRaw(t, p)
	defer c.Close()
	w := bufio.NewWriter(c)
	writeMsg(w, 'P', []byte("\x00SELECT length($1::bytea)\x00\x00\x00"))
	const size = 64 << 20
	bind := []byte{0, 0, 0, 1, 0, 1, 0, 1} // portal "", statement "", 1 binary format, 1 parameter
	bind = binary.BigEndian.AppendUint32(bind, size)
	head := append(bind, make([]byte, 1<<20)...)
	var h [5]byte
	h[0] = 'B'
	binary.BigEndian.PutUint32(h[1:], uint32(4+len(bind)+size+2))
	w.Write(h[:])
	w.Write(head)
	w.Flush()

	l := p.srv.loops[0]
	waitFor(t, func() bool {
		return loopProbe(l, func() bool {
			for _, sd := range l.sides.all() {
				if sd.client && sd.stream > 0 {
					return true
				}
			}
			return false
		})
	})
	held := loopProbe(l, func() int {
		most := 0
		for _, sd := range l.sides.all() {
			most = max(most, len(sd.in)+sd.pending())
		}
		return most
	})
	if held > 2*loopHighWater {
		t.Errorf("the loop holds %d bytes of a Bind it should stream", held)
	}

	w.Write(make([]byte, size-(1<<20)))
	w.Write([]byte{0, 0}) // no result formats
	writeMsg(w, 'E', []byte("\x00\x00\x00\x00\x00"))
	writeMsg(w, 'S', nil)
	w.Flush()
	r := bufio.NewReader(c)
	var got string
	for {
		typ, body := readRawMsg(t, r)
		if typ == 'E' {
			t.Fatalf("error: %q", body)
		}
		if typ == 'D' {
			got = string(body[6:])
		}
		if typ == 'Z' {
			break
		}
	}
	if got != "67108864" {
		t.Fatalf("length = %q, want 67108864", got)
	}
	c.Close()
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	p.stop(t, 10*time.Second)
}

// TestSideTable: the fd-indexed table counts, finds and forgets sides, and
// each survives sides being removed while it runs (run's cleanup ends
// sessions from inside it).
func TestSideTable(t *testing.T) {
	var tb sideTable
	a, b, c := &loopSide{fd: 3}, &loopSide{fd: 9}, &loopSide{fd: 4}
	if tb.get(3) != nil || tb.get(-1) != nil || tb.len() != 0 {
		t.Fatal("empty table finds something")
	}
	tb.set(12, nil) // forgetting an fd never seen is a no-op
	tb.set(3, a)
	tb.set(9, b)
	tb.set(4, c)
	tb.set(4, c) // again: still one
	if tb.len() != 3 || tb.get(3) != a || tb.get(9) != b || tb.get(4) != c || tb.get(5) != nil || tb.get(100) != nil {
		t.Fatalf("after 3 sets: len %d", tb.len())
	}
	var seen []int
	tb.each(func(sd *loopSide) {
		seen = append(seen, sd.fd)
		if sd == a {
			tb.set(9, nil) // removes a later one
		}
	})
	if len(seen) != 2 || seen[0] != 3 || seen[1] != 4 {
		t.Errorf("each saw %v, want [3 4]", seen)
	}
	tb.set(3, nil)
	tb.set(3, nil)
	if tb.len() != 1 || tb.get(3) != nil || tb.get(4) != c {
		t.Errorf("after removals: len %d", tb.len())
	}
}
