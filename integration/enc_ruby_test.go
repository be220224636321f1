package integration

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/integration/harness"
)

// debianRuby is Debian's interpreter, which has ruby-pg and
// ruby-activerecord; a ruby earlier on PATH (rbenv, rvm) may not.
const debianRuby = "/usr/bin/ruby"

// rubyDriver checks that Debian's ruby can load lib (from Debian package
// pkg) and returns the directory of the Ruby scenario programs.
func rubyDriver(t *testing.T, lib, pkg string) string {
	t.Helper()
	return debianDriver(t, debianRuby, []string{"-e", `require "` + lib + `"`}, pkg, "ruby")
}

// TestEncRubyPG runs the scenario with ruby-pg: exec_params (unnamed,
// server-side parameters), prepare/exec_prepared (named, reused, dropped
// with DEALLOCATE and prepared again), exec with escape_literal (simple
// protocol), pipeline mode, the basic type maps (results decoded by the
// logical types pgveil reports), and copy_data in text and CSV, both
// directions, with and without the CopyRow coders.
func TestEncRubyPG(t *testing.T) {
	relayLeakCheck(t)
	dir := rubyDriver(t, "pg", "ruby-pg")
	p := startEncProxy(t, encOrgs(121, 1)...)
	ctx := testCtx(t, 2*time.Minute)
	s := newEncSpec(p, "ruby-pg", 121)
	spec := s.writeJSON(t)
	t.Run("scenario", func(t *testing.T) {
		runDriver(t, ctx, "ruby-pg", dir, debianRuby, "pg_scenario.rb", spec, "scenario")
		verifyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})
	t.Run("copy_data", func(t *testing.T) {
		runDriver(t, ctx, "ruby-pg copy_data", dir, debianRuby, "pg_scenario.rb", spec, "copy")
		verifyCopyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})
}

// arSpec is the spec of one ActiveRecord run: the suite's values, plus the
// rows and values only the ActiveRecord scenario writes.
type arSpec struct {
	*encSpec
	PreparedStatements bool `json:"prepared_statements"`
	StatementLimit     int  `json:"statement_limit"`
	// The tables' owner, for the migration of the timestamps phase.
	OwnerUser     string `json:"owner_user"`
	OwnerPassword string `json:"owner_password"`

	// Bulk is inserted with the upsert row in one insert_all; upsert_all
	// by primary key then replaces its values with BulkUpsert's.
	Bulk       encUser `json:"bulk"`
	BulkUpsert encUser `json:"bulk_upsert"`
	// The UPDATEs without the tenant (pgveil looks it up): SavePhone is
	// Users[1]'s phone by save; ColumnSSN Users[2]'s ssn by update_column,
	// ColumnsPhone and ColumnsBirth its phone and birth_date by
	// update_columns; UpdateAllEmail Users[3]'s email by update_all by id
	// (found again by UpdateAllLookup); ByEmailEmail Users[4]'s email by
	// update_all by email (ByEmailLookup, its old email upper-cased);
	// MultiToken the api_token of Users[2] and Users[4] by one update_all.
	SavePhone       string `json:"save_phone"`
	ColumnSSN       string `json:"column_ssn"`
	ColumnsPhone    string `json:"columns_phone"`
	ColumnsBirth    string `json:"columns_birth"`
	UpdateAllName   string `json:"update_all_name"`
	UpdateAllPhone  string `json:"update_all_phone"`
	UpdateAllEmail  string `json:"update_all_email"`
	UpdateAllLookup string `json:"update_all_lookup"`
	ByEmailLookup   string `json:"by_email_lookup"`
	ByEmailEmail    string `json:"by_email_email"`
	MultiToken      string `json:"multi_token"`
	// Other is created in OtherOrg (another tenant) and updated to
	// OtherPhone without the tenant; OtherFinal is OtherOrg's users after
	// the scenario.
	OtherOrg   int64     `json:"other_org"`
	Other      encUser   `json:"other"`
	OtherPhone string    `json:"other_phone"`
	OtherFinal []encUser `json:"other_final"`
	// RefusedPhone is written by the updates that change nothing: the one
	// over rows of two tenants (refused) and those matching no row.
	RefusedPhone string `json:"refused_phone"`
	// TxUser is created in a transaction that is rolled back.
	TxUser encUser `json:"tx_user"`
	// Nested is created, then updated to NestedPhone, in a transaction
	// whose savepoint saw a refusal.
	Nested      encUser `json:"nested"`
	NestedPhone string  `json:"nested_phone"`
	// Raw is written and read by the models as AR reflects them: a phone
	// with a backslash sequence, an 8-digit api_token (8 ASCII digits are
	// also a valid binary int8), a date. A dup of it with RawDupEmail is
	// saved in a transaction that is rolled back.
	Raw         encUser `json:"raw"`
	RawDupEmail string  `json:"raw_dup_email"`

	// ARFinal is the org's users after the scenario, by id.
	ARFinal []encUser `json:"ar_final"`
}

func newARSpec(p *encProxy, tag string, org int64, prepared bool) *arSpec {
	s := &arSpec{encSpec: newEncSpec(p, tag, org), PreparedStatements: prepared, StatementLimit: 3,
		OwnerUser: harness.SuperUser, OwnerPassword: harness.Passwords[harness.SuperUser]}
	u := s.Users
	s.Bulk = encUser{Name: "b1 " + tag, Email: sp("Bulk.One." + tag + "@Example.com"), Phone: sp("ph-b1-" + tag),
		SSN: sp("ssn-b1-" + tag), Birth: sp("1999-12-31"), Token: sp("-42")}
	s.BulkUpsert = encUser{Name: "b1 upserted " + tag, Email: sp("Bulk.Two." + tag + "@example.com"), Phone: sp("ph-b2 ✓ " + tag),
		SSN: sp("ssn-b2-" + tag), Birth: sp("2024-02-29"), Token: sp("-9223372036854775808")}
	s.SavePhone = "ph-save ✓ " + tag
	s.ColumnSSN = "ssn-update-column-" + tag
	s.ColumnsPhone = "ph-update-columns-" + tag
	s.ColumnsBirth = "1944-06-06"
	s.UpdateAllName = u[3].Name
	s.UpdateAllPhone = "ph-update-all-" + tag
	s.UpdateAllEmail = "Update.All." + tag + "@Example.com"
	s.UpdateAllLookup = " " + strings.ToUpper(s.UpdateAllEmail) + "  "
	s.ByEmailLookup = strings.ToUpper(*u[4].Email)
	s.ByEmailEmail = "By.Email." + tag + "@example.com"
	s.MultiToken = strconv.FormatInt(8675309000000000+org*100+7, 10)
	s.OtherOrg = org + 1000
	s.Other = encUser{Name: "o1 " + tag, Email: sp("Other.Tenant." + tag + "@example.com"), Phone: sp("ph-o1-" + tag),
		SSN: sp("ssn-o1-" + tag), Birth: sp("1933-03-03"), Token: sp(strconv.FormatInt(-(8675309000000000 + org*100 + 8), 10))}
	s.OtherPhone = "ph-o1b ✓ " + tag
	other := s.Other
	other.Phone = sp(s.OtherPhone)
	s.OtherFinal = []encUser{other}
	s.RefusedPhone = "ph-refused-" + tag
	s.TxUser = encUser{Name: "tx " + tag, Email: sp("Rollback." + tag + "@example.com"), Phone: sp("ph-tx-" + tag)}
	s.Nested = encUser{Name: "n1 " + tag, Email: sp("Nested." + tag + "@example.com"), Phone: sp("ph-n1-" + tag),
		SSN: sp("ssn-n1-" + tag), Birth: sp("1960-01-01"), Token: sp("7")}
	s.NestedPhone = "ph-n1b-" + tag
	s.Raw = encUser{Name: "raw " + tag, Email: sp("Raw.Reflected." + tag + "@Example.com"), Phone: sp(`ph\x41-raw-` + tag),
		SSN: sp("ssn-raw-" + tag), Birth: sp("2038-01-19"), Token: sp("12345678")}
	s.RawDupEmail = "Raw.Dup." + tag + "@example.com"

	final := slices.Clone(s.Final[:5]) // u1 (new email and phone) … u5
	final[1].Phone = sp(s.SavePhone)
	final[2].SSN, final[2].Phone, final[2].Birth, final[2].Token = sp(s.ColumnSSN), sp(s.ColumnsPhone), sp(s.ColumnsBirth), sp(s.MultiToken)
	final[3].Email, final[3].Phone = sp(s.UpdateAllEmail), sp(s.UpdateAllPhone)
	final[4].Email, final[4].Token = sp(s.ByEmailEmail), sp(s.MultiToken)
	up := s.Upsert
	up.Email, up.Phone = sp(s.UpsertVariant), sp(s.UpsertPhone2)
	nested := s.Nested
	nested.Phone = sp(s.NestedPhone)
	s.ARFinal = append(final, up, s.BulkUpsert, nested, s.Raw)
	if p != nil {
		p.remember(s.arPlaintexts()...)
	}
	return s
}

// arPlaintexts are the values only the ActiveRecord scenario writes.
func (s *arSpec) arPlaintexts() []string {
	var out []string
	for _, u := range []encUser{s.Bulk, s.BulkUpsert, s.TxUser, s.Nested, s.Other} {
		for _, v := range []*string{u.Email, u.Phone, u.SSN, u.Birth, u.Token} {
			if v != nil && *v != "" {
				out = append(out, *v)
			}
		}
	}
	// Not Raw's api_token: 8 decimal digits are 8 hex digits too, which the
	// table scan's hex of the ciphertexts (megabytes of it) may hold by
	// chance; the at-rest check still finds the column an envelope.
	raw := s.Raw
	out = append(out, s.SavePhone, s.ColumnSSN, s.ColumnsPhone, s.ColumnsBirth, s.UpdateAllPhone, s.UpdateAllEmail,
		strings.TrimSpace(s.UpdateAllLookup), s.ByEmailLookup, s.ByEmailEmail, strings.ToUpper(s.ByEmailEmail), s.MultiToken, s.OtherPhone, s.RefusedPhone)
	return append(out, s.NestedPhone, *raw.Email, *raw.Phone, *raw.SSN, *raw.Birth, s.RawDupEmail)
}

func (s *arSpec) plaintexts() []string { return append(s.encSpec.plaintexts(), s.arPlaintexts()...) }

// writeJSON writes the spec for the ActiveRecord program.
func (s *arSpec) writeJSON(t *testing.T) string {
	t.Helper()
	return writeSpecJSON(t, s)
}

// TestEncActiveRecord runs a Rails application's use of ActiveRecord 6.1
// (models over the suite's tables, no migrations) through pgveil, with
// prepared statements (AR's default; a statement_limit of 3 makes its
// pool DEALLOCATE as it goes) and without (values quoted into the SQL).
// The models declare no attribute types: AR reflects the logical types
// of the encrypted columns from the catalog through pgveil (text, date,
// bigint; blind indexes bytea), and they say nothing of the tenant: AR's
// UPDATEs name only the row's id or the relation's conditions, and pgveil
// looks the tenant up. A model needs only, recommended, its blind indexes
// in ignored_columns (see the program's header). The scenario: that
// reflection, create!, find_by/where/exists? by encrypted columns, pluck,
// count, find_each, reload; update!, save, update_column, update_columns
// and update_all (by id, by a blind-indexed column, two rows) without the
// tenant, each checked to send no org_id, including update! of a row of
// another tenant; update_all over rows of two tenants (refused, 0A000,
// nothing changed) and matching no row (0); insert_all, upsert_all,
// transactions and savepoints, destroy, a has_many keyed by an encrypted
// column and a join on it, a row of every logical type (a backslash in
// text, an 8-digit int8, a date), and the dup of a record that loaded its
// blind indexes (pgveil writes its own there). Then the rows of both tenants are read
// back through pgveil with pgx (which opens each value under its row's
// tenant) and the tables are checked at rest. Last, updated_at is added
// to users by a migration through pgveil, as Rails tables have it, and
// upsert_all is run against it.
func TestEncActiveRecord(t *testing.T) {
	relayLeakCheck(t)
	dir := rubyDriver(t, "active_record", "ruby-activerecord")
	rubyDriver(t, "pg", "ruby-pg")
	p := startEncProxy(t, encOrgs(131, 3)...)
	ctx := testCtx(t, 3*time.Minute)
	for i, mode := range []struct {
		name     string
		prepared bool
	}{{"prepared_statements", true}, {"no_prepared_statements", false}} {
		s := newARSpec(p, "ar-"+mode.name, 131+int64(i), mode.prepared)
		spec := s.writeJSON(t)
		t.Run(mode.name, func(t *testing.T) {
			runDriver(t, ctx, "ActiveRecord "+mode.name, dir, debianRuby, "activerecord_scenario.rb", spec, "scenario")
			verifyARThroughProxy(t, ctx, p, s, s.Contacts)
			compareUsers(t, "users of the other tenant, org "+strconv.FormatInt(s.OtherOrg, 10)+", read back through pgveil",
				selectUsers(t, ctx, connectPgx(t, ctx, p.url()), s.OtherOrg), s.OtherFinal)
			verifyAtRest(t, ctx, s.plaintexts())
		})
	}
	t.Run("updated_at", func(t *testing.T) {
		s := newARSpec(p, "ar-updated_at", 133, true)
		u1 := s.Users[0]
		u1.Phone = sp(s.NewPhone)
		s.ARFinal = []encUser{u1, {Name: s.Upsert.Name, Email: s.Upsert.Email, Phone: sp(s.UpsertPhone2)}}
		runDriver(t, ctx, "ActiveRecord updated_at", dir, debianRuby, "activerecord_scenario.rb", s.writeJSON(t), "timestamps")
		verifyARThroughProxy(t, ctx, p, s, nil)
		verifyAtRest(t, ctx, s.plaintexts())
	})
}

// verifyARThroughProxy reads the org's users and contacts back through
// pgveil with pgx.
func verifyARThroughProxy(t *testing.T, ctx context.Context, p *encProxy, s *arSpec, contacts []encContact) {
	t.Helper()
	v := *s.encSpec
	v.Final, v.Contacts = s.ARFinal, contacts
	verifyThroughProxy(t, ctx, p, &v)
}
