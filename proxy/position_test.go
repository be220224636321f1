package proxy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

// TestErrorPositionsPointIntoTheClientsText: the server's error position
// counts characters of the text it received; for a statement pgveil
// rewrote, pgveil maps it back so it points at the same token of the
// client's text, in every exec mode. marker is the token the server
// complains about.
func TestErrorPositionsPointIntoTheClientsText(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startEncProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)

	cases := []struct {
		sql, marker string
		args        []any
		multi       bool // several statements: the simple protocol only
	}{
		// Decrypted output: pgveil adds the tenant column to the select list.
		{sql: "SELECT name, phone FROM enc_users WHERE nosuch = 1", marker: "nosuch"},
		// The blind index replaces the column and the literal.
		{sql: "SELECT name FROM enc_users WHERE email = 'a@b.c' AND nosuch = 1", marker: "nosuch"},
		{sql: "SELECT name FROM enc_users WHERE email = 'a@b.c' AND org_id = 'zz'", marker: "'zz'"},
		// Inserted columns and ciphertext values before the error.
		{sql: "INSERT INTO enc_users (org_id, name, email, phone) VALUES (1, 'x', 'a@b.c', '555') RETURNING nosuch", marker: "nosuch"},
		{sql: "INSERT INTO enc_users (org_id, email, name) VALUES (1, 'a@b.c', nosuch)", marker: "nosuch"},
		{sql: "UPDATE enc_users SET phone = '555', name = nosuch WHERE org_id = 1 AND email = 'x'", marker: "nosuch"},
		// Characters, not bytes: é is two bytes of UTF-8.
		{sql: "SELECT name /* é */ FROM enc_users WHERE email = 'élan@x' AND nosuch = 1", marker: "nosuch"},
		{sql: "SELECT 1; SELECT email FROM enc_users WHERE email = 'é' AND nosuch = 1", marker: "nosuch", multi: true},
		// Parameters.
		{sql: "SELECT name FROM enc_users WHERE email = $1 AND nosuch = 1", marker: "nosuch", args: []any{"a@b.c"}},
		// Not rewritten: the server's own position passes through.
		{sql: "SELECT name FROM enc_users WHERE name = 'a' AND nosuch = 1", marker: "nosuch"},
	}
	pinned, rewritten := testutil.ToFloat64(p.srv.metrics.stmtPinned), testutil.ToFloat64(p.srv.metrics.stmtRewritten)
	defer func() {
		// The statements that carried values counted as rewritten, none as pinned.
		if testutil.ToFloat64(p.srv.metrics.stmtRewritten) == rewritten || testutil.ToFloat64(p.srv.metrics.stmtPinned) != pinned {
			t.Errorf("pgveil_statements_total: rewritten %v→%v, pinned %v→%v", rewritten, testutil.ToFloat64(p.srv.metrics.stmtRewritten),
				pinned, testutil.ToFloat64(p.srv.metrics.stmtPinned))
		}
	}()
	modes := []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec,
		pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec}
	for _, tc := range cases {
		i := strings.Index(tc.sql, tc.marker)
		want := int32(utf8.RuneCountInString(tc.sql[:i]) + 1)
		for _, mode := range modes {
			if tc.multi && mode != pgx.QueryExecModeSimpleProtocol ||
				tc.args != nil && mode == pgx.QueryExecModeSimpleProtocol { // pgx inlines the values
				continue
			}
			_, err := c.Exec(ctx, tc.sql, append([]any{mode}, tc.args...)...)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) {
				t.Fatalf("%s (%v): want a server error, got %v", tc.sql, mode, err)
			}
			if strings.HasPrefix(pe.Message, "pgveil") {
				t.Fatalf("%s (%v): pgveil refused it: %v", tc.sql, mode, pe)
			}
			if pe.Position != want {
				t.Errorf("%s (%v): %s at position %d (%q), want %d (%q)", tc.sql, mode, pe.Message,
					pe.Position, fromChar(tc.sql, pe.Position), want, tc.marker)
			}
		}
	}
}

// fromChar is sql from the 1-based character position pos on.
func fromChar(sql string, pos int32) string {
	n := int32(1)
	for i := range sql {
		if n == pos {
			return sql[i:]
		}
		n++
	}
	return ""
}
