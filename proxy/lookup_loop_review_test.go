package proxy

// Review tests of e276091 (tenant lookups on the event loop: the message
// is parked on errLookupAsked and runs again with s.lookupReady). Each
// runs on both relays; the goroutine relay is the reference.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

// tapCount counts the occurrences of s in what went upstream.
func tapCount(u *upstreamTap, s string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return bytes.Count(u.buf.Bytes(), []byte(s))
}

// lookupPortalExec matches an Execute of pgveil's lookup portal, and
// lookupQuery a simple-protocol lookup: since lookups of a statement with
// parameters are prepared once per session, their text goes upstream once,
// and each lookup is counted by its Execute (or its Query).
var (
	lookupPortalExec = regexp.MustCompile(`E[\x00-\xff]{4}pgveil_[0-9a-f]{12}_[0-9]+\x00`)
	lookupQuery      = regexp.MustCompile(`Q[\x00-\xff]{4}SELECT DISTINCT lk_accounts\.org FROM lk_accounts`)
)

// tapLookups counts the lookups the tap saw go upstream.
func tapLookups(u *upstreamTap) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	b := u.buf.Bytes()
	return len(lookupPortalExec.FindAllIndex(b, -1)) + len(lookupQuery.FindAllIndex(b, -1))
}

func tapDump(u *upstreamTap) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.buf.String()
}

func lookupsCounted(p *testProxy) float64 {
	m := p.srv.metrics.TenantLookups
	var n float64
	for _, o := range []string{"one", "none", "several", "error"} {
		n += testutil.ToFloat64(m.WithLabelValues(o))
	}
	return n
}

// readMsgsUntil reads messages up to one of type stop, with the conn's
// deadline: a timeout is reported as such, not as a protocol failure.
func readMsgsUntil(r *bufio.Reader, stop byte) (types []byte, code string, err error) {
	for {
		var h [5]byte
		if _, err := ioReadFull(r, h[:]); err != nil {
			return types, code, err
		}
		n := int(h[1])<<24 | int(h[2])<<16 | int(h[3])<<8 | int(h[4])
		body := make([]byte, n-4)
		if _, err := ioReadFull(r, body); err != nil {
			return types, code, err
		}
		types = append(types, h[0])
		if h[0] == 'E' {
			code = errorField(body, 'C')
		}
		if h[0] == stop {
			return types, code, nil
		}
	}
}

// TestLookupLoopCopyOutPipeline: a client pipelines a COPY of a configured
// table TO STDOUT and, behind it, an UPDATE whose tenant is looked up,
// then Sync. Expected on both relays: the COPY's rows (decrypted), then
// the UPDATE's answers and ReadyForQuery. On the event loop the client side
// is parked on the lookup when the server side meets the CopyOutResponse
// and sets handback; process hands back only when the client side is not
// parked, and updateEvents stops reading the server side while handback is
// set, so the lookup's answer is never read: the session hangs.
func TestLookupLoopCopyOutPipeline(t *testing.T) {
	lookupReviewProxies(t, func(t *testing.T, p *testProxy, tap *upstreamTap) {
		ctx := context.Background()
		pc, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.Exec(ctx, `INSERT INTO lk_accounts (id, org, email) VALUES (9101, 91, 'copy-old-9101@example.org')`); err != nil {
			t.Fatal(err)
		}
		pc.Close(ctx)
		defer func() {
			if c, err := pgx.Connect(ctx, p.url()); err == nil {
				c.Exec(ctx, `DELETE FROM lk_accounts WHERE id = 9101`)
				c.Close(ctx)
			}
		}()
		conn := dialRaw(t, p)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(8 * time.Second))
		w, r := bufio.NewWriter(conn), bufio.NewReader(conn)
		const secret = "copy-pipe-secret-9111"
		writeMsg(w, 'P', parseUnnamed("COPY (SELECT id, email FROM lk_accounts WHERE id = 9101) TO STDOUT"))
		writeMsg(w, 'B', bindTexts())
		writeMsg(w, 'E', executeUnnamed)
		writeMsg(w, 'P', parseUnnamed("UPDATE lk_accounts SET email = $1 WHERE id = $2"))
		writeMsg(w, 'B', bindTexts(secret, "9101"))
		writeMsg(w, 'E', executeUnnamed)
		writeMsg(w, 'S', nil)
		w.Flush()
		got, code, err := readMsgsUntil(r, 'Z')
		if err != nil {
			t.Fatalf("COPY TO STDOUT then a lookup UPDATE in one pipeline: got %q (%s) then %v; want 12Hdc C 12C Z", got, code, err)
		}
		if string(got) != "12HdcC12CZ" {
			t.Errorf("COPY then lookup UPDATE: %q %s, want 12HdcC12CZ", got, code)
		}
		if tap.saw(secret) {
			t.Error("the value went upstream in plaintext")
		}
	})
}

// TestLookupLoopCopyOutPipelineTable: as above with COPY lk_accounts TO
// STDOUT (the table itself, rewritten by pgveil).
func TestLookupLoopCopyOutPipelineTable(t *testing.T) {
	lookupReviewProxies(t, func(t *testing.T, p *testProxy, tap *upstreamTap) {
		ctx := context.Background()
		pc, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		pc.Exec(ctx, `DELETE FROM lk_accounts`)
		if _, err := pc.Exec(ctx, `INSERT INTO lk_accounts (id, org, email) VALUES (9121, 92, 'copyt-old-9121@example.org')`); err != nil {
			t.Fatal(err)
		}
		pc.Close(ctx)
		defer func() {
			if c, err := pgx.Connect(ctx, p.url()); err == nil {
				c.Exec(ctx, `DELETE FROM lk_accounts WHERE id = 9121`)
				c.Close(ctx)
			}
		}()
		conn := dialRaw(t, p)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(8 * time.Second))
		w, r := bufio.NewWriter(conn), bufio.NewReader(conn)
		const secret = "copyt-pipe-secret-9122"
		writeMsg(w, 'P', parseUnnamed("COPY lk_accounts (id, email) TO STDOUT"))
		writeMsg(w, 'B', bindTexts())
		writeMsg(w, 'E', executeUnnamed)
		writeMsg(w, 'P', parseUnnamed("UPDATE lk_accounts SET email = $1 WHERE id = $2"))
		writeMsg(w, 'B', bindTexts(secret, "9121"))
		writeMsg(w, 'E', executeUnnamed)
		writeMsg(w, 'S', nil)
		w.Flush()
		got, code, err := readMsgsUntil(r, 'Z')
		if err != nil {
			t.Fatalf("COPY table TO STDOUT then a lookup UPDATE in one pipeline: got %q (%s) then %v", got, code, err)
		}
		if string(got) != "12HdcC12CZ" {
			t.Errorf("COPY then lookup UPDATE: %q %s, want 12HdcC12CZ", got, code)
		}
		if tap.saw(secret) {
			t.Error("the value went upstream in plaintext")
		}
	})
}

// TestLookupLoopThenKeyLoad: the message waits twice on the loop: the
// lookup is answered with a tenant whose data key is not cached (a fresh
// proxy, the row written straight to the database), so the run with the
// answer waits for the key. The lookup goes upstream once per UPDATE and
// is counted once; the value is sealed under the row's tenant.
func TestLookupLoopThenKeyLoad(t *testing.T) {
	lookupReviewProxies(t, func(t *testing.T, p *testProxy, tap *upstreamTap) {
		ctx := context.Background()
		admin := adminConn(t)
		org := 9200 + time.Now().Nanosecond()%1000
		admin.Exec(ctx, `DELETE FROM lk_accounts WHERE id BETWEEN 9201 AND 9210`)
		if _, err := admin.Exec(ctx, `INSERT INTO lk_accounts (id, org) VALUES (9201, $1), (9202, $1 + 1000)`, org); err != nil {
			t.Fatal(err)
		}
		defer admin.Exec(ctx, `DELETE FROM lk_accounts WHERE id BETWEEN 9201 AND 9210`)
		for i, mode := range []pgx.QueryExecMode{pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
			cfg, _ := pgx.ParseConfig(p.url())
			cfg.DefaultQueryExecMode = mode
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			before, beforeTap := lookupsCounted(p), tapLookups(tap)
			id := 9201 + i
			v := fmt.Sprintf("twowait-%d-9291", i)
			ct, err := c.Exec(ctx, `UPDATE lk_accounts SET email = $1 WHERE id = $2`, v, id)
			if err != nil || ct.RowsAffected() != 1 {
				t.Errorf("%s: UPDATE: %v %d", mode, err, ct.RowsAffected())
			}
			if n := tapLookups(tap) - beforeTap; n != 1 {
				t.Errorf("%s: the lookup went upstream %d times, want 1", mode, n)
			}
			if n := lookupsCounted(p) - before; n != 1 {
				t.Errorf("%s: pgveil_tenant_lookups_total grew by %v, want 1", mode, n)
			}
			var got string
			if err := c.QueryRow(ctx, `SELECT email FROM lk_accounts WHERE id = $1`, id).Scan(&got); err != nil || got != v {
				t.Errorf("%s: read back %q %v", mode, got, err)
			}
			c.Close(ctx)
		}
		if tap.saw("-9291") {
			t.Error("a value went upstream in plaintext")
		}
	})
}

// TestLookupLoopBatchMixed: one pgx Batch (one pipeline) of UPDATEs whose
// tenants are looked up, each for another tenant whose key is not cached,
// between SELECTs that decrypt rows under other uncached keys (so that the
// server side parks too) and a statement that fails ahead of a lookup.
// Every UPDATE changes its row, sealed under its row's tenant (read back
// through a fresh proxy), no answer of one lookup serves another, and the
// lookups go upstream once each.
func TestLookupLoopBatchMixed(t *testing.T) {
	if _, err := adminConn(t).Exec(context.Background(), lookupReviewSchema); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	base := 9300 + (time.Now().Nanosecond()/1000)%500*10
	// Encrypted rows for the SELECTs, written through a first proxy.
	seed := startTablesProxy(t, lookupReviewTables)
	sc, err := pgx.Connect(ctx, seed.url())
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 4; k++ {
		if _, err := sc.Exec(ctx, `INSERT INTO lk_accounts (id, org, email) VALUES ($1, $2, $3)`, 9400+k, base+k, fmt.Sprintf("sel-%d@example.org", k)); err != nil {
			t.Fatal(err)
		}
	}
	sc.Close(ctx)
	seed.stop(t, 10*time.Second)
	admin := adminConn(t)
	defer admin.Exec(ctx, `DELETE FROM lk_accounts WHERE id BETWEEN 9400 AND 9499`)
	for ci, core := range relayCoreConfigs {
		t.Run(core.name, func(t *testing.T) {
			// Rows to update, each of its own new tenant.
			if _, err := admin.Exec(ctx, `DELETE FROM lk_accounts WHERE id BETWEEN 9410 AND 9499`); err != nil {
				t.Fatal(err)
			}
			for k := 0; k < 5; k++ {
				if _, err := admin.Exec(ctx, `INSERT INTO lk_accounts (id, org) VALUES ($1, $2)`, 9410+10*ci+k, base+100+10*ci+k); err != nil {
					t.Fatal(err)
				}
			}
			tap := startUpstreamTap(t)
			p := startTablesProxyAt(t, tap.ln.Addr().String(), lookupReviewTables+core.extra)
			defer p.stop(t, 10*time.Second)
			for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec} {
				cfg, _ := pgx.ParseConfig(p.url())
				cfg.DefaultQueryExecMode = mode
				c, err := pgx.ConnectConfig(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				beforeTap := tapLookups(tap)
				var b pgx.Batch
				vals := map[int]string{}
				for k := 0; k < 5; k++ {
					id := 9410 + 10*ci + k
					v := fmt.Sprintf("batch-%s-%d-%d-9391", core.name, mode, k)
					vals[id] = v
					b.Queue(`SELECT email FROM lk_accounts WHERE id = $1`, 9400+k%4)
					b.Queue(`UPDATE lk_accounts SET email = $1, note = $1 WHERE id = $2`, v, id)
				}
				br := c.SendBatch(ctx, &b)
				for k := 0; k < 5; k++ {
					var e string
					if err := br.QueryRow().Scan(&e); err != nil || e != fmt.Sprintf("sel-%d@example.org", k%4) {
						t.Errorf("%s: SELECT %d: %q %v", mode, k, e, err)
					}
					if ct, err := br.Exec(); err != nil || ct.RowsAffected() != 1 {
						t.Errorf("%s: UPDATE %d: %v %d", mode, k, err, ct.RowsAffected())
					}
				}
				if err := br.Close(); err != nil {
					t.Errorf("%s: batch: %v", mode, err)
				}
				if n := tapLookups(tap) - beforeTap; n != 5 {
					t.Errorf("%s: %d lookups went upstream for 5 UPDATEs", mode, n)
				}
				// A failing statement ahead of a lookup in the pipeline.
				var b2 pgx.Batch
				b2.Queue(`SELECT 1/0`)
				b2.Queue(`UPDATE lk_accounts SET email = $1 WHERE id = $2`, "skipped-9391", 9410+10*ci)
				br = c.SendBatch(ctx, &b2)
				if _, err := br.Exec(); err == nil || !strings.Contains(err.Error(), "22012") {
					t.Errorf("%s: SELECT 1/0: %v", mode, err)
				}
				br.Close()
				for id, v := range vals {
					var e, n string
					var org int
					if err := c.QueryRow(ctx, `SELECT org, email, note FROM lk_accounts WHERE id = $1`, id).Scan(&org, &e, &n); err != nil || e != v || n != v {
						t.Errorf("%s: row %d: %d %q %q %v", mode, id, org, e, n, err)
					}
				}
				c.Close(ctx)
			}
			if tap.saw("-9391") {
				t.Error("a value went upstream in plaintext")
			}
		})
	}
}

// TestLookupLoopDrainWhileParked: Shutdown while a session's UPDATE waits
// for its lookup (the lookup sleeps). The UPDATE completes, the client
// then gets 57P01, and Shutdown returns in time, on both relays.
func TestLookupLoopDrainWhileParked(t *testing.T) {
	lookupReviewProxies(t, func(t *testing.T, p *testProxy, tap *upstreamTap) {
		ctx := context.Background()
		admin := adminConn(t)
		if _, err := admin.Exec(ctx, `DELETE FROM lk_accounts WHERE id = 9501; INSERT INTO lk_accounts (id, org) VALUES (9501, 95)`); err != nil {
			t.Fatal(err)
		}
		defer admin.Exec(ctx, `DELETE FROM lk_accounts WHERE id = 9501`)
		for _, simple := range []bool{false, true} {
			conn := dialRaw(t, p)
			conn.SetDeadline(time.Now().Add(15 * time.Second))
			w, r := bufio.NewWriter(conn), bufio.NewReader(conn)
			v := fmt.Sprintf("drain-%v-9591", simple)
			if simple {
				writeMsg(w, 'Q', []byte("UPDATE lk_accounts SET email = '"+v+"' WHERE id = 9501 AND pg_sleep(0.6) IS NOT NULL\x00"))
			} else {
				writeMsg(w, 'P', parseUnnamed("UPDATE lk_accounts SET email = $1 WHERE id = $2 AND pg_sleep(0.6) IS NOT NULL"))
				writeMsg(w, 'B', bindTexts(v, "9501"))
				writeMsg(w, 'E', executeUnnamed)
				writeMsg(w, 'S', nil)
			}
			w.Flush()
			time.Sleep(200 * time.Millisecond) // parked on the lookup
			done := make(chan error, 1)
			go func() {
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				done <- p.srv.Shutdown(sctx)
			}()
			got, code, err := readMsgsUntil(r, 'Z')
			want := "12CZ"
			if simple {
				want = "CZ"
			}
			if err != nil || string(got) != want {
				t.Errorf("simple=%v: UPDATE during drain: %q %s %v, want %s", simple, got, code, err, want)
			}
			got, code, _ = readMsgsUntil(r, 'E')
			if code != "57P01" {
				t.Errorf("simple=%v: after the UPDATE: %q %s, want 57P01", simple, got, code)
			}
			conn.Close()
			if err := <-done; err != nil {
				t.Errorf("simple=%v: Shutdown: %v", simple, err)
			}
			var e []byte
			if err := admin.QueryRow(ctx, `SELECT email FROM lk_accounts WHERE id = 9501`).Scan(&e); err != nil || e == nil || bytes.Contains(e, []byte(v)) {
				t.Errorf("simple=%v: stored %q %v", simple, e, err)
			}
			break // the proxy is shut down now
		}
		if tap.saw("-9591") {
			t.Error("a value went upstream in plaintext")
		}
	})
}

// TestLookupLoopServerGoneWhileParked: the server side ends (the backend is
// terminated) while the UPDATE waits for its lookup: the client gets an
// error and the session ends, nothing leaks, on both relays.
func TestLookupLoopServerGoneWhileParked(t *testing.T) {
	for _, core := range relayCoreConfigs {
		t.Run(core.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			ctx := context.Background()
			admin := adminConn(t)
			if _, err := admin.Exec(ctx, lookupReviewSchema+`INSERT INTO lk_accounts (id, org) VALUES (9601, 96)`); err != nil {
				t.Fatal(err)
			}
			p := startTablesProxy(t, lookupReviewTables+core.extra)
			defer p.stop(t, 10*time.Second)
			for _, simple := range []bool{false, true} {
				conn := dialRaw(t, p)
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				w, r := bufio.NewWriter(conn), bufio.NewReader(conn)
				tag := fmt.Sprintf("srvgone_%v", simple)
				if simple {
					writeMsg(w, 'Q', []byte("UPDATE lk_accounts SET email = 'x-9691' WHERE id = 9601 AND pg_sleep(5) IS NOT NULL AND '"+tag+"' <> ''\x00"))
				} else {
					writeMsg(w, 'P', parseUnnamed("UPDATE lk_accounts SET email = $1 WHERE id = $2 AND pg_sleep(5) IS NOT NULL AND '"+tag+"' <> ''"))
					writeMsg(w, 'B', bindTexts("x-9691", "9601"))
					writeMsg(w, 'E', executeUnnamed)
					writeMsg(w, 'S', nil)
				}
				w.Flush()
				waitFor(t, func() bool {
					var n int
					admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%`+tag+`%' AND query LIKE 'SELECT DISTINCT%'`).Scan(&n)
					return n == 1
				})
				if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%`+tag+`%' AND query LIKE 'SELECT DISTINCT%'`); err != nil {
					t.Fatal(err)
				}
				got, code, err := readMsgsUntil(r, 'Z')
				if !strings.Contains(string(got), "E") {
					t.Errorf("simple=%v: after the server went: %q %s %v, want an error", simple, got, code, err)
				}
				conn.Close()
				waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
			}
			admin.Exec(ctx, `DELETE FROM lk_accounts WHERE id = 9601`)
		})
	}
}

// TestLookupLoopAfterReturn: a session that went to goroutines for a COPY
// FROM of a configured table and came back to the loop looks tenants up
// on the loop again: each lookup goes upstream once and each value is
// sealed under its row's tenant.
func TestLookupLoopAfterReturn(t *testing.T) {
	lookupReviewProxies(t, func(t *testing.T, p *testProxy, tap *upstreamTap) {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		c.Exec(ctx, `DELETE FROM lk_accounts WHERE id BETWEEN 9701 AND 9799`)
		defer c.Exec(ctx, `DELETE FROM lk_accounts WHERE id BETWEEN 9701 AND 9799`)
		for round := 0; round < 3; round++ {
			rows := [][]any{{9701 + 10*round, 97 + round, "cp-a@example.org"}, {9702 + 10*round, 197 + round, "cp-b@example.org"}}
			if _, err := c.CopyFrom(ctx, pgx.Identifier{"lk_accounts"}, []string{"id", "org", "email"}, pgx.CopyFromRows(rows)); err != nil {
				t.Fatal(err)
			}
			before := tapLookups(tap)
			for k, r := range rows {
				v := fmt.Sprintf("ret-%d-%d-9791", round, k)
				if ct, err := c.Exec(ctx, `UPDATE lk_accounts SET email = $1 WHERE id = $2`, v, r[0]); err != nil || ct.RowsAffected() != 1 {
					t.Errorf("round %d UPDATE %d: %v %d", round, k, err, ct.RowsAffected())
				}
				var got string
				if err := c.QueryRow(ctx, `SELECT email FROM lk_accounts WHERE id = $1 AND org = $2`, r[0], r[1]).Scan(&got); err != nil || got != v {
					t.Errorf("round %d read %d: %q %v", round, k, got, err)
				}
			}
			if n := tapLookups(tap) - before; n != 2 {
				t.Errorf("round %d: %d lookups upstream for 2 UPDATEs", round, n)
			}
		}
		if strings.HasSuffix(t.Name(), "/loop") {
			m := p.srv.metrics
			if hb, ret := testutil.ToFloat64(m.LoopHandbacks), testutil.ToFloat64(m.LoopReturns); hb < 3 || ret < 3 {
				t.Errorf("%v handbacks, %v returns: the session did not go back to the loop between rounds", hb, ret)
			}
		}
		if tap.saw("-9791") {
			t.Error("a value went upstream in plaintext")
		}
	})
}

// TestLookupLoopParseLiterals: an unnamed Parse of an UPDATE with literal
// values and no parameters is looked up at Parse; on a fresh proxy the
// run with the answer waits for the tenant's key (and the lookup's WHERE on
// the blind index for its key first). One lookup upstream per UPDATE, the
// row changes, no plaintext upstream.
func TestLookupLoopParseLiterals(t *testing.T) {
	lookupReviewProxies(t, func(t *testing.T, p *testProxy, tap *upstreamTap) {
		ctx := context.Background()
		admin := adminConn(t)
		org := 9800 + time.Now().Nanosecond()%100
		admin.Exec(ctx, `DELETE FROM lk_accounts WHERE id BETWEEN 9801 AND 9809`)
		if _, err := admin.Exec(ctx, `INSERT INTO lk_accounts (id, org) VALUES (9801, $1)`, org); err != nil {
			t.Fatal(err)
		}
		defer admin.Exec(ctx, `DELETE FROM lk_accounts WHERE id BETWEEN 9801 AND 9809`)
		waits := testutil.ToFloat64(p.srv.metrics.LoopWaits.WithLabelValues("key"))
		conn := dialRaw(t, p)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		w, r := bufio.NewWriter(conn), bufio.NewReader(conn)
		before := tapLookups(tap)
		writeMsg(w, 'P', parseUnnamed("UPDATE lk_accounts SET email = 'lit-a-9891@example.org' WHERE id = 9801"))
		writeMsg(w, 'B', bindTexts())
		writeMsg(w, 'E', executeUnnamed)
		writeMsg(w, 'S', nil)
		// By the blind index: the lookup's WHERE needs a key too.
		writeMsg(w, 'P', parseUnnamed("UPDATE lk_accounts SET note = 'lit-b-9891' WHERE email = 'lit-a-9891@example.org'"))
		writeMsg(w, 'B', bindTexts())
		writeMsg(w, 'E', executeUnnamed)
		writeMsg(w, 'S', nil)
		w.Flush()
		for i := 0; i < 2; i++ {
			got, code, err := readMsgsUntil(r, 'Z')
			if err != nil || string(got) != "12CZ" {
				t.Errorf("UPDATE %d: %q %s %v, want 12CZ", i, got, code, err)
			}
		}
		if n := tapLookups(tap) - before; n != 2 {
			t.Errorf("%d lookups upstream for 2 UPDATEs", n)
		}
		if strings.HasSuffix(t.Name(), "/loop") && testutil.ToFloat64(p.srv.metrics.LoopWaits.WithLabelValues("key")) == waits {
			t.Error("no key wait on the loop: the test does not test what it means to")
		}
		pc, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close(ctx)
		var e, n string
		if err := pc.QueryRow(ctx, `SELECT email, note FROM lk_accounts WHERE id = 9801 AND org = $1`, org).Scan(&e, &n); err != nil || e != "lit-a-9891@example.org" || n != "lit-b-9891" {
			t.Errorf("read back %q %q %v", e, n, err)
		}
		if tap.saw("lit-a-9891") || tap.saw("lit-b-9891") {
			t.Error("a value went upstream in plaintext")
		}
	})
}

// TestLookupLoopClientGoneInSecondWait: the client hangs up while its
// UPDATE, its lookup answered, waits for a new tenant's key (the key
// source is fast, so the hang-up is sent right behind the message: the
// session must end either way) and while a pipelined UPDATE's lookup
// sleeps. Sessions end, nothing leaks (goleak), on both relays.
func TestLookupLoopClientGoneInSecondWait(t *testing.T) {
	relayCores(t, lookupReviewSchema, lookupReviewTables, func(t *testing.T, p *testProxy) {
		ctx := context.Background()
		admin := adminConn(t)
		for k := 0; k < 6; k++ {
			if _, err := admin.Exec(ctx, `INSERT INTO lk_accounts (id, org) VALUES ($1, $2)`, 9900+k, 9900+k+time.Now().Nanosecond()%50*10); err != nil {
				t.Fatal(err)
			}
		}
		for k := 0; k < 6; k++ {
			conn := dialRaw(t, p)
			w := bufio.NewWriter(conn)
			writeMsg(w, 'P', parseUnnamed("UPDATE lk_accounts SET email = $1 WHERE id = $2"))
			writeMsg(w, 'B', bindTexts("gone2-9991", fmt.Sprint(9900+k)))
			writeMsg(w, 'E', executeUnnamed)
			writeMsg(w, 'P', parseUnnamed("UPDATE lk_accounts SET note = $1 WHERE id = $2 AND pg_sleep(0.3) IS NOT NULL"))
			writeMsg(w, 'B', bindTexts("gone2-9992", fmt.Sprint(9900+k)))
			writeMsg(w, 'E', executeUnnamed)
			writeMsg(w, 'S', nil)
			w.Flush()
			time.Sleep(time.Duration(k) * 20 * time.Millisecond)
			conn.Close()
		}
		waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
		admin.Exec(ctx, `DELETE FROM lk_accounts WHERE id BETWEEN 9900 AND 9999`)
	})
}
