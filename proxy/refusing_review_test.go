package proxy

import (
	"bufio"
	"io"
	"testing"
	"time"
)

// readOne reads one backend message within d: its type and body; 0 when
// none came.
func readOne(t *testing.T, conn interface{ SetReadDeadline(time.Time) error }, r *bufio.Reader, d time.Duration) (byte, []byte) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(d))
	defer conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil
	}
	body := make([]byte, int(h[1])<<24|int(h[2])<<16|int(h[3])<<8|int(h[4])-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil
	}
	return h[0], body
}

// TestReviewRefusedParseFlush: a client that sends Flush (not Sync) after
// a Parse pgveil refuses, and waits, gets the ErrorResponse; its Sync then
// ends the pipeline, and the value of a Bind sent before the Sync never
// goes upstream.
func TestReviewRefusedParseFlush(t *testing.T) {
	tappedProxies(t, func(t *testing.T, p *testProxy, tap *upstreamTap) {
		conn := dialRaw(t, p)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		w, r := bufio.NewWriter(conn), bufio.NewReader(conn)
		const secret = "refused-flush-plaintext-6613"
		writeMsg(w, 'P', []byte("\x00INSERT INTO hb_secrets (body) SELECT $1\x00\x00\x00"))
		writeMsg(w, 'H', nil)
		w.Flush()
		typ, body := readOne(t, conn, r, 5*time.Second)
		if typ != 'E' || errorField(body, 'C') != "0A000" {
			t.Fatalf("after a refused Parse and Flush: %q %q, want the ErrorResponse", typ, body)
		}
		// A Bind and Execute before the Sync: dropped.
		writeMsg(w, 'B', bindOne(secret))
		writeMsg(w, 'E', []byte("\x00\x00\x00\x00\x00"))
		writeMsg(w, 'H', nil)
		w.Flush()
		if typ, body := readOne(t, conn, r, time.Second); typ != 0 {
			t.Errorf("before the Sync: %q %q, want nothing", typ, body)
		}
		writeMsg(w, 'S', nil)
		w.Flush()
		if got, code := readUntilZ(t, r); string(got) != "Z" {
			t.Errorf("Sync: %q %s, want Z", got, code)
		}
		writeMsg(w, 'P', []byte("\x00SELECT $1::text\x00\x00\x00"))
		writeMsg(w, 'B', bindOne("after"))
		writeMsg(w, 'E', []byte("\x00\x00\x00\x00\x00"))
		writeMsg(w, 'S', nil)
		w.Flush()
		if got, code := readUntilZ(t, r); string(got) != "12DCZ" {
			t.Errorf("after the refusal: %q %s", got, code)
		}
		writeMsg(w, 'X', nil)
		w.Flush()
		conn.Close()
		waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
		if tap.saw(secret) {
			t.Errorf("the value bound after a refused Parse went upstream")
		}
	})
}
