//go:build linux

package proxy

import (
	"bufio"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestClientGoneIsNotUpstreamLost: a client that hangs up while its
// result streams is not counted (nor logged) as a lost upstream
// connection (SQLSTATE class 08), on either relay: an alert on 08 would
// fire for every impatient client.
func TestClientGoneIsNotUpstreamLost(t *testing.T) {
	relayCores(t, handBackSchema, hbTables, func(t *testing.T, p *testProxy) {
		lost := p.srv.metrics.Errors.WithLabelValues("08", "pgveil")
		before := testutil.ToFloat64(lost)
		c := dialRaw(t, p)
		w := bufio.NewWriter(c)
		writeMsg(w, 'Q', []byte("SELECT repeat('x', 1000000) FROM generate_series(1, 64)\x00"))
		w.Flush()
		r := bufio.NewReader(c)
		if typ, body := readRawMsg(t, r); typ != 'T' {
			t.Fatalf("got %q %q, want RowDescription", typ, body)
		}
		c.Close() // with 64 MB on the way
		waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
		if n := testutil.ToFloat64(lost) - before; n != 0 {
			t.Fatalf("a client that hung up counted %v times as a lost upstream (08)", n)
		}
	})
}
