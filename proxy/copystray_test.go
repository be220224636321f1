package proxy

import (
	"bufio"
	"io"
	"testing"
	"time"
)

// TestStrayCopyAfterPipelinedFailure: a COPY of an encrypted table the
// server refuses (QUOTE in text format) and, pipelined behind it in the
// next Sync block, a COPY of a plain table that the server starts. The
// client sends its data when the CopyInResponse comes. pgveil cannot tell
// whether that data is the second COPY's or the first's (the client sent
// the second statement before the first was answered), so it drops it and
// ends it with a CopyFail: the server fails the COPY it is in instead of
// waiting for data forever, and the data (which may be the first COPY's
// plaintext) never goes upstream.
func TestStrayCopyAfterPipelinedFailure(t *testing.T) {
	tappedProxies(t, func(t *testing.T, p *testProxy, tap *upstreamTap) {
		conn := dialRaw(t, p)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		w, r := bufio.NewWriter(conn), bufio.NewReader(conn)
		writeMsg(w, 'P', []byte("s1\x00COPY hb_secrets (body) FROM STDIN (QUOTE '|')\x00\x00\x00"))
		writeMsg(w, 'B', []byte("p1\x00s1\x00\x00\x00\x00\x00\x00\x00"))
		writeMsg(w, 'E', []byte("p1\x00\x00\x00\x00\x00"))
		writeMsg(w, 'S', nil)
		writeMsg(w, 'P', []byte("s2\x00COPY hb_plain (id, note) FROM STDIN\x00\x00\x00"))
		writeMsg(w, 'B', []byte("p2\x00s2\x00\x00\x00\x00\x00\x00\x00"))
		writeMsg(w, 'E', []byte("p2\x00\x00\x00\x00\x00"))
		writeMsg(w, 'S', nil)
		w.Flush()
		const secret = "hb-pipelined-stray"
		var types []byte
		var codes []string
		zs := 0
		for zs < 2 {
			var h [5]byte
			if _, err := io.ReadFull(r, h[:]); err != nil {
				t.Fatalf("after %q: %v (the session hung or ended)", types, err)
			}
			body := make([]byte, int(h[1])<<24|int(h[2])<<16|int(h[3])<<8|int(h[4])-4)
			if _, err := io.ReadFull(r, body); err != nil {
				t.Fatal(err)
			}
			types = append(types, h[0])
			switch h[0] {
			case 'G':
				writeMsg(w, 'd', []byte("1\t"+secret+"\n"))
				writeMsg(w, 'c', nil)
				writeMsg(w, 'S', nil) // as libpq does after an extended-protocol COPY
				w.Flush()
			case 'E':
				codes = append(codes, errorField(body, 'C'))
			case 'Z':
				zs++
			}
		}
		// The first COPY's refusal, then the second one's CopyFail (57014).
		if len(codes) != 2 || codes[0] != "0A000" || codes[1] != "57014" {
			t.Errorf("messages %q, errors %v; want the refusal, then 57014 for the dropped data", types, codes)
		}
		writeMsg(w, 'X', nil)
		w.Flush()
		conn.Close()
		waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
		if tap.saw(secret) {
			t.Errorf("the plaintext %q went upstream", secret)
		}
	})
}
