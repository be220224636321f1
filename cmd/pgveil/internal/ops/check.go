package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// Check compares the policy with the live schema and the key store, and
// returns every finding with the DDL that fixes it. It changes nothing.
// A failure to connect is reported as a finding, not an error, so the JSON
// report always comes out; the error is for what Check itself could not do.
func Check(ctx context.Context, e *Env) *Report {
	r := &Report{Config: e.Cfg.Path, Tables: len(e.Cfg.Tables), OK: true}
	r.Database = e.describeDB(ctx)
	live, err := loadLive(ctx, e.Pool, e.Cfg.Tables)
	if err != nil {
		r.add(e.readFailed("reading the catalog", err))
		return r
	}
	rows, serr := e.TableStates(ctx)
	var keyErr *proxy.StateKeyError
	switch {
	case errors.As(serr, &keyErr):
		// The key-store findings say why; the states are just unknown.
		r.add(Finding{Severity: SevNote, Code: "table_states_unverified",
			Message: "the migration states in pgveil.tables could not be verified (" + serr.Error() + "); plaintext left in tables is not counted"})
	case serr != nil:
		r.add(e.readFailed("reading pgveil.tables", serr))
	}
	for _, t := range e.Cfg.Tables {
		checkTable(r, t, live[t.QualifiedName()])
		if serr == nil {
			checkPlaintext(ctx, e, r, t, live[t.QualifiedName()], rows.States()[t.QualifiedName()])
		}
	}
	if serr == nil {
		for _, n := range rows.RejectedTables() {
			r.add(Finding{Severity: SevProblem, Code: "table_state_untrusted", Table: n,
				Message: fmt.Sprintf("pgveil.tables: the state of %s is not trusted and counts as complete: %s; %s", n, rows.Rejected[n], proxy.StateRemedy)})
		}
	}
	checkKeyStore(ctx, e, r)
	if serr != nil {
		rows = nil
	}
	checkTableStates(ctx, e, r, rows)
	if r.OK {
		checkViews(ctx, e, r)
	}
	return r
}

// checkViews notes each view over encrypted columns: pgveil reads it
// through its definition, or refuses every statement naming it.
func checkViews(ctx context.Context, e *Env, r *Report) {
	views, tenantViews, err := proxy.GuardedViews(ctx, e.Pool, e.Cfg)
	if err != nil {
		r.add(Finding{Severity: SevProblem, Code: "catalog", Message: "pgveil serve would not start: " + err.Error()})
		return
	}
	fns, err := proxy.SearchPathFunctions(ctx, e.Pool)
	if err != nil {
		r.add(Finding{Severity: SevProblem, Code: "catalog", Message: "pgveil serve would not start: " + err.Error()})
		return
	}
	for _, f := range fns {
		r.add(Finding{Severity: SevNote, Code: "path_function",
			Message: fmt.Sprintf("functions named %s have code that names search_path or set_config: after each statement that calls one, pgveil reads the search_path again (one round trip); code that changes it without naming either is not seen (docs/LIMITS.md)", f)})
	}
	names := make([]string, 0, len(tenantViews))
	for name := range tenantViews {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := tenantViews[name]
		r.add(Finding{Severity: SevNote, Code: "view_tenant", Table: name,
			Message: fmt.Sprintf("view %s reads the tenant column of %s: pgveil refuses UPDATE and MERGE through it (they could move rows to another tenant, whose key does not open their values); reads and other writes pass (docs/SQL.md, \"Tenant moves\")", name, t)})
	}
	for _, v := range views {
		name := v.Schema + "." + v.Name
		if v.Child != "" {
			r.add(Finding{Severity: SevNote, Code: "child_refused", Table: name,
				Message: fmt.Sprintf("table %s is a %s of configured table %s and not configured itself: every statement naming it through pgveil is refused; the application reads and writes it through %s (docs/SQL.md, \"Known limits\")", name, v.Child, v.Reads, v.Reads)})
			continue
		}
		if v.Readable {
			r.add(Finding{Severity: SevNote, Code: "view_readable", Table: name,
				Message: fmt.Sprintf("view %s reads encrypted columns of %s: pgveil plans reads of it through its definition (decrypted; equality needs the blind index among its columns) and refuses writes through it", name, v.Reads)})
			continue
		}
		r.add(Finding{Severity: SevNote, Code: "view_refused", Table: name,
			Message: fmt.Sprintf("view %s reads encrypted columns of %s in a way pgveil cannot follow (it computes on or compares them, or reads a refused view): every statement naming it through pgveil is refused (docs/SQL.md, \"Views over encrypted columns\")", name, v.Reads)})
	}
}

// checkTable compares one configured table with its live form. The checks
// are those proxy/catalog.go's buildCatalog makes at start (every problem
// here keeps `pgveil serve` from starting), plus what migrate and lookups
// need: indexes on blind-index columns and a primary key.
func checkTable(r *Report, t *policy.Table, lt *liveTable) {
	name := t.QualifiedName()
	qt := qualified(t.Schema, t.Name)
	if lt == nil {
		r.add(Finding{Severity: SevProblem, Code: "table_missing", Table: name,
			Message: fmt.Sprintf("table %s does not exist (names are exact, as stored in pg_class; unquoted names are lower case)", name)})
		return
	}
	if lt.Kind != "r" && lt.Kind != "p" {
		r.add(Finding{Severity: SevNote, Code: "not_a_table", Table: name,
			Message: fmt.Sprintf("%s is not an ordinary table (relkind %s): pgveil migrate and rotate cannot rewrite its rows", name, lt.Kind)})
	}
	for _, c := range t.Columns {
		checkColumn(r, t, lt, c, qt)
	}
	if kc := t.KeyContext; kc != "" {
		lc := lt.Cols[kc]
		switch {
		case lc == nil:
			r.add(Finding{Severity: SevProblem, Code: "key_context_missing", Table: name, Column: kc,
				Message: fmt.Sprintf("key_context column %s.%s does not exist: it holds each row's tenant, which selects the data key", name, kc)})
		case !canon.TenantTypeNamed(lc.TypeOID != lc.BaseOID, lc.BaseOID, firstByte(lc.BaseType), firstByte(lc.BaseCategory)):
			r.add(Finding{Severity: SevProblem, Code: "key_context_type", Table: name, Column: kc,
				Message: proxy.TenantTypeProblem(t, lc.TypeName)})
		case !lc.NotNull:
			r.add(Finding{Severity: SevNote, Code: "key_context_nullable", Table: name, Column: kc,
				Message: fmt.Sprintf("key_context column %s.%s allows NULL; pgveil refuses to encrypt for a NULL tenant, and migrate leaves such rows as they are", name, kc),
				Fix:     []string{fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL;", qt, quoteIdent(kc))},
				Caution: "scans the table under an ACCESS EXCLUSIVE lock, and fails while a row has NULL"})
		}
	}
	for _, k := range lt.PK {
		if k != nil && t.Column(k.Name) != nil {
			r.add(Finding{Severity: SevProblem, Code: "primary_key_encrypted", Table: name, Column: k.Name,
				Message: fmt.Sprintf("encrypted column %s is part of the primary key of %s: the key would be ciphertext, different in every envelope (foreign keys to it break, "+
					"lookups by it need the blind index), and pgveil migrate, rotate and migrate --decrypt walk the table by its primary key; "+
					"make other columns the primary key (keep a UNIQUE blind index for this one), or take it out of the policy", t.Column(k.Name).QualifiedName(), name)})
		}
	}
	checkCiphertextSeers(r, t, lt, qt)
	if len(lt.PK) == 0 && (lt.Kind == "r" || lt.Kind == "p") {
		r.add(Finding{Severity: SevNote, Code: "no_primary_key", Table: name,
			Message: fmt.Sprintf("%s has no primary key: the proxy does not need one, but pgveil migrate, rotate and migrate --decrypt walk the table by it", name)})
	}
}

func checkColumn(r *Report, t *policy.Table, lt *liveTable, c *policy.Column, qt string) {
	name := t.QualifiedName()
	lc := lt.Cols[c.Name]
	switch {
	case lc == nil:
		r.add(Finding{Severity: SevProblem, Code: "column_missing", Table: name, Column: c.Name,
			Message: fmt.Sprintf("column %s does not exist", c.QualifiedName()),
			Fix:     []string{fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s bytea;", qt, quoteIdent(c.Name))}})
	case lc.TypeOID != policy.OIDBytea && lc.TypeOID != policy.OIDText:
		r.add(columnTypeFinding(t, c, lc, qt))
	}
	for _, bi := range c.IndexTargets() {
		checkBlindIndex(r, t, lt, c, bi, qt)
	}
}

// checkBlindIndex checks one blind-index column of c: the current one, or
// the next one during an index-key rotation.
func checkBlindIndex(r *Report, t *policy.Table, lt *liveTable, c *policy.Column, bi *policy.BlindIndex, qt string) {
	name := t.QualifiedName()
	qb := quoteIdent(bi.Column)
	ixName := indexName(t.Name, bi.Column)
	create := func() string {
		u := ""
		if bi.Unique {
			u = "UNIQUE "
		}
		n := ixName
		for i := 1; lt.hasIndex(n); i++ {
			n = fmt.Sprintf("%s%d", ixName, i)
		}
		return fmt.Sprintf("CREATE %sINDEX CONCURRENTLY %s ON %s (%s);", u, quoteIdent(n), qt, qb)
	}
	lb := lt.Cols[bi.Column]
	switch {
	case lb == nil:
		r.add(Finding{Severity: SevProblem, Code: "bidx_missing", Table: name, Column: bi.Column,
			Message: fmt.Sprintf("blind-index column %s.%s (for %s) does not exist", name, bi.Column, c.Name),
			Fix:     []string{fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s bytea;", qt, qb), create()}})
		return
	case lb.TypeOID != policy.OIDBytea:
		r.add(Finding{Severity: SevProblem, Code: "bidx_type", Table: name, Column: bi.Column,
			Message: fmt.Sprintf("blind-index column %s.%s is %s; it must be bytea (32-byte HMACs)", name, bi.Column, lb.TypeName),
			Fix:     []string{fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE bytea USING NULL;", qt, qb)},
			Caution: "discards what the column holds and rewrites the table (and its indexes); `pgveil migrate --apply` fills it again from the encrypted values"})
	}
	f, ok := indexFinding(t, lt, c, bi, create)
	if ok {
		r.add(f)
	}
}

// tenantForeignKey reports a foreign key on the key_context column whose
// action changes it inside the server: ON UPDATE CASCADE / SET NULL / SET
// DEFAULT, ON DELETE SET NULL / SET DEFAULT. It moves rows to another
// tenant (or none), unseen by pgveil, and their values, sealed under the
// old tenant's key, no longer open.
func tenantForeignKey(t *policy.Table, c liveConstraint) (Finding, bool) {
	if c.Kind != "f" || t.KeyContext == "" || !slices.Contains(c.Columns, t.KeyContext) {
		return Finding{}, false
	}
	action := map[string]string{"c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
	var what []string
	if a := action[c.OnUpdate]; a != "" {
		what = append(what, "ON UPDATE "+a)
	}
	if a := action[c.OnDelete]; a != "" && c.OnDelete != "c" && (len(c.DeleteSets) == 0 || slices.Contains(c.DeleteSets, t.KeyContext)) {
		what = append(what, "ON DELETE "+a)
	}
	if len(what) == 0 {
		return Finding{}, false
	}
	return Finding{Severity: SevProblem, Code: "key_context_fk_moves", Table: t.QualifiedName(), Column: t.KeyContext,
		Message: fmt.Sprintf("foreign key %s (%s → %s) is %s: a change in %s changes %s inside the database, unseen by pgveil, and the rows' values, sealed under their old tenant's key, no longer open (PV001); recreate it with NO ACTION or RESTRICT for those (ON DELETE CASCADE is fine)",
			c.Name, t.KeyContext, c.References, strings.Join(what, ", "), c.References, t.KeyContext)}, true
}

// checkCiphertextSeers reports what in the database sees an encrypted
// column's ciphertext instead of its value: a CHECK or FOREIGN KEY
// constraint fails or means nothing, an index on the column indexes random
// bytes (a UNIQUE one no longer enforces anything: blind_index.unique
// does), and a trigger reads envelopes, or writes where pgveil did
// (checkTriggers).
func checkCiphertextSeers(r *Report, t *policy.Table, lt *liveTable, qt string) {
	name := t.QualifiedName()
	encrypted := func(cols []string) []string {
		var out []string
		for _, c := range cols {
			if t.Column(c) != nil {
				out = append(out, c)
			}
		}
		return out
	}
	for _, c := range lt.Constraints {
		if f, ok := tenantForeignKey(t, c); ok {
			r.add(f)
		}
		cols := encrypted(c.Columns)
		if len(cols) == 0 {
			continue
		}
		kind := map[string]string{"c": "CHECK constraint", "f": "foreign key", "F": "foreign key of another table referencing it"}[c.Kind]
		f := Finding{Severity: SevProblem, Code: "constraint_on_encrypted", Table: name, Column: strings.Join(cols, ","),
			Message: fmt.Sprintf("%s %s on %s would see ciphertext: it fails or means nothing once the values are envelopes", kind, c.Name, strings.Join(cols, ", "))}
		if c.Kind != "F" {
			f.Fix = []string{fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s;", qt, quoteIdent(c.Name))}
			f.Caution = "the database stops enforcing it; enforce the rule in the application"
		}
		r.add(f)
	}
	for _, ix := range lt.Indexes {
		cols := encrypted(ix.Columns)
		if len(cols) == 0 || ix.Primary {
			continue
		}
		msg := fmt.Sprintf("index %s on %s indexes ciphertext once the values are envelopes: no lookup can use it", ix.Name, strings.Join(cols, ", "))
		if ix.Unique {
			msg += "; as a UNIQUE index it no longer enforces anything (each envelope is different): blind_index.unique does that"
		}
		f := Finding{Severity: SevNote, Code: "index_on_encrypted", Table: name, Column: strings.Join(cols, ","), Message: msg,
			Fix:     []string{fmt.Sprintf("DROP INDEX CONCURRENTLY %s;", qualified(t.Schema, ix.Name))},
			Caution: "drop it once the table is complete, after the application uses the blind index (ON CONFLICT (col) needs blind_index.unique)"}
		if ix.Constraint != "" {
			// PostgreSQL refuses DROP INDEX of an index a constraint owns.
			f.Message += fmt.Sprintf(" (it is the index of constraint %s)", ix.Constraint)
			f.Fix = []string{fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s;", qt, quoteIdent(ix.Constraint))}
			f.Caution += "; ALTER TABLE takes an ACCESS EXCLUSIVE lock for a moment"
		}
		r.add(f)
	}
	checkTriggers(r, t, lt, qt)
}

// columnTypeFinding explains a physical type pgveil cannot store envelopes
// in, with the ALTER that fixes it where that is safe to suggest.
func columnTypeFinding(t *policy.Table, c *policy.Column, lc *liveCol, qt string) Finding {
	f := Finding{Severity: SevProblem, Code: "column_type", Table: t.QualifiedName(), Column: c.Name}
	msg := fmt.Sprintf("column %s is %s; an encrypted column must be bytea (recommended) or text (in-place adoption, envelopes as 'pgv1:…')", c.QualifiedName(), lc.TypeName)
	qc := quoteIdent(c.Name)
	switch lc.BaseOID {
	case oidVarchar, oidBpchar:
		if lc.TypMod > 4 {
			n := int(lc.TypMod - 4)
			msg += fmt.Sprintf("; %s is also too narrow: the envelope of a %d-character ASCII value is %d characters", lc.TypeName, n, envelopeTextLen(n))
			if m, ok := maxPlaintextLen(c.Type); ok {
				msg += fmt.Sprintf(" (a %s value needs up to %d)", c.Type, envelopeTextLen(m))
			}
		}
		f.Fix = []string{fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE text;", qt, qc)}
		if lc.BaseOID == oidBpchar || lc.TypeOID != lc.BaseOID {
			f.Caution = "rewrites the table under an ACCESS EXCLUSIVE lock (char(n) → text drops trailing blanks)"
		}
	default:
		f.Fix = []string{fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE text USING %s::text;", qt, qc, qc)}
		f.Caution = fmt.Sprintf("rewrites the table under an ACCESS EXCLUSIVE lock, and applications that read the column directly see text instead of %s from then on: do it in the maintenance window in which the application moves to pgveil (docs/ADOPTION.md)", lc.TypeName)
		switch lc.BaseOID {
		case oidDate, oidTimestamp, oidTimestamptz:
			// ::text follows the session's DateStyle: SQL or German text
			// ('10/12/1815') is not input pgveil reads for the type.
			f.Fix = append([]string{"SET datestyle TO ISO;"}, f.Fix...)
			f.Caution += "; the SET makes the text ISO whatever the session's DateStyle"
		}
	}
	f.Message = msg
	return f
}

// Type OIDs of textual physical types a column may have before adoption.
const (
	oidVarchar = 1043
	oidBpchar  = 1042
)

// Type OIDs of the date/time types whose text follows DateStyle.
const (
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestamptz = 1184
)

// hasIndex reports whether an index of that name exists on the table.
func (t *liveTable) hasIndex(name string) bool {
	for _, ix := range t.Indexes {
		if ix.Name == name {
			return true
		}
	}
	return false
}

// indexFinding checks that a blind-index column has a usable b-tree index:
// one led by the column for lookups, a UNIQUE one containing it where the
// policy asks (ON CONFLICT); an invalid index (a killed CREATE INDEX
// CONCURRENTLY) is dropped first.
func indexFinding(t *policy.Table, lt *liveTable, c *policy.Column, bi *policy.BlindIndex, create func() string) (Finding, bool) {
	name := t.QualifiedName()
	var lookup, unique bool
	var invalid []string
	for _, ix := range lt.indexesOn(bi.Column) {
		if !ix.Valid {
			invalid = append(invalid, ix.Name)
			continue
		}
		if ix.Method != "btree" || ix.Partial {
			continue
		}
		if ix.Columns[0] == bi.Column {
			lookup = true
		}
		if ix.Unique {
			unique = true
		}
	}
	var fix []string
	for _, n := range invalid {
		fix = append(fix, fmt.Sprintf("DROP INDEX CONCURRENTLY %s;", qualified(t.Schema, n)))
	}
	switch {
	case bi.Unique && !unique:
		code := "bidx_index_missing"
		msg := fmt.Sprintf("blind-index column %s.%s has no UNIQUE b-tree index (blind_index.unique is true: ON CONFLICT needs it)", name, bi.Column)
		if lookup {
			code = "bidx_index_not_unique"
			msg = fmt.Sprintf("blind-index column %s.%s has an index, but not a UNIQUE one (blind_index.unique is true: ON CONFLICT needs it)", name, bi.Column)
		}
		if len(invalid) > 0 {
			code = "bidx_index_invalid"
			msg += fmt.Sprintf("; invalid index %s is left over from a failed CREATE INDEX CONCURRENTLY", strings.Join(invalid, ", "))
		}
		return Finding{Severity: SevProblem, Code: code, Table: name, Column: bi.Column, Message: msg,
			Fix: append(fix, create()), Caution: uniqueCaution}, true
	case !bi.Unique && !lookup:
		code := "bidx_index_missing"
		msg := fmt.Sprintf("blind-index column %s.%s has no b-tree index led by it: every lookup by %s scans the table", name, bi.Column, c.Name)
		if len(invalid) > 0 {
			code = "bidx_index_invalid"
			msg += fmt.Sprintf("; invalid index %s is left over from a failed CREATE INDEX CONCURRENTLY", strings.Join(invalid, ", "))
		}
		return Finding{Severity: SevProblem, Code: code, Table: name, Column: bi.Column, Message: msg, Fix: append(fix, create())}, true
	case len(invalid) > 0:
		return Finding{Severity: SevNote, Code: "bidx_index_invalid", Table: name, Column: bi.Column,
			Message: fmt.Sprintf("invalid index %s on %s.%s is left over from a failed CREATE INDEX CONCURRENTLY (a valid one exists)", strings.Join(invalid, ", "), name, bi.Column),
			Fix:     fix}, true
	}
	return Finding{}, false
}

const uniqueCaution = "fails if two rows already share a blind index (equal values after normalisation); find them with `SELECT email_bidx, count(*) … GROUP BY 1 HAVING count(*) > 1`"

// checkKeyStore looks for pgveil.keys and makes sure the master key opens
// the stored data keys: one key per distinct master key id is unwrapped.
func checkKeyStore(ctx context.Context, e *Env, r *Report) {
	var keys, tables bool
	if err := e.Pool.QueryRow(ctx, `SELECT to_regclass('pgveil.keys') IS NOT NULL, to_regclass('pgveil.tables') IS NOT NULL`).Scan(&keys, &tables); err != nil {
		r.add(e.readFailed("looking for the pgveil schema", err))
		return
	}
	if !tables {
		r.add(Finding{Severity: SevNote, Code: "table_states_missing",
			Message: "pgveil.tables (migration states) does not exist yet; `pgveil migrate --apply` creates it, and until then every configured table counts as complete",
			Fix:     splitStatements(proxy.TableStatesDDL)})
	}
	master, err := e.Master(ctx)
	if err != nil {
		r.add(Finding{Severity: SevProblem, Code: "master_key", Message: err.Error()})
		return
	}
	if !keys {
		r.add(Finding{Severity: SevProblem, Code: "keystore_missing",
			Message: "the key store pgveil.keys does not exist; `pgveil serve` and `pgveil migrate --apply` create it when the service role may CREATE in the database, else run:",
			Fix:     splitStatements(keysource.SchemaDDL())})
		return
	}
	rows, err := e.Pool.Query(ctx, `SELECT DISTINCT ON (master_key_id) key_id, master_key_id, wrapped_key
		FROM pgveil.keys WHERE state <> 'shredded' ORDER BY master_key_id, key_id`)
	if err != nil {
		r.add(e.readFailed("reading pgveil.keys", err))
		return
	}
	type sample struct {
		id       int64
		masterID string
		wrapped  []byte
	}
	var samples []sample
	for rows.Next() {
		var s sample
		if err := rows.Scan(&s.id, &s.masterID, &s.wrapped); err != nil {
			rows.Close()
			r.add(e.readFailed("reading pgveil.keys", err))
			return
		}
		samples = append(samples, s)
	}
	if err := rows.Err(); err != nil {
		r.add(e.readFailed("reading pgveil.keys", err))
		return
	}
	for _, s := range samples {
		raw, err := master.Unwrap(ctx, s.wrapped, s.masterID)
		clear(raw)
		if err != nil {
			r.add(Finding{Severity: SevProblem, Code: "master_key",
				Message: fmt.Sprintf("the configured master key (%s) cannot open data key %d, wrapped under %s: %v. "+
					"Every value under such keys is unreadable: configure the master key they were made with "+
					"(local: add the old key file to keysource.local.previous_key_files, then `pgveil rotate --master`)", master.ID(), s.id, s.masterID, err)})
			continue
		}
		if s.masterID != master.ID() {
			r.add(Finding{Severity: SevNote, Code: "master_key",
				Message: fmt.Sprintf("data keys are still wrapped under the older master key %s; `pgveil rotate --master` rewraps them under %s", s.masterID, master.ID())})
		}
	}
}

// plaintextSample is how many rows of each complete table checkPlaintext reads.
const plaintextSample = 10000

// checkPlaintext reads the first plaintextSample rows of t (storage order:
// a few pages, not a scan) when t is complete, or has no state, which
// counts as complete, and reports each encrypted column holding values
// without an envelope there: pgveil refuses to return them (PV003). That
// catches a column added to the policy of a complete table before
// `migrate --apply --prepare` ran with it; a few values written around
// pgveil further on may be missed. The migrate plan counts every one.
func checkPlaintext(ctx context.Context, e *Env, r *Report, t *policy.Table, lt *liveTable, state string) {
	if lt == nil || (lt.Kind != "r" && lt.Kind != "p") || state == proxy.TableMigrating || state == proxy.TableDecrypting {
		return
	}
	var cols []*policy.Column
	var names, exprs []string
	for _, c := range t.Columns {
		lc := lt.Cols[c.Name]
		if lc == nil || (lc.TypeOID != policy.OIDBytea && lc.TypeOID != policy.OIDText) {
			continue // reported by checkColumn
		}
		qc := col(c.Name)
		cols, names = append(cols, c), append(names, qc)
		exprs = append(exprs, fmt.Sprintf("count(*) FILTER (WHERE %s IS NOT NULL AND NOT %s)", qc, sealedSQL(qc, lc.TypeOID)))
	}
	if len(cols) == 0 {
		return
	}
	vals := make([]int64, len(cols)+1)
	dst := make([]any, len(vals))
	for i := range vals {
		dst[i] = &vals[i]
	}
	sql := fmt.Sprintf("SELECT count(*), %s FROM (SELECT %s FROM %s LIMIT %d) AS pgveil_s",
		strings.Join(exprs, ", "), strings.Join(names, ", "), qualified(t.Schema, t.Name), plaintextSample)
	if err := e.Pool.QueryRow(ctx, sql).Scan(dst...); err != nil {
		r.add(Finding{Severity: SevProblem, Code: "connect", Table: t.QualifiedName(), Message: "reading rows of " + t.QualifiedName() + " failed: " + err.Error()})
		return
	}
	desc := "complete"
	if state == "" {
		desc = "complete (it has no migration state)"
	}
	for i, c := range cols {
		if n := vals[i+1]; n > 0 {
			r.add(Finding{Severity: SevProblem, Code: "plaintext_in_complete", Table: t.QualifiedName(), Column: c.Name,
				Message: fmt.Sprintf("column %s holds values without an envelope (%d of the first %d rows read) while %s is %s: pgveil refuses to return them (PV003). "+
					"Run `pgveil migrate --apply --prepare` with this policy before pgveil serves it (the table becomes migrating: such values read as legacy plaintext), "+
					"then `pgveil migrate --apply` (docs/ADOPTION.md §7)", c.QualifiedName(), n, vals[0], t.QualifiedName(), desc)})
		}
	}
}

// checkTableStates reports tables in migration and leftover states. A
// configured table's state is taken from verified, its rows whose
// signature verifies (a rejected row is reported as untrusted by Check);
// with verified nil (the states could not be checked) the notes say so.
func checkTableStates(ctx context.Context, e *Env, r *Report, verified *proxy.StateRows) {
	var exists bool
	if err := e.Pool.QueryRow(ctx, `SELECT to_regclass('pgveil.tables') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return
	}
	if old, err := proxy.TableStatesUnsigned(ctx, e.Pool); err == nil && old {
		r.add(Finding{Severity: SevNote, Code: "table_states_upgrade",
			Message: "pgveil.tables was made by an older pgveil and has no signature columns: its rows are not trusted (they count as complete). `pgveil migrate --apply` adds the columns when the service role owns the table, else its owner can run:",
			Fix:     splitStatements(proxy.TableStatesUpgradeDDL)})
	}
	rows, err := e.Pool.Query(ctx, `SELECT table_name, state FROM pgveil.tables ORDER BY table_name`)
	if err != nil {
		return
	}
	states := map[string]string{}
	for rows.Next() {
		var t, s string
		if rows.Scan(&t, &s) == nil {
			states[t] = s
		}
	}
	rows.Close()
	names := make([]string, 0, len(states))
	for n := range states {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := states[n]
		configured := false
		for _, t := range e.Cfg.Tables {
			if t.QualifiedName() == n {
				configured = true
			}
		}
		unverified := ""
		if configured && verified == nil {
			unverified = " (according to pgveil.tables; its signature could not be checked)"
		} else if configured {
			if _, bad := verified.Rejected[n]; bad {
				continue // reported as table_state_untrusted
			}
			if v, ok := verified.Verified[n]; !ok || v.State != s {
				continue
			}
		}
		switch {
		case !configured:
			f := Finding{Severity: SevNote, Code: "stale_table_state", Table: n,
				Fix: []string{fmt.Sprintf("DELETE FROM pgveil.tables WHERE table_name = %s;", quoteLiteral(n))}}
			switch s {
			case "decrypting":
				f.Message = fmt.Sprintf("pgveil.tables has state %q for %s, which is not in the policy (left by `pgveil migrate --decrypt`); it is ignored and can be removed", s, n)
			case "migrating":
				// Another config (another service, or the policy the
				// replicas run) may be migrating it right now.
				f.Message = fmt.Sprintf("pgveil.tables has state %q for %s, which is not in this policy: a pgveil with another policy (another service's config, or the one the replicas run) is migrating it", s, n)
				f.Caution = "remove the row only if no policy names the table any more: the replicas that serve it would take it for complete, refuse its plaintext (PV003) and miss rows not yet backfilled in lookups; else finish the migration with that policy (`pgveil migrate --apply`)"
			default:
				f.Message = fmt.Sprintf("pgveil.tables has state %q for %s, which is not in this policy; it is ignored here, and removing it changes nothing (a table without a row counts as complete)", s, n)
			}
			r.add(f)
		case s == "migrating":
			r.add(Finding{Severity: SevNote, Code: "table_state", Table: n,
				Message: fmt.Sprintf("%s is being migrated%s: the proxy returns values without an envelope as legacy plaintext until `pgveil migrate --apply` marks it complete", n, unverified)})
		case s == "decrypting":
			r.add(Finding{Severity: SevNote, Code: "table_state", Table: n,
				Message: fmt.Sprintf("%s is being decrypted%s (`pgveil migrate --decrypt`); remove it from the policy once that is done (docs/ADOPTION.md, leaving pgveil)", n, unverified)})
		}
	}
}

// splitStatements splits DDL into one statement per entry, at semicolons
// outside single-quoted literals (pgveil's own DDL has no dollar quotes).
func splitStatements(ddl string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(ddl); i++ {
		switch ddl[i] {
		case '\'':
			quoted = !quoted
		case ';':
			if !quoted {
				if s := strings.TrimSpace(ddl[start:i]); s != "" {
					out = append(out, s+";")
				}
				start = i + 1
			}
		}
	}
	if s := strings.TrimSpace(ddl[start:]); s != "" {
		out = append(out, s+";")
	}
	return out
}

// readFailed is the finding for a query of Check that failed. A missing
// privilege (42501) names the service role and what it needs: pgveil runs
// CREATE … IF NOT EXISTS on its schema and writes its tables, so the role
// should own them (docs/ADOPTION.md, "What you need").
func (e *Env) readFailed(what string, err error) Finding {
	f := Finding{Severity: SevProblem, Code: "connect", Message: what + " failed: " + err.Error()}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" {
		return f
	}
	role := quoteIdent(e.Pool.Config().ConnConfig.User)
	f.Code = "privilege"
	f.Message += "; pgveil's service role (upstream.service_url) should own the pgveil schema and its tables, and may need CREATE on the database (docs/ADOPTION.md, \"What you need\")"
	f.Fix = []string{
		"ALTER SCHEMA pgveil OWNER TO " + role + ";",
		"ALTER TABLE IF EXISTS pgveil.keys OWNER TO " + role + ";",
		"ALTER TABLE IF EXISTS pgveil.tables OWNER TO " + role + ";",
	}
	return f
}

// firstByte is s[0], 0 for "" (a liveCol built without pg_type's
// typtype or typcategory).
func firstByte(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}
