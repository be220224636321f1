package proxy

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// histCount is the number of observations in h.
func histCount(t *testing.T, h prometheus.Observer) uint64 {
	t.Helper()
	m, ok := h.(prometheus.Metric)
	if !ok {
		t.Fatalf("%T is not a metric", h)
	}
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetHistogram().GetSampleCount()
}

// TestMetricsOnceAfterWait: a message the event loop sets aside while a
// key loads runs again from the start; what it counted the first time is
// not counted twice. Here the first column's key is cached and the
// second's is not, in a write and in a read.
func TestMetricsOnceAfterWait(t *testing.T) {
	relayCores(t, `DROP TABLE IF EXISTS hb_cnt; CREATE TABLE hb_cnt (id int, a bytea, b bytea); GRANT ALL ON hb_cnt TO PUBLIC;`, `tables:
  public.hb_cnt:
    columns:
      a:
        type: text
      b:
        type: text
`, func(t *testing.T, p *testProxy) {
		ctx := context.Background()
		m := p.srv.metrics
		c, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "INSERT INTO hb_cnt (id, a) VALUES (1, 'only-a')"); err != nil {
			t.Fatal(err)
		}
		encA := m.ValuesEncrypted.WithLabelValues("public.hb_cnt.a")
		encB := m.ValuesEncrypted.WithLabelValues("public.hb_cnt.b")
		decA := m.ValuesDecrypted.WithLabelValues("public.hb_cnt.a")
		decB := m.ValuesDecrypted.WithLabelValues("public.hb_cnt.b")
		waits := m.LoopWaits.WithLabelValues("key")
		type snap struct{ encA, encB, decA, decB, rewritten, waits float64 }
		take := func() snap {
			return snap{testutil.ToFloat64(encA), testutil.ToFloat64(encB), testutil.ToFloat64(decA), testutil.ToFloat64(decB),
				testutil.ToFloat64(m.stmtRewritten), testutil.ToFloat64(waits)}
		}

		// A write: a's key is cached, b's is not (not even created).
		before, crypto := take(), histCount(t, m.phaseCrypto)
		if _, err := c.Exec(ctx, "INSERT INTO hb_cnt (id, a, b) VALUES (2, 'two-a', 'two-b')", pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatal(err)
		}
		after := take()
		if after.encA-before.encA != 1 || after.encB-before.encB != 1 || after.rewritten-before.rewritten != 1 {
			t.Errorf("one INSERT of one value each of a and b counted a %v, b %v, rewritten %v; want 1 each",
				after.encA-before.encA, after.encB-before.encB, after.rewritten-before.rewritten)
		}
		if n := histCount(t, m.phaseCrypto) - crypto; n != 1 {
			t.Errorf("crypto phase observed %d times for one statement, want 1", n)
		}
		loop := p.srv.Config().Proxy.EventLoops > 0
		if loop && after.waits == before.waits {
			t.Fatal("the INSERT did not wait on the loop: the check above proves nothing")
		}

		// A read: a's key is cached again, b's is not.
		p.srv.eng.Load().keys.Forget()
		var a string
		if err := c.QueryRow(ctx, "SELECT a FROM hb_cnt WHERE id = 1").Scan(&a); err != nil || a != "only-a" {
			t.Fatalf("%q %v", a, err)
		}
		before = take()
		var b string
		if err := c.QueryRow(ctx, "SELECT a, b FROM hb_cnt WHERE id = 2").Scan(&a, &b); err != nil || a != "two-a" || b != "two-b" {
			t.Fatalf("%q %q %v", a, b, err)
		}
		after = take()
		if after.decA-before.decA != 1 || after.decB-before.decB != 1 {
			t.Errorf("one row read counted a %v, b %v decrypted; want 1 each", after.decA-before.decA, after.decB-before.decB)
		}
		if loop && after.waits == before.waits {
			t.Fatal("the SELECT did not wait on the loop: the check above proves nothing")
		}
	})
}
