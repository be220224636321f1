package rewrite

import (
	"errors"
	"strings"
	"testing"
)

// FuzzPlan feeds arbitrary text to the planner. It must never panic (a
// panic inside is turned into XX000, which this target treats as a bug),
// every refusal must be an *Error with a SQLSTATE, and every plan must
// render and keep its invariants. Normal test runs execute the seeds only.
func FuzzPlan(f *testing.F) {
	for _, c := range planCases {
		f.Add(c.sql)
	}
	for _, s := range lexerCorpus {
		f.Add(s)
	}
	f.Add("SELECT email FROM users WHERE email = U&'\\+01F600' UESCAPE '\\'")
	f.Add("INSERT INTO users (email, org_id) VALUES ($1, $2), ($3, $4) ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING *")
	p := newTestPlanner(&testing.T{})
	f.Fuzz(func(t *testing.T, sql string) {
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%q: error %T is not *Error", sql, err)
			}
			if e.Code == "" || e.Code == CodeInternalError {
				t.Fatalf("%q: %v", sql, err)
			}
			return
		}
		out, err := plan.Render(sql, func(st *Stmt, s *Slot) (string, error) {
			if s.Action == TenantLookup {
				return ByteaLiteral([]byte("v")), nil
			}
			if _, _, err := LiteralValue(sql, st.Literals[s.Source]); err != nil {
				t.Fatalf("%q: slot literal: %v", sql, err)
			}
			return ByteaLiteral([]byte("v")), nil
		})
		if err != nil {
			t.Fatalf("%q: render: %v", sql, err)
		}
		if !plan.Rewritten && out != sql {
			t.Fatalf("%q: pass-through plan changed the text", sql)
		}
		checkPlanInvariants(t, sql, plan)
		if plan.Rewritten && strings.Count(out, "E'\\\\x76'::bytea") < countSlots(plan) {
			t.Fatalf("%q: slots missing from %q", sql, out)
		}
	})
}

func countSlots(p *Plan) int {
	n := 0
	for _, st := range p.Stmts {
		n += len(st.Slots)
	}
	return n
}
