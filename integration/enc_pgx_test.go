package integration

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// encOrgs lists orgs first … first+n-1 and their COPY orgs (+1000).
func encOrgs(first int64, n int) []int64 {
	var out []int64
	for i := int64(0); i < int64(n); i++ {
		out = append(out, first+i, first+i+1000)
	}
	return out
}

// TestEncPgx runs the scenario with pgx v5 in every QueryExecMode, as one
// Batch (the whole scenario in a single pipeline), with CopyFrom (binary
// COPY) and with COPY FROM/TO in text and CSV through pgconn. After each,
// the rows are read back through pgveil and the table is scanned directly.
func TestEncPgx(t *testing.T) {
	relayLeakCheck(t)
	p := startEncProxy(t, encOrgs(11, 8)...)
	ctx := testCtx(t, 2*time.Minute)

	modes := []struct {
		name string
		mode pgx.QueryExecMode
	}{
		{"cache_statement", pgx.QueryExecModeCacheStatement},
		{"cache_describe", pgx.QueryExecModeCacheDescribe},
		{"describe_exec", pgx.QueryExecModeDescribeExec},
		{"exec", pgx.QueryExecModeExec},
		{"simple_protocol", pgx.QueryExecModeSimpleProtocol},
	}
	for i, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s := newEncSpec(p, "pgx-"+m.name, 11+int64(i))
			cfg, err := pgx.ParseConfig(p.url())
			if err != nil {
				t.Fatal(err)
			}
			cfg.DefaultQueryExecMode = m.mode
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			runSteps(t, ctx, pgxRunner{conn}, encSteps(s))
			// The reads that hold after the scenario, again: cached plans
			// and prepared statements are reused.
			for _, st := range encSteps(s) {
				if afterScenario[st.name] {
					rows, n, err := pgxRunner{conn}.run(ctx, st)
					checkStep(t, st, rows, n, err)
				}
			}
			verifyThroughProxy(t, ctx, p, s)
			verifyAtRest(t, ctx, s.plaintexts())
		})
	}

	t.Run("batch", func(t *testing.T) {
		s := newEncSpec(p, "pgx-batch", 16)
		conn := connectPgx(t, ctx, p.url())
		steps := encSteps(s)
		b := &pgx.Batch{}
		for _, st := range steps {
			b.Queue(st.sql, pgxArgs(st.args)...)
		}
		br := conn.SendBatch(ctx, b)
		for _, st := range steps {
			rows, err := br.Query()
			if err != nil {
				checkStep(t, st, nil, 0, err)
				continue
			}
			got, err := collectStrings(rows)
			checkStep(t, st, got, rows.CommandTag().RowsAffected(), err)
		}
		if err := br.Close(); err != nil {
			t.Errorf("closing the batch: %v", err)
		}
		verifyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})

	// pgx's CopyFrom speaks BINARY COPY: pgveil must encrypt the binary
	// fields (issue 5 lists pgx CopyFrom among the drivers that must work).
	t.Run("copy_from", func(t *testing.T) {
		s := newEncSpec(p, "pgx-copyfrom", 17)
		conn := connectPgx(t, ctx, p.url())
		var rows [][]any
		for _, u := range s.copyRows() {
			rows = append(rows, userArgs(s.CopyOrg, u))
		}
		n, err := conn.CopyFrom(ctx, pgx.Identifier{"users"},
			[]string{"org_id", "name", "email", "phone", "ssn", "birth_date", "api_token"}, pgx.CopyFromRows(rows))
		if err != nil {
			t.Fatalf("CopyFrom (binary COPY) through pgveil: %v", err)
		}
		if n != int64(len(rows)) {
			t.Errorf("CopyFrom: %d rows, want %d", n, len(rows))
		}
		verifyCopyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})

	t.Run("copy_text_csv", func(t *testing.T) {
		s := newEncSpec(p, "pgx-copy", 18)
		conn := connectPgx(t, ctx, p.url())
		runCopyPhasePgx(t, ctx, conn, s)
		verifyCopyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})
}

// afterScenario names the read steps whose answer still holds once the
// whole scenario has run.
var afterScenario = map[string]bool{
	"old email gone": true, "new email found": true, "deleted row gone": true,
	"JOIN on the shared blind index": true, "final state": true, "1 MiB blind-index lookup": true,
}

// runCopyPhasePgx is the COPY phase through pgconn: FROM STDIN in text and
// CSV, then (SELECT …) TO STDOUT in both formats, and a table COPY TO.
func runCopyPhasePgx(t *testing.T, ctx context.Context, conn *pgx.Conn, s *encSpec) {
	t.Helper()
	pc := conn.PgConn()
	for _, in := range []struct{ sql, data string }{{s.CopyInTextSQL, s.CopyInText}, {s.CopyInCSVSQL, s.CopyInCSV}} {
		tag, err := pc.CopyFrom(ctx, strings.NewReader(in.data), in.sql)
		if err != nil {
			t.Errorf("%s: %v", in.sql, err)
			continue
		}
		if tag.RowsAffected() != 2 {
			t.Errorf("%s: %s, want 2 rows", in.sql, tag)
		}
	}
	for _, out := range []struct{ sql, want string }{{s.CopyOutTextSQL, s.CopyOutText}, {s.CopyOutCSVSQL, s.CopyOutCSV}} {
		var buf bytes.Buffer
		if _, err := pc.CopyTo(ctx, &buf, out.sql); err != nil {
			t.Errorf("%s: %v", out.sql, err)
			continue
		}
		if buf.String() != out.want {
			t.Errorf("%s:\n got: %s\nwant: %s", out.sql, short(buf.String()), short(out.want))
		}
	}
	// COPY of a table (not a query) decrypts too.
	var buf bytes.Buffer
	if _, err := pc.CopyTo(ctx, &buf, "COPY users (org_id, email, phone) TO STDOUT"); err != nil {
		t.Errorf("COPY users TO STDOUT: %v", err)
		return
	}
	for _, u := range s.copyRows() {
		line := copyTextLine([]*string{sp(fmt.Sprint(s.CopyOrg)), u.Email, u.Phone})
		if !strings.Contains(buf.String(), line) {
			t.Errorf("COPY users TO STDOUT: no line %s", short(line))
		}
	}
	if strings.Contains(buf.String(), `\\x01`) {
		t.Errorf("COPY users TO STDOUT returned ciphertext")
	}
}
