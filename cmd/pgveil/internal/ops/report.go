package ops

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Severities of a Finding.
const (
	SevProblem = "problem" // the proxy would refuse to start, or a command would fail
	SevNote    = "note"    // worth knowing; does not change the exit code
)

// Finding is one difference between the policy and the database, or one
// fact an operator should know, with the SQL that fixes it.
type Finding struct {
	Severity string `json:"severity"`
	// Code is a stable identifier for CI rules: table_missing, column_missing,
	// column_type, bidx_missing, bidx_type, bidx_index_missing, bidx_index_invalid,
	// bidx_index_not_unique, key_context_missing, key_context_nullable,
	// no_primary_key, not_a_table, keystore_missing, table_states_missing,
	// master_key, connect, privilege, table_state, stale_table_state,
	// constraint_on_encrypted, index_on_encrypted, triggers,
	// trigger_sets_key_context, trigger_sets_encrypted (a note while the
	// trigger is disabled).
	Code    string `json:"code"`
	Table   string `json:"table,omitempty"`
	Column  string `json:"column,omitempty"`
	Message string `json:"message"`
	// Fix are SQL statements that fix it, in order. CREATE/DROP INDEX
	// CONCURRENTLY must run outside a transaction block.
	Fix []string `json:"fix,omitempty"`
	// Caution says why Fix must not be run blindly ("" when it is safe:
	// no table rewrite, no data loss, nothing applications see changes).
	Caution string `json:"caution,omitempty"`
}

// Report is the result of Check.
type Report struct {
	Config   string    `json:"config"`
	Database string    `json:"database,omitempty"` // "app on 127.0.0.1:5432 (PostgreSQL 16.4)"
	Tables   int       `json:"tables"`
	OK       bool      `json:"ok"` // no problem found
	Problems int       `json:"problems"`
	Findings []Finding `json:"findings"`
}

func (r *Report) add(f Finding) {
	r.Findings = append(r.Findings, f)
	if f.Severity == SevProblem {
		r.Problems++
	}
	r.OK = r.Problems == 0
}

// WriteJSON writes the report as one JSON document (for CI).
func (r *Report) WriteJSON(w io.Writer) error {
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for a person: findings grouped by table,
// each with its fix, then every fix again as one script.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "pgveil check: %s", r.Config)
	if r.Database != "" {
		fmt.Fprintf(&b, " against %s", r.Database)
	}
	fmt.Fprintf(&b, ", %d configured table(s)\n", r.Tables)
	group := ""
	first := true
	for _, f := range r.Findings {
		g := f.Table
		if g == "" {
			g = "(database)"
		}
		if first || g != group {
			fmt.Fprintf(&b, "\n%s\n", g)
			group, first = g, false
		}
		label := "note    "
		if f.Severity == SevProblem {
			label = "PROBLEM "
		}
		fmt.Fprintf(&b, "  %s %s\n", label, indentAfterFirst(f.Message, 11))
		for i, s := range f.Fix {
			prefix := "fix:"
			if i > 0 {
				prefix = "    "
			}
			fmt.Fprintf(&b, "           %s %s\n", prefix, indentAfterFirst(s, 16))
		}
		if f.Caution != "" {
			fmt.Fprintf(&b, "           caution: %s\n", indentAfterFirst(f.Caution, 20))
		}
	}
	var script []string
	inScript := map[string]bool{} // findings may share a fix (privilege)
	migrateFixes := false         // some fix is DDL that pgveil migrate --apply runs itself
	for _, f := range r.Findings {
		if f.Severity == SevProblem {
			for _, s := range f.Fix {
				if !inScript[s] {
					script = append(script, s)
					inScript[s] = true
				}
			}
			migrateFixes = migrateFixes || len(f.Fix) > 0 && strings.HasPrefix(f.Code, "bidx_")
		}
	}
	b.WriteString("\n")
	switch {
	case r.OK:
		b.WriteString("OK: the database matches the policy.\n")
	default:
		fmt.Fprintf(&b, "%d problem(s).", r.Problems)
		if len(script) > 0 {
			b.WriteString(" The fixes as one script (read each caution first; CONCURRENTLY\nstatements must run outside a transaction, so run it with psql, not in BEGIN/COMMIT):\n\n")
			for _, s := range script {
				b.WriteString("  " + indentAfterFirst(s, 2) + "\n")
			}
			if migrateFixes {
				b.WriteString("\n`pgveil migrate --apply` runs the blind-index columns and indexes itself.\n")
			} else {
				b.WriteString("\n")
			}
		} else {
			b.WriteString("\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func indentAfterFirst(s string, n int) string {
	return strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", n))
}
