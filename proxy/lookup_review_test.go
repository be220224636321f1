package proxy

// Review tests of tenant lookups at the protocol level: Flush-only
// clients, a client that hangs up while its lookup runs, many sessions
// looking up at once (run with -race), and a text key_context with NULL
// tenants. All pass on this revision; see integration/enc_lookup_review_test.go
// for the defects.

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const lookupReviewSchema = lookupSchema + `
DROP TABLE IF EXISTS lkr_text;
CREATE TABLE lkr_text (id int PRIMARY KEY, org text, email bytea, email_bidx bytea);
GRANT ALL ON lkr_text TO PUBLIC;
`

const lookupReviewTables = lookupTables + `  public.lkr_text:
    key_context: org
    columns:
      email:
        type: text
        blind_index: {column: email_bidx}
`

// bindTexts is a Bind of the unnamed portal to the unnamed statement with
// text parameters.
func bindTexts(vals ...string) []byte {
	b := []byte("\x00\x00\x00\x00") // portal, statement, no format codes (text)
	b = binary.BigEndian.AppendUint16(b, uint16(len(vals)))
	for _, v := range vals {
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	return append(b, 0, 0)
}

func parseUnnamed(sql string) []byte { return []byte("\x00" + sql + "\x00\x00\x00") }

var executeUnnamed = []byte("\x00\x00\x00\x00\x00")

// readUntil reads messages up to one of type stop and returns their types
// and the last SQLSTATE.
func readUntil(t *testing.T, r *bufio.Reader, stop byte) (types []byte, code string) {
	t.Helper()
	for {
		typ, body := readRawMsg(t, r)
		types = append(types, typ)
		if typ == 'E' {
			code = errorField(body, 'C')
		}
		if typ == stop {
			return types, code
		}
	}
}

func lookupReviewProxies(t *testing.T, f func(t *testing.T, p *testProxy, tap *upstreamTap)) {
	if _, err := adminConn(t).Exec(context.Background(), lookupReviewSchema); err != nil {
		t.Fatal(err)
	}
	for _, core := range relayCoreConfigs {
		t.Run(core.name, func(t *testing.T) {
			tap := startUpstreamTap(t)
			p := startTablesProxyAt(t, tap.ln.Addr().String(), lookupReviewTables+core.extra)
			defer p.stop(t, 10*time.Second)
			f(t, p, tap)
		})
	}
}

// TestLookupReviewFlushOnly: a client that sends Parse/Bind/Execute and
// Flush, never Sync, gets its lookup UPDATE's answers; a lookup the server
// rejects answers with its error at the Flush, the rest up to Sync is
// skipped, and the session goes on after Sync. Nothing written goes
// upstream in plaintext.
func TestLookupReviewFlushOnly(t *testing.T) {
	lookupReviewProxies(t, func(t *testing.T, p *testProxy, tap *upstreamTap) {
		ctx := context.Background()
		pc, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.Exec(ctx, `INSERT INTO lk_accounts (id, org, email) VALUES (7001, 71, $1)`, "flush-old-7001@example.org"); err != nil {
			t.Fatal(err)
		}
		pc.Close(ctx)
		conn := dialRaw(t, p)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		w, r := bufio.NewWriter(conn), bufio.NewReader(conn)
		const secret1, secret2, secret3 = "flush-secret-1-7711", "flush-secret-2-7712", "flush-secret-3-7713"
		writeMsg(w, 'P', parseUnnamed("UPDATE lk_accounts SET email = $1 WHERE id = $2"))
		writeMsg(w, 'B', bindTexts(secret1, "7001"))
		writeMsg(w, 'E', executeUnnamed)
		writeMsg(w, 'H', nil)
		w.Flush()
		if got, code := readUntil(t, r, 'C'); string(got) != "12C" {
			t.Fatalf("lookup UPDATE with Flush: %q %s", got, code)
		}
		// The lookup fails (division by zero at its Execute).
		writeMsg(w, 'P', parseUnnamed("UPDATE lk_accounts SET email = $1 WHERE id = $2::int / 0"))
		writeMsg(w, 'B', bindTexts(secret2, "7001"))
		writeMsg(w, 'E', executeUnnamed)
		writeMsg(w, 'H', nil)
		w.Flush()
		if got, code := readUntil(t, r, 'E'); string(got) != "1E" || code != "22012" {
			t.Fatalf("failing lookup with Flush: %q %s, want 1E 22012", got, code)
		}
		// More of the client's pipeline before its Sync: skipped.
		writeMsg(w, 'B', bindTexts(secret3, "7001"))
		writeMsg(w, 'E', executeUnnamed)
		writeMsg(w, 'S', nil)
		w.Flush()
		if got, code := readUntil(t, r, 'Z'); string(got) != "Z" {
			t.Fatalf("after the failing lookup, Sync: %q %s, want Z", got, code)
		}
		writeMsg(w, 'P', parseUnnamed("UPDATE lk_accounts SET email = $1 WHERE id = $2"))
		writeMsg(w, 'B', bindTexts(secret3, "7001"))
		writeMsg(w, 'E', executeUnnamed)
		writeMsg(w, 'S', nil)
		w.Flush()
		if got, code := readUntil(t, r, 'Z'); string(got) != "12CZ" {
			t.Fatalf("lookup after the error: %q %s", got, code)
		}
		writeMsg(w, 'X', nil)
		w.Flush()
		conn.Close()
		waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
		for _, s := range []string{secret1, secret2, secret3} {
			if tap.saw(s) {
				t.Errorf("%s went upstream", s)
			}
		}
		pc, err = pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close(ctx)
		var email string
		if err := pc.QueryRow(ctx, `SELECT email FROM lk_accounts WHERE id = 7001`).Scan(&email); err != nil || email != secret3 {
			t.Errorf("read back %q, %v", email, err)
		}
		pc.Exec(ctx, `DELETE FROM lk_accounts WHERE id = 7001`)
	})
}

// TestLookupReviewClientGone: a client sends an UPDATE whose lookup sleeps
// (extended and simple) and hangs up. The session ends once the server
// answers, and no goroutine is left (goleak, both relays).
func TestLookupReviewClientGone(t *testing.T) {
	relayCores(t, lookupReviewSchema, lookupReviewTables, func(t *testing.T, p *testProxy) {
		ctx := context.Background()
		pc, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.Exec(ctx, `INSERT INTO lk_accounts (id, org, email) VALUES (7101, 71, 'gone-old@example.org')`); err != nil {
			t.Fatal(err)
		}
		pc.Close(ctx)
		for _, simple := range []bool{false, true} {
			conn := dialRaw(t, p)
			w := bufio.NewWriter(conn)
			if simple {
				writeMsg(w, 'Q', []byte("UPDATE lk_accounts SET email = 'gone-new@example.org' WHERE id = 7101 AND pg_sleep(0.5) IS NOT NULL\x00"))
			} else {
				writeMsg(w, 'P', parseUnnamed("UPDATE lk_accounts SET email = $1 WHERE id = $2 AND pg_sleep(0.5) IS NOT NULL"))
				writeMsg(w, 'B', bindTexts("gone-new@example.org", "7101"))
				writeMsg(w, 'E', executeUnnamed)
				writeMsg(w, 'S', nil)
			}
			w.Flush()
			time.Sleep(100 * time.Millisecond) // the lookup is running
			conn.Close()
			waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
		}
		pc, err = pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		pc.Exec(ctx, `DELETE FROM lk_accounts WHERE id = 7101`)
		pc.Close(ctx)
		waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	})
}

// TestLookupReviewConcurrent: sessions doing lookups at once, in every
// exec mode, with failing lookups and batches between, on both relays (the
// event loop hands each lookup's session back and takes it again). Run
// with -race. Every value reads back under its row's tenant.
func TestLookupReviewConcurrent(t *testing.T) {
	lookupReviewProxies(t, func(t *testing.T, p *testProxy, tap *upstreamTap) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		modes := []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
			pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for w := 0; w < 10; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				cfg, _ := pgx.ParseConfig(p.url())
				cfg.DefaultQueryExecMode = modes[w%len(modes)]
				c, err := pgx.ConnectConfig(ctx, cfg)
				if err != nil {
					errs <- err
					return
				}
				defer c.Close(ctx)
				id, org := 7200+w, 80+w%3
				if _, err := c.Exec(ctx, `INSERT INTO lk_accounts (id, org) VALUES ($1, $2)`, id, org); err != nil {
					errs <- err
					return
				}
				for k := 0; k < 25; k++ {
					v := fmt.Sprintf("conc-%d-%d-7791", w, k)
					if ct, err := c.Exec(ctx, `UPDATE lk_accounts SET email = $1, note = $1 WHERE id = $2`, v, id); err != nil || ct.RowsAffected() != 1 {
						errs <- fmt.Errorf("worker %d (%s) update %d: %v, %d rows", w, cfg.DefaultQueryExecMode, k, err, ct.RowsAffected())
						return
					}
					if _, err := c.Exec(ctx, `UPDATE lk_accounts SET note = $1 WHERE id = $2 / 0`, v, id); err == nil || !strings.Contains(err.Error(), "22012") {
						errs <- fmt.Errorf("worker %d failing lookup %d: %v", w, k, err)
						return
					}
					if cfg.DefaultQueryExecMode != pgx.QueryExecModeSimpleProtocol && k%5 == 0 {
						var b pgx.Batch
						b.Queue(`UPDATE lk_accounts SET note = $1 WHERE id = $2`, v+"-b1", id)
						b.Queue(`UPDATE lk_accounts SET note = $1 WHERE email = $2`, v+"-b2", v)
						b.Queue(`SELECT note FROM lk_accounts WHERE id = $1`, id)
						br := c.SendBatch(ctx, &b)
						br.Exec()
						br.Exec()
						var note string
						err := br.QueryRow().Scan(&note)
						br.Close()
						if err != nil || note != v+"-b2" {
							errs <- fmt.Errorf("worker %d batch %d: %q %v", w, k, note, err)
							return
						}
					}
					var email, note string
					var gotOrg int
					if err := c.QueryRow(ctx, `SELECT org, email, note FROM lk_accounts WHERE id = $1`, id).Scan(&gotOrg, &email, &note); err != nil || gotOrg != org || email != v {
						errs <- fmt.Errorf("worker %d read %d: %d %q %q %v", w, k, gotOrg, email, note, err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if tap.saw("-7791") {
			t.Error("a value went upstream in plaintext")
		}
		pc, err := pgx.Connect(context.Background(), p.url())
		if err == nil {
			pc.Exec(context.Background(), `DELETE FROM lk_accounts WHERE id >= 7200 AND id < 7300`)
			pc.Close(context.Background())
		}
	})
}

// TestLookupReviewTextTenantNull: a text key_context. A row whose tenant
// is NULL is refused (alone, or beside another tenant's row: "more than
// one tenant"), nothing changes; a text tenant ('acme', with a quote and
// a backslash in another) is looked up and sealed under it, in both
// protocols. No value goes upstream.
func TestLookupReviewTextTenantNull(t *testing.T) {
	lookupReviewProxies(t, func(t *testing.T, p *testProxy, tap *upstreamTap) {
		ctx := context.Background()
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
			cfg, _ := pgx.ParseConfig(p.url())
			cfg.DefaultQueryExecMode = mode
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(ctx, `DELETE FROM lkr_text`); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(ctx, `INSERT INTO lkr_text (id, org) VALUES (1, NULL), (2, 'acme'), (3, $1)`, `o'b\rien`); err != nil {
				t.Fatal(err)
			}
			const secret = "text-tenant-secret-7831"
			if _, err := c.Exec(ctx, `UPDATE lkr_text SET email = $1 WHERE id = $2`, secret, 1); err == nil {
				t.Errorf("%s: UPDATE of the NULL tenant's row: no error", mode)
			}
			if _, err := c.Exec(ctx, `UPDATE lkr_text SET email = $1 WHERE id < $2`, secret, 3); err == nil || !strings.Contains(err.Error(), "0A000") {
				t.Errorf("%s: UPDATE over NULL and acme: %v, want 0A000", mode, err)
			}
			for _, id := range []int{2, 3} {
				v := fmt.Sprintf("%s-%d", secret, id)
				if ct, err := c.Exec(ctx, `UPDATE lkr_text SET email = $1 WHERE id = $2`, v, id); err != nil || ct.RowsAffected() != 1 {
					t.Errorf("%s: UPDATE row %d: %v", mode, id, err)
				}
				var got string
				if err := c.QueryRow(ctx, `SELECT email FROM lkr_text WHERE id = $1`, id).Scan(&got); err != nil || got != v {
					t.Errorf("%s: read %d: %q %v", mode, id, got, err)
				}
			}
			var n int
			if err := c.QueryRow(ctx, `SELECT count(*) FROM lkr_text WHERE id = 1 AND email IS NULL`).Scan(&n); err != nil || n != 1 {
				t.Errorf("%s: the NULL tenant's row changed: %d %v", mode, n, err)
			}
			c.Close(ctx)
		}
		if tap.saw("text-tenant-secret-7831") {
			t.Error("a value went upstream in plaintext")
		}
	})
}
