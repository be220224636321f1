package integration

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lib/pq"
)

// The scenario as steps, for the Go drivers: each step is one statement
// with its arguments and what it must return. The same list runs one
// statement at a time (pgx in each QueryExecMode, lib/pq) and as one pgx
// Batch (a single pipeline). The programs under drivers/ run the same
// steps in their own languages, from the same encSpec.

// encStep is one statement of the scenario.
type encStep struct {
	name string
	sql  string
	args []any
	// rows: the statement returns rows, compared with want (in order).
	rows bool
	want [][]*string
	// affected is the command tag's row count when >= 0.
	affected int64
}

// strArray marks an argument a driver must send as a text array.
type strArray []string

// dateArg is a YYYY-MM-DD spec value as a Go driver's natural argument:
// time.Time at midnight UTC, or nil.
func dateArg(s *string) any {
	if s == nil {
		return nil
	}
	d, err := time.Parse("2006-01-02", *s)
	if err != nil {
		panic(err)
	}
	return d
}

// tokenArg is a spec token as int64, or nil.
func tokenArg(s *string) any {
	if s == nil {
		return nil
	}
	n, err := strconv.ParseInt(*s, 10, 64)
	if err != nil {
		panic(err)
	}
	return n
}

// strArg is a nullable string argument.
func strArg(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func userArgs(org int64, u encUser) []any {
	return []any{org, u.Name, strArg(u.Email), strArg(u.Phone), strArg(u.SSN), dateArg(u.Birth), tokenArg(u.Token)}
}

func names(ns ...string) [][]*string {
	var out [][]*string
	for _, n := range ns {
		out = append(out, []*string{sp(n)})
	}
	return out
}

const userCols = "name, email, phone, ssn, birth_date, api_token"

// encSteps is the scenario of issue 5 for one spec: insert one and many,
// find by email case-insensitively, IN and = ANY, a 1 MiB blind-indexed
// lookup, NULL lookups, UPDATE … RETURNING, ON CONFLICT on the blind index
// (DO NOTHING and DO UPDATE), DELETE … RETURNING, a JOIN on the shared
// blind index, and the final state.
func encSteps(s *encSpec) []encStep {
	u := s.Users
	ins := "INSERT INTO users (org_id, " + userCols + ") VALUES "
	var many []string
	var manyArgs []any
	for i, usr := range u[1:] {
		b := i * 7
		many = append(many, fmt.Sprintf("($%d, $%d, $%d, $%d, $%d, $%d, $%d)", b+1, b+2, b+3, b+4, b+5, b+6, b+7))
		manyArgs = append(manyArgs, userArgs(s.Org, usr)...)
	}
	var allRows [][]*string
	for _, usr := range u {
		allRows = append(allRows, usr.row())
	}
	var contactSQL []string
	var contactArgs []any
	for i, c := range s.Contacts {
		contactSQL = append(contactSQL, fmt.Sprintf("($%d, $%d, $%d)", 3*i+1, 3*i+2, 3*i+3))
		contactArgs = append(contactArgs, s.Org, strArg(c.Email), strArg(c.Note))
	}
	one := func(vs ...*string) [][]*string { return [][]*string{vs} }
	col := func(vs []string) [][]*string {
		var out [][]*string
		for _, v := range vs {
			out = append(out, []*string{sp(v)})
		}
		return out
	}
	var final [][]*string
	for _, usr := range s.Final {
		final = append(final, usr.row())
	}
	up := s.Upsert
	doomed := s.Doomed
	return []encStep{
		{name: "insert one RETURNING", sql: ins + "($1, $2, $3, $4, $5, $6, $7) RETURNING email, phone, birth_date, api_token",
			args: userArgs(s.Org, u[0]), rows: true, want: one(u[0].Email, u[0].Phone, u[0].Birth, u[0].Token), affected: 1},
		{name: "insert many", sql: ins + strings.Join(many, ", "), args: manyArgs, affected: int64(len(u) - 1)},
		{name: "find by email (normalize)", sql: "SELECT " + userCols + " FROM users WHERE email = $1",
			args: []any{s.LookupEmail}, rows: true, want: [][]*string{u[0].row()}, affected: 1},
		{name: "read all (NULLs, Unicode, empty, 1 MiB)", sql: "SELECT " + userCols + " FROM users WHERE org_id = $1 ORDER BY id",
			args: []any{s.Org}, rows: true, want: allRows, affected: int64(len(u))},
		{name: "IN", sql: "SELECT email FROM users WHERE email IN ($1, $2, $3) ORDER BY id",
			args: []any{s.InEmails[0], s.InEmails[1], s.InEmails[2]}, rows: true, want: col(s.InExpect), affected: 2},
		{name: "= ANY($1)", sql: "SELECT email FROM users WHERE email = ANY($1) ORDER BY id",
			args: []any{strArray(s.AnyEmails)}, rows: true, want: col(s.AnyExpect), affected: 2},
		{name: "1 MiB blind-index lookup", sql: "SELECT name FROM users WHERE ssn = $1",
			args: []any{s.BigSSN}, rows: true, want: names(s.BigName), affected: 1},
		{name: "phone IS NULL", sql: "SELECT name FROM users WHERE org_id = $1 AND phone IS NULL ORDER BY id",
			args: []any{s.Org}, rows: true, want: names(s.NullPhone...), affected: 1},
		{name: "email IS NULL", sql: "SELECT name FROM users WHERE org_id = $1 AND email IS NULL ORDER BY id",
			args: []any{s.Org}, rows: true, want: names(s.NullEmail...), affected: 1},
		{name: "UPDATE RETURNING", sql: "UPDATE users SET email = $1, phone = $2 WHERE org_id = $3 AND name = $4 RETURNING email, phone",
			args: []any{s.NewEmail, s.NewPhone, s.Org, s.UpdateName}, rows: true, want: one(sp(s.NewEmail), sp(s.NewPhone)), affected: 1},
		{name: "old email gone", sql: "SELECT name FROM users WHERE email = $1", args: []any{s.OldEmail}, rows: true, affected: 0},
		{name: "new email found", sql: "SELECT name FROM users WHERE email = $1", args: []any{s.NewLookup}, rows: true, want: names(s.UpdateName), affected: 1},
		{name: "ON CONFLICT DO NOTHING (new)", sql: "INSERT INTO users (org_id, name, email, phone) VALUES ($1, $2, $3, $4) ON CONFLICT (email) DO NOTHING",
			args: []any{s.Org, up.Name, strArg(up.Email), strArg(up.Phone)}, affected: 1},
		{name: "ON CONFLICT DO NOTHING (conflict)", sql: "INSERT INTO users (org_id, name, email, phone) VALUES ($1, $2, $3, $4) ON CONFLICT (email) DO NOTHING",
			args: []any{s.Org, up.Name, s.UpsertVariant, s.UpsertPhone2}, affected: 0},
		{name: "ON CONFLICT DO UPDATE RETURNING", sql: "INSERT INTO users (org_id, name, email, phone) VALUES ($1, $2, $3, $4) ON CONFLICT (email) DO UPDATE SET phone = EXCLUDED.phone RETURNING email, phone",
			args: []any{s.Org, up.Name, s.UpsertVariant, s.UpsertPhone2}, rows: true, want: one(up.Email, sp(s.UpsertPhone2)), affected: 1},
		{name: "insert doomed", sql: ins + "($1, $2, $3, $4, $5, $6, $7)", args: userArgs(s.Org, doomed), affected: 1},
		{name: "DELETE RETURNING", sql: "DELETE FROM users WHERE email = $1 RETURNING name, email, ssn, birth_date, api_token",
			args: []any{s.DoomedLookup}, rows: true, want: one(sp(doomed.Name), doomed.Email, doomed.SSN, doomed.Birth, doomed.Token), affected: 1},
		{name: "deleted row gone", sql: "SELECT count(*) FROM users WHERE email = $1", args: []any{s.DoomedLookup}, rows: true, want: names("0"), affected: 1},
		{name: "insert contacts", sql: "INSERT INTO contacts (org_id, email, note) VALUES " + strings.Join(contactSQL, ", "),
			args: contactArgs, affected: int64(len(s.Contacts))},
		{name: "JOIN on the shared blind index", sql: "SELECT u.name, u.email, c.email, c.note FROM users u JOIN contacts c ON u.email = c.email WHERE u.org_id = $1 AND c.org_id = $1 ORDER BY u.id, c.id",
			args: []any{s.Org}, rows: true, want: s.JoinExpect, affected: int64(len(s.JoinExpect))},
		{name: "final state", sql: "SELECT " + userCols + " FROM users WHERE org_id = $1 ORDER BY id",
			args: []any{s.Org}, rows: true, want: final, affected: int64(len(final))},
	}
}

// stepRunner runs one statement with a Go driver.
type stepRunner interface {
	run(ctx context.Context, st encStep) (rows [][]*string, affected int64, err error)
}

// runSteps runs the scenario one statement at a time and checks each.
func runSteps(t *testing.T, ctx context.Context, r stepRunner, steps []encStep) {
	t.Helper()
	for _, st := range steps {
		rows, n, err := r.run(ctx, st)
		checkStep(t, st, rows, n, err)
	}
}

func checkStep(t *testing.T, st encStep, rows [][]*string, n int64, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("step %q: %v\n  sql: %s", st.name, err, st.sql)
		return
	}
	if st.rows {
		compareRows(t, "step "+strconv.Quote(st.name), rows, st.want)
	}
	if st.affected >= 0 && n != st.affected {
		t.Errorf("step %q: %d rows affected, want %d", st.name, n, st.affected)
	}
}

// pgxRunner runs steps with pgx in one QueryExecMode.
type pgxRunner struct{ conn *pgx.Conn }

func (r pgxRunner) run(ctx context.Context, st encStep) ([][]*string, int64, error) {
	rows, err := r.conn.Query(ctx, st.sql, pgxArgs(st.args)...)
	if err != nil {
		return nil, 0, err
	}
	out, err := collectStrings(rows)
	return out, rows.CommandTag().RowsAffected(), err
}

func pgxArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		if sa, ok := a.(strArray); ok {
			a = []string(sa)
		}
		out[i] = a
	}
	return out
}

// sqlRunner runs steps with database/sql (lib/pq, or pgx's stdlib).
type sqlRunner struct {
	db     *sql.DB
	pqArgs bool // wrap arrays with pq.Array
}

func (r sqlRunner) args(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		if sa, ok := a.(strArray); ok {
			if r.pqArgs {
				a = pq.Array([]string(sa))
			} else {
				a = []string(sa)
			}
		}
		out[i] = a
	}
	return out
}

func (r sqlRunner) run(ctx context.Context, st encStep) ([][]*string, int64, error) {
	if !st.rows {
		res, err := r.db.ExecContext(ctx, st.sql, r.args(st.args)...)
		if err != nil {
			return nil, 0, err
		}
		n, err := res.RowsAffected()
		return nil, n, err
	}
	rows, err := r.db.QueryContext(ctx, st.sql, r.args(st.args)...)
	if err != nil {
		return nil, 0, err
	}
	out, err := scanSQLRows(rows)
	return out, int64(len(out)), err
}

// scanSQLRows reads database/sql rows as strings.
func scanSQLRows(rows *sql.Rows) ([][]*string, error) {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]*string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, normRow(vals))
	}
	return out, rows.Err()
}
