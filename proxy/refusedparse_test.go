package proxy

import (
	"bufio"
	"encoding/binary"
	"testing"
	"time"
)

// bindOne is a Bind of the unnamed portal to the unnamed statement with
// one text parameter.
func bindOne(v string) []byte {
	b := []byte("\x00\x00")   // portal, statement
	b = append(b, 0, 0, 0, 1) // no format codes (text), one parameter
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	b = append(b, v...)
	return append(b, 0, 0) // no result format codes
}

// TestRefusedParseSkipsTillSync: after pgveil refuses a Parse, the
// client's Bind, Describe and Execute up to its Sync are dropped, as the
// server would drop them after an error. Before, the Bind was converted
// against the previous unnamed statement (a pass-through one here) and
// went upstream with the value meant for the encrypted column as it was.
func TestRefusedParseSkipsTillSync(t *testing.T) {
	tappedProxies(t, func(t *testing.T, p *testProxy, tap *upstreamTap) {
		conn := dialRaw(t, p)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		w, r := bufio.NewWriter(conn), bufio.NewReader(conn)
		// An unnamed statement pgveil passes through.
		writeMsg(w, 'P', []byte("\x00SELECT $1::text\x00\x00\x00"))
		writeMsg(w, 'B', bindOne("warm-up"))
		writeMsg(w, 'E', []byte("\x00\x00\x00\x00\x00"))
		writeMsg(w, 'S', nil)
		w.Flush()
		if got, code := readUntilZ(t, r); string(got) != "12DCZ" {
			t.Fatalf("pass-through statement: %q %s", got, code)
		}
		// A Parse pgveil refuses (INSERT … SELECT into an encrypted
		// column), and the rest of the client's pipeline.
		const secret = "refused-parse-plaintext-5521"
		writeMsg(w, 'P', []byte("\x00INSERT INTO hb_secrets (body) SELECT $1\x00\x00\x00"))
		writeMsg(w, 'B', bindOne(secret))
		writeMsg(w, 'D', []byte("P\x00"))
		writeMsg(w, 'E', []byte("\x00\x00\x00\x00\x00"))
		writeMsg(w, 'S', nil)
		w.Flush()
		if got, code := readUntilZ(t, r); string(got) != "EZ" || code != "0A000" {
			t.Errorf("refused Parse: %q %s, want EZ 0A000", got, code)
		}
		// The session goes on: a new unnamed statement works.
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
