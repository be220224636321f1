package ops

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/keysource/envelope"
	"github.com/pgveil/pgveil/policy"
)

func TestQuoteIdent(t *testing.T) {
	for in, want := range map[string]string{
		"users": "users", "email_bidx": "email_bidx", "user": `"user"`, "Users": `"Users"`,
		"a b": `"a b"`, `we"ird`: `"we""ird"`, "x1$": "x1$", "1x": `"1x"`, "": `""`,
	} {
		if got := quoteIdent(in); got != want {
			t.Errorf("quoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
	if got := qualified("public", "order"); got != `public."order"` {
		t.Errorf("qualified = %s", got)
	}
}

func TestIndexName(t *testing.T) {
	if got := indexName("users", "email_bidx"); got != "users_email_bidx_idx" {
		t.Errorf("indexName = %s", got)
	}
	long := indexName(strings.Repeat("t", 60), strings.Repeat("c", 20))
	if len(long) != maxIdentLen || !strings.HasSuffix(long, strings.Repeat("c", 20)+"_idx") {
		t.Errorf("long indexName = %s (%d bytes)", long, len(long))
	}
}

func TestSplitStatements(t *testing.T) {
	stmts := splitStatements(keysource.SchemaDDL())
	if len(stmts) != 5 {
		t.Fatalf("%d statements:\n%s", len(stmts), strings.Join(stmts, "\n---\n"))
	}
	last := stmts[len(stmts)-1]
	if !strings.HasPrefix(last, "COMMENT ON TABLE pgveil.keys") || !strings.Contains(last, "; see docs/FORMAT.md';") {
		t.Errorf("a semicolon inside a literal split the statement: %q", last)
	}
	if got := splitStatements("a; 'x;y'; b"); len(got) != 3 || got[1] != "'x;y';" {
		t.Errorf("split = %q", got)
	}
}

func TestEnvelopeTextLen(t *testing.T) {
	for n := 0; n < 200; n++ {
		env := make([]byte, n+envelope.Overhead)
		env[0], env[4] = envelope.Version, 1
		if got, want := envelopeTextLen(n), len(envelope.Encode(nil, env)); got != want {
			t.Fatalf("envelopeTextLen(%d) = %d, the text form is %d", n, got, want)
		}
	}
	// docs/LIMITS.md quotes this one.
	if got := envelopeTextLen(40); got != 103 {
		t.Errorf("envelopeTextLen(40) = %d", got)
	}
}

// maxPlaintextLen bounds every canonical form of its type, extremes included.
func TestMaxPlaintextLen(t *testing.T) {
	for typ, inputs := range map[policy.LogicalType][]string{
		policy.TypeBool:        {"true", "f"},
		policy.TypeInt2:        {"-32768", "32767"},
		policy.TypeInt4:        {"-2147483648"},
		policy.TypeInt8:        {"-9223372036854775808", "9223372036854775807"},
		policy.TypeUUID:        {"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "{a0eebc999c0b4ef8bb6d6bb9bd380a11}"},
		policy.TypeDate:        {"5874897-12-31", "4713-01-01 BC", "-infinity"},
		policy.TypeTimestamp:   {"294276-12-31 23:59:59.999999", "4713-01-01 00:00:00.999999 BC"},
		policy.TypeTimestamptz: {"294276-12-31 23:59:59.999999+00", "4714-11-24 00:00:00.999999+00 BC", "2024-01-02 03:04:05.123456-11:30"},
	} {
		max, ok := maxPlaintextLen(typ)
		if !ok {
			t.Fatalf("%s has no bound", typ)
		}
		for _, in := range inputs {
			pt, err := canon.Plaintext(typ, canon.TextFormat, 0, []byte(in), nil)
			if err != nil {
				t.Fatalf("%s %q: %v", typ, in, err)
			}
			if len(pt) > max {
				t.Errorf("%s %q: canonical %q is %d bytes, bound %d", typ, in, pt, len(pt), max)
			}
		}
	}
	if _, ok := maxPlaintextLen(policy.TypeText); ok {
		t.Error("text has a bound")
	}
}

// sealedGo is the proxy's test: text form in text columns, binary in bytea.
func TestSealedGo(t *testing.T) {
	env := make([]byte, envelope.Overhead+5)
	env[0], env[4] = envelope.Version, 7
	text := envelope.Encode(nil, env)
	for _, c := range []struct {
		v        []byte
		physical uint32
		want     bool
	}{
		{env, policy.OIDBytea, true},
		{text, policy.OIDText, true},
		{text, policy.OIDBytea, false},
		{env, policy.OIDText, false},
		{[]byte("alice@example.com"), policy.OIDText, false},
		{[]byte("pgv1:short"), policy.OIDText, false},
		{append([]byte{1, 0, 0, 0, 0}, make([]byte, 40)...), policy.OIDBytea, false}, // key id 0
	} {
		if got := sealedGo(c.v, c.physical); got != c.want {
			t.Errorf("sealedGo(%q, %d) = %v", c.v, c.physical, got)
		}
	}
	if s := sealedSQL("email", policy.OIDText); !strings.Contains(s, "octet_length(email) >= 49") {
		t.Errorf("sealedSQL text: %s", s)
	}
}

func testTarget() *target {
	tbl := &policy.Table{Schema: "public", Name: "order", KeyContext: "org"}
	email := &policy.Column{Table: tbl, Name: "email", Type: policy.TypeText, BlindIndex: &policy.BlindIndex{Column: "email_bidx"}}
	note := &policy.Column{Table: tbl, Name: "note", Type: policy.TypeText}
	tbl.Columns = []*policy.Column{email, note}
	return &target{
		pol: tbl, name: qualified("public", "order"),
		pk:       []*liveCol{{Name: "region", TypeName: "text"}, {Name: "id", TypeName: "bigint"}},
		tenant:   &liveCol{Name: "org", TypeName: "uuid", TypeOID: 2950},
		physical: map[*policy.Column]uint32{email: policy.OIDText, note: policy.OIDBytea},
		hasBidx:  map[*policy.BlindIndex]bool{email.BlindIndex: true},
	}
}

// The batch statements: output columns renamed (ORDER BY id must not sort
// by id::text), composite keys compared as rows, the lock clause.
func TestBatchSQL(t *testing.T) {
	tg := testTarget()
	p := &pass{t: tg, cols: tg.pol.Columns, idx: indexed(tg, tg.pol.Columns), batch: 100, skipLocked: true}
	p.pred = migratePredicate(tg, p.cols, p.idx)
	first, a := p.selectSQL(false)
	next, b := p.selectSQL(true)
	for _, want := range []string{
		`SELECT region::text AS pgveil_k0, id::text AS pgveil_k1, org::text AS pgveil_tenant, email AS pgveil_v0, note AS pgveil_v1, email_bidx IS NOT NULL AS pgveil_i0 FROM public."order" AS pgveil_t WHERE `,
		` ORDER BY pgveil_t.region, pgveil_t.id LIMIT 100 FOR UPDATE SKIP LOCKED`,
	} {
		if !strings.Contains(first, want) || !strings.Contains(next, want) {
			t.Errorf("select lacks %q:\n%s", want, next)
		}
	}
	if !strings.Contains(next, "(pgveil_t.region, pgveil_t.id) > ($1::text, $2::bigint) AND ") || len(b.vals) != 2 || len(a.vals) != 0 {
		t.Errorf("cursor:\n%s", next)
	}
	up := p.updateSQL()
	for _, want := range []string{
		`UPDATE public."order" AS pgveil_t SET email = CASE WHEN pgveil_v.s0 THEN pgveil_v.v0 ELSE pgveil_t.email END`,
		`FROM unnest($1::text[], $2::text[], $3::bool[], $4::text[], $5::bool[], $6::bytea[], $7::bool[], $8::bytea[]) AS pgveil_v(k0, k1, s0, v0, s1, v1, si0, i0)`,
		`WHERE pgveil_t.region = pgveil_v.k0::text AND pgveil_t.id = pgveil_v.k1::bigint`,
	} {
		if !strings.Contains(up, want) {
			t.Errorf("update lacks %q:\n%s", want, up)
		}
	}
}

func TestReport(t *testing.T) {
	r := &Report{Config: "c.yaml", Tables: 1, OK: true}
	if err := r.WriteText(&bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	r.add(Finding{Severity: SevNote, Code: "no_primary_key", Table: "public.t", Message: "no pk"})
	if !r.OK {
		t.Fatal("a note made the report fail")
	}
	r.add(Finding{Severity: SevProblem, Code: "bidx_missing", Table: "public.t", Column: "e_bidx", Message: "missing",
		Fix: []string{"ALTER TABLE public.t ADD COLUMN e_bidx bytea;", "CREATE INDEX CONCURRENTLY t_e_bidx_idx ON public.t (e_bidx);"}})
	var text, js bytes.Buffer
	r.WriteText(&text)
	r.WriteJSON(&js)
	if r.OK || r.Problems != 1 || !strings.Contains(text.String(), "PROBLEM  missing") || strings.Count(text.String(), "ADD COLUMN e_bidx") != 2 {
		t.Errorf("text:\n%s", text.String())
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.OK || len(back.Findings) != 2 || back.Findings[1].Fix[1] == "" {
		t.Errorf("json: %v\n%s", err, js.String())
	}
}

// A problem report names rows by primary key, but never by the value of
// an encrypted column in it: those rows are named by the key's other
// columns and their ctid.
func TestRowNameHidesEncryptedKey(t *testing.T) {
	tbl := &policy.Table{Schema: "public", Name: "t", Columns: []*policy.Column{{Name: "email", Type: policy.TypeText}}}
	plain := &target{pol: tbl, pkSealed: []bool{false, false}}
	r := &row{key: []string{"eu", "6"}, ctid: "(0,6)"}
	if got := plain.rowName(r); got != "eu,6" || plain.rowsBy() != "primary keys" {
		t.Errorf("plain key: %q by %q", got, plain.rowsBy())
	}
	sealed := &target{pol: tbl, pkSealed: []bool{false, true}}
	r = &row{key: []string{"eu", "alice.private@x.org"}, ctid: "(0,6)"}
	st := &passStats{}
	st.add(&passStats{Problems: map[string]*problemCount{"org is NULL": {N: 1, Keys: []string{sealed.rowName(r)}, By: sealed.rowsBy()}}})
	lines := strings.Join(st.problemLines(), "\n")
	if strings.Contains(lines, "alice") || !strings.Contains(lines, "eu,ctid (0,6)") || !strings.Contains(lines, "ctid as read") {
		t.Errorf("encrypted key column in the report: %s", lines)
	}
}
