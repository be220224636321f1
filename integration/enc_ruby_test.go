package integration

import (
	"context"
	"slices"
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
	// RefusedPhone is written by the updates pgveil refuses (no tenant).
	RefusedPhone   string `json:"refused_phone"`
	UpdateAllName  string `json:"update_all_name"`
	UpdateAllPhone string `json:"update_all_phone"`
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
	s.RefusedPhone = "ph-refused-" + tag
	s.UpdateAllName = u[3].Name
	s.UpdateAllPhone = "ph-update-all-" + tag
	s.TxUser = encUser{Name: "tx " + tag, Email: sp("Rollback." + tag + "@example.com"), Phone: sp("ph-tx-" + tag)}
	s.Nested = encUser{Name: "n1 " + tag, Email: sp("Nested." + tag + "@example.com"), Phone: sp("ph-n1-" + tag),
		SSN: sp("ssn-n1-" + tag), Birth: sp("1960-01-01"), Token: sp("7")}
	s.NestedPhone = "ph-n1b-" + tag
	s.Raw = encUser{Name: "raw " + tag, Email: sp("Raw.Reflected." + tag + "@Example.com"), Phone: sp(`ph\x41-raw-` + tag),
		SSN: sp("ssn-raw-" + tag), Birth: sp("2038-01-19"), Token: sp("12345678")}
	s.RawDupEmail = "Raw.Dup." + tag + "@example.com"

	final := slices.Clone(s.Final[:5]) // u1 (new email and phone) … u5
	final[3].Phone = sp(s.UpdateAllPhone)
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
	for _, u := range []encUser{s.Bulk, s.BulkUpsert, s.TxUser, s.Nested} {
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
	return append(out, s.RefusedPhone, s.UpdateAllPhone, s.NestedPhone, *raw.Email, *raw.Phone, *raw.SSN, *raw.Birth, s.RawDupEmail)
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
// bigint; blind indexes bytea), and a model needs only the tenant in its
// UPDATEs and, recommended, its blind indexes in ignored_columns (see the
// program's header). The scenario: that reflection, create!,
// find_by/where/exists? by encrypted columns, pluck, count, find_each,
// reload, update! and update_all (and their refusal without the tenant),
// insert_all, upsert_all, transactions and savepoints, destroy, a
// has_many keyed by an encrypted column and a join on it, a row of every
// logical type (a backslash in text, an 8-digit int8, a date), and the
// dup of a record that loaded its blind indexes (refused, 428C9). Then
// the rows are read back through pgveil with pgx and the tables are
// checked at rest. Last, updated_at is added to users by a migration
// through pgveil, as Rails tables have it, and upsert_all is run against
// it.
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
