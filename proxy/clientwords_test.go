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

func TestClientName(t *testing.T) {
	st := &Statement{Name: "s1", ServerName: "pgveil_ab_1"}
	for in, want := range map[string]string{
		`prepared statement "pgveil_ab_1" does not exist`:      `prepared statement "s1" does not exist`,
		`vorbereitete Anweisung »pgveil_ab_1« existiert nicht`: `vorbereitete Anweisung »s1« existiert nicht`,
		`pgveil_ab_12 and pgveil_ab_1, pgveil_ab_1`:            `pgveil_ab_12 and s1, s1`,
		`xpgveil_ab_1 "pgveil_ab_1"`:                           `xpgveil_ab_1 "s1"`,
		`nothing here`:                                         `nothing here`,
	} {
		if got := string(clientName([]byte(in), st)); got != want {
			t.Errorf("clientName(%q) = %q, want %q", in, got, want)
		}
	}
	un := &Statement{ServerName: "pgveil_ab_2"}
	if got := string(clientName([]byte(`prepared statement "pgveil_ab_2" does not exist`), un)); got != "unnamed prepared statement does not exist" {
		t.Errorf("unnamed: %q", got)
	}
	if got := string(clientName([]byte(`bind message supplies 1 parameters, but prepared statement "pgveil_ab_2" requires 0`), un)); got != `bind message supplies 1 parameters, but prepared statement "" requires 0` {
		t.Errorf("unnamed, another message: %q", got)
	}
	const german = `vorbereitete Anweisung »pgveil_ab_2« existiert nicht`
	if got := string(clientName([]byte(german), un)); got != german {
		t.Errorf("unnamed, German: %q", got)
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

// TestUpstreamNamesStayHidden: pgveil prepares a statement it plans under
// a name of its own; when that Parse failed, a Bind or Describe of the
// client's name gets the server's error about the client's name, as it
// would directly, not about pgveil's.
func TestUpstreamNamesStayHidden(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startEncProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	pc := c.PgConn()
	for _, tc := range []struct{ name, sql, want string }{
		{"s1", "SELECT name FROM enc_users WHERE email = $1 AND nosuch = 1", `prepared statement "s1" does not exist`},
		{"", "SELECT name FROM enc_users WHERE email = $1 AND nosuch = 1", "unnamed prepared statement does not exist"},
		// A pass-through statement keeps its own name upstream.
		{"s2", "SELECT nosuch FROM enc_notes WHERE $1::text IS NULL", `prepared statement "s2" does not exist`},
	} {
		if _, err := pc.Prepare(ctx, tc.name, tc.sql, nil); err == nil {
			t.Fatalf("%q: Parse succeeded", tc.sql)
		}
		err := pc.ExecPrepared(ctx, tc.name, [][]byte{[]byte("a")}, nil, nil).Read().Err
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "26000" || pe.Message != tc.want {
			t.Errorf("Bind of %q after its Parse failed: %v, want 26000 %s", tc.name, err, tc.want)
		}
		if _, err := pc.Prepare(ctx, tc.name+"x", "SELECT 1", nil); err != nil {
			t.Fatal(err) // the connection is still in step
		}
		if _, err := pc.Prepare(ctx, tc.name+"x", "SELECT 1", nil); err == nil || !strings.Contains(err.Error(), `"`+tc.name+`x"`) {
			t.Errorf("second Parse of %q: %v, want the server's duplicate-name error naming it", tc.name+"x", err)
		}
		if _, err := pc.Exec(ctx, "DEALLOCATE ALL").ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFailedParseLeavesNoName: a statement whose Parse the server
// rejected, or skipped after an earlier error in the pipeline, does not
// exist, so the client may prepare that name again, as directly; pgveil
// had kept the name and refused the second Parse (42P05).
func TestFailedParseLeavesNoName(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startEncProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	pc := c.PgConn()
	const good = "SELECT name FROM enc_users WHERE email = $1" // rewritten
	for _, bad := range []string{
		"SELECT name FROM enc_users WHERE email = $1 AND nosuch = 1", // rewritten, fails at the server
		"SELECT nosuch FROM enc_notes WHERE $1::text IS NULL",        // passes through, fails at the server
	} {
		if _, err := pc.Prepare(ctx, "again", bad, nil); err == nil {
			t.Fatalf("%q prepared", bad)
		}
		if _, err := pc.Prepare(ctx, "again", good, nil); err != nil {
			t.Fatalf("Parse of a name whose first Parse failed: %v", err)
		}
		if err := pc.ExecPrepared(ctx, "again", [][]byte{[]byte("nobody@x")}, nil, nil).Read().Err; err != nil {
			t.Fatalf("Bind after the second Parse: %v", err)
		}
		if _, err := pc.Exec(ctx, "DEALLOCATE again").ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
	// SQL DEALLOCATE of a statement pgveil prepared under its own name
	// (Rails, psycopg 3) drops that upstream statement.
	prepared := func() int {
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements", pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	base := prepared()
	for _, dealloc := range []string{"DEALLOCATE a1", "deallocate prepare \"a1\"", "SELECT 1; DEALLOCATE a1; SELECT 2", "extended:DEALLOCATE a1"} {
		if _, err := pc.Prepare(ctx, "a1", good, nil); err != nil {
			t.Fatal(err)
		}
		if n := prepared(); n != base+1 {
			t.Fatalf("%d prepared statements upstream, want %d", n, base+1)
		}
		if sql, ok := strings.CutPrefix(dealloc, "extended:"); ok {
			// Parse, Bind, Execute of the unnamed statement (psycopg 3).
			if err := pc.ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err; err != nil {
				t.Fatalf("%s: %v", dealloc, err)
			}
		} else if _, err := pc.Exec(ctx, dealloc).ReadAll(); err != nil {
			t.Fatalf("%s: %v", dealloc, err)
		}
		if n := prepared(); n != base {
			t.Fatalf("after %s: %d prepared statements upstream, want %d", dealloc, n, base)
		}
	}
	if _, err := pc.Prepare(ctx, "a1", good, nil); err != nil {
		t.Fatal(err)
	}
	for _, mixed := range []string{
		"DEALLOCATE a1; INSERT INTO enc_notes (body) VALUES ('n')", // rewritten
		"DEALLOCATE a1; COPY enc_notes (body) FROM STDIN",          // COPY data to encrypt
		"DEALLOCATE a1; SELECT body FROM enc_notes",                // decrypted output
	} {
		// A regression would start COPY IN and wait for data: bound it.
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = pc.Exec(mctx, mixed).ReadAll()
		cancel()
		if pe := (*pgconn.PgError)(nil); !errors.As(err, &pe) || pe.Code != "0A000" {
			t.Fatalf("%s: %v, want 0A000", mixed, err)
		}
	}
	if _, err := pc.Prepare(ctx, "d1", "DEALLOCATE a1", nil); err == nil || !strings.Contains(err.Error(), "0A000") {
		t.Fatalf("named Parse of DEALLOCATE: %v, want 0A000", err)
	}
	// None of the refused strings deallocated a1.
	if err := pc.ExecPrepared(ctx, "a1", [][]byte{[]byte("nobody@x")}, nil, nil).Read().Err; err != nil {
		t.Fatalf("a1 after the refusals: %v", err)
	}
	// In one pipeline: skipped1 succeeds, skipped2 fails, and the server
	// skips skipped3 until Sync; after it, both failed names are free.
	pl := pc.StartPipeline(ctx)
	pl.SendPrepare("skipped1", good, nil)
	pl.SendPrepare("skipped2", "SELECT name FROM enc_users WHERE nosuch = $1", nil)
	pl.SendPrepare("skipped3", good, nil)
	if err := pl.Sync(); err != nil {
		t.Fatal(err)
	}
	var errs int
	for {
		r, err := pl.GetResults()
		if err != nil {
			errs++
			continue
		}
		if _, ok := r.(*pgconn.PipelineSync); ok {
			break
		}
		if r == nil {
			break
		}
	}
	if err := pl.Close(); err != nil && errs == 0 {
		t.Fatal(err)
	}
	if errs == 0 {
		t.Fatal("the pipeline reported no error")
	}
	for _, name := range []string{"skipped2", "skipped3"} {
		if _, err := pc.Prepare(ctx, name, good, nil); err != nil {
			t.Errorf("Parse of %s, skipped in the failed pipeline: %v", name, err)
		}
	}
	// The first one succeeded: its name stays taken.
	if _, err := pc.Prepare(ctx, "skipped1", good, nil); err == nil || !strings.Contains(err.Error(), "42P05") {
		t.Errorf("second Parse of skipped1, which succeeded: %v, want 42P05", err)
	}
}
