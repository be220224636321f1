package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// catalogRef has encSchema's encrypted columns with their logical types,
// as a plain table: what the catalog must say of users and contacts
// through pgveil.
const catalogRef = `
DROP TABLE IF EXISTS catalog_ref;
CREATE TABLE catalog_ref (email text, phone text, ssn text, birth_date date, api_token int8, note text);
GRANT SELECT ON catalog_ref TO scram_user;
`

// TestEncCatalogTypes checks the catalog overlays (rewrite/overlay.go):
// through pgveil, pg_attribute and information_schema.columns describe an
// encrypted column exactly as a column of its logical type, in every
// column of theirs, in both protocols; every other row and column is what
// the server returns directly, byte for byte; psql's \d shows the logical
// types; a direct connection still sees bytea.
func TestEncCatalogTypes(t *testing.T) {
	p := startEncProxy(t, encOrgs(91, 1)...)
	ctx := testCtx(t, time.Minute)
	su := superConn(t, ctx)
	if _, err := su.Exec(ctx, catalogRef); err != nil {
		t.Fatal(err)
	}
	direct := connectPgx(t, ctx, directURL("scram_user", "sslmode=disable"))
	// A row written through pgveil, read back at the end: the overlays
	// change what the catalog says, never what a column holds.
	const email, birth = "catalog-types-5512@example.org", "1984-02-29"
	p.remember(email)
	app := connectPgx(t, ctx, p.url())
	if _, err := app.Exec(ctx, `INSERT INTO users (org_id, name, email, birth_date, api_token) VALUES (91, 'c', $1, $2, 12345678)`, email, birth); err != nil {
		t.Fatal(err)
	}
	encrypted := map[string]bool{"email": true, "phone": true, "ssn": true, "birth_date": true, "api_token": true, "note": true}

	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		cfg, err := pgx.ParseConfig(p.url())
		if err != nil {
			t.Fatal(err)
		}
		cfg.DefaultQueryExecMode = mode
		via, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { via.Close(context.Background()) })

		t.Run(mode.String()+"/pg_attribute", func(t *testing.T) {
			// A table pgveil does not encrypt: every column of every row as the server has it.
			const q = `SELECT * FROM pg_catalog.pg_attribute WHERE attrelid = 'orgs'::regclass ORDER BY attnum`
			compareRaw(t, ctx, q, direct, via, nil)
			// users and contacts: the type columns of an encrypted column are
			// catalog_ref's same-named column's; all else as the server has it.
			for _, table := range []string{"users", "contacts"} {
				q := fmt.Sprintf(`SELECT * FROM pg_attribute WHERE attrelid = '%s'::regclass AND attnum > 0 ORDER BY attnum`, table)
				want := rawRows(t, ctx, direct, q)
				ref := rawByName(t, ctx, direct, `SELECT * FROM pg_attribute WHERE attrelid = 'catalog_ref'::regclass AND attnum > 0`, "attname")
				for _, r := range want.rows {
					name := r[want.col("attname")]
					if !encrypted[name] {
						continue
					}
					for _, c := range []string{"atttypid", "attlen", "attbyval", "attalign", "attstorage", "attcollation"} {
						r[want.col(c)] = ref[name][want.col(c)]
					}
				}
				got := rawRows(t, ctx, via, q)
				want.equal(t, got)
			}
		})

		t.Run(mode.String()+"/format_type", func(t *testing.T) {
			// ActiveRecord's and SQLAlchemy's reflection read format_type.
			const q = `SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), t.typname
				FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
				WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`
			got := rawRows(t, ctx, via, q, "users")
			want := map[string]string{"id": "bigint", "org_id": "bigint", "name": "text", "email": "text", "email_bidx": "bytea",
				"phone": "text", "ssn": "text", "ssn_bidx": "bytea", "birth_date": "date", "api_token": "bigint", "created_at": "timestamp with time zone"}
			if len(got.rows) != len(want) {
				t.Fatalf("%d columns, want %d: %v", len(got.rows), len(want), got.rows)
			}
			for _, r := range got.rows {
				if want[r[0]] != r[1] {
					t.Errorf("%s: format_type %q, want %q", r[0], r[1], want[r[0]])
				}
			}
		})

		t.Run(mode.String()+"/qualified_columns", func(t *testing.T) {
			// SQLAlchemy 2.0's reflection names columns with their schema
			// and relation, and joins pg_attribute without an alias.
			const q = `SELECT pg_catalog.pg_attribute.attname AS name,
				pg_catalog.format_type(pg_catalog.pg_attribute.atttypid, pg_catalog.pg_attribute.atttypmod) AS format_type
				FROM pg_catalog.pg_class
				JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace
				LEFT OUTER JOIN pg_catalog.pg_attribute ON pg_catalog.pg_class.oid = pg_catalog.pg_attribute.attrelid
				  AND pg_catalog.pg_attribute.attnum > 0 AND NOT pg_catalog.pg_attribute.attisdropped
				WHERE pg_catalog.pg_class.relname = $1 AND pg_catalog.pg_namespace.nspname = 'public'
				ORDER BY pg_catalog.pg_attribute.attnum`
			got := rawRows(t, ctx, via, q, "contacts")
			want := [][]string{{"id", "bigint"}, {"org_id", "bigint"}, {"email", "text"}, {"email_bidx", "bytea"}, {"note", "text"}}
			if fmt.Sprint(got.rows) != fmt.Sprint(want) {
				t.Errorf("got %v, want %v", got.rows, want)
			}
		})

		t.Run(mode.String()+"/information_schema", func(t *testing.T) {
			const q = `SELECT * FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`
			compareRaw(t, ctx, q, direct, via, []any{"orgs"})
			ref := rawByName(t, ctx, direct, `SELECT * FROM information_schema.columns WHERE table_name = 'catalog_ref'`, "column_name")
			for _, table := range []string{"users", "contacts"} {
				want := rawRows(t, ctx, direct, q, table)
				for _, r := range want.rows {
					name := r[want.col("column_name")]
					if !encrypted[name] {
						continue
					}
					for i, c := range want.names {
						switch c {
						case "table_catalog", "table_schema", "table_name", "column_name", "ordinal_position", "column_default",
							"is_nullable", "dtd_identifier", "is_updatable":
						default:
							r[i] = ref[name][i]
						}
					}
				}
				got := rawRows(t, ctx, via, q, table)
				want.equal(t, got)
			}
		})
	}

	t.Run("psql_d", func(t *testing.T) {
		res := runPsql(t, ctx, p.url(), nil, nil, "-X", "-c", `\d users`)
		if res.Code != 0 {
			t.Fatalf("psql exited %d: %s", res.Code, res.Stderr)
		}
		for _, want := range []string{
			" email      | text ", " email_bidx | bytea ", " birth_date | date ", " api_token  | bigint ",
		} {
			if !strings.Contains(res.Stdout, want) {
				t.Errorf("\\d users through pgveil lacks %q:\n%s", want, res.Stdout)
			}
		}
	})

	t.Run("values", func(t *testing.T) {
		var gotBirth time.Time
		var token int64
		if err := app.QueryRow(ctx, `SELECT birth_date, api_token FROM users WHERE email = $1`, email).Scan(&gotBirth, &token); err != nil {
			t.Fatal(err)
		}
		if gotBirth.Format("2006-01-02") != birth || token != 12345678 {
			t.Errorf("read back %s %d, want %s 12345678", gotBirth.Format("2006-01-02"), token, birth)
		}
		verifyAtRest(t, ctx, []string{email})
	})

	t.Run("direct_unchanged", func(t *testing.T) {
		var typ string
		if err := direct.QueryRow(ctx, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'birth_date'`).Scan(&typ); err != nil {
			t.Fatal(err)
		}
		if typ != "bytea" {
			t.Errorf("direct: users.birth_date is %s, want bytea", typ)
		}
	})
}

// rawResult is a result in text format: column names and each value's
// text ("<NULL>" for NULL).
type rawResult struct {
	names []string
	rows  [][]string
}

func (r rawResult) col(name string) int {
	for i, n := range r.names {
		if n == name {
			return i
		}
	}
	panic("no column " + name)
}

func (r rawResult) equal(t *testing.T, got rawResult) {
	t.Helper()
	if strings.Join(got.names, ",") != strings.Join(r.names, ",") {
		t.Fatalf("columns\n%v\nwant\n%v", got.names, r.names)
	}
	if len(got.rows) != len(r.rows) {
		t.Fatalf("%d rows, want %d", len(got.rows), len(r.rows))
	}
	label := 0
	for i, n := range r.names {
		if n == "attname" || n == "column_name" {
			label = i
		}
	}
	for i := range r.rows {
		for j := range r.names {
			if got.rows[i][j] != r.rows[i][j] {
				t.Errorf("row %d (%s) %s = %q, want %q", i, r.rows[i][label], r.names[j], got.rows[i][j], r.rows[i][j])
			}
		}
	}
}

// rawRows runs q with every result column in text format.
func rawRows(t *testing.T, ctx context.Context, conn *pgx.Conn, q string, args ...any) rawResult {
	t.Helper()
	rows, err := conn.Query(ctx, q, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var res rawResult
	for _, f := range rows.FieldDescriptions() {
		res.names = append(res.names, f.Name)
	}
	for rows.Next() {
		var row []string
		for _, v := range rows.RawValues() {
			if v == nil {
				row = append(row, "<NULL>")
			} else {
				row = append(row, string(v))
			}
		}
		res.rows = append(res.rows, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return res
}

// rawByName is rawRows keyed by the value of column key.
func rawByName(t *testing.T, ctx context.Context, conn *pgx.Conn, q, key string) map[string][]string {
	t.Helper()
	res := rawRows(t, ctx, conn, q)
	out := map[string][]string{}
	for _, r := range res.rows {
		out[r[res.col(key)]] = r
	}
	return out
}

// compareRaw runs q directly and through pgveil and requires equal results.
func compareRaw(t *testing.T, ctx context.Context, q string, direct, via *pgx.Conn, args []any) {
	t.Helper()
	rawRows(t, ctx, direct, q, args...).equal(t, rawRows(t, ctx, via, q, args...))
}
