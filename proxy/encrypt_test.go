package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/pgveil/pgveil/integration/harness"
)

// encSchema is created fresh for each test that needs it.
const encSchema = `
DROP TABLE IF EXISTS enc_users, enc_notes CASCADE;
CREATE TABLE enc_users (
  id bigserial PRIMARY KEY,
  org_id int8 NOT NULL,
  name text,
  email bytea, email_bidx bytea UNIQUE,
  phone text,
  birth_date bytea,
  api_token bytea
);
CREATE TABLE enc_notes (id serial PRIMARY KEY, body bytea, author text);
GRANT ALL ON enc_users, enc_notes TO scram_user;
GRANT ALL ON SEQUENCE enc_users_id_seq, enc_notes_id_seq TO scram_user;
`

func encPolicy() string {
	return `
tables:
  public.enc_users:
    key_context: org_id
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase, trim]
      phone:
        type: text
      birth_date:
        type: date
      api_token:
        type: int8
        on_error: "null"
  public.enc_notes:
    columns:
      body:
        type: text
`
}

var testMasterKey = func() string {
	key := make([]byte, 32)
	rand.Read(key)
	return base64.StdEncoding.EncodeToString(key)
}()

// startEncProxy creates the schema and an in-process pgveil with the
// encryption policy and a fresh local master key.
func startEncProxy(t *testing.T) *testProxy {
	t.Helper()
	ctx := context.Background()
	admin := adminConn(t)
	if _, err := admin.Exec(ctx, encSchema); err != nil {
		t.Fatal(err)
	}
	return startEncProxyNoSchema(t)
}

// startEncProxyNoSchema starts the proxy over a schema the test made.
func startEncProxyNoSchema(t *testing.T) *testProxy {
	t.Helper()
	return startTablesProxy(t, encPolicy())
}

// startTablesProxy starts an in-process pgveil with the policy tables
// (YAML from "tables:" on), the service connection and the test master key.
func startTablesProxy(t *testing.T, tables string) *testProxy {
	t.Helper()
	return startTablesProxyAt(t, cluster.Addr(), tables)
}

// startTablesProxyAt is startTablesProxy with upstream.address upstream.
func startTablesProxyAt(t *testing.T, upstream, tables string) *testProxy {
	t.Helper()
	// One master key for the cluster's whole life: pgveil.keys outlives
	// each test, and its data keys are wrapped under this key.
	t.Setenv("PGVEIL_TEST_MASTER", testMasterKey)
	return startProxyYAML(t, fmt.Sprintf(`listen: 127.0.0.1:0
upstream:
  address: %s
  tls: disable
  service_url: %s
keysource:
  local:
    key_env: PGVEIL_TEST_MASTER
admin:
  listen: ""
%s`, upstream, cluster.SocketURL(harness.SuperUser, harness.Database), tables))
}

func TestEncryptRoundTripEveryExecMode(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startEncProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	modes := map[string]pgx.QueryExecMode{
		"cache_statement": pgx.QueryExecModeCacheStatement,
		"cache_describe":  pgx.QueryExecModeCacheDescribe,
		"describe_exec":   pgx.QueryExecModeDescribeExec,
		"exec":            pgx.QueryExecModeExec,
		"simple":          pgx.QueryExecModeSimpleProtocol,
	}
	org := int64(0)
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			org++
			cfg, _ := pgx.ParseConfig(p.url())
			cfg.DefaultQueryExecMode = mode
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			email := fmt.Sprintf("Alice.%s@Example.com", name)
			bday := time.Date(1990, 4, 1, 0, 0, 0, 0, time.UTC)
			var id int64
			err = conn.QueryRow(ctx, `INSERT INTO enc_users (org_id, name, email, phone, birth_date, api_token) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
				org, "alice", email, "+1 555 0100", bday, int64(1234567890123)).Scan(&id)
			if err != nil {
				t.Fatalf("insert: %v", err)
			}
			// Lookup by blind index, case-insensitive through normalize.
			var gotEmail, gotPhone string
			var gotBday time.Time
			var gotToken int64
			err = conn.QueryRow(ctx, `SELECT email, phone, birth_date, api_token FROM enc_users WHERE email = $1`, strings.ToUpper(email)).
				Scan(&gotEmail, &gotPhone, &gotBday, &gotToken)
			if err != nil {
				t.Fatalf("select by email: %v", err)
			}
			if gotEmail != email || gotPhone != "+1 555 0100" || !gotBday.Equal(bday) || gotToken != 1234567890123 {
				t.Fatalf("got %q %q %v %d", gotEmail, gotPhone, gotBday, gotToken)
			}
			// SELECT * with the tenant column selected, and without.
			rows, err := conn.Query(ctx, `SELECT * FROM enc_users WHERE id = $1`, id)
			if err != nil {
				t.Fatal(err)
			}
			vals, err := pgx.CollectOneRow(rows, pgx.RowToMap)
			if err != nil {
				t.Fatalf("select *: %v", err)
			}
			if vals["email"] != email || vals["phone"] != "+1 555 0100" {
				t.Fatalf("select *: %v", vals)
			}
			var only string
			if err := conn.QueryRow(ctx, `SELECT phone FROM enc_users WHERE id = $1`, id).Scan(&only); err != nil || only != "+1 555 0100" {
				t.Fatalf("select without tenant: %q %v", only, err)
			}
			// Update and read back.
			if _, err := conn.Exec(ctx, `UPDATE enc_users SET phone = $1 WHERE org_id = $2 AND id = $3`, "+1 555 0199", org, id); err != nil {
				t.Fatalf("update: %v", err)
			}
			if err := conn.QueryRow(ctx, `SELECT phone FROM enc_users WHERE id = $1`, id).Scan(&only); err != nil || only != "+1 555 0199" {
				t.Fatalf("after update: %q %v", only, err)
			}
			// Refused: a range comparison on an encrypted column.
			_, err = conn.Exec(ctx, `SELECT id FROM enc_users WHERE email < $1`, "m")
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "0A000" {
				t.Fatalf("range comparison: %v", err)
			}
			// The session is still usable after a refusal.
			var n int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM enc_users WHERE email IN ($1, $2)`, email, "nobody@x").Scan(&n); err != nil || n != 1 {
				t.Fatalf("IN after refusal: %d %v", n, err)
			}
			// = ANY with an array (a literal in the simple protocol).
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM enc_users WHERE email = ANY($1)`, []string{"nobody@x", strings.ToLower(email)}).Scan(&n); err != nil || n != 1 {
				t.Fatalf("= ANY: %d %v", n, err)
			}
		})
	}
	// At rest: no plaintext anywhere in the table.
	admin := adminConn(t)
	var dump string
	if err := admin.QueryRow(ctx, `SELECT string_agg(t::text, E'\n') FROM enc_users t`).Scan(&dump); err != nil {
		t.Fatal(err)
	}
	// Needles are long enough (or hold characters outside the hex and
	// base64url alphabets) that random ciphertext cannot contain them: a
	// bare "1990" turns up in the hex of five rows about once in thirty runs.
	for _, plain := range []string{"Example.com", "555 0100", "555 0199", "1990-04-01", "1234567890123"} {
		if strings.Contains(dump, plain) || bytes.Contains([]byte(dump), []byte(strings.ToLower(plain))) {
			t.Fatalf("plaintext %q found at rest:\n%s", plain, dump)
		}
	}
	var missing int
	admin.QueryRow(ctx, `SELECT count(*) FROM enc_users WHERE email IS NOT NULL AND email_bidx IS NULL`).Scan(&missing)
	if missing != 0 {
		t.Fatalf("%d rows without a blind index", missing)
	}
	// The metrics saw it all, by column and by phase.
	m := p.srv.Metrics()
	if n := testutil.ToFloat64(m.ValuesEncrypted.WithLabelValues("public.enc_users.email")); n < 5 {
		t.Fatalf("values encrypted for email: %v", n)
	}
	if n := testutil.ToFloat64(m.ValuesDecrypted.WithLabelValues("public.enc_users.phone")); n < 10 {
		t.Fatalf("values decrypted for phone: %v", n)
	}
	if n := testutil.ToFloat64(m.Statements.WithLabelValues("refused")); n != 5 {
		t.Fatalf("refused statements: %v, want 5 (one per exec mode)", n)
	}
	for _, phase := range []string{"plan", "crypto", "upstream"} {
		var d dto.Metric
		if err := m.PhaseSeconds.WithLabelValues(phase).(prometheus.Metric).Write(&d); err != nil || d.GetHistogram().GetSampleCount() == 0 {
			t.Fatalf("phase %s: no samples (%v)", phase, err)
		}
	}
}

func TestEncryptSimpleProtocolLiterals(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startEncProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	conn, err := pgconn.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	res, err := conn.Exec(ctx, `INSERT INTO enc_users (org_id, email, phone) VALUES (7, 'Bob@Example.com', 'it''s 555'), (8, 'carol@example.com', NULL) RETURNING email, phone;
SELECT email, phone FROM enc_users WHERE email = ' BOB@example.com ' ;
INSERT INTO enc_notes (body, author) VALUES ('secret note', 'bob')`).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || len(res[0].Rows) != 2 || string(res[0].Rows[0][0]) != "Bob@Example.com" || string(res[0].Rows[0][1]) != "it's 555" || res[0].Rows[1][1] != nil {
		t.Fatalf("insert returning: %+v", res[0].Rows)
	}
	if len(res[1].Rows) != 1 || string(res[1].Rows[0][0]) != "Bob@Example.com" {
		t.Fatalf("lookup by literal: %+v", res[1].Rows)
	}
	if res[0].FieldDescriptions[0].DataTypeOID != 25 {
		t.Fatalf("email reported as OID %d, want text", res[0].FieldDescriptions[0].DataTypeOID)
	}
	body := conn.ExecParams(ctx, `SELECT body FROM enc_notes WHERE author = $1`, [][]byte{[]byte("bob")}, nil, nil, nil).Read()
	if body.Err != nil || len(body.Rows) != 1 || string(body.Rows[0][0]) != "secret note" {
		t.Fatalf("notes: %+v %v", body.Rows, body.Err)
	}

	// A driver that interpolates sends a new text per row: the texts share
	// their shape's plan, each with its own values in the right places.
	shapeHits := func() float64 { return testutil.ToFloat64(p.srv.Metrics().PlanCacheShapeHits) }
	before := shapeHits()
	for i, email := range []string{"dora@example.com", "Eve-Long-Address@Example.org", "f@x.io"} {
		ins := fmt.Sprintf(`INSERT INTO enc_users (org_id, email, phone) VALUES (%d, '%s', 'phone %d') RETURNING id`, 20+i, email, i*1000)
		res, err := conn.Exec(ctx, ins).ReadAll()
		if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
			t.Fatalf("%s: %v", ins, err)
		}
		sel := fmt.Sprintf(`SELECT org_id, email, phone FROM enc_users WHERE email = '%s'`, strings.ToUpper(email))
		res, err = conn.Exec(ctx, sel).ReadAll()
		if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
			t.Fatalf("%s: %v %+v", sel, err, res)
		}
		row := res[0].Rows[0]
		if string(row[0]) != fmt.Sprint(20+i) || string(row[1]) != email || string(row[2]) != fmt.Sprintf("phone %d", i*1000) {
			t.Fatalf("%s: %q", sel, row)
		}
	}
	if got := shapeHits() - before; got < 4 {
		t.Fatalf("%v shape-plan hits for two statements run three times with other values, want 4", got)
	}
}

func TestEncryptCopy(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startEncProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pc := conn.PgConn()

	// Text format, rows split across CopyData messages at odd places.
	text := "1\tAda@Example.com\t+44 1\t1815-12-10\n2\tbob@example.com\t\\N\t\\N\n3\ttab\\there@x.org\tp3\t2000-02-29\n"
	if _, err := pc.CopyFrom(ctx, &chunkReader{data: []byte(text), n: 7}, "COPY enc_users (org_id, email, phone, birth_date) FROM STDIN"); err != nil {
		t.Fatalf("COPY text: %v", err)
	}
	// CSV with a header and quoted fields.
	csv := "org_id,email,phone\n4,\"carol,c@example.com\",\"line1\nline2\"\n5,dave@example.com,\n"
	if _, err := pc.CopyFrom(ctx, strings.NewReader(csv), "COPY enc_users (org_id, email, phone) FROM STDIN (FORMAT csv, HEADER true)"); err != nil {
		t.Fatalf("COPY csv: %v", err)
	}
	// Binary, as pgx's CopyFrom sends it.
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"enc_users"}, []string{"org_id", "email", "phone", "birth_date", "api_token"},
		pgx.CopyFromRows([][]any{
			{int64(6), "erin@example.com", "p6", time.Date(1999, 1, 2, 0, 0, 0, 0, time.UTC), int64(42)},
			{int64(6), "frank@example.com", nil, nil, nil},
		}))
	if err != nil || n != 2 {
		t.Fatalf("CopyFrom binary: %d %v", n, err)
	}
	// Every row reads back, and lookups use the blind indexes COPY filled.
	var phone *string
	if err := conn.QueryRow(ctx, "SELECT phone FROM enc_users WHERE email = $1", "TAB\there@x.org").Scan(&phone); err != nil || phone == nil || *phone != "p3" {
		t.Fatalf("lookup after COPY text: %v %v", phone, err)
	}
	if err := conn.QueryRow(ctx, "SELECT phone FROM enc_users WHERE email = $1", "carol,c@example.com").Scan(&phone); err != nil || *phone != "line1\nline2" {
		t.Fatalf("lookup after COPY csv: %v %v", phone, err)
	}
	var token int64
	if err := conn.QueryRow(ctx, "SELECT api_token FROM enc_users WHERE email = $1", "erin@example.com").Scan(&token); err != nil || token != 42 {
		t.Fatalf("lookup after CopyFrom: %d %v", token, err)
	}

	// COPY TO in text, CSV and binary; the tenant column is added and
	// dropped again when not selected.
	for _, c := range []struct{ sql, want string }{
		{"COPY enc_users (email, phone) TO STDOUT", "Ada@Example.com\t+44 1\nbob@example.com\t\\N\ntab\\there@x.org\tp3\n"},
		{"COPY (SELECT email FROM enc_users WHERE org_id < 3 ORDER BY id) TO STDOUT (FORMAT csv, HEADER)", "email\nAda@Example.com\nbob@example.com\n"},
	} {
		var out bytes.Buffer
		if _, err := pc.CopyTo(ctx, &out, c.sql); err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		got := out.String()
		if !strings.HasPrefix(got, c.want) {
			t.Fatalf("%s:\n got %q\nwant prefix %q", c.sql, got, c.want)
		}
	}
	var bin bytes.Buffer
	if _, err := pc.CopyTo(ctx, &bin, "COPY (SELECT email FROM enc_users WHERE org_id = 6 ORDER BY id) TO STDOUT (FORMAT binary)"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bin.Bytes(), []byte("erin@example.com")) || !bytes.Contains(bin.Bytes(), []byte("frank@example.com")) {
		t.Fatalf("binary COPY TO: %q", bin.Bytes())
	}

	// A value that is not a date fails the COPY; nothing of it is stored.
	_, err = pc.CopyFrom(ctx, strings.NewReader("9\tzed@example.com\tsecret-phone-9\tnot-a-date\n"), "COPY enc_users (org_id, email, phone, birth_date) FROM STDIN")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || !strings.Contains(pe.Message, "pgveil") {
		t.Fatalf("bad COPY row: %v", err)
	}
	// A row with a field too many or too few fails the COPY (57014, as
	// every CopyFail) with the server's wording of the reason.
	for row, want := range map[string]string{
		"9\tyan@example.com\tsecret-phone-10\t2000-01-01\textra\n": "pgveil: COPY: extra data after last expected column",
		"9\tyan@example.com\n": "pgveil: COPY: missing data for a column",
	} {
		_, err = pc.CopyFrom(ctx, strings.NewReader(row), "COPY enc_users (org_id, email, phone, birth_date) FROM STDIN")
		if !errors.As(err, &pe) || pe.Code != "57014" || !strings.Contains(pe.Message, want) || strings.Contains(pe.Message, "secret-phone") {
			t.Fatalf("COPY row with the wrong number of fields: %v", err)
		}
	}
	admin := adminConn(t)
	var dump string
	admin.QueryRow(ctx, `SELECT string_agg(t::text, E'\n') FROM enc_users t`).Scan(&dump)
	for _, plain := range []string{"Example.com", "example.com", "line1", "+44", "secret-phone-9", "secret-phone-10", "1815-12-10"} {
		if strings.Contains(dump, plain) {
			t.Fatalf("plaintext %q at rest after COPY:\n%s", plain, dump)
		}
	}
}

// chunkReader returns data n bytes at a time, so CopyData boundaries fall
// inside rows and fields.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	k := min(r.n, len(p), len(r.data))
	copy(p, r.data[:k])
	r.data = r.data[k:]
	return k, nil
}

func TestEncryptRefusedUnderNonUTF8ClientEncoding(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startEncProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	conn, err := pgconn.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SET client_encoding TO 'LATIN1'").ReadAll(); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "INSERT INTO enc_notes (body) VALUES ('cafe')").ReadAll()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "22021" {
		t.Fatalf("LATIN1 insert into an encrypted column: %v", err)
	}
	// Statements on other tables still work.
	if _, err := conn.Exec(ctx, "SELECT 'caf\xe9'").ReadAll(); err != nil {
		t.Fatal(err)
	}
	// (The new encoding is known from the server's ParameterStatus, so it
	// applies from the next Query on, not within the same string.)
	if _, err := conn.Exec(ctx, "RESET client_encoding").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO enc_notes (body) VALUES ('cafe')").ReadAll(); err != nil {
		t.Fatalf("after RESET: %v", err)
	}
}

// TestCatalogFollowsDDL: a column added through pgveil is known at once.
func TestCatalogFollowsDDL(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startEncProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, harness.BuildURL(p.addr, harness.SuperUser, harness.Passwords[harness.SuperUser], harness.Database, "sslmode=disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "ALTER TABLE enc_notes ADD COLUMN extra int"); err != nil {
		t.Fatal(err)
	}
	// SELECT * must now number the new column, or the decrypt map would
	// be off by one.
	if _, err := conn.Exec(ctx, "INSERT INTO enc_notes (body, author, extra) VALUES ($1, 'x', 7)", "after ddl"); err != nil {
		t.Fatal(err)
	}
	var body string
	var extra int
	if err := conn.QueryRow(ctx, "SELECT body, extra FROM (SELECT * FROM enc_notes) s WHERE extra = 7").Scan(&body, &extra); err != nil || body != "after ddl" {
		t.Fatalf("after DDL: %q %v", body, err)
	}
}

// TestMigrationMode: a table whose existing rows are plaintext (text
// columns, blind index NULL) is readable and searchable through pgveil
// while it is in migration mode; new writes are sealed; once complete,
// plaintext no longer reads.
func TestMigrationMode(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	admin := adminConn(t)
	if _, err := admin.Exec(ctx, `
DROP TABLE IF EXISTS legacy;
CREATE TABLE legacy (id serial PRIMARY KEY, email text, email_bidx bytea, born text);
INSERT INTO legacy (email, born) VALUES ('Old.One@Example.com', '1970-01-02'), ('old.two@example.com', NULL);
GRANT ALL ON legacy, legacy_id_seq TO scram_user;`); err != nil {
		t.Fatal(err)
	}
	admin.Exec(ctx, "DELETE FROM pgveil.tables WHERE table_name = 'public.legacy'") // absent on a fresh cluster
	t.Setenv("PGVEIL_TEST_MASTER", testMasterKey)
	p := startProxyYAML(t, fmt.Sprintf(`listen: 127.0.0.1:0
upstream:
  address: %s
  tls: disable
  service_url: %s
keysource:
  local:
    key_env: PGVEIL_TEST_MASTER
admin:
  listen: ""
tables:
  public.legacy:
    columns:
      email:
        type: text
        blind_index: {column: email_bidx, normalize: [lowercase, trim]}
      born:
        type: date
`, cluster.Addr(), cluster.SocketURL(harness.SuperUser, harness.Database)))
	defer p.stop(t, 10*time.Second)
	pool, keys := p.srv.eng.Load().pool, p.srv.eng.Load().keys
	if _, err := SetTableState(ctx, pool, keys, "public.legacy", TableMigrating); err != nil {
		t.Fatal(err)
	}
	var migGen int64
	var migMAC []byte
	if err := admin.QueryRow(ctx, "SELECT generation, mac FROM pgveil.tables WHERE table_name = 'public.legacy'").Scan(&migGen, &migMAC); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return p.srv.eng.Load().migrating(p.srv.Config().Table("public", "legacy")) })

	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		cfg, _ := pgx.ParseConfig(p.url())
		cfg.DefaultQueryExecMode = mode
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var born time.Time
		// Legacy plaintext rows: readable and found by email (normalised).
		if err := conn.QueryRow(ctx, "SELECT born FROM legacy WHERE email = $1", " OLD.ONE@example.com").Scan(&born); err != nil || born.Format("2006-01-02") != "1970-01-02" {
			t.Fatalf("%v: legacy lookup: %v %v", mode, born, err)
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM legacy WHERE email IN ($1, $2)", "old.one@example.com", "OLD.TWO@EXAMPLE.COM").Scan(&n); err != nil || n != 2 {
			t.Fatalf("%v: IN: %d %v", mode, n, err)
		}
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM legacy WHERE email = ANY($1)", []string{"old.two@example.com"}).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%v: ANY: %d %v", mode, n, err)
		}
		conn.Close(ctx)
	}
	// New writes are sealed and found through the blind index.
	conn, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "INSERT INTO legacy (email, born) VALUES ($1, $2)", "new@example.com", time.Date(2001, 2, 3, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	var stored string
	admin.QueryRow(ctx, "SELECT email FROM legacy WHERE id = 3").Scan(&stored)
	if !strings.HasPrefix(stored, "pgv1:") {
		t.Fatalf("new row stored as %q", stored)
	}
	var id int
	if err := conn.QueryRow(ctx, "SELECT id FROM legacy WHERE email = $1", "NEW@example.com").Scan(&id); err != nil || id != 3 {
		t.Fatalf("new row lookup: %d %v", id, err)
	}
	// Complete: plaintext is no longer accepted on read.
	if _, err := SetTableState(ctx, pool, keys, "public.legacy", TableComplete); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !p.srv.eng.Load().migrating(p.srv.Config().Table("public", "legacy")) })
	var email string
	err = conn.QueryRow(ctx, "SELECT email FROM legacy WHERE id = 1").Scan(&email)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "PV003" {
		t.Fatalf("plaintext after complete: %q %v", email, err)
	}

	// Someone who can write to the database but holds no key puts the
	// table back into migration mode: by hand (unsigned, or with a made-up
	// signature), or by writing back the signed row of the migration.
	// Each counts as complete.
	followers := p.srv.eng.Load().followers
	rejected := func() string {
		followers.loadMu.Lock()
		defer followers.loadMu.Unlock()
		return followers.rejected["public.legacy"]
	}
	for _, c := range []struct{ name, sql, why string }{
		{"unsigned", "UPDATE pgveil.tables SET state = 'migrating', mac = NULL", "not signed"},
		{"forged", "UPDATE pgveil.tables SET state = 'migrating', mac = sha256('x')", "does not verify"},
		{"flipped generation", fmt.Sprintf("UPDATE pgveil.tables SET state = 'migrating', generation = %d", migGen+1_000_000_000), "does not verify"},
		{"replayed", fmt.Sprintf("UPDATE pgveil.tables SET state = 'migrating', generation = %d, mac = '\\x%x'", migGen, migMAC), "older than generation"},
	} {
		if _, err := admin.Exec(ctx, c.sql+" WHERE table_name = 'public.legacy'"); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if _, err := admin.Exec(ctx, "NOTIFY pgveil_tables, 'public.legacy'"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return strings.Contains(rejected(), c.why) })
		if p.srv.eng.Load().migrating(p.srv.Config().Table("public", "legacy")) {
			t.Fatalf("%s: the table is in migration mode", c.name)
		}
		// A value that does not open ends the session (FATAL): one each.
		c2, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		err = c2.QueryRow(ctx, "SELECT email FROM legacy WHERE id = 1").Scan(&email)
		c2.Close(ctx)
		if !errors.As(err, &pe) || pe.Code != "PV003" {
			t.Fatalf("%s: plaintext read: %q %v", c.name, email, err)
		}
	}
	// A state signed anew is trusted again.
	if _, err := SetTableState(ctx, pool, keys, "public.legacy", TableMigrating); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return p.srv.eng.Load().migrating(p.srv.Config().Table("public", "legacy")) })
	c3, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close(ctx)
	if err := c3.QueryRow(ctx, "SELECT email FROM legacy WHERE id = 1").Scan(&email); err != nil || email != "Old.One@Example.com" {
		t.Fatalf("migrating again: %q %v", email, err)
	}
	if rejected() != "" {
		t.Fatalf("still rejected: %s", rejected())
	}
}

// TestGuardedViewRefused: a view over an encrypted column (and a view over
// that view) cannot be written through pgveil; reads are planned through
// the view's definition (decrypted, with their tenant), and refused where
// the view lacks what pgveil needs (the blind index, the tenant column).
func TestGuardedViewRefused(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	admin := adminConn(t)
	if _, err := admin.Exec(ctx, encSchema+`
CREATE VIEW enc_user_emails AS SELECT id, org_id, email FROM enc_users;
CREATE VIEW enc_user_emails2 AS SELECT email FROM enc_user_emails;
CREATE VIEW enc_user_names AS SELECT id, name FROM enc_users;
CREATE VIEW enc_user_lookup (uid, tenant, mail, email_bidx) AS SELECT id, org_id, email, email_bidx FROM enc_users WHERE name IS DISTINCT FROM 'hidden';
CREATE VIEW enc_user_lower AS SELECT id, org_id, lower(encode(email, 'hex')) AS e FROM enc_users;
GRANT ALL ON enc_user_emails, enc_user_emails2, enc_user_names, enc_user_lookup, enc_user_lower TO scram_user;`); err != nil {
		t.Fatal(err)
	}
	defer admin.Exec(ctx, "DROP VIEW IF EXISTS enc_user_emails2, enc_user_emails, enc_user_names, enc_user_lookup, enc_user_lower")
	p := startEncProxyNoSchema(t)
	defer p.stop(t, 10*time.Second)
	conn, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, c := range []struct{ sql, msg string }{
		{"INSERT INTO enc_user_emails (org_id, email) VALUES (1, 'plain@view')", "enc_user_emails"},
		{"UPDATE enc_user_lookup SET mail = 'plain@view' WHERE uid = 1", "enc_user_lookup"},
		{"SELECT id FROM enc_user_emails WHERE email = 'plain@view'", "enc_user_emails"}, // no blind index in the view
		{"SELECT * FROM enc_user_emails2", "org_id"},                                     // no tenant in the view
		{"SELECT * FROM enc_user_lower", "enc_user_lower"},                               // computes on ciphertext
	} {
		_, err := conn.Exec(ctx, c.sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, c.msg) {
			t.Fatalf("%s: %v", c.sql, err)
		}
	}
	var n int
	admin.QueryRow(ctx, "SELECT count(*) FROM enc_users").Scan(&n)
	if n != 0 {
		t.Fatalf("%d rows written through the view", n)
	}
	// A view over plaintext columns of the table is not guarded.
	if _, err := conn.Exec(ctx, "SELECT * FROM enc_user_names"); err != nil {
		t.Fatal(err)
	}
	// Reads through the views, in every protocol: plaintext, found by the
	// blind index the view returns.
	var id int64
	if err := conn.QueryRow(ctx, "INSERT INTO enc_users (org_id, email, name) VALUES ($1, $2, 'v') RETURNING id", 42, "Vera@Example.com").Scan(&id); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeSimpleProtocol} {
		var email string
		if err := conn.QueryRow(ctx, "SELECT email FROM enc_user_emails WHERE id = $1", mode, id).Scan(&email); err != nil || email != "Vera@Example.com" {
			t.Fatalf("%v: through enc_user_emails: %q %v", mode, email, err)
		}
		var uid, tenant int64
		var mail string
		if err := conn.QueryRow(ctx, "SELECT * FROM enc_user_lookup WHERE mail = $1", mode, "vera@example.com").Scan(&uid, &tenant, &mail, new([]byte)); err != nil || uid != id || tenant != 42 || mail != "Vera@Example.com" {
			t.Fatalf("%v: lookup through enc_user_lookup: %d %d %q %v", mode, uid, tenant, mail, err)
		}
	}
}
