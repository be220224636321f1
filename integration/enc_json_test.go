package integration

// JSON built from encrypted columns, end to end: the real server builds
// json/jsonb from envelopes, pgveil opens them inside the document and
// removes the tenant members it added; what the client reads equals the
// plaintext, in the simple protocol, the extended one with text results
// and with jsonb's binary format (its version byte), while the server
// itself only ever held and returned ciphertext.

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestEncJSON(t *testing.T) {
	relayLeakCheck(t)
	const org = 9501
	p := startEncProxy(t, encOrgs(org, 1)...)
	ctx := testCtx(t, time.Minute)
	conn := connectPgx(t, ctx, p.url())
	users := []struct{ name, email, phone string }{
		{"ann", "Ann.Json@Example.org", `say "hi" \ zoë 🙂` + "\n\ttab"},
		{"bob", "bob.json@example.org", "555-0101"},
	}
	for _, u := range users {
		p.remember(u.email, u.phone)
		if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, name, email, phone, birth_date, api_token) VALUES ($1, $2, $3, $4, $5, $6)`,
			org, u.name, u.email, u.phone, "0044-03-15 BC", int64(9007199254740993)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO contacts (org_id, email, note) VALUES ($1, $2, 'n1'), ($1, $3, NULL)`, org, users[0].email, users[1].email); err != nil {
		t.Fatal(err)
	}
	var wantObjs, wantPairs, wantArrs []any
	for _, u := range users {
		wantObjs = append(wantObjs, map[string]any{"e": u.email, "p": u.phone, "n": u.name})
		wantPairs = append(wantPairs, map[string]any{"e": u.email, "e2": u.email})
		wantArrs = append(wantArrs, []any{u.name, u.email, "0044-03-15 BC", json.Number("9007199254740993")})
	}
	cases := []struct {
		name, sql string
		want      any
	}{
		{"json_build_object without the tenant", `SELECT json_build_object('e', email, 'p', phone, 'n', name) FROM users WHERE org_id = $1 ORDER BY id`, wantObjs},
		{"jsonb_build_object over a self-join: two tenants added and removed", `SELECT jsonb_build_object('e', u.email, 'e2', u2.email) FROM users u JOIN users u2 ON u2.id = u.id WHERE u.org_id = $1 ORDER BY u.id`, wantPairs},
		{"json_build_array with the tenant", `SELECT json_build_array(name, email, birth_date, api_token, org_id) -> 0 IS NOT NULL, json_build_array(name, email, birth_date, api_token) FROM users WHERE org_id = $1 ORDER BY id`, nil},
		{"json_agg of json_build_array in a LATERAL", `SELECT x.data FROM orgs o LEFT JOIN LATERAL (SELECT coalesce(json_agg(json_build_array(u.name, u.email, u.birth_date, u.api_token) ORDER BY u.id), '[]'::json) AS data FROM users u WHERE u.org_id = o.id) x ON true WHERE o.id = $1`, []any{wantArrs}},
		{"json_agg of a table without key_context", `SELECT json_agg(email ORDER BY id) FROM contacts WHERE org_id = $1`, []any{[]any{users[0].email, users[1].email}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.want == nil {
				// json_build_array(…) -> 0 uses the value: refused.
				_, err := conn.Exec(ctx, c.sql, org)
				if err == nil || !strings.Contains(err.Error(), "0A000") {
					t.Fatalf("want a refusal: %v", err)
				}
				return
			}
			for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
				rows, err := conn.Query(ctx, c.sql, mode, org)
				if err != nil {
					t.Fatalf("%v: %v", mode, err)
				}
				var got []any
				for rows.Next() {
					raw := rows.RawValues()[0]
					if rows.FieldDescriptions()[0].Format == 1 && raw[0] == 1 {
						raw = raw[1:] // jsonb's binary format
					}
					if strings.Contains(string(raw), `\\x`) || strings.Contains(string(raw), "__pgveil") {
						t.Errorf("%v: the client got pgveil's bytes: %s", mode, raw)
					}
					got = append(got, decodeNumbers(t, raw))
				}
				if err := rows.Err(); err != nil {
					t.Fatalf("%v: %v", mode, err)
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Errorf("%v:\n got %#v\nwant %#v", mode, got, c.want)
				}
			}
		})
	}
	// The server built its JSON from ciphertext: read directly, the same
	// query returns envelopes and no plaintext.
	su := superConn(t, ctx)
	var direct string
	if err := su.QueryRow(ctx, `SELECT json_agg(json_build_array(name, email, phone))::text FROM users WHERE org_id = $1`, org).Scan(&direct); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if strings.Contains(direct, u.email) || strings.Contains(direct, "555-0101") {
			t.Errorf("direct JSON holds plaintext: %s", direct)
		}
	}
	if !strings.Contains(direct, `"\\x`) {
		t.Errorf("direct JSON holds no envelope: %.200s", direct)
	}
}

// decodeNumbers decodes JSON keeping numbers exact.
func decodeNumbers(t *testing.T, raw []byte) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%v in %s", err, raw)
	}
	return v
}
