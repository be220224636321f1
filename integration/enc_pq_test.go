package integration

import (
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/lib/pq"
)

// TestEncLibPQ runs the scenario with lib/pq through database/sql
// (extended protocol, text parameters with unknown types), then writes the
// COPY rows with pq.CopyIn (COPY … FROM STDIN in text format; lib/pq has
// no COPY TO).
func TestEncLibPQ(t *testing.T) {
	relayLeakCheck(t)
	p := startEncProxy(t, encOrgs(21, 1)...)
	ctx := testCtx(t, time.Minute)
	s := newEncSpec(p, "libpq", 21)
	db, err := sql.Open("postgres", p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	t.Run("scenario", func(t *testing.T) {
		runSteps(t, ctx, sqlRunner{db: db, pqArgs: true}, encSteps(s))
		verifyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})
	t.Run("copy_in", func(t *testing.T) {
		err := func() error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			stmt, err := tx.PrepareContext(ctx, pq.CopyIn("users", "org_id", "name", "email", "phone", "ssn", "birth_date", "api_token"))
			if err != nil {
				return fmt.Errorf("pq.CopyIn: %w", err)
			}
			for _, u := range s.copyRows() {
				if _, err := stmt.ExecContext(ctx, userArgs(s.CopyOrg, u)...); err != nil {
					return fmt.Errorf("pq.CopyIn row: %w", err)
				}
			}
			if _, err := stmt.ExecContext(ctx); err != nil {
				return fmt.Errorf("pq.CopyIn flush: %w", err)
			}
			if err := stmt.Close(); err != nil {
				return err
			}
			return tx.Commit()
		}()
		if err != nil {
			t.Errorf("COPY FROM STDIN with lib/pq through pgveil: %v", err)
		}
		verifyCopyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})
}

// TestEncSQLNamed runs the scenario the way sqlx users write it:
// database/sql (pgx's stdlib driver) with :name parameters bound from
// structs and maps, expanded to $n by bindNamed (a small stand-in for
// sqlx.Named, which this module does not depend on).
func TestEncSQLNamed(t *testing.T) {
	relayLeakCheck(t)
	p := startEncProxy(t, encOrgs(31, 1)...)
	ctx := testCtx(t, time.Minute)
	s := newEncSpec(p, "sqlnamed", 31)
	db, err := sql.Open("pgx", p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	type userRec struct {
		OrgID int64      `db:"org_id"`
		Name  string     `db:"name"`
		Email *string    `db:"email"`
		Phone *string    `db:"phone"`
		SSN   *string    `db:"ssn"`
		Birth *time.Time `db:"birth_date"`
		Token *int64     `db:"api_token"`
	}
	rec := func(u encUser) userRec {
		r := userRec{OrgID: s.Org, Name: u.Name, Email: u.Email, Phone: u.Phone, SSN: u.SSN}
		if d, ok := dateArg(u.Birth).(time.Time); ok {
			r.Birth = &d
		}
		if n, ok := tokenArg(u.Token).(int64); ok {
			r.Token = &n
		}
		return r
	}
	exec := func(what, query string, arg any, want int64) {
		t.Helper()
		q, args, err := bindNamed(query, arg)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		res, err := db.ExecContext(ctx, q, args...)
		if err != nil {
			t.Errorf("%s: %v\n  sql: %s", what, err, q)
			return
		}
		if n, _ := res.RowsAffected(); n != want {
			t.Errorf("%s: %d rows affected, want %d", what, n, want)
		}
	}
	query := func(what, query string, arg any, want [][]*string) {
		t.Helper()
		q, args, err := bindNamed(query, arg)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		rows, err := db.QueryContext(ctx, q, args...)
		if err != nil {
			t.Errorf("%s: %v\n  sql: %s", what, err, q)
			return
		}
		got, err := scanSQLRows(rows)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			return
		}
		compareRows(t, what, got, want)
	}

	insert := `INSERT INTO users (org_id, name, email, phone, ssn, birth_date, api_token)
		VALUES (:org_id, :name, :email, :phone, :ssn, :birth_date, :api_token)`
	for _, u := range s.Users {
		exec("NamedExec insert "+u.Name, insert, rec(u), 1)
	}
	u1 := s.Users[0]
	query("find by :email (normalize), with a ::text cast", `SELECT name, email, phone, ssn, birth_date, api_token
		FROM users WHERE email = :email::text AND org_id = :org`, map[string]any{"email": s.LookupEmail, "org": s.Org}, [][]*string{u1.row()})
	var all [][]*string
	for _, u := range s.Users {
		all = append(all, u.row())
	}
	query("read all", `SELECT name, email, phone, ssn, birth_date, api_token FROM users WHERE org_id = :org ORDER BY id`,
		map[string]any{"org": s.Org}, all)
	query("IN (:a, :b, :c)", `SELECT email FROM users WHERE email IN (:a, :b, :c) ORDER BY id`,
		map[string]any{"a": s.InEmails[0], "b": s.InEmails[1], "c": s.InEmails[2]}, [][]*string{{sp(s.InExpect[0])}, {sp(s.InExpect[1])}})
	query("= ANY(:emails)", `SELECT email FROM users WHERE email = ANY(:emails) ORDER BY id`,
		map[string]any{"emails": s.AnyEmails}, [][]*string{{sp(s.AnyExpect[0])}, {sp(s.AnyExpect[1])}})
	query("1 MiB ssn", `SELECT name FROM users WHERE ssn = :ssn`, map[string]any{"ssn": s.BigSSN}, names(s.BigName))
	exec("UPDATE with named parameters", `UPDATE users SET email = :new_email, phone = :new_phone WHERE org_id = :org AND name = :name`,
		map[string]any{"new_email": s.NewEmail, "new_phone": s.NewPhone, "org": s.Org, "name": s.UpdateName}, 1)
	query("old email gone", `SELECT name FROM users WHERE email = :e`, map[string]any{"e": s.OldEmail}, nil)
	query("new email found", `SELECT name FROM users WHERE email = :e`, map[string]any{"e": s.NewLookup}, names(s.UpdateName))
	up := rec(s.Upsert)
	upsert := `INSERT INTO users (org_id, name, email, phone) VALUES (:org_id, :name, :email, :phone) ON CONFLICT (email) DO `
	exec("ON CONFLICT DO NOTHING (new)", upsert+"NOTHING", up, 1)
	up.Email, up.Phone = sp(s.UpsertVariant), sp(s.UpsertPhone2)
	exec("ON CONFLICT DO NOTHING (conflict)", upsert+"NOTHING", up, 0)
	query("ON CONFLICT DO UPDATE RETURNING", upsert+"UPDATE SET phone = EXCLUDED.phone RETURNING email, phone", up,
		[][]*string{{s.Upsert.Email, sp(s.UpsertPhone2)}})
	exec("insert doomed", insert, rec(s.Doomed), 1)
	d := s.Doomed
	query("DELETE RETURNING", `DELETE FROM users WHERE email = :email RETURNING name, email, ssn, birth_date, api_token`,
		map[string]any{"email": s.DoomedLookup}, [][]*string{{sp(d.Name), d.Email, d.SSN, d.Birth, d.Token}})
	for _, c := range s.Contacts {
		exec("insert contact", `INSERT INTO contacts (org_id, email, note) VALUES (:org, :email, :note)`,
			map[string]any{"org": s.Org, "email": strArg(c.Email), "note": strArg(c.Note)}, 1)
	}
	query("JOIN", `SELECT u.name, u.email, c.email, c.note FROM users u JOIN contacts c ON u.email = c.email
		WHERE u.org_id = :org AND c.org_id = :org ORDER BY u.id, c.id`, map[string]any{"org": s.Org}, s.JoinExpect)
	verifyThroughProxy(t, ctx, p, s)
	verifyAtRest(t, ctx, s.plaintexts())
}

// bindNamed expands sqlx-style :name parameters to $n and returns the
// arguments in order, taken from a map[string]any or from a struct's
// `db` tags. It leaves '…' strings, "…" identifiers, $$…$$ bodies,
// comments and :: casts alone; a name used twice binds one parameter.
func bindNamed(query string, arg any) (string, []any, error) {
	lookup, err := namedLookup(arg)
	if err != nil {
		return "", nil, err
	}
	var out strings.Builder
	var args []any
	num := map[string]int{}
	isName := func(c byte, first bool) bool {
		return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
	}
	for i := 0; i < len(query); {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(query) {
				if query[j] == c {
					if j+1 < len(query) && query[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			out.WriteString(query[i:min(j+1, len(query))])
			i = j + 1
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			out.WriteString(query[i : i+j])
			i += j
		case c == '$' && strings.HasPrefix(query[i:], "$$"):
			j := strings.Index(query[i+2:], "$$")
			if j < 0 {
				return "", nil, fmt.Errorf("unterminated $$ in %q", query)
			}
			out.WriteString(query[i : i+2+j+2])
			i += 2 + j + 2
		case c == ':' && i+1 < len(query) && query[i+1] == ':':
			out.WriteString("::")
			i += 2
		case c == ':' && i+1 < len(query) && isName(query[i+1], true):
			j := i + 1
			for j < len(query) && isName(query[j], false) {
				j++
			}
			name := query[i+1 : j]
			n, ok := num[name]
			if !ok {
				v, found := lookup(name)
				if !found {
					return "", nil, fmt.Errorf("no value for :%s", name)
				}
				args = append(args, v)
				n = len(args)
				num[name] = n
			}
			fmt.Fprintf(&out, "$%d", n)
			i = j
		default:
			out.WriteByte(c)
			i++
		}
	}
	return out.String(), args, nil
}

// namedLookup finds named values in a map or in a struct's db tags.
func namedLookup(arg any) (func(string) (any, bool), error) {
	if m, ok := arg.(map[string]any); ok {
		return func(n string) (any, bool) { v, ok := m[n]; return v, ok }, nil
	}
	v := reflect.ValueOf(arg)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil, fmt.Errorf("named arguments from %T", arg)
	}
	return func(n string) (any, bool) {
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).Tag.Get("db") == n {
				f := v.Field(i)
				if f.Kind() == reflect.Pointer && f.IsNil() {
					return nil, true
				}
				return f.Interface(), true
			}
		}
		return nil, false
	}, nil
}

func TestEncBindNamed(t *testing.T) {
	q, args, err := bindNamed(`SELECT ':x', "a:b", c::text FROM t WHERE a = :x AND b = :y::int -- :z
		AND d = :x`, map[string]any{"x": 1, "y": 2})
	if err != nil {
		t.Fatal(err)
	}
	want := `SELECT ':x', "a:b", c::text FROM t WHERE a = $1 AND b = $2::int -- :z
		AND d = $1`
	if q != want || !reflect.DeepEqual(args, []any{1, 2}) {
		t.Fatalf("bindNamed:\n got %q %v\nwant %q", q, args, want)
	}
	if _, _, err := bindNamed(`SELECT :missing`, map[string]any{}); err == nil {
		t.Fatal("bindNamed: no error for a missing name")
	}
}
