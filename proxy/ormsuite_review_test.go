//go:build linux

package proxy

// Regression tests of defects the Ruby and ORM suites found (integration/enc_ruby_test.go).

import (
	"bufio"
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestUnnamedStatementsClosed: pgveil prepares a rewritten unnamed
// statement upstream under a name of its own; when the client's next
// unnamed Parse (rewritten or not) or simple Query replaces the unnamed
// statement, that one is closed upstream. Before, only a rewritten
// unnamed Parse closed it, and the server kept one per rewritten
// statement followed by anything else (Rails: one per create!).
func TestUnnamedStatementsClosed(t *testing.T) {
	relayCores(t, handBackSchema, hbTables, func(t *testing.T, p *testProxy) {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		// held counts pgveil's statements upstream through a named
		// statement (pgx's cache): a simple Query or an unnamed Parse
		// would itself close the one it looks for.
		held := func() int {
			var n int
			if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgveil%'", pgx.QueryExecModeCacheStatement).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		// Exec mode: each statement is an unnamed Parse, Bind, Execute.
		for i := 0; i < 5; i++ {
			if _, err := c.Exec(ctx, "INSERT INTO hb_secrets (body) VALUES ($1)", pgx.QueryExecModeExec, fmt.Sprintf("un-%d", i)); err != nil {
				t.Fatal(err)
			}
			var one int
			if err := c.QueryRow(ctx, "SELECT $1::int", pgx.QueryExecModeExec, 1).Scan(&one); err != nil || one != 1 {
				t.Fatalf("pass-through unnamed Parse: %d %v", one, err)
			}
		}
		if n := held(); n != 0 {
			t.Errorf("after rewritten unnamed statements each followed by a pass-through one: %d statements held upstream, want 0", n)
		}
		for i := 0; i < 5; i++ {
			if _, err := c.Exec(ctx, "INSERT INTO hb_secrets (body) VALUES ($1)", pgx.QueryExecModeExec, fmt.Sprintf("uq-%d", i)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol); err != nil {
				t.Fatal(err)
			}
		}
		if n := held(); n != 0 {
			t.Errorf("after rewritten unnamed statements each followed by a simple Query: %d statements held upstream, want 0", n)
		}
		// A simple Query pgveil refuses ends the unnamed statement too.
		if _, err := c.Exec(ctx, "INSERT INTO hb_secrets (body) VALUES ($1)", pgx.QueryExecModeExec, "ur-x"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "SELECT id FROM hb_secrets WHERE body LIKE 'ur%'", pgx.QueryExecModeSimpleProtocol); err == nil {
			t.Fatal("LIKE on an encrypted column: no refusal")
		}
		if n := held(); n != 0 {
			t.Errorf("after a rewritten unnamed statement and a refused simple Query: %d statements held upstream, want 0", n)
		}
		// The unnamed statement still works after all that.
		var body string
		if err := c.QueryRow(ctx, "SELECT body FROM hb_secrets WHERE id = (SELECT max(id) FROM hb_secrets)", pgx.QueryExecModeExec).Scan(&body); err != nil || body != "ur-x" {
			t.Fatalf("read back: %q %v", body, err)
		}
		assertNoPlaintext(t, "hb_secrets", "uq-")
		assertNoPlaintext(t, "hb_secrets", "ur-")
	})
}

// TestCopyOutOneRowPerMessage: COPY TO of an encrypted table reaches the
// client one row per CopyData, as the server sends it (a CSV header line
// is a row; a binary header goes with the first row and the trailer
// alone). libpq's PQgetCopyData returns one message per call, and
// callers (ruby-pg's row decoder) take it for one row.
func TestCopyOutOneRowPerMessage(t *testing.T) {
	relayCores(t, handBackSchema, hbTables, func(t *testing.T, p *testProxy) {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"cr-one", "cr-two", "cr-three"} {
			if _, err := c.Exec(ctx, "INSERT INTO hb_secrets (body) VALUES ($1)", v); err != nil {
				t.Fatal(err)
			}
		}
		c.Close(ctx)
		for _, tc := range []struct {
			opts string
			want []string // the CopyData bodies
		}{
			{"", []string{"cr-one\n", "cr-two\n", "cr-three\n"}},
			{"(FORMAT csv, HEADER)", []string{"body\n", "cr-one\n", "cr-two\n", "cr-three\n"}},
			{"(FORMAT binary)", []string{
				"PGCOPY\n\xff\r\n\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00" + "\x00\x01\x00\x00\x00\x06cr-one",
				"\x00\x01\x00\x00\x00\x06cr-two", "\x00\x01\x00\x00\x00\x08cr-three", "\xff\xff"}},
		} {
			rc := dialRaw(t, p)
			w, r := bufio.NewWriter(rc), bufio.NewReader(rc)
			writeMsg(w, 'Q', []byte("COPY (SELECT body FROM hb_secrets ORDER BY id) TO STDOUT "+tc.opts+"\x00"))
			w.Flush()
			if typ, body := readRawMsg(t, r); typ != 'H' {
				t.Fatalf("%s: got %q %q, want CopyOutResponse", tc.opts, typ, body)
			}
			var got []string
			for {
				typ, body := readRawMsg(t, r)
				if typ != 'd' {
					if typ != 'c' {
						t.Fatalf("%s: got %q %q after the rows", tc.opts, typ, body)
					}
					break
				}
				got = append(got, string(body))
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
				t.Errorf("%s: CopyData bodies %q, want %q", tc.opts, got, tc.want)
			}
			for _, want := range []byte{'C', 'Z'} {
				if typ, body := readRawMsg(t, r); typ != want {
					t.Fatalf("%s: got %q %q, want %q", tc.opts, typ, body, want)
				}
			}
			writeMsg(w, 'X', nil)
			w.Flush()
			rc.Close()
		}
		if _, err := adminConn(t).Exec(ctx, "TRUNCATE hb_secrets"); err != nil {
			t.Fatal(err)
		}
	})
}
