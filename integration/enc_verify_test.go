package integration

// What the suite checks after each driver: the rows read back through
// pgveil by another driver, and the table as the database holds it.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// verifyThroughProxy reads the org's rows back through pgveil with pgx
// (a different driver from the one that wrote them) and compares them
// with what the scenario must have left.
func verifyThroughProxy(t *testing.T, ctx context.Context, p *encProxy, s *encSpec) {
	t.Helper()
	conn := connectPgx(t, ctx, p.url())
	got := selectUsers(t, ctx, conn, s.Org)
	compareUsers(t, "users of org "+strconv.FormatInt(s.Org, 10)+" read back through pgveil", got, s.Final)
	rows, err := conn.Query(ctx, `SELECT email, note FROM contacts WHERE org_id = $1 ORDER BY id`, s.Org)
	if err != nil {
		t.Fatalf("contacts through pgveil: %v", err)
	}
	gotC, err := collectStrings(rows)
	if err != nil {
		t.Fatalf("contacts through pgveil: %v", err)
	}
	var wantC [][]*string
	for _, c := range s.Contacts {
		wantC = append(wantC, []*string{c.Email, c.Note})
	}
	compareRows(t, "contacts read back through pgveil", gotC, wantC)
}

// verifyCopyThroughProxy checks the rows the COPY phase wrote.
func verifyCopyThroughProxy(t *testing.T, ctx context.Context, p *encProxy, s *encSpec) {
	t.Helper()
	conn := connectPgx(t, ctx, p.url())
	compareUsers(t, "rows written by COPY, read back through pgveil", selectUsers(t, ctx, conn, s.CopyOrg), s.copyRows())
}

func selectUsers(t *testing.T, ctx context.Context, conn *pgx.Conn, org int64) [][]*string {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT name, email, phone, ssn, birth_date, api_token FROM users WHERE org_id = $1 ORDER BY id`, org)
	if err != nil {
		t.Fatalf("users through pgveil: %v", err)
	}
	got, err := collectStrings(rows)
	if err != nil {
		t.Fatalf("users through pgveil: %v", err)
	}
	return got
}

// collectStrings reads every row as strings (dates YYYY-MM-DD).
func collectStrings(rows pgx.Rows) ([][]*string, error) {
	defer rows.Close()
	var out [][]*string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		out = append(out, normRow(vals))
	}
	return out, rows.Err()
}

// normRow renders driver values as the spec writes them.
func normRow(vals []any) []*string {
	out := make([]*string, len(vals))
	for i, v := range vals {
		out[i] = normValue(v)
	}
	return out
}

func normValue(v any) *string {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return &v
	case []byte:
		return sp(string(v))
	case time.Time:
		return sp(v.Format("2006-01-02"))
	case int64:
		return sp(strconv.FormatInt(v, 10))
	case int32:
		return sp(strconv.FormatInt(int64(v), 10))
	case int16:
		return sp(strconv.FormatInt(int64(v), 10))
	case bool:
		return sp(strconv.FormatBool(v))
	}
	return sp(fmt.Sprintf("%T(%v)", v, v))
}

func compareUsers(t *testing.T, what string, got [][]*string, want []encUser) {
	t.Helper()
	var w [][]*string
	for _, u := range want {
		w = append(w, u.row())
	}
	compareRows(t, what, got, w)
}

// compareRows reports the first differences between two result sets.
func compareRows(t *testing.T, what string, got, want [][]*string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d rows, want %d\n got: %s\nwant: %s", what, len(got), len(want), fmtRows(got), fmtRows(want))
		return
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			t.Errorf("%s: row %d has %d fields, want %d", what, i, len(got[i]), len(want[i]))
			continue
		}
		for j := range got[i] {
			if !eqPtr(got[i][j], want[i][j]) {
				t.Errorf("%s: row %d field %d = %s, want %s", what, i, j, fmtPtr(got[i][j]), fmtPtr(want[i][j]))
			}
		}
	}
}

func eqPtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func fmtPtr(p *string) string {
	if p == nil {
		return "NULL"
	}
	return short(*p)
}

func fmtRows(rows [][]*string) string {
	var parts []string
	for _, r := range rows {
		var f []string
		for _, v := range r {
			f = append(f, fmtPtr(v))
		}
		parts = append(parts, "("+strings.Join(f, ", ")+")")
	}
	return strings.Join(parts, " ")
}

// encColumns are the physical columns of the policy, for the at-rest scan.
var encColumns = []struct {
	table, col string
	bidxOf     string // set on a blind-index column: the encrypted column it indexes
	text       bool   // an encrypted text column ('pgv1:' envelopes)
}{
	{table: "users", col: "email"}, {table: "users", col: "email_bidx", bidxOf: "email"},
	{table: "users", col: "phone"}, {table: "users", col: "ssn"}, {table: "users", col: "ssn_bidx", bidxOf: "ssn"},
	{table: "users", col: "birth_date"}, {table: "users", col: "api_token"},
	{table: "contacts", col: "email"}, {table: "contacts", col: "email_bidx", bidxOf: "email"},
	{table: "contacts", col: "note", text: true},
}

// verifyAtRest is the direct check of issue 5, on a superuser connection
// that bypasses pgveil: every stored value of an encrypted column is an
// envelope (bytea starting with version 0x01; text 'pgv1:' + base64 of
// one), every blind-index column is filled exactly where its column is
// not NULL (32-byte HMACs), and no plaintext is found anywhere: neither in
// a full-table scan of every row as text (t::text) nor in the raw bytes of
// the stored values.
func verifyAtRest(t *testing.T, ctx context.Context, plaintexts []string) {
	t.Helper()
	problems, err := atRestProblems(ctx, superConn(t, ctx), plaintexts)
	if err != nil {
		t.Fatalf("at rest: %v", err)
	}
	for _, p := range problems {
		t.Error("at rest: " + p)
	}
}

// atRestProblems lists what verifyAtRest finds wrong, on su.
func atRestProblems(ctx context.Context, su *pgx.Conn, plaintexts []string) ([]string, error) {
	var out []string
	var dump strings.Builder
	for _, table := range []string{"orgs", "users", "contacts"} {
		var s string
		if err := su.QueryRow(ctx, fmt.Sprintf(`SELECT coalesce(string_agg(t::text, E'\n'), '') FROM %s t`, table)).Scan(&s); err != nil {
			return nil, fmt.Errorf("scanning %s: %w", table, err)
		}
		dump.WriteString(s)
		dump.WriteByte('\n')
	}
	var raw bytes.Buffer
	for _, c := range encColumns {
		q := fmt.Sprintf(`SELECT id, %s FROM %s ORDER BY id`, c.col, c.table)
		if c.text {
			q = fmt.Sprintf(`SELECT id, convert_to(%s, 'UTF8') FROM %s ORDER BY id`, c.col, c.table)
		}
		rows, err := su.Query(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("reading %s.%s: %w", c.table, c.col, err)
		}
		bad := 0
		for rows.Next() {
			var id int64
			var v []byte
			if err := rows.Scan(&id, &v); err != nil {
				rows.Close()
				return nil, err
			}
			if v == nil {
				continue
			}
			raw.Write(v)
			raw.WriteByte(0)
			var problem string
			switch {
			case c.bidxOf != "":
				if len(v) != 32 {
					problem = fmt.Sprintf("blind index of %d bytes, want 32", len(v))
				}
			case c.text:
				// docs/FORMAT.md: "pgv1:" || base64url(envelope), no padding.
				env, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(string(v), "pgv1:"))
				if !bytes.HasPrefix(v, []byte("pgv1:")) || err != nil || !isEnvelope(env) {
					problem = fmt.Sprintf("not a 'pgv1:' envelope: %s", short(string(v)))
				} else {
					raw.Write(env)
					raw.WriteByte(0)
				}
			default:
				if !isEnvelope(v) {
					problem = fmt.Sprintf("not an envelope (%d bytes, first %x)", len(v), v[:min(len(v), 8)])
				}
			}
			if problem != "" {
				bad++
				if bad <= 5 {
					out = append(out, fmt.Sprintf("%s.%s of row %d: %s", c.table, c.col, id, problem))
				}
			}
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	for _, c := range encColumns {
		if c.bidxOf == "" {
			continue
		}
		var n int
		q := fmt.Sprintf(`SELECT count(*) FROM %s WHERE (%s IS NULL) <> (%s IS NULL)`, c.table, c.bidxOf, c.col)
		if err := su.QueryRow(ctx, q).Scan(&n); err != nil {
			return nil, err
		}
		if n != 0 {
			out = append(out, fmt.Sprintf("%d rows of %s where %s and its blind index %s disagree on NULL", n, c.table, c.bidxOf, c.col))
		}
	}
	dumpLower := strings.ToLower(dump.String())
	rawLower := asciiLower(raw.Bytes())
	hits := 0
	checked := map[string]bool{}
	for _, s := range plaintexts {
		for _, needle := range searchNeedles(s) {
			if checked[needle] {
				continue
			}
			checked[needle] = true
			where := ""
			switch {
			case strings.Contains(dumpLower, strings.ToLower(needle)):
				where = "in the table scan (t::text)"
			case bytes.Contains(rawLower, asciiLower([]byte(needle))):
				where = "in the raw stored bytes"
			}
			if where != "" {
				hits++
				if hits <= 10 {
					out = append(out, fmt.Sprintf("plaintext %s found %s", short(needle), where))
				}
			}
		}
	}
	if len(checked) == 0 {
		out = append(out, "no plaintext to look for")
	}
	return out, nil
}

// asciiLower lower-cases ASCII letters in place, byte for byte (binary
// data keeps its length; a case-changed leak is still found).
func asciiLower(b []byte) []byte {
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}

// isEnvelope checks the v1 binary envelope's shape: version 0x01, key id,
// nonce, ciphertext and tag (DESIGN.md "Data at rest").
func isEnvelope(b []byte) bool { return len(b) >= 1+4+12+16 && b[0] == 0x01 }

// countUsers counts an org's users, directly.
func countUsers(t *testing.T, ctx context.Context, org int64) int {
	t.Helper()
	var n int
	if err := superConn(t, ctx).QueryRow(ctx, `SELECT count(*) FROM users WHERE org_id = $1`, org).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEncCheckersCatchPlaintext proves the suite's two plaintext checks
// can fail: plaintext written behind pgveil's back is found at rest (in
// the table scan and in the raw bytes, with the envelope and blind-index
// checks failing too), and plaintext in a log is found as it is, in
// another case, and JSON-escaped.
func TestEncCheckersCatchPlaintext(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	su := superConn(t, ctx)
	if _, err := su.Exec(ctx, encSchema); err != nil {
		t.Fatal(err)
	}
	if _, err := su.Exec(ctx, `INSERT INTO orgs VALUES (1, 'o');
		INSERT INTO users (org_id, name, email, phone) VALUES (1, 'n', convert_to('direct-7791@example.org', 'UTF8'), convert_to('ph-direct-7792', 'UTF8'));
		INSERT INTO contacts (org_id, note) VALUES (1, 'note-direct-7793')`); err != nil {
		t.Fatal(err)
	}
	problems, err := atRestProblems(ctx, su, []string{"DIRECT-7791@example.org", "ph-direct-7792", "note-direct-7793", "absent-7794"})
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(problems, "\n")
	for _, want := range []string{
		"users.email of row 1: not an envelope", "users.phone of row 1: not an envelope", "contacts.note of row 1: not a 'pgv1:' envelope",
		"disagree on NULL", `plaintext "DIRECT-7791@example.org" found in the raw stored bytes`,
		`plaintext "ph-direct-7792" found in the raw stored bytes`, `plaintext "note-direct-7793" found in the table scan`,
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("the at-rest check missed %q; it reported:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "absent-7794") {
		t.Errorf("the at-rest check reported a value that is not stored:\n%s", joined)
	}

	log := `{"level":"debug","msg":"session ready"}
{"level":"info","msg":"x","v":"Comma, \"Quoted\" value\nline"}
{"level":"info","msg":"y","w":"Zoë 🚀 中文 leaked"}`
	problems = logProblems(log, []string{"comma, \"quoted\" value\nline", "zoë 🚀 中文 leaked", "never-logged-7795"})
	if len(problems) != 2 || !strings.Contains(problems[0], "Quoted") && !strings.Contains(problems[0], "quoted") {
		t.Errorf("the log check found %d problems, want the 2 leaks: %q", len(problems), problems)
	}
	if p := logProblems(`{"level":"info","msg":"panic in session"}`, []string{"never-logged-7795"}); len(p) != 2 {
		t.Errorf("the log check should report a missing debug level and a panic: %q", p)
	}
}
