//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"
)

// TestUpstreamDiesMidMessage: the server dies while pgveil has relayed
// part of a 32 MB DataRow. The client must see the stream end inside that
// message, as it would on a direct connection, and nothing after it: an
// ErrorResponse appended there would be read as row bytes. Both cores.
func TestUpstreamDiesMidMessage(t *testing.T) {
	for _, core := range reviewCores {
		t.Run(core.name, func(t *testing.T) {
			p := startProxy(t, core.extra)
			c := dialRaw(t, p)
			defer c.Close()
			const size = 32 << 20
			marker := "midmsg-" + core.name
			w := bufio.NewWriter(c)
			writeMsg(w, 'Q', []byte("SELECT repeat('z', 33554432) /* "+marker+" */\x00"))
			w.Flush()

			// The client does not read: the server blocks writing the row.
			waitClientWrite(t, "midmsg-", core.name)
			ctx := context.Background()
			admin := adminConn(t)
			var ok bool
			if err := admin.QueryRow(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%midmsg-' || $1 || '%' AND pid <> pg_backend_pid()", core.name).Scan(&ok); err != nil || !ok {
				t.Fatalf("pg_terminate_backend: %v %v", ok, err)
			}
			waitBackendGone(t, marker)

			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			all, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("reading to the end: %v (after %d bytes)", err, len(all))
			}
			// RowDescription, then the DataRow's header and part of its body.
			rest := all
			for len(rest) >= 5 && rest[0] != 'D' {
				n := int(binary.BigEndian.Uint32(rest[1:]))
				if n+1 > len(rest) {
					break
				}
				rest = rest[n+1:]
			}
			if len(rest) < 5 || rest[0] != 'D' {
				t.Fatalf("no DataRow in the %d bytes the client got", len(all))
			}
			declared := int(binary.BigEndian.Uint32(rest[1:])) + 1
			if declared < size || len(rest) >= declared {
				t.Fatalf("the DataRow (declared %d bytes) arrived with %d bytes: the server was meant to die inside it", declared, len(rest))
			}
			if tail := rest[max(0, len(rest)-512):]; bytes.Contains(tail, []byte("lost the connection")) || bytes.IndexByte(tail, 'E') >= 0 {
				t.Errorf("bytes after the cut DataRow: %q", tail)
			}
			waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
			p.stop(t, 10*time.Second)
		})
	}
}
