package integration

// Review 17a: `on_error: null` in every read path, and several pgveil
// replicas on one database while the operator commands run.
//
// Findings (severity, what happened, the fix):
//
//   1. MEDIUM. `on_error: null`, written as the docs and config.example
//      write it (unquoted), is a YAML null to the parser, which took it for
//      a missing value: the column kept the default, on_error: error, and
//      every damaged value ended the session with a FATAL PV001/PV003
//      instead of reading as NULL (only `on_error: "null"` worked). Fix:
//      policy/tables.go reads a YAML null written out (null, Null, NULL,
//      ~) as the choice null; an empty `on_error:` stays the default.
//      Tests: policy TestOnErrorNullUnquoted,
//      TestEncReview17OnErrorNullEveryPath.
//
//   2. HIGH (data lost; needs a long transaction on a replica that missed
//      the rotation's notification). `pgveil rotate` waited, after its
//      grace period, only for transactions that began before the rotation.
//      A replica that has not heard of the rotation seals under the old
//      version until its cached active key expires, also inside a
//      transaction that began after the rotation; when that transaction
//      committed after the last pass, the old version had been dropped
//      under its value, which read as NULL for good (rotate reported
//      success). Fix: waitGrace waits for every client transaction that
//      began before the grace period ended (server clock), and says so.
//      Test: TestOpsReview17RotateLateTransaction.
//
//   3. MEDIUM (HIGH in effect on a shred: a shredded tenant kept being
//      decrypted). A replica's LISTEN connections (pgveil_keys,
//      pgveil_tables) that died without a word (a NAT or firewall dropping
//      an idle connection) blocked in WaitForNotification until TCP
//      keepalive noticed, tens of minutes later. Meanwhile, with the
//      keyring "watching", cached keys were never re-read: a shredded
//      tenant stayed readable on that replica, and table states stayed
//      stale (still complete during --decrypt: plaintext read as NULL or
//      PV003; still migrating after complete: lookup plaintext sent as
//      parameters). docs/SHREDDING.md promised the listener's reconnect
//      time. Fix: keysource.WaitForNotification, used by both listeners,
//      pings the connection after 10 s without a notification (5 s to
//      answer) and closes it when it does not answer, so the watcher
//      reconnects, drops its key cache and re-reads the states. Test:
//      TestOpsReview17SilentListener (a TCP forwarder freezes the
//      listeners; before the fix it timed out after a minute, now ~15 s).
//
//   4. MEDIUM. `pgveil migrate --decrypt --apply` with an application
//      writing through pgveil (which seals until the table leaves the
//      policy, docs/ADOPTION.md step 3) found new envelopes in every pass
//      and failed after five with "is an application writing to it
//      without going through pgveil?" (exit 1): wrong diagnosis, and step
//      1 could not succeed on a busy table. Fix: decryptTable takes that
//      end of the passes (errKeptAppearing) as expected, says the values
//      written meanwhile are still sealed for the run after the reload,
//      and succeeds. Test: TestOpsReview17Replicas.
//
//   5. MEDIUM. `pgveil migrate --decrypt` wrote plaintext back right after
//      it committed state decrypting and sent the NOTIFY, without knowing
//      whether the replicas had applied it: a replica still at complete
//      (its notification in flight for a few ms, or lost with a listener
//      that was down or silent) refused every value written back (PV003,
//      which ends the session; NULL under on_error: null) and lookups
//      missed those rows (no plaintext fallback). After complete, a replica
//      still at migrating went on sending lookups' plaintext. Fix: each
//      replica's state listener names its connection `pgveil table states
//      <id>` and runs every query on it as a reload of the states (also
//      its heartbeat); after each state change `pgveil migrate` waits
//      (proxy.WaitStateApplied, at most 30 s, then reports and goes on)
//      until every such connection has run that reload since just before
//      the change (a replica whose listener is between two connections at
//      that moment is not seen: docs/SCALING.md).
//      Test: TestOpsReview17DecryptWaitsForReplicas (the replica's
//      listener frozen: before the fix it read all 30 rows as NULL while
//      the command ran). TestOpsMigrateOnline's writer now retries the
//      documented one-time 0A000 of a prepared lookup after a state change
//      (the command returns a few ms later than before, which made that
//      latent race visible).
//
// Holds (TestOpsReview17Replicas): two replicas, writes and lookups
// through both during migrate --apply, rotate, shred and migrate
// --decrypt, their listeners killed (pg_terminate_backend) before the last
// three:
// every state change reaches both (they re-read pgveil.tables on
// reconnecting), no write fails, no value is left under a dropped version
// after rotate, both stop decrypting a shredded tenant and new writes of
// it read back, every other row reads as written through both. Noticed,
// documented, not changed: each state change makes every prepared lookup
// of the table fail once (0A000 "cached plan must not change result
// type", then the driver prepares it again): docs/SQL.md, "Migration
// mode".
//
// Holds (kept by TestEncReview17OnErrorNullEveryPath): with on_error:
// null, a value moved from another tenant's row (blind index included, so
// a lookup matches it), a flipped character, another column's envelope,
// and plaintext in a complete table all read as NULL, the other values of
// the row as written, through the simple protocol and pgx's five exec
// modes, text and binary result formats, a subquery, a CTE, a view, a
// blind-index lookup, RETURNING of UPDATE/DELETE/INSERT … ON CONFLICT,
// DECLARE/FETCH (text and BINARY cursors), a portal executed with a row
// limit, COPY TO STDOUT (text, csv, binary, a query), and json_build_object /
// jsonb_build_object / json_build_array. A shredded tenant (shredded
// while the proxy runs) reads as NULL in every one of them. With on_error:
// error the same rows are a FATAL PV001 (PV003 for plaintext), also in
// COPY TO, a cursor's FETCH and JSON, with no value sent before it, and
// new sessions work (FATAL, not an ERROR after which the session goes on,
// is the documented design: docs/THREAT_MODEL.md, proxy/decrypt.go). ORDER BY / DISTINCT / aggregates / row_to_json of an
// encrypted column are refused by the planner (docs/SQL.md, "Refused"),
// so no damaged value reaches them.
//
// Noticed, not changed: (LOW) `pgveil shred` clears the blind indexes of
// the tenant's rows (by key_context), not of a value under the tenant's
// key that someone moved into another tenant's row, which keeps its blind
// index (equality only; the value reads as NULL). (LOW) A heartbeat reload
// of a replica that begins in the millisecond between `pgveil migrate`'s
// clock reading and its commit counts as confirmation although it read
// the old state; the notification's reload follows within milliseconds.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/integration/harness"
)

// r17Policy is rvPolicy with on_error: null on both columns.
const r17Policy = `tables:
  public.rv:
    key_context: org
    columns:
      email:
        type: text
        on_error: null
        blind_index:
          column: email_bidx
          normalize: [lowercase]
      note:
        type: text
        on_error: null
`

// r17Tamper damages four rows from outside pgveil (rows are of org
// 1 + id % 3): row 1's email (org 2) is row 2's (org 3), blind index
// included; row 3's note has a flipped character; row 4's note is its own
// email (another column's key); row 6's note is plaintext in a complete
// table.
const r17Tamper = `
UPDATE rv SET email = s.email, email_bidx = s.email_bidx FROM rv s WHERE rv.id = 1 AND s.id = 2;
UPDATE rv SET note = overlay(note PLACING CASE WHEN substr(note, 30, 1) = 'A' THEN 'B' ELSE 'A' END FROM 30 FOR 1) WHERE id = 3;
UPDATE rv SET note = email WHERE id = 4;
UPDATE rv SET note = 'planted-plain' WHERE id = 6;
CREATE VIEW rvv AS SELECT id, org, email, note FROM rv;
`

// r17Row is one row as read: id, email, note.
type r17Row struct {
	email, note *string
}

// r17Want is what a row must read as under on_error: null: NULL for a
// damaged value (and for every value of a shredded org), else the value
// written.
func r17Want(id int, shredded map[int]bool) r17Row {
	email, note := fmt.Sprintf("u%d@x.org", id), fmt.Sprintf("note %d", id)
	w := r17Row{&email, &note}
	if shredded[1+id%3] {
		return r17Row{}
	}
	switch id {
	case 1:
		w.email = nil
	case 3, 4, 6:
		w.note = nil
	}
	return w
}

func r17Check(t *testing.T, what string, got map[int]r17Row, ids []int, shredded map[int]bool) {
	t.Helper()
	if len(got) != len(ids) {
		t.Errorf("%s: %d rows, want %d", what, len(got), len(ids))
	}
	for _, id := range ids {
		g, ok := got[id]
		if !ok {
			t.Errorf("%s: row %d missing", what, id)
			continue
		}
		w := r17Want(id, shredded)
		if fmtPtr(g.email) != fmtPtr(w.email) || fmtPtr(g.note) != fmtPtr(w.note) {
			t.Errorf("%s: row %d reads %s / %s, want %s / %s", what, id, fmtPtr(g.email), fmtPtr(g.note), fmtPtr(w.email), fmtPtr(w.note))
		}
	}
}

func r17Scan(rows pgx.Rows) (map[int]r17Row, error) {
	defer rows.Close()
	out := map[int]r17Row{}
	for rows.Next() {
		var id int
		var r r17Row
		if err := rows.Scan(&id, &r.email, &r.note); err != nil {
			return nil, err
		}
		out[id] = r
	}
	return out, rows.Err()
}

func r17IDs(from, to int) []int {
	var ids []int
	for i := from; i <= to; i++ {
		ids = append(ids, i)
	}
	return ids
}

var r17Modes = []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
	pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol}

// r17ReadAll reads rv through every path of the review and checks each
// against r17Want.
func r17ReadAll(t *testing.T, ctx context.Context, c *pgx.Conn, shredded map[int]bool) {
	t.Helper()
	all := r17IDs(1, 30)
	lookup := []int{1, 2}
	if shredded[3] {
		// The shred cleared the blind indexes of org 3's values: in org
		// 3's rows and in row 1 (org 2), which holds a copy of org 3's
		// envelope and its index (LOW sweep 2, item 6: every row with a
		// value under a destroyed key).
		lookup = nil
	}
	queries := []struct {
		name, sql string
		args      []any
		ids       []int
	}{
		{"plain SELECT", "SELECT id, email, note FROM rv", nil, all},
		{"SELECT without the tenant", "SELECT id, email, note FROM rv WHERE id <= 9", nil, r17IDs(1, 9)},
		{"subquery", "SELECT s.id, s.email, s.note FROM (SELECT id, org, email, note FROM rv) s", nil, all},
		{"CTE", "WITH w AS (SELECT id, org, email, note FROM rv) SELECT id, email, note FROM w", nil, all},
		{"view", "SELECT id, email, note FROM rvv", nil, all},
		{"blind-index lookup", "SELECT id, email, note FROM rv WHERE email = $1", []any{"U2@x.org"}, lookup},
	}
	for _, q := range queries {
		for _, mode := range r17Modes {
			what := fmt.Sprintf("%s (%v)", q.name, mode)
			rows, err := c.Query(ctx, q.sql, append([]any{mode}, q.args...)...)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			got, err := r17Scan(rows)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			r17Check(t, what, got, q.ids, shredded)
		}
	}
	// Binary and text result formats, by hand.
	for _, format := range []int16{0, 1} {
		res := c.PgConn().ExecParams(ctx, "SELECT id::text, email, note FROM rv", nil, nil, nil, []int16{0, format, format}).Read()
		if res.Err != nil {
			t.Fatalf("format %d: %v", format, res.Err)
		}
		got := map[int]r17Row{}
		for _, r := range res.Rows {
			id, _ := strconv.Atoi(string(r[0]))
			got[id] = r17Row{r17Str(r[1]), r17Str(r[2])}
		}
		r17Check(t, fmt.Sprintf("result format %d", format), got, all, shredded)
	}
	// RETURNING of UPDATE, DELETE and INSERT … ON CONFLICT, rolled back.
	for _, q := range []string{
		"UPDATE rv SET id = id RETURNING id, email, note",
		"DELETE FROM rv RETURNING id, email, note",
		"INSERT INTO rv (id, org) SELECT id, org FROM rv ON CONFLICT (id) DO UPDATE SET id = excluded.id RETURNING id, email, note",
	} {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := tx.Query(ctx, q, mode)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			got, err := r17Scan(rows)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			r17Check(t, fmt.Sprintf("%s (%v)", q, mode), got, all, shredded)
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Cursors: DECLARE/FETCH, text and binary.
	for _, decl := range []string{"DECLARE c CURSOR FOR SELECT id, email, note FROM rv", "DECLARE c BINARY CURSOR FOR SELECT id, email, note FROM rv"} {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, decl, mode); err != nil {
				t.Fatalf("%s: %v", decl, err)
			}
			got := map[int]r17Row{}
			for range 4 {
				rows, err := tx.Query(ctx, "FETCH 8 FROM c", mode)
				if err != nil {
					t.Fatalf("FETCH: %v", err)
				}
				part, err := r17Scan(rows)
				if err != nil {
					t.Fatalf("FETCH after %s (%v): %v", decl, mode, err)
				}
				for id, r := range part {
					got[id] = r
				}
			}
			r17Check(t, fmt.Sprintf("%s (%v)", decl, mode), got, all, shredded)
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A portal executed 4 rows at a time, binary results.
	{
		got := map[int]r17Row{}
		fe := c.PgConn().Frontend()
		fe.Send(&pgproto3.Parse{Query: "SELECT id::text, email, note FROM rv"})
		fe.Send(&pgproto3.Bind{ResultFormatCodes: []int16{0, 1, 1}})
		for range 8 {
			fe.Send(&pgproto3.Execute{MaxRows: 4})
		}
		fe.Send(&pgproto3.Sync{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for done := false; !done; {
			msg, err := c.PgConn().ReceiveMessage(ctx)
			if err != nil {
				t.Fatalf("portal: %v", err)
			}
			switch m := msg.(type) {
			case *pgproto3.DataRow:
				id, _ := strconv.Atoi(string(m.Values[0]))
				got[id] = r17Row{r17Str(m.Values[1]), r17Str(m.Values[2])}
			case *pgproto3.ErrorResponse:
				if m.Code != "34000" { // executing the finished portal again
					t.Errorf("portal: %s %s", m.Code, m.Message)
				}
			case *pgproto3.ReadyForQuery:
				done = true
			}
		}
		r17Check(t, "portal with a row limit", got, all, shredded)
	}
	// COPY TO STDOUT: a table with a column list, and a query.
	for _, q := range []string{"COPY rv (id, email, note) TO STDOUT", "COPY (SELECT id, email, note FROM rv) TO STDOUT", "COPY rv (id, email, note) TO STDOUT (FORMAT csv)"} {
		var buf bytes.Buffer
		if _, err := c.PgConn().CopyTo(ctx, &buf, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		got := map[int]r17Row{}
		csv := strings.Contains(q, "csv")
		for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
			sep := "\t"
			if csv {
				sep = ","
			}
			f := strings.Split(line, sep)
			if len(f) != 3 {
				t.Fatalf("%s: line %q", q, line)
			}
			id, _ := strconv.Atoi(f[0])
			val := func(s string) *string {
				if (!csv && s == `\N`) || (csv && s == "") {
					return nil
				}
				return &s
			}
			got[id] = r17Row{val(f[1]), val(f[2])}
		}
		r17Check(t, q, got, all, shredded)
	}
	// COPY TO STDOUT in binary format.
	{
		q := "COPY rv (id, email, note) TO STDOUT (FORMAT binary)"
		var buf bytes.Buffer
		if _, err := c.PgConn().CopyTo(ctx, &buf, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		b := buf.Bytes()
		if len(b) < 19 || string(b[:11]) != "PGCOPY\n\xff\r\n\x00" {
			t.Fatalf("%s: no binary COPY header", q)
		}
		b = b[19+int(binary.BigEndian.Uint32(b[15:19])):]
		got := map[int]r17Row{}
		for len(b) >= 2 {
			nf := int(int16(binary.BigEndian.Uint16(b)))
			b = b[2:]
			if nf == -1 {
				break
			}
			var fields [][]byte
			for range nf {
				l := int(int32(binary.BigEndian.Uint32(b)))
				b = b[4:]
				if l < 0 {
					fields = append(fields, nil)
					continue
				}
				fields = append(fields, b[:l])
				b = b[l:]
			}
			if nf != 3 || len(fields[0]) != 4 {
				t.Fatalf("%s: tuple of %d fields", q, nf)
			}
			got[int(binary.BigEndian.Uint32(fields[0]))] = r17Row{r17Str(fields[1]), r17Str(fields[2])}
		}
		r17Check(t, q, got, all, shredded)
	}
	// JSON built in the server.
	for _, q := range []string{
		"SELECT json_build_object('id', id, 'e', email, 'n', note) FROM rv",
		"SELECT jsonb_build_object('id', id, 'e', email, 'n', note) FROM rv",
		"SELECT json_build_array(id, email, note, org) FROM rv",
	} {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
			rows, err := c.Query(ctx, q, mode)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			got := map[int]r17Row{}
			for rows.Next() {
				var raw []byte
				if err := rows.Scan(&raw); err != nil {
					t.Fatal(err)
				}
				var id int
				var r r17Row
				if raw[0] == '[' {
					var a []any
					if err := json.Unmarshal(raw, &a); err != nil {
						t.Fatalf("%s: %s: %v", q, raw, err)
					}
					id = int(a[0].(float64))
					r = r17Row{r17Any(a[1]), r17Any(a[2])}
				} else {
					var o map[string]any
					if err := json.Unmarshal(raw, &o); err != nil {
						t.Fatalf("%s: %s: %v", q, raw, err)
					}
					id = int(o["id"].(float64))
					r = r17Row{r17Any(o["e"]), r17Any(o["n"])}
				}
				got[id] = r
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("%s (%v): %v", q, mode, err)
			}
			r17Check(t, fmt.Sprintf("%s (%v)", q, mode), got, all, shredded)
		}
	}
	// Functions, aggregates, ordering and deduplication of an encrypted
	// column are refused before the server sees them (no damaged value
	// can reach them), and the session goes on.
	for _, q := range []string{
		"SELECT array_agg(email) FROM rv",
		"SELECT string_agg(note, ',') FROM rv",
		"SELECT row_to_json(rv) FROM rv",
		"SELECT org, array_agg(email) FROM rv GROUP BY org",
		"SELECT DISTINCT email, org FROM rv",
		"SELECT id, email, note, org FROM rv ORDER BY email",
	} {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
			rows, err := c.Query(ctx, q, mode)
			if err == nil {
				for rows.Next() {
				}
				rows.Close()
				err = rows.Err()
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "0A000" {
				t.Errorf("%s (%v): %v, want a refusal (0A000)", q, mode, err)
			}
		}
	}
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM rv").Scan(&n); err != nil || n != 30 {
		t.Fatalf("after the reads: %d rows, %v", n, err)
	}
}

func r17Str(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

func r17Any(v any) *string {
	if v == nil {
		return nil
	}
	s := fmt.Sprint(v)
	return &s
}

// TestEncReview17OnErrorNullEveryPath: damaged values read as NULL, never
// as an error or another value, through every read path; so do a shredded
// tenant's. The same damage through a pgveil with on_error: error is a
// FATAL PV001/PV003 that leaves other sessions working.
func TestEncReview17OnErrorNullEveryPath(t *testing.T) {
	ctx := testCtx(t, 4*time.Minute)
	e := newOpsEnv(t, "ops_r17_onerror", r17Policy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	if _, err := su.Exec(ctx, r17Tamper); err != nil {
		t.Fatal(err)
	}
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	r17ReadAll(t, ctx, app, nil)

	// on_error: error: the clear error, and other sessions unharmed.
	strict := strings.ReplaceAll(e.config(""), "        on_error: null\n", "")
	ps := e.proxy(strict)
	for _, q := range []struct {
		sql, code string
	}{
		{"SELECT id, email, note FROM rv WHERE id = 1", "PV001"},
		{"SELECT id, email, note FROM rv WHERE id = 3", "PV001"},
		{"SELECT id, email, note FROM rv WHERE id = 4", "PV001"},
		{"SELECT id, email, note FROM rv WHERE id = 6", "PV003"},
	} {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
			c := e.appConn(ctx, ps)
			rows, err := c.Query(ctx, q.sql, mode)
			if err == nil {
				_, err = r17Scan(rows)
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != q.code {
				t.Errorf("%s (%v) with on_error: error: %v, want %s", q.sql, mode, err, q.code)
			}
			c.Close(ctx)
		}
	}
	// COPY TO, a cursor and JSON under on_error: error: the same FATAL,
	// never a value.
	for _, q := range []string{
		"COPY (SELECT id, email, note FROM rv WHERE id = 1) TO STDOUT",
		"BEGIN; DECLARE c CURSOR FOR SELECT id, email, note FROM rv WHERE id = 1; FETCH ALL FROM c",
		"SELECT json_build_object('id', id, 'e', email, 'n', note) FROM rv WHERE id = 1",
	} {
		c := e.appConn(ctx, ps)
		var err error
		var out string
		if strings.HasPrefix(q, "COPY") {
			var buf bytes.Buffer
			_, err = c.PgConn().CopyTo(ctx, &buf, q)
			out = buf.String()
		} else {
			var rs []*pgconn.Result
			rs, err = c.PgConn().Exec(ctx, q).ReadAll()
			for _, r := range rs {
				for _, row := range r.Rows {
					for _, f := range row {
						out += string(f) + "|"
					}
				}
			}
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "PV001" {
			t.Errorf("%s with on_error: error: %v, want PV001", q, err)
		}
		if out != "" {
			t.Errorf("%s with on_error: error returned %q before the error", q, out)
		}
		c.Close(ctx)
	}
	var n int
	if err := e.appConn(ctx, ps).QueryRow(ctx, "SELECT count(*) FROM rv WHERE id <> ALL($1)", []int{1, 3, 4, 6}).Scan(&n); err != nil || n != 26 {
		t.Errorf("a new session after the failures: %d, %v", n, err)
	}

	// Tenant 3 shredded: its values read as NULL everywhere, through the
	// running pgveil (told by NOTIFY).
	e.run(ctx, 0, "shred", "-c", cfg, "--table", "public.rv", "--tenant", "3", "--yes")
	r17ReadAll(t, ctx, app, map[int]bool{3: true})
}

// TestOpsReview17RotateLateTransaction: a replica that has not yet heard
// of the rotation (its notification lost, its cached active key not yet
// expired) seals a value under the old version inside a transaction that
// began after the rotation, and commits it only after the grace period.
// The test plays that replica with a direct connection writing an
// envelope of the same tenant and column sealed under the old version
// (exactly what such a replica writes). `pgveil rotate` must not drop the
// old version under it: the value would read as NULL for good.
func TestOpsReview17RotateLateTransaction(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	e := newOpsEnv(t, "ops_r17_rotlate", r17Policy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	// Rows 4 and 7 are both of org 2: row 7's note under version 1.
	var old string
	if err := su.QueryRow(ctx, `SELECT note FROM rv WHERE id = 7`).Scan(&old); err != nil {
		t.Fatal(err)
	}

	rot, rotOut, rotErr := e.start("rotate", "-c", cfg, "--grace", "4s", "--batch", "100")
	waitFor(t, time.Minute, "rotate to re-encrypt and wait out its grace period", func() (bool, error) {
		return strings.Contains(rotOut.String(), "waiting "), nil
	})
	late, err := e.conn(ctx).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Rollback(context.Background())
	if _, err := late.Exec(ctx, `UPDATE rv SET note = $1 WHERE id = 4`, old); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- rot.Wait() }()
	var rotRes error
	waitFor(t, 2*time.Minute, "rotate to finish or to wait for the late transaction", func() (bool, error) {
		select {
		case rotRes = <-exited:
			exited <- rotRes
			return true, nil
		default:
		}
		return strings.Contains(rotOut.String(), "transaction(s) that began before"), nil
	})
	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Errorf("rotate: %v\n%s\n%s", err, rotOut.String(), tail(rotErr.String(), 20))
	}
	var note *string
	if err := app.QueryRow(ctx, `SELECT note FROM rv WHERE id = 4`).Scan(&note); err != nil {
		t.Fatal(err)
	}
	if note == nil || *note != "note 7" {
		t.Errorf("a value sealed under the old version by a transaction that began after the rotation reads %s after it, want \"note 7\" (its key was dropped under it)\n%s",
			fmtPtr(note), rotOut.String())
	}
}

// r17Forwarder relays TCP connections to the cluster and can freeze the
// ones that sent LISTEN: they stay open, but nothing passes any more in
// either direction, as when a NAT or firewall drops an idle connection
// without telling either end.
type r17Forwarder struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []*r17Conn
	done  chan struct{}
}

type r17Conn struct {
	client, server net.Conn
	mu             sync.Mutex
	listens        bool
	frozen         chan struct{} // closed: frozen
}

func startR17Forwarder(t *testing.T) *r17Forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &r17Forwarder{ln: ln, done: make(chan struct{})}
	go func() {
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
			rc := &r17Conn{client: c, server: s, frozen: make(chan struct{})}
			f.mu.Lock()
			f.conns = append(f.conns, rc)
			f.mu.Unlock()
			go f.pipe(rc, c, s, true)
			go f.pipe(rc, s, c, false)
		}
	}()
	t.Cleanup(func() {
		close(f.done)
		ln.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, rc := range f.conns {
			rc.client.Close()
			rc.server.Close()
		}
	})
	return f
}

func (f *r17Forwarder) pipe(rc *r17Conn, from, to net.Conn, up bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			if up && bytes.Contains(buf[:n], []byte("LISTEN ")) {
				rc.mu.Lock()
				rc.listens = true
				rc.mu.Unlock()
			}
			select {
			case <-rc.frozen:
				<-f.done // hold the bytes until the test ends
				return
			default:
			}
			if _, err := to.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			to.Close()
			return
		}
	}
}

// freezeListeners freezes every open connection that sent LISTEN and
// returns how many it froze.
func (f *r17Forwarder) freezeListeners() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, rc := range f.conns {
		rc.mu.Lock()
		select {
		case <-rc.frozen:
		default:
			if rc.listens {
				close(rc.frozen)
				n++
			}
		}
		rc.mu.Unlock()
	}
	return n
}

func (f *r17Forwarder) listeners() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, rc := range f.conns {
		rc.mu.Lock()
		select {
		case <-rc.frozen:
		default:
			if rc.listens {
				n++
			}
		}
		rc.mu.Unlock()
	}
	return n
}

// TestOpsReview17SilentListener: a replica whose LISTEN connections went
// silent (no error, nothing arrives: a dropped idle TCP connection) must
// still learn of a shred and of a table-state change within a bounded
// time, as docs/SHREDDING.md promises ("the bound is the listener's
// reconnect time"). Before the fix it kept decrypting a shredded tenant
// from its key cache, and kept the old table state, for as long as the
// kernel took to notice (TCP keepalive: tens of minutes).
func TestOpsReview17SilentListener(t *testing.T) {
	ctx := testCtx(t, 4*time.Minute)
	e := newOpsEnv(t, "ops_r17_silent", r17Policy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	fwd := startR17Forwarder(t)
	viaFwd := strings.Replace(e.config(""), fmt.Sprintf("service_url: %q", cluster.SocketURL(harness.SuperUser, e.db)),
		fmt.Sprintf("service_url: %q", harness.BuildURL(fwd.ln.Addr().String(), harness.SuperUser, harness.Passwords[harness.SuperUser], e.db, "sslmode=disable")), 1)
	if viaFwd == e.config("") {
		t.Fatal("service_url not replaced")
	}
	p2 := e.proxy(viaFwd)
	app := e.appConn(ctx, p2)
	readable := func() map[int]int { return rvReadable(t, ctx, app) }
	if got := readable(); got[1] != 10 || got[2] != 10 || got[3] != 10 {
		t.Fatalf("before: %v", got)
	}
	waitFor(t, time.Minute, "pgveil's two listeners", func() (bool, error) { return fwd.listeners() == 2, nil })
	if n := fwd.freezeListeners(); n != 2 {
		t.Fatalf("froze %d listeners, want 2", n)
	}

	e.run(ctx, 0, "shred", "-c", cfg, "--table", "public.rv", "--tenant", "2", "--yes")
	start := time.Now()
	waitFor(t, time.Minute, "the replica with silent listeners to stop decrypting the shredded tenant", func() (bool, error) {
		return readable()[2] == 0, nil
	})
	t.Logf("shred reached the replica after %s", time.Since(start).Round(time.Millisecond))

	// The state: decrypting (plaintext written back) must reach it too.
	waitFor(t, time.Minute, "pgveil's listeners to reconnect", func() (bool, error) { return fwd.listeners() == 2, nil })
	if n := fwd.freezeListeners(); n != 2 {
		t.Fatalf("froze %d listeners, want 2", n)
	}
	e.run(ctx, 0, "migrate", "-c", cfg, "--decrypt", "--apply")
	start = time.Now()
	waitFor(t, time.Minute, "the replica with silent listeners to read the decrypted plaintext", func() (bool, error) {
		got := readable()
		return got[1] == 10 && got[3] == 10, nil
	})
	t.Logf("state decrypting reached the replica after %s", time.Since(start).Round(time.Millisecond))
}

// r17Writers inserts rows through each of conns while during runs, and
// returns the ids written. Any failed write fails the test.
func r17Writers(t *testing.T, ctx context.Context, next *int, urls []string, during func()) []int {
	t.Helper()
	var mu sync.Mutex
	var ids []int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, len(urls))
	for _, u := range urls {
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close(context.Background())
			// A steady pace, not as fast as possible: the table must not
			// grow so large that the commands' passes take minutes.
			pace := time.NewTicker(2 * time.Millisecond)
			defer pace.Stop()
			for {
				select {
				case <-stop:
					return
				case <-pace.C:
				}
				mu.Lock()
				id := *next
				*next++
				mu.Unlock()
				if _, err := c.Exec(ctx, `INSERT INTO rv (id, org, email, note) VALUES ($1, $2, $3, $4)`,
					id, 1+id%3, fmt.Sprintf("u%d@x.org", id), fmt.Sprintf("note %d", id)); err != nil {
					errs <- fmt.Errorf("insert %d: %w", id, err)
					return
				}
				var email string
				lookup := func() error {
					return c.QueryRow(ctx, `SELECT email FROM rv WHERE email = $1`, fmt.Sprintf("U%d@x.org", id)).Scan(&email)
				}
				err := lookup()
				var pe *pgconn.PgError
				if errors.As(err, &pe) && pe.Code == "0A000" && pe.Message == "cached plan must not change result type" {
					// A state change makes a prepared lookup fail once
					// (docs/SQL.md, "Migration mode"); pgx prepares it again.
					err = lookup()
				}
				if err != nil || email != fmt.Sprintf("u%d@x.org", id) {
					errs <- fmt.Errorf("lookup of %d: %q, %v", id, email, err)
					return
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		}()
	}
	during()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return ids
}

// TestOpsReview17Replicas: two pgveil replicas on one database, an
// application writing and looking up through both while `pgveil migrate
// --apply`, `rotate`, `shred` and `migrate --decrypt` run, and the
// replicas' listeners killed (they reconnect and re-read) in between.
// Every state change reaches both; no write fails; after the rotation no
// value is under a dropped version; after the shred neither replica
// decrypts the tenant and new writes of it read back; every other row
// reads as written through both.
func TestOpsReview17Replicas(t *testing.T) {
	ctx := testCtx(t, 4*time.Minute)
	e := newOpsEnv(t, "ops_r17_replicas", r17Policy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--prepare")
	p1, p2 := e.proxy(e.config("")), e.proxy(e.config(""))
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range []string{p1.LogPath, p2.LogPath} {
				b, _ := os.ReadFile(p)
				t.Logf("pgveil log %s (tail):\n%s", p, tail(string(b), 40))
			}
		}
	})
	urls := []string{e.appURL(p1), e.appURL(p2)}
	a1, a2 := e.appConn(ctx, p1), e.appConn(ctx, p2)
	for i, a := range []*pgx.Conn{a1, a2} {
		if got := rvReadable(t, ctx, a); got[1] != 10 || got[2] != 10 || got[3] != 10 {
			t.Fatalf("replica %d in migration mode: %v", i+1, got)
		}
	}
	killListeners := func() {
		t.Helper()
		// The state listeners are named; a key listener's last query is its
		// LISTEN until its first heartbeat.
		var killed []int32
		if err := su.QueryRow(ctx, `WITH l AS MATERIALIZED (SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND (starts_with(application_name, 'pgveil table states ') OR query = 'LISTEN pgveil_keys'))
			SELECT coalesce(array_agg(pid), '{}') FROM l WHERE pg_terminate_backend(pid)`).Scan(&killed); err != nil || len(killed) < 2 {
			t.Fatalf("terminated %d listeners (%v), want at least the 2 state listeners of two replicas", len(killed), err)
		}
		// Both come back and read the states (a replica between two
		// listener connections is invisible to `pgveil migrate`'s wait:
		// docs/SCALING.md).
		waitFor(t, 30*time.Second, "both state listeners to reconnect", func() (bool, error) {
			var n int
			err := su.QueryRow(ctx, `SELECT count(DISTINCT application_name) FROM pg_stat_activity
				WHERE datname = current_database() AND starts_with(application_name, 'pgveil table states ')
				AND query LIKE 'SELECT % AS pgveil_table_states_read' AND pid <> ALL($1)`, killed).Scan(&n)
			return n == 2, err
		})
	}
	// A plaintext row planted directly: it reads as written in migration
	// mode, as NULL once the table is complete (on_error: null).
	planted := func(want bool) func() (bool, error) {
		return func() (bool, error) {
			for _, a := range []*pgx.Conn{a1, a2} {
				var email *string
				if err := a.QueryRow(ctx, `SELECT email FROM rv WHERE id = 999`).Scan(&email); err != nil {
					return false, err
				}
				if (email != nil) != want {
					return false, nil
				}
			}
			return true, nil
		}
	}
	if _, err := su.Exec(ctx, `INSERT INTO rv (id, org, note) VALUES (999, 1, NULL)`); err != nil {
		t.Fatal(err)
	}
	next := 1000
	var ids []int
	ids = append(ids, r17Writers(t, ctx, &next, urls, func() {
		e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--batch", "5")
	})...)
	if _, err := su.Exec(ctx, `UPDATE rv SET email = 'planted@x.org' WHERE id = 999`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "both replicas to read the table as complete", planted(false))

	killListeners()
	ids = append(ids, r17Writers(t, ctx, &next, urls, func() {
		r := e.run(ctx, 0, "rotate", "-c", cfg, "--grace", "2s", "--batch", "5")
		if !strings.Contains(r.stdout, "dropped 6 retired key version(s)") {
			t.Errorf("rotate:\n%s", r.stdout)
		}
		t.Logf("rotate (%s):\n%s", r.took.Round(time.Millisecond), r.stdout)
	})...)
	var under int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM rv WHERE id <> 999 AND (
		EXISTS (SELECT 1 FROM pgveil.keys k WHERE k.key_id = `+rvKeyID("email")+` AND k.state <> 'active') OR
		EXISTS (SELECT 1 FROM pgveil.keys k WHERE k.key_id = `+rvKeyID("note")+` AND k.state <> 'active'))`).Scan(&under); err != nil || under != 0 {
		t.Errorf("after the rotation, %d value(s) under versions that are not active (%v)", under, err)
	}

	killListeners()
	e.run(ctx, 0, "shred", "-c", cfg, "--table", "public.rv", "--tenant", "3", "--yes")
	waitFor(t, 30*time.Second, "both replicas to stop decrypting tenant 3", func() (bool, error) {
		return rvReadable(t, ctx, a1)[3] == 0 && rvReadable(t, ctx, a2)[3] == 0, nil
	})
	shredAt := next
	// Writes of the shredded tenant after the shred: a new key version.
	ids = append(ids, r17Writers(t, ctx, &next, urls, func() {
		waitFor(t, 30*time.Second, "a few writes after the shred", func() (bool, error) { return next > shredAt+12, nil })
	})...)

	if _, err := su.Exec(ctx, `DELETE FROM rv WHERE id = 999`); err != nil {
		t.Fatal(err)
	}
	killListeners()
	ids = append(ids, r17Writers(t, ctx, &next, urls, func() {
		e.run(ctx, 0, "migrate", "-c", cfg, "--decrypt", "--apply", "--batch", "5")
	})...)
	// Every row through both replicas: the shredded tenant's rows written
	// before the shred read as NULL, every other row as written.
	for i, a := range []*pgx.Conn{a1, a2} {
		rows, err := a.Query(ctx, `SELECT id, email, note FROM rv`)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r17Scan(rows)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range append(r17IDs(1, 30), ids...) {
			g := got[id]
			email, note := fmt.Sprintf("u%d@x.org", id), fmt.Sprintf("note %d", id)
			w := r17Row{&email, &note}
			if 1+id%3 == 3 && id < shredAt {
				w = r17Row{}
			}
			if fmtPtr(g.email) != fmtPtr(w.email) || fmtPtr(g.note) != fmtPtr(w.note) {
				t.Errorf("replica %d: row %d reads %s / %s, want %s / %s", i+1, id, fmtPtr(g.email), fmtPtr(g.note), fmtPtr(w.email), fmtPtr(w.note))
			}
		}
	}
	t.Logf("%d rows written through the replicas", len(ids))
}

// TestOpsReview17DecryptWaitsForReplicas: `pgveil migrate --decrypt`
// must not write plaintext back before every running replica reads the
// table as decrypting: a replica still at complete reads each value
// written back as PV003 (here, on_error: null, as NULL) and misses it in
// lookups. The replica's state listener is frozen (its notification is
// lost), so it learns the state only when its heartbeat reconnects it;
// the command must wait for that.
func TestOpsReview17DecryptWaitsForReplicas(t *testing.T) {
	ctx := testCtx(t, 4*time.Minute)
	e := newOpsEnv(t, "ops_r17_decwait", r17Policy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	fwd := startR17Forwarder(t)
	viaFwd := strings.Replace(e.config(""), fmt.Sprintf("service_url: %q", cluster.SocketURL(harness.SuperUser, e.db)),
		fmt.Sprintf("service_url: %q", harness.BuildURL(fwd.ln.Addr().String(), harness.SuperUser, harness.Passwords[harness.SuperUser], e.db, "sslmode=disable")), 1)
	p2 := e.proxy(viaFwd)
	app := e.appConn(ctx, p2)
	if got := rvReadable(t, ctx, app); got[1] != 10 || got[2] != 10 || got[3] != 10 {
		t.Fatalf("before: %v", got)
	}
	waitFor(t, time.Minute, "pgveil's two listeners", func() (bool, error) { return fwd.listeners() == 2, nil })
	if n := fwd.freezeListeners(); n != 2 {
		t.Fatalf("froze %d listeners, want 2", n)
	}
	dec, decOut, decErr := e.start("migrate", "-c", cfg, "--decrypt", "--apply", "--batch", "5")
	exited := make(chan error, 1)
	go func() { exited <- dec.Wait() }()
	bad := 0
	for done := false; !done; {
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("migrate --decrypt: %v\n%s\n%s", err, decOut.String(), tail(decErr.String(), 20))
			}
			done = true
		default:
		}
		got := rvReadable(t, ctx, app)
		if n := 30 - got[1] - got[2] - got[3]; n > bad {
			bad = n
		}
	}
	if bad > 0 {
		t.Errorf("while migrate --decrypt ran, the replica read up to %d of 30 rows wrong (NULL: it still took the table for complete)\n%s", bad, decOut.String())
	}
	if got := rvReadable(t, ctx, app); got[1] != 10 || got[2] != 10 || got[3] != 10 {
		t.Errorf("after: %v", got)
	}
	t.Logf("migrate --decrypt:\n%s", decOut.String())
}
