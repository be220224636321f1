package ops

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pgveil/pgveil/policy"
)

// Bits of pg_trigger.tgtype (catalog/pg_trigger.h, TRIGGER_TYPE_*). A
// trigger without ROW is a statement trigger; without BEFORE or INSTEAD,
// an AFTER trigger.
const (
	trigTypeRow      = 1 << 0
	trigTypeBefore   = 1 << 1
	trigTypeInsert   = 1 << 2
	trigTypeDelete   = 1 << 3
	trigTypeUpdate   = 1 << 4
	trigTypeTruncate = 1 << 5
	trigTypeInstead  = 1 << 6
)

// changesRow reports a BEFORE … FOR EACH ROW trigger on INSERT or UPDATE:
// the row its function returns is the row written, so it can change NEW.
func (tg liveTrigger) changesRow() bool {
	return tg.Type&trigTypeRow != 0 && tg.Type&trigTypeBefore != 0 && tg.Type&trigTypeInstead == 0 &&
		tg.Type&(trigTypeInsert|trigTypeUpdate) != 0
}

// disabled reports ALTER TABLE … DISABLE TRIGGER: it fires for no session.
func (tg liveTrigger) disabled() bool { return tg.Enabled == "D" }

// timing is how the trigger was declared: "BEFORE INSERT OR UPDATE FOR EACH ROW".
func (tg liveTrigger) timing() string {
	when := "AFTER"
	switch {
	case tg.Type&trigTypeInstead != 0:
		when = "INSTEAD OF"
	case tg.Type&trigTypeBefore != 0:
		when = "BEFORE"
	}
	var events []string
	for _, e := range []struct {
		bit  int16
		name string
	}{{trigTypeInsert, "INSERT"}, {trigTypeUpdate, "UPDATE"}, {trigTypeDelete, "DELETE"}, {trigTypeTruncate, "TRUNCATE"}} {
		if tg.Type&e.bit != 0 {
			events = append(events, e.name)
		}
	}
	each := "STATEMENT"
	if tg.Type&trigTypeRow != 0 {
		each = "ROW"
	}
	return fmt.Sprintf("%s %s FOR EACH %s", when, strings.Join(events, " OR "), each)
}

// checkTriggers reports the triggers of a configured table. A BEFORE ROW
// trigger on INSERT or UPDATE whose PL/pgSQL function assigns the
// key_context column (the values stay sealed under the tenant the
// statement named) or an encrypted or blind-index column (it computes on
// an envelope) is a problem; disabled, a note. One whose function pgveil
// cannot read (another language) or that replaces NEW as a whole is a
// note saying so. Every other trigger is listed in one note: it sees
// envelopes, never values.
func checkTriggers(r *Report, t *policy.Table, lt *liveTable, qt string) {
	name := t.QualifiedName()
	watched := watchedColumns(t)
	var others []string
	for _, tg := range lt.Triggers {
		if !tg.changesRow() {
			others = append(others, triggerLabel(tg))
			continue
		}
		head := fmt.Sprintf("trigger %s (function %s, %s)", tg.Name, tg.Function, tg.timing())
		var w rowWrites
		var err error
		if tg.Language == "plpgsql" {
			w, err = plpgsqlRowWrites(tg.Source)
		}
		if tg.Language != "plpgsql" || err != nil {
			why := fmt.Sprintf("its function is in %s, whose source pgveil cannot read", tg.Language)
			if err != nil {
				why = fmt.Sprintf("pgveil cannot read its function's source (%v)", err)
			}
			msg := fmt.Sprintf("%s can change each row before it is written, but %s: make sure it does not set %s (docs/LIMITS.md)", head, why, watched)
			if tg.disabled() {
				msg += "; it is disabled"
			}
			r.add(Finding{Severity: SevNote, Code: "triggers", Table: name, Message: msg})
			continue
		}
		sev, did := SevProblem, head
		if tg.disabled() {
			sev, did = SevNote, head+" is disabled, so harmless for now; enabled, it"
		}
		fix := []string{fmt.Sprintf("DROP TRIGGER %s ON %s;", quoteIdent(tg.Name), qt)}
		fixed := func(f Finding) Finding {
			if f.Severity == SevProblem && fix != nil {
				f.Fix, fix = fix, nil
				f.Caution = "the database stops doing what the trigger did: do it in the application, or change the trigger's function instead"
			}
			return f
		}
		var enc, bidx []string
		for _, c := range w.Columns {
			switch {
			case c == t.KeyContext:
				r.add(fixed(Finding{Severity: sev, Code: "trigger_sets_key_context", Table: name, Column: c,
					Message: fmt.Sprintf("%s sets the key_context column %s (NEW.%s := …): pgveil seals the row's values under the tenant the statement names, so they stay sealed under that tenant and no longer open once the trigger has moved the row to another (readers get PV001); set the tenant in the application's statement, or drop or change the trigger", did, c, quoteIdent(c))}))
			case t.Column(c) != nil:
				enc = append(enc, c)
			case t.BlindIndexColumn(c) != nil:
				bidx = append(bidx, c)
			}
		}
		if len(enc) > 0 || len(bidx) > 0 {
			var what []string
			if len(enc) > 0 {
				what = append(what, fmt.Sprintf("encrypted column(s) %s: it sees envelopes, never values, so what it stores is no envelope pgveil sealed (the write fails, or the value no longer opens)", strings.Join(enc, ", ")))
			}
			if len(bidx) > 0 {
				what = append(what, fmt.Sprintf("blind-index column(s) %s: it stores an index pgveil did not compute, so lookups miss the row", strings.Join(bidx, ", ")))
			}
			r.add(fixed(Finding{Severity: sev, Code: "trigger_sets_encrypted", Table: name, Column: strings.Join(append(enc, bidx...), ","),
				Message: fmt.Sprintf("%s assigns %s; do it in the application (a normalisation belongs in blind_index.normalize), or drop or change the trigger", did, strings.Join(what, "; and ")),
			}))
		}
		switch {
		case w.Whole != "":
			msg := fmt.Sprintf("%s replaces the row as a whole (%s): pgveil cannot tell which columns it changes; make sure it does not set %s (docs/LIMITS.md)", head, w.Whole, watched)
			if tg.disabled() {
				msg += "; it is disabled"
			}
			r.add(Finding{Severity: SevNote, Code: "triggers", Table: name, Message: msg})
		case !slices.ContainsFunc(w.Columns, func(c string) bool {
			return c == t.KeyContext || t.Column(c) != nil || t.BlindIndexColumn(c) != nil
		}):
			others = append(others, triggerLabel(tg))
		}
	}
	if len(others) > 0 {
		r.add(Finding{Severity: SevNote, Code: "triggers", Table: name,
			Message: fmt.Sprintf("trigger(s) %s run inside the database: they see the encrypted columns' envelopes, never their values (docs/LIMITS.md)", strings.Join(others, ", "))})
	}
}

// triggerLabel is the trigger's name, marked when it is disabled.
func triggerLabel(tg liveTrigger) string {
	if tg.disabled() {
		return tg.Name + " (disabled)"
	}
	return tg.Name
}

// watchedColumns names what a trigger must not assign: "the key_context
// column org_id, the encrypted column(s) email, phone or the blind-index
// column(s) email_bidx".
func watchedColumns(t *policy.Table) string {
	var enc, bidx []string
	for _, c := range t.Columns {
		enc = append(enc, c.Name)
		for _, bi := range c.IndexTargets() {
			bidx = append(bidx, bi.Column)
		}
	}
	var parts []string
	if t.KeyContext != "" {
		parts = append(parts, "the key_context column "+t.KeyContext)
	}
	parts = append(parts, "the encrypted column(s) "+strings.Join(enc, ", "))
	if len(bidx) > 0 {
		parts = append(parts, "the blind-index column(s) "+strings.Join(bidx, ", "))
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " or " + parts[len(parts)-1]
}
