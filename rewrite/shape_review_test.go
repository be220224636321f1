package rewrite

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
)

// Review of shape plans (shape.go): texts T1 and T2 of one shape, T1 planned
// first on a warm planner; T2 from the warm planner (its shape) must equal
// T2 from a fresh planner, refusals included.

// pairPlanners returns a warm and a fresh planner set up alike.
func pairPlanners(t *testing.T, setup func(*Planner)) (warm, fresh *Planner) {
	t.Helper()
	warm, fresh = newTestPlanner(t), newTestPlanner(t)
	if setup != nil {
		setup(warm)
		setup(fresh)
	}
	return warm, fresh
}

// stripPieces returns a copy of p's statements without pieces, for a deep
// comparison of everything else.
func stripPieces(p *Plan) []Stmt {
	out := make([]Stmt, len(p.Stmts))
	for i, st := range p.Stmts {
		out[i] = *st
		out[i].pieces = nil
	}
	return out
}

// comparePlans reports how the shape result (got) differs from the fresh
// result (want) for text sql; "" when they agree.
func comparePlans(sql string, got *Plan, gerr error, want *Plan, werr error) string {
	if (gerr == nil) != (werr == nil) {
		return "shape error " + errString(gerr) + ", fresh error " + errString(werr)
	}
	if gerr != nil {
		var ge, we *Error
		if !errors.As(gerr, &ge) || !errors.As(werr, &we) || ge.Code != we.Code || ge.Message != we.Message || ge.Position != we.Position {
			return "shape refusal " + errString(gerr) + ", fresh refusal " + errString(werr)
		}
		return ""
	}
	if g, w := dumpPlan(sql, got), dumpPlan(sql, want); g != w {
		return "shape plan\n" + g + "fresh plan\n" + w
	}
	gr, err1 := renderMarked(sql, got)
	wr, err2 := renderMarked(sql, want)
	if err1 != nil || err2 != nil || gr != wr {
		return "rendered\nshape: " + gr + " (" + errString(err1) + ")\nfresh: " + wr + " (" + errString(err2) + ")"
	}
	if got.Rewritten != want.Rewritten || !reflect.DeepEqual(stripPieces(got), stripPieces(want)) {
		return "plans differ outside dumpPlan"
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// shapePair plans t1 then t2 on a warm planner and t2 on a fresh one. It
// returns whether t2 came from t1's shape and the difference ("" if none).
func shapePair(t *testing.T, t1, t2 string, s Session, setup func(*Planner)) (hit bool, diff string) {
	t.Helper()
	warm, fresh := pairPlanners(t, setup)
	warm.Plan(t1, s)
	before := warm.Stats().ShapeHits
	got, gerr := warm.Plan(t2, s)
	hit = warm.Stats().ShapeHits > before
	want, werr := fresh.Plan(t2, s)
	return hit, comparePlans(t2, got, gerr, want, werr)
}

// altLiterals rewrites every literal token of sql in one of several ways
// that keep its shape (kind, prefix, Integer/Float class) but change its
// length and spelling more than mutateLiterals does: variant 0 shrinks,
// 1 grows with quote doubling / escapes / a new dollar tag, 2 uses a
// continuation across a newline.
func altLiterals(sql string, variant int) (string, bool) {
	var b strings.Builder
	l := lexer{s: sql}
	cur, n := 0, 0
	for t := l.next(); t.kind != tEOF; t = l.next() {
		if t.kind == tError {
			return "", false
		}
		tok := sql[t.start:t.end]
		var out string
		switch t.kind {
		case tString:
			switch {
			case tok[0] == '$':
				out = [...]string{"$$$$", "$q$a'b$$c$q$", "$z$\n--x$z$"}[variant]
			case tok[0] == 'e' || tok[0] == 'E':
				out = tok[:1] + [...]string{"''", `'a\\\'b''c'`, "'a'\n '\\n'"}[variant]
			case tok[0] == 'u' || tok[0] == 'U':
				out = tok[:2] + [...]string{"''", "'\\0041x' UESCAPE '\\'", "'d!0061' UESCAPE '!'"}[variant]
			case tok[0] == '\'':
				out = [...]string{"''", "'it''s -- /* x'", "'a'\n\t'b'"}[variant]
			default:
				return "", false
			}
		case tBitString:
			out = tok[:2] + [...]string{"'", "10101'", "1'"}[variant]
		case tNumber:
			if _, err := strconv.ParseInt(tok, 10, 32); err == nil {
				out = [...]string{"7", "2147483647", "00"}[variant]
			} else if strings.ContainsAny(tok, ".eE") {
				out = [...]string{".5", "1.5e-7", "3."}[variant]
			} else {
				out = [...]string{"2147483648", "99999999999999999999", "4000000000"}[variant]
			}
		default:
			continue
		}
		b.WriteString(sql[cur:t.start])
		b.WriteString(out)
		cur = t.end
		n++
	}
	b.WriteString(sql[cur:])
	return b.String(), n > 0
}

// TestShapeReviewCorpusVariants: every corpus statement, with its literals
// rewritten three ways, under public, under app-first and in migration
// mode: the shape plan equals the fresh plan.
func TestShapeReviewCorpusVariants(t *testing.T) {
	migrating := func(p *Planner) {
		p.SetMigrating(map[*policy.Table]bool{p.cfg.Table("public", "users"): true, p.cfg.Table("public", "contacts"): true})
	}
	envs := []struct {
		name  string
		s     Session
		setup func(*Planner)
	}{
		{"public", publicPath, nil},
		{"app first", Session{SearchPath: []string{"app", "public"}}, nil},
		{"billing", Session{SearchPath: []string{"billing", "public"}}, nil},
		{"migrating", publicPath, migrating},
	}
	hits := 0
	for _, c := range planCases {
		if c.noCatalog || c.path != nil {
			continue
		}
		k1, _, ok := shapeOf(c.sql)
		if !ok {
			continue
		}
		for v := 0; v < 3; v++ {
			t2, ok := altLiterals(c.sql, v)
			if !ok {
				continue
			}
			if k2, _, ok := shapeOf(t2); !ok || k2 != k1 {
				t.Errorf("%s: variant %d changed the shape: %q", c.name, v, t2)
				continue
			}
			for _, e := range envs {
				hit, diff := shapePair(t, c.sql, t2, e.s, e.setup)
				if hit {
					hits++
				}
				if diff != "" {
					t.Errorf("%s (%s, variant %d):\nT1 %s\nT2 %s\n%s", c.name, e.name, v, c.sql, t2, diff)
				}
			}
		}
	}
	if hits < 100 {
		t.Fatalf("only %d shape hits", hits)
	}
	t.Logf("%d shape hits", hits)
}

// reviewPair is one T1/T2 pair of the targeted review cases.
type reviewPair struct {
	name    string
	t1, t2  string
	s       *Session       // nil: publicPath
	setup   func(*Planner) // applied to both planners before planning
	between func(*Planner) // applied to the warm planner between T1 and T2 (and to the fresh one before T2)
	hit     int            // 1: T2 must come from the shape; -1: must not; 0: either
}

func runReviewPair(t *testing.T, c reviewPair) string {
	t.Helper()
	s := publicPath
	if c.s != nil {
		s = *c.s
	}
	warm, fresh := pairPlanners(t, c.setup)
	warm.Plan(c.t1, s)
	if c.between != nil {
		c.between(warm)
		c.between(fresh)
	}
	before := warm.Stats().ShapeHits
	got, gerr := warm.Plan(c.t2, s)
	hit := warm.Stats().ShapeHits > before
	want, werr := fresh.Plan(c.t2, s)
	diff := comparePlans(c.t2, got, gerr, want, werr)
	if c.hit == 1 && !hit {
		diff += "\nexpected a shape hit"
	}
	if c.hit == -1 && hit {
		diff += "\nunexpected shape hit"
	}
	if diff == "" && got != nil {
		checkPlanInvariants(t, c.t2, got)
	}
	return diff
}

var appFirst = Session{SearchPath: []string{"app", "public"}}

// TestShapeReviewPairs: the risky constructs of the review, each as a pair
// of texts of one shape (or of shapes that must not meet).
func TestShapeReviewPairs(t *testing.T) {
	users := func(p *Planner) *policy.Table { return p.cfg.Table("public", "users") }
	cases := []reviewPair{
		// --- ordinals are value-dependent ---
		{name: "order by ordinal", t1: "SELECT email, org_id FROM users ORDER BY 2", t2: "SELECT email, org_id FROM users ORDER BY 1", hit: -1},
		{name: "order by negative ordinal", t1: "SELECT email, org_id FROM users ORDER BY -2", t2: "SELECT email, org_id FROM users ORDER BY -1", hit: -1},
		{name: "group by ordinal", t1: "SELECT org_id, count(email) FROM users GROUP BY 1", t2: "SELECT email, count(email) FROM users GROUP BY 2", hit: -1},
		{name: "group by ordinal same text", t1: "SELECT email, org_id FROM users GROUP BY 2, org_id", t2: "SELECT email, org_id FROM users GROUP BY 1, org_id", hit: -1},
		{name: "distinct on ordinal", t1: "SELECT DISTINCT ON (2) email, org_id FROM users", t2: "SELECT DISTINCT ON (1) email, org_id FROM users", hit: -1},
		{name: "values order by ordinal", t1: "VALUES (1, 'a') ORDER BY 1", t2: "VALUES (2, 'bb') ORDER BY 2", hit: -1},
		{name: "union order by ordinal", t1: "SELECT email, org_id FROM users UNION ALL SELECT email, org_id FROM users ORDER BY 2", t2: "SELECT email, org_id FROM users UNION ALL SELECT email, org_id FROM users ORDER BY 1", hit: -1},
		{name: "ordinal in subquery", t1: "SELECT x.id FROM (SELECT id, email, org_id FROM users ORDER BY 1) x WHERE x.id = 5", t2: "SELECT x.id FROM (SELECT id, email, org_id FROM users ORDER BY 2) x WHERE x.id = 6", hit: -1},
		{name: "ordinal in second statement", t1: "SELECT 1; SELECT email, org_id FROM users ORDER BY 2", t2: "SELECT 2; SELECT email, org_id FROM users ORDER BY 1", hit: -1},
		{name: "window order by constant is no ordinal", t1: "SELECT email, org_id, row_number() OVER (ORDER BY 2) FROM users", t2: "SELECT email, org_id, row_number() OVER (ORDER BY 1) FROM users", hit: 1},
		{name: "order by float constant", t1: "SELECT email, org_id FROM users WHERE id = 1 ORDER BY org_id, 2.5", t2: "SELECT email, org_id FROM users WHERE id = 1 ORDER BY org_id, 1.0"},
		{name: "limit and offset", t1: "SELECT email, org_id FROM users WHERE email = 'a' LIMIT 10 OFFSET 20", t2: "SELECT email, org_id FROM users WHERE email = 'abcdef' LIMIT 1 OFFSET 200000", hit: 1},

		// --- set_config is value-dependent ---
		{name: "set_config other setting then search_path", t1: "SELECT set_config('application_name', 'x', false) FROM users", t2: "SELECT set_config('search_path', 'app', false) FROM users", hit: -1},
		{name: "set_config is_local", t1: "SELECT set_config('search_path', 'app', false), email FROM users", t2: "SELECT set_config('search_path', 'app', true), email FROM users", hit: -1},
		{name: "set_config in second statement", t1: "SELECT email FROM contacts WHERE email = 'a'; SELECT set_config('work_mem', '64MB', false)", t2: "SELECT email FROM contacts WHERE email = 'a'; SELECT set_config('search_path', 'app', false)", hit: -1},
		{name: "set_config before a lookup", t1: "SELECT set_config('work_mem', '1MB', false); SELECT id FROM users WHERE email = 'x'", t2: "SELECT set_config('search_path', 'app', false); SELECT id FROM users WHERE email = 'x'", hit: -1},
		{name: "set_config cast name", t1: "SELECT set_config('work_mem'::text, '1MB', false); INSERT INTO users (email, org_id) VALUES ('a', 1)", t2: "SELECT set_config('search_path'::text, 'app', false); INSERT INTO users (email, org_id) VALUES ('a', 1)", hit: -1},
		{name: "SET is never shared", t1: "SET search_path = 'public'; INSERT INTO users (email, org_id) VALUES ('a', 1)", t2: "SET search_path = 'app'; INSERT INTO users (email, org_id) VALUES ('a', 1)", hit: -1},
		{name: "SET LOCAL in transaction", t1: "BEGIN; SET LOCAL search_path = 'public'; INSERT INTO users (email, org_id) VALUES ('a', 1); COMMIT", t2: "BEGIN; SET LOCAL search_path = 'app'; INSERT INTO users (email, org_id) VALUES ('a', 1); COMMIT", hit: -1},
		{name: "set schema", t1: "SET SCHEMA 'public'; SELECT email FROM users WHERE email = 'x'", t2: "SET SCHEMA 'app'; SELECT email FROM users WHERE email = 'x'", hit: -1},

		// --- multi-statement strings: boundaries and literal offsets ---
		{name: "two inserts", t1: "INSERT INTO users (email, org_id) VALUES ('a', 1); INSERT INTO contacts (email, score) VALUES ('b', 2)",
			t2: "INSERT INTO users (email, org_id) VALUES ('a much longer address', 123456); INSERT INTO contacts (email, score) VALUES ('', 7)", hit: 1},
		{name: "transaction block", t1: "BEGIN; INSERT INTO users (email, org_id, phone) VALUES ('a', 1, 'p'); UPDATE users SET ssn = 's' WHERE org_id = 1 AND email = 'a'; COMMIT",
			t2: "BEGIN; INSERT INTO users (email, org_id, phone) VALUES ('xxxxxxxx', 99999, ''); UPDATE users SET ssn = 'yyyyyy' WHERE org_id = 2 AND email = 'zz'; COMMIT", hit: 1},
		{name: "semicolon inside literal", t1: "SELECT id FROM users WHERE email = 'a'; DELETE FROM users WHERE ssn = 'b'",
			t2: "SELECT id FROM users WHERE email = 'a; DELETE FROM users'; DELETE FROM users WHERE ssn = ';'", hit: 1},
		{name: "statement text in dollar literal", t1: "SELECT id FROM users WHERE email = $$a$$; SELECT 1",
			t2: "SELECT id FROM users WHERE email = $x$'; SELECT email FROM users; --$x$; SELECT 1", hit: 1},
		{name: "trailing comment and blank statements", t1: "  INSERT INTO users (email, org_id) VALUES ('a', 1) ;; /* c */ SELECT 'q' -- end",
			t2: "  INSERT INTO users (email, org_id) VALUES ('abc', 1234) ;; /* c */ SELECT 'qqqqq' -- end", hit: 1},
		{name: "refused second statement", t1: "INSERT INTO users (email, org_id) VALUES ('a', 1); SELECT id FROM users WHERE email LIKE 'a%'",
			t2: "INSERT INTO users (email, org_id) VALUES ('abc', 2); SELECT id FROM users WHERE email LIKE 'b%'", hit: -1},

		// --- a CASE copied for a blind index: the copy's literals move too ---
		{name: "bulk_update case", t1: `UPDATE "app_user" SET "email" = (CASE WHEN ("app_user"."id" = 2) THEN 'a' WHEN ("app_user"."id" = 3) THEN 'b' ELSE NULL END)::varchar(254) WHERE "app_user"."id" IN (2, 3)`,
			t2: `UPDATE "app_user" SET "email" = (CASE WHEN ("app_user"."id" = 20000) THEN 'a much longer one' WHEN ("app_user"."id" = 3) THEN '' ELSE NULL END)::varchar(254) WHERE "app_user"."id" IN (20000, 3)`, hit: 1},
		{name: "coalesce literals", t1: "UPDATE contacts SET email = COALESCE('a', email) WHERE id = 1", t2: "UPDATE contacts SET email = COALESCE('a longer one', email) WHERE id = 1000", hit: 1},
		{name: "case string conditions", t1: "UPDATE contacts SET email = CASE note WHEN 'x' THEN 'a' WHEN 'yy' THEN 'b' ELSE email END WHERE id > 1",
			t2: "UPDATE contacts SET email = CASE note WHEN 'x''s' THEN 'aaaa' WHEN '' THEN 'b' ELSE email END WHERE id > 100", hit: 1},

		// --- literal spellings ---
		{name: "typed date literal", t1: "INSERT INTO users (org_id, birth_date) VALUES (1, DATE '2024-01-02')", t2: "INSERT INTO users (org_id, birth_date) VALUES (12, DATE 'infinity')", hit: 1},
		{name: "cast literal", t1: "SELECT id FROM users WHERE email = 'x'::varchar(10) AND ssn = CAST('y' AS text)", t2: "SELECT id FROM users WHERE email = 'xxxxxx'::varchar(2000) AND ssn = CAST('' AS text)", hit: 1},
		{name: "parenthesised cast literal", t1: "SELECT id FROM users WHERE email = ('x')::text", t2: "SELECT id FROM users WHERE email = ('xyz''q')::text", hit: 1},
		{name: "array literal any", t1: "SELECT id FROM users WHERE email = ANY('{a,b}')", t2: "SELECT id FROM users WHERE email = ANY('{a,b,\"c,d\",NULL}')", hit: 1},
		{name: "array literal any cast", t1: "SELECT id FROM users WHERE email = ANY('{a}'::text[])", t2: "SELECT id FROM users WHERE email = ANY('{}'::text[])", hit: 1},
		{name: "array constructor any", t1: "SELECT id FROM users WHERE email = ANY(ARRAY['a', 'b'])", t2: "SELECT id FROM users WHERE email = ANY(ARRAY['aaaa', ''])", hit: 1},
		{name: "array constructor count differs", t1: "SELECT id FROM users WHERE email = ANY(ARRAY['a', 'b'])", t2: "SELECT id FROM users WHERE email = ANY(ARRAY['a', 'b', 'c'])", hit: -1},
		{name: "negative numbers", t1: "SELECT id FROM users WHERE ssn = -42 AND org_id = - 7", t2: "SELECT id FROM users WHERE ssn = -4200000 AND org_id = - 70", hit: 0},
		{name: "negative with comment", t1: "INSERT INTO contacts (email, score) VALUES ('a', -/* c */5)", t2: "INSERT INTO contacts (email, score) VALUES ('', -/* c */123456)", hit: 0},
		{name: "sign against no sign", t1: "INSERT INTO contacts (email, score) VALUES ('a', -5)", t2: "INSERT INTO contacts (email, score) VALUES ('a', 5)", hit: -1},
		{name: "int32 boundary", t1: "INSERT INTO billing.accounts (tenant_id, balance) VALUES ('t', 2147483647)", t2: "INSERT INTO billing.accounts (tenant_id, balance) VALUES ('t', 1)", hit: 1},
		{name: "float classes", t1: "INSERT INTO billing.accounts (tenant_id, balance) VALUES ('t', 1.5)", t2: "INSERT INTO billing.accounts (tenant_id, balance) VALUES ('t', 3000000000)", hit: 1},
		{name: "exponent", t1: "INSERT INTO billing.accounts (tenant_id, balance) VALUES ('t', 1e5)", t2: "INSERT INTO billing.accounts (tenant_id, balance) VALUES ('tt', 12.5E-10)", hit: 1},
		{name: "integer vs float", t1: "INSERT INTO billing.accounts (tenant_id, balance) VALUES ('t', 15)", t2: "INSERT INTO billing.accounts (tenant_id, balance) VALUES ('t', 1.5)", hit: -1},
		{name: "hex number", t1: "INSERT INTO billing.accounts (tenant_id, balance) VALUES ('t', 0x1F)", t2: "INSERT INTO billing.accounts (tenant_id, balance) VALUES ('t', 0x2F)", hit: -1},
		{name: "underscore number", t1: "INSERT INTO billing.accounts (tenant_id, balance) VALUES ('t', 1_000)", t2: "INSERT INTO billing.accounts (tenant_id, balance) VALUES ('t', 2_000)", hit: -1},
		{name: "continuation", t1: "SELECT id FROM users WHERE email = 'a'", t2: "SELECT id FROM users WHERE email = 'a'\n   'b'\n'c'", hit: 1},
		{name: "continuation to single", t1: "INSERT INTO users (email, org_id) VALUES ('a'\n'b', 1)", t2: "INSERT INTO users (email, org_id) VALUES ('abc', 1)", hit: 1},
		{name: "dollar tags", t1: "INSERT INTO users (email, org_id) VALUES ($$a$$, 1)", t2: "INSERT INTO users (email, org_id) VALUES ($tag$it's $$ not $tag$, 1)", hit: 1},
		{name: "E string", t1: `SELECT id FROM users WHERE email = E'a'`, t2: `SELECT id FROM users WHERE email = E'\'\\'' OR ssn = E'x'`, hit: -1},
		{name: "E string escapes", t1: `SELECT id FROM users WHERE email = E'a'`, t2: `SELECT id FROM users WHERE email = E'\'; DROP TABLE users; --\\'`, hit: 0},
		{name: "U& string uescape", t1: `SELECT id FROM users WHERE email = U&'d!0061t' UESCAPE '!'`, t2: `SELECT id FROM users WHERE email = U&'\0041'`, hit: 0},
		{name: "U& identifier uescape", t1: `SELECT U&"e!006dail" UESCAPE '!', org_id FROM users WHERE id = 1`, t2: `SELECT U&"e!006dail" UESCAPE '#', org_id FROM users WHERE id = 1`, hit: -1},
		{name: "national string", t1: "SELECT id FROM users WHERE email = N'x'", t2: "SELECT id FROM users WHERE email = N'xyz'", hit: 1},
		{name: "bit string refused", t1: "SELECT id FROM users WHERE email = B'1'", t2: "SELECT id FROM users WHERE email = B'0101'"},
		{name: "bit string plain column", t1: "SELECT id FROM users WHERE name = B'1' AND email = 'x'", t2: "SELECT id FROM users WHERE name = X'0aF' AND email = 'x'", hit: -1},
		{name: "comment with quote", t1: "SELECT id FROM users /* it's */ WHERE email = 'a' -- '\n AND ssn = 'b'", t2: "SELECT id FROM users /* it's */ WHERE email = 'aaa' -- '\n AND ssn = ''", hit: 1},
		{name: "nested comment", t1: "SELECT id FROM users /* a /* 'b' */ c */ WHERE email = 'x'", t2: "SELECT id FROM users /* a /* 'b' */ c */ WHERE email = '*/'", hit: 1},
		{name: "literal spelling a comment", t1: "SELECT id FROM users WHERE email = 'a' AND ssn = 'b'", t2: "SELECT id FROM users WHERE email = '/*' AND ssn = '*/'", hit: 1},
		{name: "literal holding a table name", t1: "SELECT 'users' AS t, email FROM contacts WHERE email = 'q'", t2: "SELECT 'x' AS t, email FROM contacts WHERE email = 'users'", hit: 1},

		// --- INSERT ... ON CONFLICT, UPDATE tenants ---
		{name: "on conflict literals", t1: "INSERT INTO users (email, org_id, phone) VALUES ('a', 1, 'p') ON CONFLICT (email) DO UPDATE SET phone = 'q' WHERE users.id > 5",
			t2: "INSERT INTO users (email, org_id, phone) VALUES ('aaaaa', 100, '') ON CONFLICT (email) DO UPDATE SET phone = 'qqqqqqqq' WHERE users.id > 50000", hit: 1},
		{name: "on conflict excluded", t1: "INSERT INTO users (email, org_id) VALUES ('a', 1) ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email",
			t2: "INSERT INTO users (email, org_id) VALUES ('abcdefgh', 12345) ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email", hit: 1},
		{name: "update tenant literal", t1: "UPDATE users SET email = 'a', phone = 'b' WHERE org_id = 1 AND id = 2", t2: "UPDATE users SET email = '', phone = 'bbbbbbb' WHERE org_id = 1111 AND id = 2", hit: 1},
		{name: "update tenant string", t1: "UPDATE billing.accounts SET iban = 'a' WHERE tenant_id = 't'", t2: "UPDATE billing.accounts SET iban = 'DE89 3704' WHERE tenant_id = ''", hit: 1},
		{name: "returning", t1: "INSERT INTO users (email, org_id) VALUES ('a', 1) RETURNING email", t2: "INSERT INTO users (email, org_id) VALUES ('aaa', 22) RETURNING email", hit: 1},
		{name: "cte insert", t1: "WITH n AS (INSERT INTO contacts (email) VALUES ('x') RETURNING id) SELECT id FROM n WHERE id > 1", t2: "WITH n AS (INSERT INTO contacts (email) VALUES ('xyz') RETURNING id) SELECT id FROM n WHERE id > 100", hit: 1},

		// --- session and planner state ---
		{name: "search path differs", t1: "SELECT email FROM users WHERE email = 'a'", t2: "SELECT email FROM users WHERE email = 'b'", s: &appFirst, hit: 0},
		{name: "catalog changes", t1: "SELECT id FROM users WHERE email = 'a'", t2: "SELECT id FROM users WHERE email = 'bb'", s: &appFirst,
			between: func(p *Planner) {
				c := testCatalog()
				delete(c.Tables, "app.users")
				p.SetCatalog(c)
			}, hit: -1},
		{name: "migration mode set between", t1: "SELECT id FROM users WHERE email = 'a'", t2: "SELECT id FROM users WHERE email = 'bbb'",
			between: func(p *Planner) { p.SetMigrating(map[*policy.Table]bool{users(p): true}) }, hit: -1},
		{name: "migration mode left between", t1: "SELECT id FROM users WHERE email = 'a'", t2: "SELECT id FROM users WHERE email = 'bbb'",
			setup: func(p *Planner) { p.SetMigrating(map[*policy.Table]bool{users(p): true}) }, between: func(p *Planner) { p.SetMigrating(nil) }, hit: -1},
		{name: "migration mode any", t1: "SELECT id FROM users WHERE email = ANY(ARRAY['a', 'b']) OR email IN ('c')", t2: "SELECT id FROM users WHERE email = ANY(ARRAY['', 'bbbbb']) OR email IN ('cc')",
			setup: func(p *Planner) { p.SetMigrating(map[*policy.Table]bool{users(p): true}) }, hit: 1},
		{name: "migration mode any literal", t1: "SELECT id FROM users WHERE email = ANY('{a}')", t2: "SELECT id FROM users WHERE email = ANY('{a,bbbb,c}')",
			setup: func(p *Planner) { p.SetMigrating(map[*policy.Table]bool{users(p): true}) }, hit: 1},
		{name: "guarded view added", t1: "SELECT * FROM users_v WHERE email = 'a'", t2: "SELECT * FROM users_v WHERE email = 'b'",
			between: func(p *Planner) {
				c := testCatalog()
				c.Guarded = map[string]*GuardedView{"public.users_v": {Schema: "public", Name: "users_v", Reads: "public.users"}}
				p.SetCatalog(c)
			}, hit: -1},
	}
	for _, c := range cases {
		if diff := runReviewPair(t, c); diff != "" {
			t.Errorf("%s:\nT1 %s\nT2 %s\n%s", c.name, c.t1, c.t2, diff)
		}
	}
}

// TestShapeReviewLiteralDivergence: T2 has T1's shape but pg_query
// rejects T2. Regression: a shape hit does not parse T2, so these texts
// once got T1's plan instead of the syntax-error refusal (bad escapes in
// E'…' and U&'…', a bad UESCAPE character, a comment before UESCAPE,
// float(p) out of 1..53, invalid UTF-8). Fixed in shapeOf: no shape for
// E'…', U&'…', UESCAPE or invalid UTF-8, and float(p)'s p stays in the key.
func TestShapeReviewLiteralDivergence(t *testing.T) {
	cases := [][2]string{
		{"SELECT id FROM users WHERE email = U&'abc'", `SELECT id FROM users WHERE email = U&'\zzzz'`},
		{"SELECT id FROM users WHERE name = U&'abc'", `SELECT id FROM users WHERE name = U&'\zzzz'`},
		{"SELECT id FROM users WHERE email = E'abc'", `SELECT id FROM users WHERE email = E'\xC3'`},
		{"SELECT id FROM users WHERE email = E'abc'", `SELECT id FROM users WHERE email = E'\uD800'`},
		{"SELECT id FROM users WHERE email = U&'d!0061t' UESCAPE '!'", `SELECT id FROM users WHERE email = U&'d!0061t' UESCAPE '+'`},
		{"SELECT id FROM users WHERE email = U&'d!0061t' UESCAPE '!'", `SELECT id FROM users WHERE email = U&'d!0061t' UESCAPE 'ab'`},
		{"SELECT id FROM users WHERE email = U&'a' UESCAPE '!'", `SELECT id FROM users WHERE email = U&'a' /* c */ UESCAPE '!'`},
		// Still open with E'' and U&'' excluded from shapes: a type
		// modifier checked by the grammar, and invalid UTF-8 in a plain
		// string (pg_query's Go wrapper refuses the tree).
		{"SELECT id FROM users WHERE email = 'a' AND name = '1'::float(10)", "SELECT id FROM users WHERE email = 'a' AND name = '1'::float(0)"},
		{"SELECT id FROM users WHERE email = 'a' AND name = '1'::float(10)", "SELECT id FROM users WHERE email = 'a' AND name = '1'::float(54)"},
		{"SELECT id FROM users WHERE email = 'a'", "SELECT id FROM users WHERE email = 'a\xff'"},
		{"SELECT id FROM users WHERE name = $$a$$", "SELECT id FROM users WHERE name = $$a\xff$$"},
	}
	for _, c := range cases {
		hit, diff := shapePair(t, c[0], c[1], publicPath, nil)
		if diff != "" {
			t.Errorf("refusal skipped by a shape hit=%v:\nT1 %s\nT2 %s\n%s", hit, c[0], c[1], diff)
		}
	}
}

// reviewRetentionPolicy adds a table with an encrypted boolean and an
// encrypted integer to the test policy.
const reviewRetentionPolicy = testPolicy + `
  public.flags:
    columns:
      active: {type: bool}
      score: {type: int4}
      secret: {type: text}
`

// TestShapeReviewCacheHoldsNoValue: after planning statements that carry
// values of encrypted columns, no cache key or cached own text holds them.
// Regression: TRUE/FALSE and the sign of a negative number, as values of
// encrypted columns, once stayed in shape keys. Fixed in newShapePlan: a
// plan whose value of an encrypted column does not start at a masked
// token gets no shape. (Each literal's Integer/Float class stays in the
// key by design.)
func TestShapeReviewCacheHoldsNoValue(t *testing.T) {
	cfg, err := policy.LoadBytes("review.yaml", []byte(reviewRetentionPolicy), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	p := NewPlanner(cfg, 128)
	cat := testCatalog()
	cat.Tables["public.flags"] = catalogTable("public", "flags", 16450, "id", "active", "score", "secret")
	p.SetCatalog(cat)
	texts := []struct{ sql, value string }{
		{"INSERT INTO flags (id, secret, active) VALUES (1, 's3cr3t', true)", "true"},
		{"INSERT INTO flags (id, secret, active) VALUES (1, 's3cr3t', FALSE)", "FALSE"},
		{"UPDATE flags SET active = true, secret = 'x' WHERE id = 7", "true"},
		{"INSERT INTO flags (id, secret, score) VALUES (1, 's3cr3t', -42)", "-"},
		{"INSERT INTO users (email, org_id, phone) VALUES ('alice@example.com', 1, '555-0100')", ""},
	}
	for _, x := range texts {
		plan, err := p.Plan(x.sql, publicPath)
		if err != nil {
			t.Fatalf("%s: %v", x.sql, err)
		}
		if len(plan.Stmts[0].Literals) == 0 {
			t.Fatalf("%s: no literal recorded", x.sql)
		}
	}
	p.cache.index.Range(func(k, v any) bool {
		key := k.(string)
		for _, x := range []string{"s3cr3t", "alice@example.com", "555-0100"} {
			if strings.Contains(key, x) {
				t.Errorf("cache key holds %q: %q", x, key)
			}
		}
		for _, e := range v.(*cacheBucket).entries {
			if sp := e.plan.shape; sp != nil {
				for _, ss := range sp.stmts {
					for _, seg := range ss.pieces {
						for _, pc := range seg {
							if pc.own && strings.Contains(pc.text, "'") {
								t.Errorf("shape plan own text holds a quote: %q", pc.text)
							}
						}
					}
				}
			}
		}
		return true
	})
	for _, x := range texts {
		if x.value == "" {
			continue
		}
		key, _, ok := shapeOf(x.sql)
		if !ok {
			continue
		}
		if p.cache.lookup(key, &publicPath) == nil {
			continue // not cached: fine
		}
		// The key is the text with literal tokens masked; what is left of
		// the value of the encrypted column is still in it.
		masked := strings.ReplaceAll(key, "\x00", "")
		i := strings.Index(masked, "VALUES")
		if i < 0 {
			i = 0
		}
		if strings.Contains(masked[i:], x.value) || strings.Contains(masked, "active = "+x.value) {
			t.Errorf("the shape cache keeps value %q of an encrypted column in its key %q", x.value, key)
		}
	}
}

// TestShapeReviewUescapeIdentifier: the escape character of a U&"…"
// identifier decides which column or table it names. Regression
// (security): PostgreSQL accepts any string constant after UESCAPE, the
// lexer folds only '…' into the U&"…" token, so E'!' was masked as a
// literal and a text naming "email" shared the pass-through plan of one
// naming "e!006dail", sending the value in plaintext. Fixed in shapeOf: no
// shape for any text containing UESCAPE.
func TestShapeReviewUescapeIdentifier(t *testing.T) {
	cases := [][2]string{
		{`INSERT INTO contacts (U&"e!006dail" UESCAPE E'#', id) VALUES ('x', 1)`,
			`INSERT INTO contacts (U&"e!006dail" UESCAPE E'!', id) VALUES ('secret@example.com', 1)`},
		{`INSERT INTO U&"u!0073ers" UESCAPE $$#$$ (email, org_id) VALUES ('x', 1)`,
			`INSERT INTO U&"u!0073ers" UESCAPE $$!$$ (email, org_id) VALUES ('secret@example.com', 1)`},
		{`SELECT id FROM contacts WHERE U&"e!006dail" UESCAPE E'#' = 'x'`,
			`SELECT id FROM contacts WHERE U&"e!006dail" UESCAPE E'!' = 'secret@example.com'`},
	}
	// "e!006dail" (no escape under '#') is a column of its own here, so
	// that the warming text plans (pgveil refuses a written column the
	// table lacks).
	withOddColumn := func(p *Planner) {
		cat := testCatalog()
		ct := cat.Tables["public.contacts"]
		ct.Columns = append(ct.Columns, CatalogColumn{Name: "e!006dail", AttNum: int16(len(ct.Columns) + 1), TypeOID: 25})
		p.SetCatalog(cat)
	}
	for _, c := range cases {
		warm, fresh := pairPlanners(t, withOddColumn)
		if _, err := warm.Plan(c[0], publicPath); err != nil {
			t.Fatalf("%s: %v", c[0], err)
		}
		got, gerr := warm.Plan(c[1], publicPath)
		want, werr := fresh.Plan(c[1], publicPath)
		if gerr == nil && !got.Rewritten && (werr != nil || want.Rewritten) {
			t.Errorf("%s\nshape plan passes the encrypted value in plaintext; fresh plan: %v rewritten=%v", c[1], werr, want != nil && want.Rewritten)
			continue
		}
		if diff := comparePlans(c[1], got, gerr, want, werr); diff != "" {
			t.Errorf("%s\n%s", c[1], diff)
		}
	}
}

// FuzzShapeReview: FuzzShapePlan with the three altLiterals rewrites and
// a choice of session and migration mode.
func FuzzShapeReview(f *testing.F) {
	for _, c := range planCases {
		if c.path == nil && !c.noCatalog {
			f.Add(c.sql, uint8(0))
		}
	}
	f.Fuzz(func(t *testing.T, sql string, v uint8) {
		t2, ok := altLiterals(sql, int(v%3))
		if !ok {
			return
		}
		k1, _, ok1 := shapeOf(sql)
		k2, _, ok2 := shapeOf(t2)
		if !ok1 || !ok2 || k1 != k2 {
			return
		}
		s := publicPath
		if v&4 != 0 {
			s = appFirst
		}
		var setup func(*Planner)
		if v&8 != 0 {
			setup = func(p *Planner) {
				p.SetMigrating(map[*policy.Table]bool{p.cfg.Table("public", "users"): true, p.cfg.Table("public", "contacts"): true})
			}
		}
		warm, fresh := pairPlanners(t, setup)
		warm.Plan(sql, s)
		got, gerr := warm.Plan(t2, s)
		want, werr := fresh.Plan(t2, s)
		if diff := comparePlans(t2, got, gerr, want, werr); diff != "" {
			t.Fatalf("T1 %q\nT2 %q\n%s", sql, t2, diff)
		}
	})
}

// TestShapeReviewSessions: a shape made in one session state is not used
// in another (search path, standard_conforming_strings off).
func TestShapeReviewSessions(t *testing.T) {
	t1 := "SELECT id, email FROM users WHERE email = 'a' AND ssn = 'b'"
	t2 := "SELECT id, email FROM users WHERE email = 'abc' AND ssn = ''"
	for _, s2 := range []Session{appFirst, {SearchPath: []string{"public"}, BackslashStrings: true}, {SearchPath: []string{"billing", "public"}}} {
		warm, fresh := pairPlanners(t, nil)
		warm.Plan(t1, publicPath)
		got, gerr := warm.Plan(t2, s2)
		want, werr := fresh.Plan(t2, s2)
		if warm.Stats().ShapeHits != 0 {
			t.Errorf("session %+v used the shape of another session", s2)
		}
		if diff := comparePlans(t2, got, gerr, want, werr); diff != "" {
			t.Errorf("session %+v:\n%s", s2, diff)
		}
	}
	// A backslash session neither uses nor makes shapes.
	bs := Session{SearchPath: []string{"public"}, BackslashStrings: true}
	p := newTestPlanner(t)
	p.Plan(t1, bs)
	p.Plan(t2, bs)
	p.Plan(t2, publicPath)
	if s := p.Stats(); s.ShapeHits != 0 {
		t.Errorf("shape used with standard_conforming_strings off: %+v", s)
	}
}

// TestShapeReviewSearchPathOutsideSET: ways to change search_path outside
// SET. Regression (security, older than shape plans): these once changed
// the server's search_path while pgveil kept resolving names under the old
// one (a later unqualified INSERT could then reach an encrypted table
// unencrypted). Fixed: set_config spelled as a U&"…" identifier is found,
// UPDATE pg_settings and DO blocks naming search_path or set_config are
// refused.
func TestShapeReviewSearchPathOutsideSET(t *testing.T) {
	for _, sql := range []string{
		`SELECT U&"set\005fconfig"('search_path', 'public', false)`,
		`UPDATE pg_settings SET setting = 'public' WHERE name = 'search_path'`,
		`DO $$BEGIN PERFORM set_config('search_path', 'public', false); END$$`,
	} {
		p := newTestPlanner(t)
		plan, err := p.Plan(sql, appFirst)
		if err == nil && plan.Stmts[0].SearchPath == nil {
			t.Errorf("%s changes search_path untracked (neither refused nor reported)", sql)
		}
	}
}
