package ops

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/keysource/envelope"
	"github.com/pgveil/pgveil/policy"
)

// Review tests of the blind-index key rotation (blind_index.next) in the
// ops commands: which index columns migrate fills, decrypt and shred clear,
// and what check reports for the next column.

const reviewRotationPolicy = `upstream:
  service_url: postgres://x@127.0.0.1/db
keysource:
  local: {key_env: K}
tables:
  accounts:
    key_context: org_id
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase]
          key: email
          unique: true
          next: {column: email_bidx2, key: email_v2, normalize: [lowercase, trim]}
      note: {type: text}
      ssn:
        type: text
        blind_index: {column: ssn_bidx, next: {column: ssn_bidx2, key: ssn_v2}}
`

func reviewRotationTable(t *testing.T) *policy.Table {
	t.Helper()
	cfg, err := policy.LoadBytes("c.yaml", []byte(reviewRotationPolicy), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Table("public", "accounts")
}

// reviewLive is accounts as the catalog describes it; drop names columns
// left out (e.g. a next index column not added yet).
func reviewLive(drop ...string) *liveTable {
	id := &liveCol{Name: "id", TypeOID: 20, TypeName: "bigint"}
	lt := &liveTable{Schema: "public", Name: "accounts", Kind: "r", Cols: map[string]*liveCol{}, PK: []*liveCol{id}}
	add := func(c *liveCol) { lt.Cols[c.Name] = c }
	add(id)
	add(&liveCol{Name: "org_id", TypeOID: 20, TypeName: "bigint", NotNull: true})
	for _, n := range []string{"email", "note", "ssn"} {
		add(&liveCol{Name: n, TypeOID: policy.OIDBytea, TypeName: "bytea"})
	}
	for _, n := range []string{"email_bidx", "email_bidx2", "ssn_bidx", "ssn_bidx2"} {
		add(&liveCol{Name: n, TypeOID: policy.OIDBytea, TypeName: "bytea"})
	}
	lt.Indexes = []liveIndex{
		{Name: "accounts_pkey", Method: "btree", Columns: []string{"id"}, Unique: true, Primary: true, Valid: true},
		{Name: "accounts_email_bidx_idx", Method: "btree", Columns: []string{"email_bidx"}, Unique: true, Valid: true},
		{Name: "accounts_email_bidx2_idx", Method: "btree", Columns: []string{"email_bidx2"}, Unique: true, Valid: true},
		{Name: "accounts_ssn_bidx_idx", Method: "btree", Columns: []string{"ssn_bidx"}, Valid: true},
		{Name: "accounts_ssn_bidx2_idx", Method: "btree", Columns: []string{"ssn_bidx2"}, Valid: true},
	}
	for _, d := range drop {
		delete(lt.Cols, d)
		var keep []liveIndex
		for _, ix := range lt.Indexes {
			if ix.Columns[0] != d {
				keep = append(keep, ix)
			}
		}
		lt.Indexes = keep
	}
	return lt
}

func ixNames(xs []ixTarget) string {
	var out []string
	for _, x := range xs {
		out = append(out, x.c.Name+":"+x.bi.Column)
	}
	return strings.Join(out, ",")
}

// Both index columns of a rotating column are targets, in column order,
// and a next column that does not exist yet is left out (decrypt, shred)
// or required (migrate, which creates it first).
func TestReviewRotationTargets(t *testing.T) {
	tbl := reviewRotationTable(t)
	tg, err := newTarget(tbl, reviewLive(), true)
	if err != nil {
		t.Fatal(err)
	}
	if got := ixNames(indexed(tg, tbl.Columns)); got != "email:email_bidx,email:email_bidx2,ssn:ssn_bidx,ssn:ssn_bidx2" {
		t.Errorf("indexed = %s", got)
	}
	tg, err = newTarget(tbl, reviewLive("ssn_bidx2"), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := ixNames(indexed(tg, tbl.Columns)); got != "email:email_bidx,email:email_bidx2,ssn:ssn_bidx" {
		t.Errorf("indexed without ssn_bidx2 = %s", got)
	}
	if _, err := newTarget(tbl, reviewLive("ssn_bidx2"), true); err == nil || !strings.Contains(err.Error(), "blind-index column public.accounts.ssn_bidx2 does not exist") {
		t.Errorf("needBidx without the next column: %v", err)
	}
	lt := reviewLive()
	lt.Cols["email_bidx2"] = &liveCol{Name: "email_bidx2", TypeOID: policy.OIDText, TypeName: "text"}
	if _, err := newTarget(tbl, lt, false); err == nil || !strings.Contains(err.Error(), "email_bidx2 is text, not bytea") {
		t.Errorf("text next column: %v", err)
	}
}

// migrate finds rows whose only missing value is the next index, reads and
// writes it in its own slot; decrypt clears both columns.
func TestReviewRotationPassSQL(t *testing.T) {
	tbl := reviewRotationTable(t)
	tg, err := newTarget(tbl, reviewLive(), true)
	if err != nil {
		t.Fatal(err)
	}
	idx := indexed(tg, tbl.Columns)
	pred := migratePredicate(tg, tbl.Columns, idx)(&args{})
	for _, want := range []string{
		`(email IS NOT NULL AND email_bidx IS NULL)`,
		`(email IS NOT NULL AND email_bidx2 IS NULL)`,
		`(ssn IS NOT NULL AND ssn_bidx2 IS NULL)`,
	} {
		if !strings.Contains(pred, want) {
			t.Errorf("migrate predicate lacks %s:\n%s", want, pred)
		}
	}
	dpred := decryptPredicate(tg, tbl.Columns, idx)(&args{})
	for _, want := range []string{"email_bidx IS NOT NULL", "email_bidx2 IS NOT NULL", "ssn_bidx2 IS NOT NULL"} {
		if !strings.Contains(dpred, want) {
			t.Errorf("decrypt predicate lacks %s:\n%s", want, dpred)
		}
	}
	p := &pass{t: tg, cols: tbl.Columns, idx: idx, batch: 10}
	p.pred = migratePredicate(tg, p.cols, p.idx)
	sel, _ := p.selectSQL(false)
	if !strings.Contains(sel, "email_bidx IS NOT NULL AS pgveil_i0, email_bidx2 IS NOT NULL AS pgveil_i1, ssn_bidx IS NOT NULL AS pgveil_i2, ssn_bidx2 IS NOT NULL AS pgveil_i3") {
		t.Errorf("select:\n%s", sel)
	}
	up := p.updateSQL()
	for _, want := range []string{
		"email_bidx = CASE WHEN pgveil_v.si0 THEN pgveil_v.i0 ELSE pgveil_t.email_bidx END",
		"email_bidx2 = CASE WHEN pgveil_v.si1 THEN pgveil_v.i1 ELSE pgveil_t.email_bidx2 END",
		"ssn_bidx2 = CASE WHEN pgveil_v.si3 THEN pgveil_v.i3 ELSE pgveil_t.ssn_bidx2 END",
	} {
		if !strings.Contains(up, want) {
			t.Errorf("update lacks %s:\n%s", want, up)
		}
	}
	// The values written are counted under each index column's own name.
	r := &row{key: []string{"1"}, setVal: make([]bool, 3), newVal: make([][]byte, 3),
		setIdx: []bool{false, true, false, true}, newIdx: [][]byte{nil, {1}, nil, {2}}}
	st := &passStats{Values: map[string]int64{}}
	p.updateArgs([]*row{r}, st)
	if st.Values["email_bidx2"] != 1 || st.Values["ssn_bidx2"] != 1 || st.Values["email_bidx"] != 0 {
		t.Errorf("values: %v", st.Values)
	}
}

// reviewSealed is a bytea envelope as sealedGo recognises it.
func reviewSealed() []byte {
	env := make([]byte, envelope.Overhead+5)
	env[0], env[4] = envelope.Version, 7
	return env
}

// migrate's work leaves a row alone when every index of every column is
// there (no key is needed: the keyring is nil), whatever the order of the
// columns' index slots.
func TestReviewRotationWorkNothingToDo(t *testing.T) {
	tbl := reviewRotationTable(t)
	tg, err := newTarget(tbl, reviewLive(), true)
	if err != nil {
		t.Fatal(err)
	}
	m := &migrator{t: tg}
	p := m.pass(MigrateOptions{Batch: 10})
	r := &row{key: []string{"1"}, tenantRaw: []byte("1"),
		vals:   [][]byte{reviewSealed(), nil, reviewSealed()},
		hasIdx: []bool{true, true, true, true},
		setVal: make([]bool, 3), newVal: make([][]byte, 3), setIdx: make([]bool, 4), newIdx: make([][]byte, 4)}
	if err := m.work(context.Background(), p, r); err != nil || r.changed {
		t.Fatalf("work: %v, changed %v", err, r.changed)
	}
	// ssn is NULL: its missing indexes need nothing.
	r.vals[2], r.hasIdx[2], r.hasIdx[3] = nil, false, false
	if err := m.work(context.Background(), p, r); err != nil || r.changed {
		t.Fatalf("work with NULL ssn: %v, changed %v", err, r.changed)
	}
}

// decrypt clears the next index as well as the current one.
func TestReviewRotationDecryptClearsBoth(t *testing.T) {
	tbl := reviewRotationTable(t)
	tg, err := newTarget(tbl, reviewLive(), false)
	if err != nil {
		t.Fatal(err)
	}
	d := &decrypter{t: tg}
	idx := indexed(tg, tbl.Columns)
	p := &pass{t: tg, cols: tbl.Columns, idx: idx}
	// Values already plaintext (a second run): only the indexes are left.
	r := &row{key: []string{"1"}, tenantRaw: []byte("1"),
		vals:   [][]byte{[]byte("a@x.org"), nil, []byte("123")},
		hasIdx: []bool{true, true, false, true},
		setVal: make([]bool, 3), newVal: make([][]byte, 3), setIdx: make([]bool, 4), newIdx: make([][]byte, 4)}
	if err := d.work(context.Background(), p, r); err != nil {
		t.Fatal(err)
	}
	if !r.changed || !r.setIdx[0] || !r.setIdx[1] || r.setIdx[2] || !r.setIdx[3] || r.newIdx[1] != nil {
		t.Errorf("decrypt: changed %v setIdx %v", r.changed, r.setIdx)
	}
}

// check reports a missing next column with the DDL that adds it and its
// index (UNIQUE, inherited from the current index), and a next column
// without its UNIQUE index; migrate runs that DDL itself.
func TestReviewRotationCheck(t *testing.T) {
	tbl := reviewRotationTable(t)
	r := &Report{OK: true}
	checkTable(r, tbl, reviewLive())
	for _, f := range r.Findings {
		if strings.Contains(f.Column, "bidx") {
			t.Errorf("complete schema: unexpected finding %+v", f)
		}
	}

	r = &Report{OK: true}
	checkTable(r, tbl, reviewLive("email_bidx2"))
	var got *Finding
	for i, f := range r.Findings {
		if f.Column == "email_bidx2" {
			if got != nil {
				t.Errorf("second finding for email_bidx2: %+v", f)
			}
			got = &r.Findings[i]
		}
	}
	if got == nil || got.Code != "bidx_missing" || got.Severity != SevProblem || r.OK ||
		!strings.Contains(got.Message, "email_bidx2 (for email) does not exist") || len(got.Fix) != 2 ||
		got.Fix[0] != "ALTER TABLE public.accounts ADD COLUMN email_bidx2 bytea;" ||
		got.Fix[1] != "CREATE UNIQUE INDEX CONCURRENTLY accounts_email_bidx2_idx ON public.accounts (email_bidx2);" {
		t.Errorf("missing next column: %+v", got)
	}
	if !migrateFixes[got.Code] {
		t.Errorf("migrate does not fix %s", got.Code)
	}

	lt := reviewLive()
	for i := range lt.Indexes {
		if lt.Indexes[i].Name == "accounts_email_bidx2_idx" {
			lt.Indexes[i].Unique = false
		}
	}
	r = &Report{OK: true}
	checkTable(r, tbl, lt)
	found := false
	for _, f := range r.Findings {
		if f.Column == "email_bidx2" && f.Code == "bidx_index_not_unique" && len(f.Fix) == 1 &&
			strings.HasPrefix(f.Fix[0], "CREATE UNIQUE INDEX CONCURRENTLY accounts_email_bidx2_idx1 ON public.accounts (email_bidx2)") {
			found = true
		}
	}
	if !found {
		t.Errorf("next column without UNIQUE index: %+v", r.Findings)
	}

	// ssn's next index inherits unique: false: a plain index is enough.
	r = &Report{OK: true}
	checkTable(r, tbl, reviewLive("ssn_bidx2"))
	for _, f := range r.Findings {
		if f.Column == "ssn_bidx2" && (len(f.Fix) != 2 || f.Fix[1] != "CREATE INDEX CONCURRENTLY accounts_ssn_bidx2_idx ON public.accounts (ssn_bidx2);") {
			t.Errorf("missing ssn_bidx2: %+v", f)
		}
	}
}

// The plan lists the next column's indexes to fill under its own name.
func TestReviewRotationWritePlan(t *testing.T) {
	tbl := reviewRotationTable(t)
	tp := &tablePlan{pol: tbl, rows: 10, work: 4,
		values:  map[string]int64{"email": 0},
		indexes: map[string]int64{"email_bidx": 0, "email_bidx2": 4, "ssn_bidx2": 3}}
	var b bytes.Buffer
	writePlan(&b, []*tablePlan{tp}, false)
	for _, want := range []string{"email_bidx2                       4 blind indexes to fill", "ssn_bidx2                         3 blind indexes to fill"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, b.String())
		}
	}
}
