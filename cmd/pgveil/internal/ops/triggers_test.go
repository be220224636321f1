package ops

import (
	"strings"
	"testing"
)

// TestCheckTriggers: which triggers of accounts (key_context org_id,
// email and ssn encrypted and blind-indexed, both indexes rotating) are
// problems, and which stay notes. tgtype bits as pg_trigger stores them.
func TestCheckTriggers(t *testing.T) {
	const (
		beforeInsertRow = trigTypeBefore | trigTypeInsert | trigTypeRow                  // 7
		beforeUpsertRow = trigTypeBefore | trigTypeInsert | trigTypeUpdate | trigTypeRow // 23
		afterUpdateRow  = trigTypeUpdate | trigTypeRow                                   // 17
		beforeDeleteRow = trigTypeBefore | trigTypeDelete | trigTypeRow                  // 11
		beforeInsertSt  = trigTypeBefore | trigTypeInsert                                // 6
	)
	pl := func(name string, typ int16, src string) liveTrigger {
		return liveTrigger{Name: name, Type: typ, Enabled: "O", Function: "public." + name + "_fn", Language: "plpgsql", Source: src}
	}
	setTenant := pl("set_tenant", beforeInsertRow, `BEGIN NEW."org_id" := current_setting('app.org')::int8; RETURN NEW; END`)
	lower := pl("lower_email", beforeUpsertRow, `BEGIN NEW.email := lower(NEW.email); NEW.ssn_bidx2 := NULL; RETURN NEW; END`)
	both := pl("both", beforeUpsertRow, `BEGIN NEW.org_id = 1; NEW.note = NULL; RETURN NEW; END`)
	off := pl("off", beforeInsertRow, `BEGIN NEW.org_id := 2; RETURN NEW; END`)
	off.Enabled = "D"
	replica := pl("replica", beforeInsertRow, `BEGIN NEW.email := ''; RETURN NEW; END`)
	replica.Enabled = "R" // fires where replication applies rows: still a problem
	for _, tc := range []struct {
		tg   liveTrigger
		want []string // severity code column, in order
	}{
		{setTenant, []string{"problem trigger_sets_key_context org_id"}},
		{lower, []string{"problem trigger_sets_encrypted email,ssn_bidx2"}},
		{both, []string{"problem trigger_sets_key_context org_id", "problem trigger_sets_encrypted note"}},
		{off, []string{"note trigger_sets_key_context org_id"}},
		{replica, []string{"problem trigger_sets_encrypted email"}},
		{pl("touch", beforeUpsertRow, `BEGIN NEW.updated_at := now(); -- not NEW.org_id := 1
			RETURN NEW; END`), []string{"note triggers "}},
		{pl("after", afterUpdateRow, `BEGIN NEW.org_id := 1; RETURN NEW; END`), []string{"note triggers "}},
		{pl("on_delete", beforeDeleteRow, `BEGIN NEW.org_id := 1; RETURN OLD; END`), []string{"note triggers "}},
		{pl("per_statement", beforeInsertSt, `BEGIN NEW.org_id := 1; RETURN NULL; END`), []string{"note triggers "}},
		{pl("whole", beforeInsertRow, `BEGIN NEW := NEW #= hstore('org_id', '1'); RETURN NEW; END`), []string{"note triggers "}},
		{liveTrigger{Name: "py", Type: beforeInsertRow, Enabled: "O", Function: "public.py_fn", Language: "plpython3u", Source: "TD['new']['org_id'] = 1"}, []string{"note triggers "}},
	} {
		lt := reviewLive()
		lt.Triggers = []liveTrigger{tc.tg}
		r := &Report{OK: true}
		checkTriggers(r, reviewRotationTable(t), lt, "public.accounts")
		var got []string
		for _, f := range r.Findings {
			got = append(got, f.Severity+" "+f.Code+" "+f.Column)
			if !strings.Contains(f.Message, tc.tg.Name) {
				t.Errorf("%s: the message does not name the trigger: %s", tc.tg.Name, f.Message)
			}
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: findings %q, want %q", tc.tg.Name, got, tc.want)
			continue
		}
		f := r.Findings[0]
		switch tc.tg.Name {
		case "set_tenant":
			for _, s := range []string{"function public.set_tenant_fn", "BEFORE INSERT FOR EACH ROW", "key_context column org_id", "PV001", "set the tenant in the application's statement"} {
				if !strings.Contains(f.Message, s) {
					t.Errorf("set_tenant: message lacks %q: %s", s, f.Message)
				}
			}
			if len(f.Fix) != 1 || f.Fix[0] != "DROP TRIGGER set_tenant ON public.accounts;" || f.Caution == "" {
				t.Errorf("set_tenant: fix %q, caution %q", f.Fix, f.Caution)
			}
		case "lower_email":
			for _, s := range []string{"BEFORE INSERT OR UPDATE FOR EACH ROW", "encrypted column(s) email", "blind-index column(s) ssn_bidx2", "blind_index.normalize"} {
				if !strings.Contains(f.Message, s) {
					t.Errorf("lower_email: message lacks %q: %s", s, f.Message)
				}
			}
		case "both":
			if len(f.Fix) != 1 || len(r.Findings[1].Fix) != 0 {
				t.Errorf("both: DROP TRIGGER once, in the first finding: %q, %q", f.Fix, r.Findings[1].Fix)
			}
		case "off":
			if !strings.Contains(f.Message, "is disabled") || len(f.Fix) != 0 || !r.OK {
				t.Errorf("off: %s (fix %q)", f.Message, f.Fix)
			}
		case "touch", "after":
			if !strings.Contains(f.Message, "trigger(s) "+tc.tg.Name+" run inside the database") {
				t.Errorf("%s: %s", tc.tg.Name, f.Message)
			}
		case "whole":
			if !strings.Contains(f.Message, "replaces the row as a whole (NEW := …)") || !strings.Contains(f.Message, "key_context column org_id") {
				t.Errorf("whole: %s", f.Message)
			}
		case "py":
			if !strings.Contains(f.Message, "plpython3u, whose source pgveil cannot read") || !strings.Contains(f.Message, "does not set the key_context column org_id, the encrypted column(s) email, note, ssn or the blind-index column(s) email_bidx, email_bidx2, ssn_bidx, ssn_bidx2 (docs") {
				t.Errorf("py: %s", f.Message)
			}
		}
	}

	// Harmless triggers share one note; a disabled one is marked.
	lt := reviewLive()
	touch := pl("touch", beforeUpsertRow, `BEGIN NEW.updated_at := now(); RETURN NEW; END`)
	touch.Enabled = "D"
	lt.Triggers = []liveTrigger{pl("audit", afterUpdateRow, `BEGIN RETURN NULL; END`), touch}
	r := &Report{OK: true}
	checkTriggers(r, reviewRotationTable(t), lt, "public.accounts")
	if len(r.Findings) != 1 || !strings.Contains(r.Findings[0].Message, "trigger(s) audit, touch (disabled) run inside") {
		t.Errorf("harmless triggers: %+v", r.Findings)
	}
}
