package integration

// Review of 69a347b (JSON built from encrypted columns, Drizzle's
// relational queries) end to end: the real pgveil binary in front of
// PostgreSQL 15.
//
// Failing at the time of the review (defects):
//   TestEncJSONReviewFoundWrongTenant   HIGH: a row of org B holding org A's
//                                       envelope (moved in the database) is
//                                       refused when selected (PV001), and
//                                       returned in plaintext by JSON whose
//                                       tenant member is another value: a
//                                       key twice holding nested arrays, a
//                                       cast key ('ox'::varchar(1)), a key
//                                       from the row (name), and a text
//                                       planned after another of the same
//                                       shape with other keys (plan cache).
//   TestEncJSONReviewFoundSealed        MEDIUM: JSON holding envelopes
//                                       reaches the client sealed, without
//                                       an error: a text of a cached shape
//                                       with other keys, a scalar subquery,
//                                       row_to_json(x), (x).j,
//                                       json_array_elements(x.j), a cast key,
//                                       INSERT … SELECT … RETURNING.
//   TestEncJSONReviewFoundEmptyLists    MEDIUM: a json_agg of more than 1000
//                                       elements each holding an empty list
//                                       (Drizzle's coalesce(json_agg(…),
//                                       '[]') for a child relation without
//                                       rows) is FATAL: the session closes.
//   TestEncJSONReviewFoundFidelity      LOW: BC dates and timestamps, and a
//                                       json column inside jsonb_build_array
//                                       (not normalized), differ from what
//                                       PostgreSQL returns over plaintext.
//   TestEncJSONReviewFoundConstantOpened LOW/MEDIUM: an envelope the client writes
//                                       into COALESCE's fallback constant,
//                                       with a tenant of its choosing, is
//                                       opened: a decryption oracle for any
//                                       ciphertext the client holds.
// Attacks withstood: TestEncJSONReviewHolds. Note that its moved-row check
// uses an object of three members: with two ('email', email, 'org', org_id)
// the text shares the shape of the first query of that test ('e', 'o'),
// and the moved row's envelope came back sealed instead of PV001 (the
// plan-cache defect, met by two ordinary queries).

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// jrevQuery runs sql with text parameters and returns column 0 of the
// first row as the server (or pgveil) sent it; resultFormat 1 asks for
// binary. A new connection each time: a FATAL closes it.
func jrevQuery(t *testing.T, ctx context.Context, url, sql string, resultFormat int16, args ...string) (string, error) {
	t.Helper()
	c, err := pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close(context.Background())
	return jrevOn(ctx, c, sql, resultFormat, args...)
}

func jrevOn(ctx context.Context, c *pgconn.PgConn, sql string, resultFormat int16, args ...string) (string, error) {
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	r := c.ExecParams(ctx, sql, params, nil, nil, []int16{resultFormat}).Read()
	if r.Err != nil {
		return "", r.Err
	}
	if len(r.Rows) == 0 {
		return "", fmt.Errorf("no row")
	}
	return string(r.Rows[0][0]), nil
}

// TestEncJSONReviewFoundWrongTenant (HIGH): the tenant check of a value
// inside JSON reads the member the plan names as its row's key_context.
// Where that member holds another value, an envelope moved from org A into
// a row of org B (whose id is A's number, or whose name is 'o') is opened
// and returned: exactly what the tenant check exists to stop.
func TestEncJSONReviewFoundWrongTenant(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	p := startEncProxy(t, 9471, 9472)
	secret := "jrev-victim@example.org"
	p.remember(secret)
	app := connectPgx(t, ctx, p.url())
	var victim int64
	if err := app.QueryRow(ctx, `INSERT INTO users (org_id, name, email) VALUES ($1, 'victim', $2) RETURNING id`, 9471, secret).Scan(&victim); err != nil {
		t.Fatal(err)
	}
	// The attacker with write access to the database moves the envelope
	// into a row of org 9472 (id 9471, name 'o').
	su := superConn(t, ctx)
	if _, err := su.Exec(ctx, `INSERT INTO users (id, org_id, name, email) SELECT 9471, 9472, 'o', email FROM users WHERE id = $1`, victim); err != nil {
		t.Fatal(err)
	}
	url := p.url()
	// Holds: the moved value is refused when selected, and in plain JSON.
	for _, sql := range []string{
		`SELECT email FROM users WHERE id = 9471`,
		`SELECT json_build_array(org_id, email, id) FROM users WHERE id = 9471`,
		`SELECT jsonb_build_object('e', email, 'o', org_id, 'p', id) FROM users WHERE id = 9471`,
	} {
		got, err := jrevQuery(t, ctx, url, sql, 0)
		if err == nil || strings.Contains(got, secret) {
			t.Fatalf("%s: %q, %v; want PV001 (premise of the test)", sql, got, err)
		}
	}
	for _, c := range []struct{ name, sql string }{
		{"dup nested key jsonb", `SELECT jsonb_build_object('x', jsonb_build_array(org_id, email, id), 'x', jsonb_build_array(id, email, org_id)) FROM users WHERE id = 9471`},
		{"dup nested key json", `SELECT json_build_object('x', json_build_array(org_id, email, id), 'x', json_build_array(id, email, org_id)) FROM users WHERE id = 9471`},
		{"cast key", `SELECT json_build_object('e', email, 'o', org_id, 'ox'::varchar(1), id) FROM users WHERE id = 9471`},
		{"key from the row", `SELECT jsonb_build_object('e', email, 'o', org_id, name, id) FROM users WHERE id = 9471`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := jrevQuery(t, ctx, url, c.sql, 0)
			if err == nil && strings.Contains(got, secret) {
				t.Errorf("%s\n returned %s: org 9471's email opened in a row of org 9472", c.sql, got)
			}
		})
	}
	t.Run("plan cache", func(t *testing.T) {
		c, err := pgconn.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		q1 := `SELECT jsonb_build_object('e', email, 'o', org_id, 'p', id) FROM users WHERE id = $1`
		if got, err := jrevOn(ctx, c, q1, 0, fmt.Sprint(victim)); err != nil || !strings.Contains(got, secret) {
			t.Fatalf("%s: %q, %v", q1, got, err)
		}
		q2 := `SELECT jsonb_build_object('e', email, 'p', org_id, 'o', id) FROM users WHERE id = $1`
		if got, err := jrevOn(ctx, c, q2, 0, "9471"); err == nil && strings.Contains(got, secret) {
			t.Errorf("%s after %s\n returned %s: org 9471's email opened in a row of org 9472 (checked against id)", q2, q1, got)
		}
	})
}

// TestEncJSONReviewFoundSealed (MEDIUM): each statement returns JSON
// holding the email's envelope ("\\x…") as the server built it: no error,
// no plaintext, no refusal.
func TestEncJSONReviewFoundSealed(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	p := startEncProxy(t, 9473)
	secret := "jrev-sealed@example.org"
	p.remember(secret)
	app := connectPgx(t, ctx, p.url())
	var id int64
	if err := app.QueryRow(ctx, `INSERT INTO users (org_id, name, email) VALUES ($1, 'sealed', $2) RETURNING id`, 9473, secret).Scan(&id); err != nil {
		t.Fatal(err)
	}
	url := p.url()
	arg := fmt.Sprint(id)
	check := func(t *testing.T, sql, got string, err error) {
		t.Helper()
		if err == nil && strings.Contains(got, `\\x`) {
			t.Errorf("%s\n returned %s: the envelope, sealed, without an error", sql, got)
		}
	}
	t.Run("plan cache", func(t *testing.T) {
		c, err := pgconn.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		q1 := `SELECT jsonb_build_object('e', email, 'o', org_id) FROM users WHERE id = $1`
		if got, err := jrevOn(ctx, c, q1, 0, arg); err != nil || !strings.Contains(got, secret) {
			t.Fatalf("%s: %q, %v", q1, got, err)
		}
		q2 := `SELECT jsonb_build_object('email', email, 'o', org_id) FROM users WHERE id = $1`
		got, err := jrevOn(ctx, c, q2, 0, arg)
		check(t, q2+" (after "+q1+")", got, err)
	})
	sub := `(SELECT json_build_array(org_id, email) AS j FROM users WHERE id = $1) x`
	for _, sql := range []string{
		`SELECT (SELECT json_build_array(org_id, email) FROM users WHERE id = $1)`,
		`SELECT ARRAY(SELECT json_build_array(org_id, email) FROM users WHERE id = $1)`,
		`SELECT row_to_json(x) FROM ` + sub,
		`SELECT (x).j FROM ` + sub,
		`SELECT e FROM ` + sub + `, json_array_elements(x.j) e OFFSET 1`,
		`SELECT e.value FROM ` + sub + `, json_array_elements(x.j) e OFFSET 1`,
		`SELECT json_build_object('e'::char(3), email, 'o', org_id) FROM users WHERE id = $1`,
		`INSERT INTO users (org_id, name) SELECT org_id, json_build_array(org_id, email) FROM users WHERE id = $1 RETURNING name`,
	} {
		got, err := jrevQuery(t, ctx, url, sql, 0, arg)
		check(t, sql, got, err)
	}
}

// TestEncJSONReviewFoundEmptyLists (MEDIUM): Drizzle's query of an org
// with its users and each user's contacts; 1001 users without contacts
// make 1001 empty lists in the document, and the proxy's depth counter
// (which never comes down after an empty [] or {}) passes its 1000 limit:
// "could not read the JSON", FATAL.
func TestEncJSONReviewFoundEmptyLists(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	p := startEncProxy(t, 9474)
	p.remember("jrev-empty@example.org")
	app := connectPgx(t, ctx, p.url())
	if _, err := app.Exec(ctx, `INSERT INTO users (org_id, name, email) VALUES (9474, 'first', $1)`, "jrev-empty@example.org"); err != nil {
		t.Fatal(err)
	}
	su := superConn(t, ctx)
	if _, err := su.Exec(ctx, `INSERT INTO users (org_id, name) SELECT 9474, 'u' || g FROM generate_series(1, 1000) g`); err != nil {
		t.Fatal(err)
	}
	sql := `select "orgs"."id", "orgs_users"."data" as "users" from "orgs" "orgs" left join lateral (select coalesce(json_agg(json_build_array("orgs_users"."id", "orgs_users"."org_id", "orgs_users"."email", "orgs_users_contacts"."data") order by "orgs_users"."id"), '[]'::json) as "data" from "users" "orgs_users" left join lateral (select coalesce(json_agg(json_build_array("orgs_users_contacts"."id", "orgs_users_contacts"."note")), '[]'::json) as "data" from "contacts" "orgs_users_contacts" where "orgs_users_contacts"."org_id" = "orgs_users"."org_id" and "orgs_users_contacts"."email_bidx" is null and false) "orgs_users_contacts" on true where "orgs_users"."org_id" = "orgs"."id") "orgs_users" on true where "orgs"."id" = $1`
	c, err := pgconn.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	r := c.ExecParams(ctx, sql, [][]byte{[]byte("9474")}, nil, nil, nil).Read()
	if r.Err != nil {
		t.Fatalf("1001 users without contacts: %v", r.Err)
	}
	var users [][]any
	if err := json.Unmarshal(r.Rows[0][1], &users); err != nil || len(users) != 1001 || users[0][2] != "jrev-empty@example.org" {
		t.Fatalf("%d users, first %v, %v", len(users), users[0], err)
	}
}

// TestEncJSONReviewFoundConstantOpened (LOW): COALESCE(json_agg(…),
// constant) is followed with the constant as it is: an envelope the client
// writes into the constant, beside a tenant it names, is opened. The
// client gets the plaintext of ciphertext that is in no row (a copy taken
// from the database, a backup, a log), which no other statement does.
func TestEncJSONReviewFoundConstantOpened(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	p := startEncProxy(t, 9475)
	secret := "jrev-oracle@example.org"
	p.remember(secret)
	app := connectPgx(t, ctx, p.url())
	var id int64
	if err := app.QueryRow(ctx, `INSERT INTO users (org_id, name, email) VALUES (9475, 'o', $1) RETURNING id`, secret).Scan(&id); err != nil {
		t.Fatal(err)
	}
	var env string
	if err := superConn(t, ctx).QueryRow(ctx, `SELECT email::text FROM users WHERE id = $1`, id).Scan(&env); err != nil {
		t.Fatal(err)
	}
	sql := fmt.Sprintf(`SELECT COALESCE(json_agg(json_build_array(org_id, email)), '[[9475, "\%s"]]') FROM users WHERE false`, env)
	got, err := jrevQuery(t, ctx, p.url(), sql, 0)
	if err == nil && strings.Contains(got, secret) {
		t.Errorf("%s\n returned %s: the client's ciphertext, opened", sql, got)
	}
}

// jrevTypesPolicy: one encrypted column per logical type (bytea envelopes,
// and a text column with 'pgv1:' envelopes).
const jrevTypesPolicy = `tables:
  public.et:
    key_context: org_id
    columns:
      c_text: {type: text}
      c_ttext: {type: text}
      c_varchar: {type: varchar}
      c_int2: {type: int2}
      c_int4: {type: int4}
      c_int8: {type: int8}
      c_numeric: {type: numeric}
      c_bool: {type: bool}
      c_date: {type: date}
      c_ts: {type: timestamp}
      c_tstz: {type: timestamptz}
      c_uuid: {type: uuid}
      c_json: {type: json}
      c_jsonb: {type: jsonb}
      c_bytea: {type: bytea}
`

var jrevCols = []string{"c_text", "c_ttext", "c_varchar", "c_int2", "c_int4", "c_int8", "c_numeric", "c_bool", "c_date", "c_ts", "c_tstz", "c_uuid", "c_json", "c_jsonb", "c_bytea"}

// jrevRows are the values, as SQL literals, in jrevCols order.
var jrevRows = [][]string{
	{`'a"b\c` + "\n\t\x01" + ` é 😀 ` + "\u2028" + `'`, `'pgv1:looks like an envelope'`, `'v/1'`, `-32768`, `2147483647`, `9223372036854775807`, `'NaN'`, `true`,
		`'2024-02-29'`, `'2024-02-29 23:59:59.999999'`, `'1999-12-31 23:00:00-05'`, `'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'`, `'[1, "x"]'`, `'{"b": [1, 2], "a": null}'`, `'\x00ff'`},
	{`''`, `'\x61'`, `''`, `0`, `-1`, `-9223372036854775808`, `'123456789012345678901234567890.123456789'`, `false`,
		`'infinity'`, `'-infinity'`, `'infinity'`, `'00000000-0000-0000-0000-000000000000'`, `'"str"'`, `'"str"'`, `'\x'`},
	{`'x'`, `'y'`, `'z'`, `1`, `2`, `3`, `'1.50'`, `true`,
		`'0044-03-15 BC'`, `'0044-03-15 10:00:00.5 BC'`, `'2024-03-05 10:00:00.5+00'`, `'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'`, `'{"b":1,  "a":2}'`, `'{"b":1,  "a":2}'`, `'\xdeadbeef'`},
	{`'y'`, `'y'`, `'y'`, `1`, `2`, `3`, `'-0.000001'`, `true`,
		`'2024-03-05'`, `'2024-03-05 10:00:00'`, `'2024-03-05 10:00:00+00'`, `'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13'`, `'{"a":1,"a":2}'`, `'{"a":1,"a":2}'`, `'\x00'`},
	{`NULL`, `NULL`, `NULL`, `NULL`, `NULL`, `NULL`, `NULL`, `NULL`, `NULL`, `NULL`, `NULL`, `NULL`, `NULL`, `NULL`, `NULL`},
}

// TestEncJSONReviewFoundFidelity (LOW): the same values in a plaintext
// table queried directly (TimeZone UTC) and in an encrypted table through
// pgveil, in json and jsonb built by array, object and json_agg, text and
// binary result formats: the bytes must be equal.
func TestEncJSONReviewFoundFidelity(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	e := newOpsEnv(t, "ops_json_review", jrevTypesPolicy)
	su := e.conn(ctx)
	var ddl strings.Builder
	ddl.WriteString(`CREATE TABLE pt (id int8 PRIMARY KEY, org_id int8 NOT NULL, c_text text, c_ttext text, c_varchar varchar, c_int2 int2, c_int4 int4, c_int8 int8, c_numeric numeric, c_bool bool, c_date date, c_ts timestamp, c_tstz timestamptz, c_uuid uuid, c_json json, c_jsonb jsonb, c_bytea bytea);
CREATE TABLE et (id int8 PRIMARY KEY, org_id int8 NOT NULL, c_ttext text`)
	for _, c := range jrevCols {
		if c != "c_ttext" {
			ddl.WriteString(", " + c + " bytea")
		}
	}
	ddl.WriteString(");")
	if _, err := su.Exec(ctx, ddl.String()); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	px := e.proxy(e.config(""))
	app := e.appConn(ctx, px)
	cols := strings.Join(jrevCols, ", ")
	for i, r := range jrevRows {
		vals := fmt.Sprintf("%d, %d, %s", i+1, 9400+i%2, strings.Join(r, ", "))
		if _, err := su.Exec(ctx, `INSERT INTO pt (id, org_id, `+cols+`) VALUES (`+vals+`)`); err != nil {
			t.Fatalf("plaintext row %d: %v", i+1, err)
		}
		if _, err := app.Exec(ctx, `INSERT INTO et (id, org_id, `+cols+`) VALUES (`+vals+`)`, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("encrypted row %d through pgveil: %v", i+1, err)
		}
	}
	for _, c := range []*pgx.Conn{su, app} {
		if _, err := c.Exec(ctx, `SET TimeZone = 'UTC'`); err != nil {
			t.Fatal(err)
		}
	}
	var obj []string
	for _, c := range jrevCols {
		obj = append(obj, "'"+c+"'", c)
	}
	queries := []string{
		`SELECT json_build_array(org_id, ` + cols + `) FROM %s WHERE id = $1`,
		`SELECT jsonb_build_array(org_id, ` + cols + `) FROM %s WHERE id = $1`,
		`SELECT json_build_object('org', org_id, ` + strings.Join(obj, ", ") + `) FROM %s WHERE id = $1`,
		`SELECT jsonb_build_object('org', org_id, ` + strings.Join(obj, ", ") + `) FROM %s WHERE id = $1`,
		`SELECT coalesce(json_agg(json_build_array(id, org_id, ` + cols + `) ORDER BY id), '[]'::json) FROM %s WHERE id >= $1`,
	}
	// Row by row and type by type, so each difference is named.
	for row := 1; row <= len(jrevRows); row++ {
		for _, col := range jrevCols {
			for _, q := range []string{
				`SELECT json_build_array(org_id, ` + col + `) FROM %s WHERE id = $1`,
				`SELECT jsonb_build_array(org_id, ` + col + `) FROM %s WHERE id = $1`,
			} {
				for _, f := range []int16{0, 1} {
					want, err := jrevOn(ctx, su.PgConn(), fmt.Sprintf(q, "pt"), f, fmt.Sprint(row))
					if err != nil {
						t.Fatalf("direct %s: %v", q, err)
					}
					got, err := jrevOn(ctx, app.PgConn(), fmt.Sprintf(q, "et"), f, fmt.Sprint(row))
					if err != nil {
						t.Errorf("row %d %s (format %d) through pgveil: %v", row, fmt.Sprintf(q, "et"), f, err)
						app = e.appConn(ctx, px)
						app.Exec(ctx, `SET TimeZone = 'UTC'`)
						continue
					}
					if got != want {
						t.Errorf("row %d %s (format %d):\n pgveil %q\n direct %q", row, fmt.Sprintf(q, "et"), f, got, want)
					}
				}
			}
		}
	}
	// The whole documents, which must also be equal where each part is.
	for _, q := range queries {
		for _, f := range []int16{0, 1} {
			want, err := jrevOn(ctx, su.PgConn(), fmt.Sprintf(q, "pt"), f, "1")
			if err != nil {
				t.Fatalf("direct %s: %v", q, err)
			}
			got, err := jrevOn(ctx, app.PgConn(), fmt.Sprintf(q, "et"), f, "1")
			if err != nil {
				t.Errorf("%s (format %d) through pgveil: %v", q, f, err)
				continue
			}
			if got != want {
				t.Logf("%s (format %d): documents differ (see the per-type errors)", fmt.Sprintf(q, "et"), f)
			}
		}
	}
}

// TestEncJSONReviewHolds: attacks withstood end to end.
func TestEncJSONReviewHolds(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	p := startEncProxy(t, 9476, 9477)
	secret := "jrev-holds@example.org"
	p.remember(secret)
	app := connectPgx(t, ctx, p.url())
	var id int64
	if err := app.QueryRow(ctx, `INSERT INTO users (org_id, name, email) VALUES (9476, 'h', $1) RETURNING id`, secret).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(ctx, `INSERT INTO contacts (org_id, email, note) VALUES (9476, $1, $2)`, "jrev-contact@example.org", `note "with" \ quotes`); err != nil {
		t.Fatal(err)
	}
	p.remember("jrev-contact@example.org")
	url := p.url()
	arg := fmt.Sprint(id)
	// jsonb in binary (version byte), json in binary, text: all opened.
	for _, c := range []struct {
		sql  string
		f    int16
		want string
	}{
		{`SELECT jsonb_build_object('e', email, 'o', org_id) FROM users WHERE id = $1`, 1, "\x01" + `{"e": "` + secret + `", "o": 9476}`},
		{`SELECT jsonb_build_object('e', email, 'o', org_id) FROM users WHERE id = $1`, 0, `{"e": "` + secret + `", "o": 9476}`},
		{`SELECT json_build_array(org_id, email) FROM users WHERE id = $1`, 1, `[9476, "` + secret + `"]`},
	} {
		got, err := jrevQuery(t, ctx, url, c.sql, c.f, arg)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		if c.want != "" && got != c.want {
			t.Errorf("%s (format %d): %q, want %q", c.sql, c.f, got, c.want)
		}
	}
	got, err := jrevQuery(t, ctx, url, `SELECT coalesce(json_agg(json_build_array(c.email, c.note)), '[]'::json) FROM contacts c WHERE c.org_id = 9476`, 0)
	if err != nil || got != `[["jrev-contact@example.org", "note \"with\" \\ quotes"]]` {
		t.Errorf("contacts: %s, %v", got, err)
	}
	// A row's email moved to another tenant's row: refused in JSON too.
	su := superConn(t, ctx)
	var moved int64
	if err := su.QueryRow(ctx, `INSERT INTO users (org_id, name, email) SELECT 9477, 'm', email FROM users WHERE id = $1 RETURNING id`, id).Scan(&moved); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`SELECT json_build_array(org_id, email) FROM users WHERE id = $1`,
		`SELECT jsonb_build_object('email', email, 'org', org_id, 'n', name) FROM users WHERE id = $1`,
		`SELECT json_agg(json_build_array(u.org_id, u.email)) FROM users u WHERE u.id = $1`,
		`SELECT json_build_array(u.org_id, u.email, v.org_id, v.email) FROM users u, users v WHERE u.id = $1 AND v.id = u.id`,
	} {
		got, err := jrevQuery(t, ctx, url, sql, 0, fmt.Sprint(moved))
		if err == nil || strings.Contains(got, secret) {
			t.Errorf("%s on the moved row: %q, %v; want PV001", sql, got, err)
		}
	}
	// The simple protocol and a cursor map the JSON too.
	c := connectPgx(t, ctx, url)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, fmt.Sprintf(`DECLARE jc CURSOR FOR SELECT json_build_array(org_id, email) FROM users WHERE id = %d`, id), pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := tx.QueryRow(ctx, `FETCH 1 FROM jc`, pgx.QueryExecModeSimpleProtocol).Scan(&s); err != nil || !strings.Contains(s, secret) {
		t.Errorf("FETCH from a cursor over JSON: %q, %v", s, err)
	}
}
