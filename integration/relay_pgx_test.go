package integration

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgveil/pgveil/integration/harness"
)

// execModes are every QueryExecMode of pgx v5, by the name its
// default_query_exec_mode connection parameter takes.
var execModes = []struct {
	name string
	mode pgx.QueryExecMode
}{
	{"cache_statement", pgx.QueryExecModeCacheStatement},
	{"cache_describe", pgx.QueryExecModeCacheDescribe},
	{"describe_exec", pgx.QueryExecModeDescribeExec},
	{"exec", pgx.QueryExecModeExec},
	{"simple_protocol", pgx.QueryExecModeSimpleProtocol},
}

// relayQuery is one statement of the pgx table. want, when set, checks the
// first row's decoded values through pgveil (beyond equality with direct).
type relayQuery struct {
	name string
	sql  string
	args []any
	want []any
}

var relayUnicode = "héllo wörld 🐘 ☃ 日本語 \u00a0tab\tquote' dq\" backslash\\"

func relayQueries() []relayQuery {
	at := time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)
	blob := []byte{0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, '\\', 'x', 0}
	return []relayQuery{
		{name: "ints", sql: "SELECT $1::int4, $2::int8, $3::int2, -$1::int4", args: []any{int32(42), int64(-9_000_000_000_000_000), int16(7)},
			want: []any{int32(42), int64(-9_000_000_000_000_000), int16(7), int32(-42)}},
		{name: "text unicode", sql: "SELECT $1::text, length($1::text), $1::text || '!'", args: []any{relayUnicode},
			want: []any{relayUnicode, int32(len([]rune(relayUnicode))), relayUnicode + "!"}},
		{name: "null params", sql: "SELECT $1::text IS NULL, $2::int4, $3::bytea", args: []any{nil, nil, nil},
			want: []any{true, nil, nil}},
		{name: "bytea", sql: "SELECT $1::bytea, octet_length($1::bytea)", args: []any{blob},
			want: []any{blob, int32(len(blob))}},
		{name: "numeric", sql: "SELECT $1::numeric * 2, $2::numeric, $3::numeric", args: []any{"12345678901234567890.123456789", "-0.000000001", "NaN"}},
		{name: "timestamptz", sql: "SELECT $1::timestamptz, $1::timestamptz + interval '1 day 2 hours', extract(epoch from $1::timestamptz)", args: []any{at}},
		{name: "dates and misc", sql: "SELECT $1::date, $2::uuid, $3::bool, $4::float8, $5::interval, $6::varchar(10)",
			args: []any{time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", false, 3.25, 90 * time.Minute, "ten chars!"}},
		{name: "arrays", sql: "SELECT $1::int4[], $2::text[], array_length($1::int4[], 1), $3::bytea[]",
			args: []any{[]int32{1, -2, 3}, []string{"a", "b c", "", "ü", "NULL", `x"y`}, [][]byte{{1, 2}, {}, {0xff}}},
			want: []any{[]any{int32(1), int32(-2), int32(3)}, []any{"a", "b c", "", "ü", "NULL", `x"y`}, int32(3), []any{[]byte{1, 2}, []byte{}, []byte{0xff}}}},
		{name: "array with null", sql: "SELECT $1::text[]", args: []any{[]*string{ptr("x"), nil, ptr("z")}}},
		{name: "json", sql: `SELECT $1::json, $2::jsonb -> 'k', $2::jsonb`, args: []any{`{"k": [1, "two", null], "u": "ü🐘"}`, `{"k": {"nested": true}, "a": 1}`}},
		{name: "multi-row", sql: "SELECT g, md5(g::text), g % 3 = 0, repeat('x', g % 17) FROM generate_series(1, 3000) g WHERE g > $1", args: []any{int32(0)}},
		{name: "empty result", sql: "SELECT id, name FROM relay_t WHERE id < $1", args: []any{int32(0)}},
		{name: "large value", sql: "SELECT repeat($1::text, 150000), $2::int4", args: []any{"ab", int32(1)}},
		{name: "insert returning", sql: `INSERT INTO relay_t (id, name, data, amount, at, tags, doc)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, name, data, amount, at, tags, doc`,
			args: []any{int32(1), relayUnicode, blob, "3.14159", at, []string{"t1", "t2"}, `{"v": 1}`}},
		{name: "insert second", sql: "INSERT INTO relay_t (id, name) VALUES ($1, $2)", args: []any{int32(2), "two"}},
		{name: "unique violation", sql: "INSERT INTO relay_t (id, name) VALUES ($1, $2)", args: []any{int32(1), "dup"}},
		{name: "usable after error", sql: "SELECT count(*), min(id), max(name) FROM relay_t WHERE id > $1", args: []any{int32(0)},
			want: []any{int64(2), int32(1), "two"}},
		{name: "syntax error", sql: "SELEC 1 WHERE $1::int4 = 1", args: []any{int32(1)}},
		{name: "division by zero", sql: "SELECT 1 / $1::int4", args: []any{int32(0)}},
		{name: "not null violation", sql: "INSERT INTO relay_t (id, name) VALUES (NULL, $1)", args: []any{"x"}},
		{name: "update unique violation", sql: "UPDATE relay_t SET name = $1 WHERE id >= $2", args: []any{"same", int32(1)}},
		{name: "update tag", sql: "UPDATE relay_t SET name = $1 WHERE id = $2 RETURNING id, name", args: []any{"renamed", int32(1)},
			want: []any{int32(1), "renamed"}},
		{name: "delete tag", sql: "DELETE FROM relay_t WHERE id = $1", args: []any{int32(2)}},
		{name: "text result format", sql: "SELECT $1::int8, $2::text, $3::timestamptz, $4::bytea",
			args: []any{pgx.QueryResultFormats{pgx.TextFormatCode}, int64(7), "seven", at, blob}},
		{name: "binary result format", sql: "SELECT $1::int8, $2::numeric, $3::timestamptz, $4::int4[]",
			args: []any{pgx.QueryResultFormats{pgx.BinaryFormatCode}, int64(7), "7.5", at, []int32{7}}},
		{name: "mixed result formats", sql: "SELECT $1::int4, $2::int4",
			args: []any{pgx.QueryResultFormats{pgx.TextFormatCode, pgx.BinaryFormatCode}, int32(1), int32(2)}},
		{name: "notice", sql: "DO $$ BEGIN RAISE NOTICE 'a notice %', 1; RAISE WARNING 'a warning'; END $$"},
		{name: "no params", sql: "SELECT current_user, current_database(), current_setting('server_encoding')"},
	}
}

func ptr[T any](v T) *T { return &v }

// queryResult is everything a client can observe of one statement.
type queryResult struct {
	Fields  []string   // name/oid/format
	Raw     [][]string // each value's wire bytes, hex, or NULL
	Values  [][]string // pgx's decoded values
	Tag     string
	Err     string
	Notices []string
}

func (r queryResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fields=%v tag=%q err=%s notices=%v rows=%d", r.Fields, r.Tag, r.Err, r.Notices, len(r.Raw))
	for i := range r.Raw {
		if i == 3 {
			b.WriteString(" ...")
			break
		}
		fmt.Fprintf(&b, "\n  raw=%.200v values=%.200v", r.Raw[i], r.Values[i])
	}
	return b.String()
}

// runQuery runs q on conn and records what the client saw. notices
// collects NoticeResponses delivered during the query.
func runQuery(ctx context.Context, conn *pgx.Conn, notices *[]string, q relayQuery) (queryResult, []any) {
	*notices = nil
	var res queryResult
	var first []any
	rows, err := conn.Query(ctx, q.sql, q.args...)
	if err == nil {
		for _, f := range rows.FieldDescriptions() {
			res.Fields = append(res.Fields, fmt.Sprintf("%s/%d/%d", f.Name, f.DataTypeOID, f.Format))
		}
		for rows.Next() {
			var raw []string
			for _, v := range rows.RawValues() {
				if v == nil {
					raw = append(raw, "NULL")
				} else {
					raw = append(raw, hex.EncodeToString(v))
				}
			}
			vals, verr := rows.Values()
			if verr != nil {
				err = verr
				break
			}
			if first == nil {
				first = vals
			}
			var shown []string
			for _, v := range vals {
				shown = append(shown, fmt.Sprintf("%T:%v", v, v))
			}
			res.Raw = append(res.Raw, raw)
			res.Values = append(res.Values, shown)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
		res.Tag = rows.CommandTag().String()
		// RowDescription may arrive only with the rows (Exec mode).
		if res.Fields == nil {
			for _, f := range rows.FieldDescriptions() {
				res.Fields = append(res.Fields, fmt.Sprintf("%s/%d/%d", f.Name, f.DataTypeOID, f.Format))
			}
		}
	}
	res.Err = describePgErr(err)
	res.Notices = append(res.Notices, *notices...)
	return res, first
}

// pgxSession is one pgx connection in a given exec mode, with its notices.
func pgxSession(t *testing.T, ctx context.Context, url string, mode pgx.QueryExecMode) (*pgx.Conn, *[]string) {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	notices := new([]string)
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		*notices = append(*notices, fmt.Sprintf("%s %s %s", n.Severity, n.Code, n.Message))
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect %s: %v", redact(url), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, `CREATE TEMP TABLE relay_t (
		id int4 PRIMARY KEY, name text NOT NULL UNIQUE, data bytea, amount numeric,
		at timestamptz, tags text[], doc jsonb)`); err != nil {
		t.Fatal(err)
	}
	return conn, notices
}

// TestRelayPgxExecModes runs a table of statements with parameters of many
// types, multi-row results, errors and notices in every pgx QueryExecMode,
// directly and through pgveil, and requires identical observations: field
// descriptions, every value's wire bytes, decoded values, command tags and
// every field of every server error.
func TestRelayPgxExecModes(t *testing.T) {
	relayLeakCheck(t)
	p := startRelayProxy(t, proxyConf{})
	ctx := testCtx(t, 2*time.Minute)

	for _, m := range execModes {
		t.Run(m.name, func(t *testing.T) {
			direct, dNotices := pgxSession(t, ctx, directURL(harness.SCRAMUser, "sslmode=disable"), m.mode)
			proxied, pNotices := pgxSession(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"), m.mode)
			for _, q := range relayQueries() {
				want, _ := runQuery(ctx, direct, dNotices, q)
				got, first := runQuery(ctx, proxied, pNotices, q)
				if !reflect.DeepEqual(want, got) {
					t.Errorf("%s: through pgveil differs from direct\n direct: %s\n pgveil: %s", q.name, want, got)
					continue
				}
				if q.want != nil && !reflect.DeepEqual(first, q.want) {
					t.Errorf("%s: first row through pgveil %#v, want %#v", q.name, first, q.want)
				}
			}
			// Spot checks that the comparison compared something real.
			checkQuery(t, ctx, proxied, "unique violation", "23505")
			checkQuery(t, ctx, proxied, "syntax error", "42601")
			checkQuery(t, ctx, proxied, "division by zero", "22012")
			if r, _ := runQuery(ctx, proxied, pNotices, queryByName(t, "multi-row")); len(r.Raw) != 3000 {
				t.Errorf("multi-row: %d rows through pgveil, want 3000", len(r.Raw))
			}
			if r, _ := runQuery(ctx, proxied, pNotices, queryByName(t, "notice")); len(r.Notices) != 2 {
				t.Errorf("notices through pgveil: %v, want a NOTICE and a WARNING", r.Notices)
			}
		})
	}
}

func queryByName(t *testing.T, name string) relayQuery {
	t.Helper()
	for _, q := range relayQueries() {
		if q.name == name {
			return q
		}
	}
	t.Fatalf("no query %q", name)
	return relayQuery{}
}

// checkQuery re-runs the named statement of the table through pgveil and
// requires the given SQLSTATE with the server's own fields.
func checkQuery(t *testing.T, ctx context.Context, conn *pgx.Conn, name, code string) {
	t.Helper()
	{
		q := queryByName(t, name)
		_, err := conn.Exec(ctx, q.sql, q.args...)
		pe := pgErr(err)
		if pe == nil || pe.Code != code || pe.Severity != "ERROR" || pe.File == "" || pe.Routine == "" {
			t.Errorf("%s through pgveil: %v, want the server's ERROR %s with file and routine", name, err, code)
		}
		if code == "23505" && (pe == nil || pe.ConstraintName != "relay_t_pkey" || pe.TableName != "relay_t" || !strings.Contains(pe.Detail, "already exists")) {
			t.Errorf("unique violation fields through pgveil: %s", describePgErr(err))
		}
		if code == "42601" && (pe == nil || pe.Position == 0) {
			t.Errorf("syntax error through pgveil has no position: %s", describePgErr(err))
		}
	}
}

// TestRelayPgxBatchPipelineCopy covers pipelining: pgx Batch in every exec
// mode (an error in the middle of the batch), a pgconn pipeline of many
// statements before one Sync with an error mid-pipeline and recovery at the
// next Sync, and CopyFrom of 10,000 rows read back equal through pgveil and
// directly.
func TestRelayPgxBatchPipelineCopy(t *testing.T) {
	relayLeakCheck(t)
	p := startRelayProxy(t, proxyConf{})
	ctx := testCtx(t, 2*time.Minute)

	t.Run("batch", func(t *testing.T) {
		for _, m := range execModes {
			t.Run(m.name, func(t *testing.T) {
				direct, _ := pgxSession(t, ctx, directURL(harness.SCRAMUser, "sslmode=disable"), m.mode)
				proxied, _ := pgxSession(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"), m.mode)
				want := runBatch(ctx, direct)
				got := runBatch(ctx, proxied)
				if !reflect.DeepEqual(want, got) {
					t.Errorf("batch through pgveil differs from direct\n direct: %q\n pgveil: %q", want, got)
				}
				if !strings.Contains(strings.Join(got, "\n"), "23505") {
					t.Errorf("batch through pgveil shows no unique violation: %q", got)
				}
			})
		}
	})

	t.Run("pipeline", func(t *testing.T) {
		direct, _ := pgxSession(t, ctx, directURL(harness.SCRAMUser, "sslmode=disable"), pgx.QueryExecModeCacheStatement)
		proxied, _ := pgxSession(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"), pgx.QueryExecModeCacheStatement)
		want, err := runPipeline(ctx, direct)
		if err != nil {
			t.Fatalf("pipeline direct: %v", err)
		}
		got, err := runPipeline(ctx, proxied)
		if err != nil {
			t.Fatalf("pipeline through pgveil: %v", err)
		}
		if !reflect.DeepEqual(want, got) {
			t.Errorf("pipeline through pgveil differs from direct\n direct: %q\n pgveil: %q", want, got)
		}
		joined := strings.Join(got, "\n")
		for _, s := range []string{"error ERROR 23505", "sync", "rows [[2]] SELECT 1", "rows [[0]] SELECT 1", "rows [[199]] SELECT 1"} {
			if !strings.Contains(joined, s) {
				t.Errorf("pipeline through pgveil lacks %q:\n%s", s, joined)
			}
		}
		// The connection is usable after the pipeline.
		var n int
		if err := proxied.QueryRow(ctx, "SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
			t.Errorf("after pipeline: %d %v", n, err)
		}
	})

	t.Run("copyfrom", func(t *testing.T) {
		conn := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"))
		direct := connectPgx(t, ctx, directURL(harness.SCRAMUser, "sslmode=disable"))
		if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS relay_copyfrom;
			CREATE TABLE relay_copyfrom (id int8 PRIMARY KEY, name text, data bytea, at timestamptz, amount numeric, tags text[])`); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { direct.Exec(context.Background(), "DROP TABLE IF EXISTS relay_copyfrom") })
		src := copyRows(10000)
		n, err := conn.CopyFrom(ctx, pgx.Identifier{"relay_copyfrom"}, []string{"id", "name", "data", "at", "amount", "tags"}, pgx.CopyFromRows(src))
		if err != nil || n != int64(len(src)) {
			t.Fatalf("CopyFrom through pgveil: %d rows, %v", n, err)
		}
		for _, side := range []struct {
			name string
			conn *pgx.Conn
		}{{"through pgveil", conn}, {"direct", direct}} {
			got := readCopyRows(t, ctx, side.conn)
			if len(got) != len(src) {
				t.Fatalf("read back %s: %d rows, want %d", side.name, len(got), len(src))
			}
			for i := range src {
				if !reflect.DeepEqual(got[i], src[i]) {
					t.Fatalf("read back %s: row %d = %#v, want %#v", side.name, i, got[i], src[i])
				}
			}
		}
		// COPY TO STDOUT of the same rows: byte for byte as direct.
		var viaProxy, viaDirect bytes.Buffer
		const copyOut = "COPY (SELECT * FROM relay_copyfrom ORDER BY id) TO STDOUT WITH (FORMAT csv)"
		if _, err := conn.PgConn().CopyTo(ctx, &viaProxy, copyOut); err != nil {
			t.Fatalf("CopyTo through pgveil: %v", err)
		}
		if _, err := direct.PgConn().CopyTo(ctx, &viaDirect, copyOut); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(viaProxy.Bytes(), viaDirect.Bytes()) || bytes.Count(viaProxy.Bytes(), []byte("\n")) < len(src) {
			t.Errorf("COPY TO STDOUT through pgveil: %d bytes, direct %d bytes", viaProxy.Len(), viaDirect.Len())
		}
		// A second CopyFrom that violates the primary key fails with the
		// server's error and leaves the session usable.
		_, err = conn.CopyFrom(ctx, pgx.Identifier{"relay_copyfrom"}, []string{"id", "name", "data", "at", "amount", "tags"}, pgx.CopyFromRows(src[:10]))
		if sqlState(err) != "23505" {
			t.Errorf("duplicate CopyFrom through pgveil: %v, want 23505", err)
		}
		// A source that fails mid-stream makes pgx send CopyFail; the
		// server's 57014 comes back as it does directly.
		var copyFail [2]string
		for i, c := range []*pgx.Conn{direct, conn} {
			_, err := c.CopyFrom(ctx, pgx.Identifier{"relay_copyfrom"}, []string{"id", "name", "data", "at", "amount", "tags"}, &failingSource{})
			if pe := pgErr(err); pe != nil {
				copyFail[i] = pe.Code + " " + pe.Message
			} else {
				copyFail[i] = fmt.Sprint(err)
			}
		}
		if copyFail[0] != copyFail[1] || !strings.HasPrefix(copyFail[1], "57014 COPY from stdin failed: source broke") {
			t.Errorf("CopyFail: direct %q, through pgveil %q", copyFail[0], copyFail[1])
		}
		var count int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM relay_copyfrom").Scan(&count); err != nil || count != len(src) {
			t.Errorf("count after failed copy: %d %v", count, err)
		}
	})
}

// runBatch sends a batch whose fourth statement fails and records every
// result the client sees, then the state afterwards.
func runBatch(ctx context.Context, conn *pgx.Conn) []string {
	var out []string
	b := &pgx.Batch{}
	b.Queue("INSERT INTO relay_t (id, name) VALUES ($1, $2)", int32(10), "ten")
	b.Queue("INSERT INTO relay_t (id, name) VALUES ($1, $2) RETURNING id, name", int32(11), "eleven")
	b.Queue("SELECT count(*) FROM relay_t")
	b.Queue("INSERT INTO relay_t (id, name) VALUES ($1, $2)", int32(10), "dup")
	b.Queue("SELECT $1::text", "never")
	b.Queue("SELECT 1")
	br := conn.SendBatch(ctx, b)
	for i := 0; i < b.Len(); i++ {
		rows, err := br.Query()
		if err != nil {
			out = append(out, fmt.Sprintf("%d: error %s", i, describePgErr(err)))
			continue
		}
		var vals [][]any
		for rows.Next() {
			v, _ := rows.Values()
			vals = append(vals, v)
		}
		rows.Close()
		out = append(out, fmt.Sprintf("%d: %v %s err=%s", i, vals, rows.CommandTag(), describePgErr(rows.Err())))
	}
	out = append(out, "close: "+describePgErr(br.Close()))
	var n int
	err := conn.QueryRow(ctx, "SELECT count(*) FROM relay_t").Scan(&n)
	out = append(out, fmt.Sprintf("after: %d %s", n, describePgErr(err)))
	return out
}

// runPipeline drives pgconn's pipeline mode: a prepared statement, 200
// queries, an error mid-pipeline (statements after it are skipped until
// Sync), then a second segment after the Sync that must work.
func runPipeline(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	pc := conn.PgConn()
	pl := pc.StartPipeline(ctx)
	pl.SendPrepare("relay_ps", "SELECT $1::int4 + 1", nil)
	for i := 0; i < 200; i++ {
		pl.SendQueryParams("SELECT $1::int4", [][]byte{[]byte(fmt.Sprint(i))}, nil, nil, nil)
	}
	pl.SendQueryPrepared("relay_ps", [][]byte{[]byte("1")}, nil, nil)
	pl.SendQueryParams("INSERT INTO relay_t (id, name) VALUES (100, 'a')", nil, nil, nil, nil)
	pl.SendQueryParams("INSERT INTO relay_t (id, name) VALUES (100, 'b')", nil, nil, nil, nil)
	pl.SendQueryParams("SELECT 'skipped'", nil, nil, nil, nil)
	pl.SendQueryPrepared("relay_ps", [][]byte{[]byte("5")}, nil, nil)
	pl.SendPipelineSync()
	pl.SendQueryParams("SELECT count(*) FROM relay_t WHERE id = 100", nil, nil, nil, nil)
	pl.SendQueryPrepared("relay_ps", [][]byte{[]byte("-1")}, nil, []int16{1})
	pl.SendDeallocate("relay_ps")
	pl.SendPipelineSync()
	if err := pl.Flush(); err != nil {
		return nil, err
	}
	var out []string
	syncs := 0
	for guard := 0; syncs < 2 && guard < 1000; guard++ {
		res, err := pl.GetResults()
		if err != nil {
			if pgErr(err) == nil {
				return out, err
			}
			out = append(out, "error "+describePgErr(err))
			continue
		}
		switch r := res.(type) {
		case nil:
			out = append(out, "no result")
			syncs = 2
		case *pgconn.StatementDescription:
			var fields []string
			for _, f := range r.Fields {
				fields = append(fields, fmt.Sprintf("%s/%d", f.Name, f.DataTypeOID))
			}
			out = append(out, fmt.Sprintf("prepared %s params=%v fields=%v", r.Name, r.ParamOIDs, fields))
		case *pgconn.ResultReader:
			rr := r.Read()
			var rows [][]string
			for _, row := range rr.Rows {
				var vals []string
				for _, v := range row {
					vals = append(vals, string(v))
				}
				rows = append(rows, vals)
			}
			if len(rr.Rows) == 1 && len(rr.Rows[0]) == 1 && bytes.Equal(rr.Rows[0][0], []byte{0, 0, 0, 0}) {
				rows = [][]string{{"0 (binary)"}}
			}
			out = append(out, fmt.Sprintf("rows %v %s err=%s", rows, rr.CommandTag, describePgErr(rr.Err)))
		case *pgconn.CloseComplete:
			out = append(out, "close complete")
		case *pgconn.PipelineSync:
			out = append(out, "sync")
			syncs++
		default:
			out = append(out, fmt.Sprintf("unexpected %T", res))
		}
	}
	if err := pl.Close(); err != nil {
		out = append(out, "pipeline close: "+describePgErr(err))
	}
	return out, nil
}

func copyRows(n int) [][]any {
	base := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := make([][]any, n)
	for i := range rows {
		var data []byte
		if i%7 != 0 {
			data = []byte(fmt.Sprintf("\x00bin\\%d\xff", i))
		}
		var name any = fmt.Sprintf("row %d ü🐘\t\"q\" \\N", i)
		if i%11 == 0 {
			name = nil
		}
		rows[i] = []any{int64(i), name, data, base.Add(time.Duration(i) * time.Second), fmt.Sprintf("%d.%02d", i, i%100), []string{"a", fmt.Sprint(i)}}
	}
	return rows
}

func readCopyRows(t *testing.T, ctx context.Context, conn *pgx.Conn) [][]any {
	t.Helper()
	rows, err := conn.Query(ctx, "SELECT id, name, data, at, amount::text, tags FROM relay_copyfrom ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]any
	for rows.Next() {
		var (
			id     int64
			name   pgtype.Text
			data   []byte
			at     time.Time
			amount string
			tags   []string
		)
		if err := rows.Scan(&id, &name, &data, &at, &amount, &tags); err != nil {
			t.Fatal(err)
		}
		var n any
		if name.Valid {
			n = name.String
		}
		out = append(out, []any{id, n, data, at.UTC(), amount, tags})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// failingSource is a CopyFrom source whose 5,000th row fails.
type failingSource struct{ i int }

func (f *failingSource) Next() bool { f.i++; return f.i <= 10000 }
func (f *failingSource) Values() ([]any, error) {
	return []any{int64(f.i + 1_000_000), "from a failing source", nil, nil, nil, nil}, nil
}
func (f *failingSource) Err() error {
	if f.i >= 5000 {
		return errors.New("source broke")
	}
	return nil
}
