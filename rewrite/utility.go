package rewrite

import (
	"slices"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// utility checks the statements that are neither queries nor session
// commands. Most pass unchanged (DROP, TRUNCATE, GRANT, ALTER … RENAME of
// other tables and columns, CREATE INDEX on a column). Refused are those
// that would make the server store or evaluate plaintext of an encrypted
// column: a DEFAULT, CHECK or generated expression on one, a policy (on
// any table), trigger WHEN or index expression over one, a rule on a
// configured table or whose condition or actions read one, a function or
// DO body that uses one or inserts into a configured table, expressions
// stored on a view over encrypted columns, and DDL that reshapes a
// configured table (reshape).
func (a *analyzer) utility(n *pg.Node) *Error {
	if err := a.reshape(n); err != nil {
		return err
	}
	switch {
	case n.GetCreateStmt() != nil:
		cs := n.GetCreateStmt()
		t := a.configured(cs.Relation)
		if t == nil {
			return nil
		}
		for _, e := range cs.TableElts {
			if cd := e.GetColumnDef(); cd != nil {
				if err := a.columnDef(t, cd); err != nil {
					return err
				}
			}
			if c := e.GetConstraint(); c != nil {
				if err := a.tableConstraint(t, c); err != nil {
					return err
				}
			}
		}
		for _, c := range cs.Constraints {
			if err := a.strictExpr(t, c.GetConstraint().GetRawExpr(), "a table constraint"); err != nil {
				return err
			}
		}
	case n.GetAlterTableStmt() != nil:
		at := n.GetAlterTableStmt()
		t := a.configured(at.Relation)
		if t == nil {
			for _, c := range at.Cmds {
				if cmd := c.GetAlterTableCmd(); cmd != nil && cmd.Subtype == pg.AlterTableType_AT_ColumnDefault && !isNullConst(cmd.Def) {
					if err := a.viewExprs(at.Relation); err != nil {
						return err
					}
				}
			}
			a.pinExisting(at.Relation)
			return nil
		}
		for _, c := range at.Cmds {
			cmd := c.GetAlterTableCmd()
			if cmd == nil {
				continue
			}
			switch cmd.Subtype {
			case pg.AlterTableType_AT_AddColumn:
				if cd := cmd.Def.GetColumnDef(); cd != nil {
					if err := a.columnDef(t, cd); err != nil {
						return err
					}
				}
			case pg.AlterTableType_AT_ColumnDefault:
				if enc := t.Column(cmd.Name); enc != nil && !isNullConst(cmd.Def) {
					return unsupported(enc, "a column DEFAULT", "drop the default; pgveil encrypts the values the application writes").at(a.sql, firstLocation(cmd.Def))
				}
			case pg.AlterTableType_AT_AddConstraint:
				if con := cmd.Def.GetConstraint(); con != nil {
					if err := a.tableConstraint(t, con); err != nil {
						return err
					}
				}
			}
		}
	case n.GetCreateStatsStmt() != nil:
		// Extended statistics on expressions are stored in the catalog and
		// evaluated over stored values, as an index expression is.
		cs := n.GetCreateStatsStmt()
		for _, rn := range cs.Relations {
			rv := rn.GetRangeVar()
			if rv == nil {
				continue
			}
			t := a.configured(rv)
			if t == nil {
				for _, e := range cs.Exprs {
					if e.GetStatsElem().GetExpr() != nil {
						if err := a.viewExprs(rv); err != nil {
							return err
						}
					}
				}
				a.pinExisting(rv)
				continue
			}
			for _, e := range cs.Exprs {
				if err := a.strictExpr(t, e.GetStatsElem().GetExpr(), "CREATE STATISTICS"); err != nil {
					return err
				}
			}
		}
	case n.GetIndexStmt() != nil:
		ix := n.GetIndexStmt()
		t := a.configured(ix.Relation)
		if t == nil {
			exprs := ix.WhereClause != nil
			for _, p := range ix.IndexParams {
				exprs = exprs || p.GetIndexElem().GetExpr() != nil
			}
			if exprs {
				if err := a.viewExprs(ix.Relation); err != nil {
					return err
				}
			}
			a.pinExisting(ix.Relation)
			return nil
		}
		for _, p := range ix.IndexParams {
			if err := a.strictExpr(t, p.GetIndexElem().GetExpr(), "an index expression"); err != nil {
				return err
			}
		}
		if ix.Unique {
			if err := a.uniqueKeys(t, ix.IndexParams, ix.Relation.Location); err != nil {
				return err
			}
		}
		return a.strictExpr(t, ix.WhereClause, "a partial index predicate")
	case n.GetCreatePolicyStmt() != nil:
		cp := n.GetCreatePolicyStmt()
		if t := a.configured(cp.Table); t != nil {
			if err := a.strictExpr(t, cp.Qual, "a row-security policy"); err != nil {
				return err
			}
			return a.strictExpr(t, cp.WithCheck, "a row-security policy")
		}
		// A policy on another table may read a configured one in a
		// subquery: stored as well.
		if err := a.storedExpr(cp.Table, "a row-security policy", cp.Qual, cp.WithCheck); err != nil {
			return err
		}
		a.pinExisting(cp.Table)
	case n.GetAlterPolicyStmt() != nil:
		ap := n.GetAlterPolicyStmt()
		if t := a.configured(ap.Table); t != nil {
			if err := a.strictExpr(t, ap.Qual, "a row-security policy"); err != nil {
				return err
			}
			return a.strictExpr(t, ap.WithCheck, "a row-security policy")
		}
		if err := a.storedExpr(ap.Table, "a row-security policy", ap.Qual, ap.WithCheck); err != nil {
			return err
		}
		a.pinExisting(ap.Table)
	case n.GetCreateTrigStmt() != nil:
		tr := n.GetCreateTrigStmt()
		if t := a.configured(tr.Relation); t != nil {
			// WHEN sees the row as NEW and OLD: an encrypted column there,
			// also inside the whole row ((NEW).email, NEW = ROW(…),
			// row_to_json(NEW)), is an envelope.
			return a.strictExprAs(t, tr.WhenClause, "a trigger WHEN condition", "new", "old")
		}
		a.pinExisting(tr.Relation)
	case n.GetRuleStmt() != nil:
		rs := n.GetRuleStmt()
		if t := a.configured(rs.Relation); t != nil {
			return tableErr(CodeFeatureNotSupported, t, "use a trigger, or write the rule on a direct connection",
				"rules on configured table %s are not supported: their actions would run inside the server on values pgveil never sees", t.QualifiedName()).at(a.sql, rs.Relation.Location)
		}
		if _, err := a.resolveTable(rs.Relation); err != nil {
			return err // a view over encrypted columns: NEW.email is an envelope
		}
		a.pinExisting(rs.Relation)
		// The condition is stored with the rule, and may read a configured
		// table in a subquery.
		if err := a.opaque(rs.WhereClause, nil, "a rule condition"); err != nil {
			return err
		}
		for _, act := range rs.Actions {
			// The walk below sees RangeVars wrapped in nodes; a DML
			// action's target is not one.
			if rv := dmlTarget(act); rv != nil {
				ref, err := a.resolveTable(rv)
				if err != nil {
					return err
				}
				if ref.table != nil {
					return tableErr(CodeFeatureNotSupported, ref.table, "use a trigger, or write the rule on a direct connection",
						"a rule action writing configured table %s is not supported: it would run inside the server on values pgveil never sees", ref.table.QualifiedName()).at(a.sql, rv.Location)
				}
			}
			if err := a.opaque(act, nil, "a rule action"); err != nil {
				return err
			}
		}
	case n.GetCreateFunctionStmt() != nil:
		cf := n.GetCreateFunctionStmt()
		if ok, err := a.wrappedInsert(cf); ok {
			return err
		}
		if err := a.rowArgs(cf); err != nil {
			return err
		}
		for _, o := range cf.Options {
			if d := o.GetDefElem(); d != nil && d.Defname == "as" {
				lang := language(cf.Options, "sql")
				if err := a.body(d.Arg, "a function body", lang); err != nil {
					if names(cf.Funcname) == "pg_temp.testfunc" {
						// Sequelize's findOrCreate wraps its INSERT so.
						err.Hint += "; Sequelize's findOrCreate works as Sequelize sends it (the function, its SELECT and its DROP alone in one string, docs/SQL.md), and this string differs"
					}
					return err
				}
				if l := d.Arg.GetList(); l != nil && len(l.Items) == 1 {
					if code, ok := str(l.Items[0]); ok {
						var err *Error
						switch lang {
						case "sql":
							err = a.sqlBody(code, "a function body", d.Location)
						case "plpgsql":
							err = a.plpgsqlRows(a.sql[a.stmtStart:a.stmtEnd], code, "a function body", returnsTrigger(cf))
						}
						if err != nil {
							return err
						}
					}
				}
			}
		}
		if cf.SqlBody != nil {
			return a.opaque(cf.SqlBody, nil, "a function body")
		}
	case n.GetCallStmt() != nil:
		a.st.PathOpaque = true
	case n.GetDoStmt() != nil:
		a.st.PathOpaque = true
		for _, o := range n.GetDoStmt().Args {
			if d := o.GetDefElem(); d != nil && d.Defname == "as" {
				lang := language(n.GetDoStmt().Args, "plpgsql")
				code, ok := str(d.Arg)
				if ok {
					if err := a.sessionBody(code, d.Location); err != nil {
						return err
					}
				}
				if err := a.body(d.Arg, "a DO block", lang); err != nil || !ok || lang != "plpgsql" {
					return err
				}
				return a.plpgsqlRows("", code, "a DO block", false)
			}
		}
	case n.GetCreateSchemaStmt() != nil:
		for _, e := range n.GetCreateSchemaStmt().SchemaElts {
			if err := a.plan(e); err != nil {
				return err
			}
		}
		a.st.Kind = KindDDL
	}
	return nil
}

// reshape refuses DDL after which writes to a configured table's data
// would reach the server unencrypted or its values would stop opening:
// renaming or moving a configured table or one of its pgveil columns
// (writes under the new name are not encrypted; envelopes are bound to the
// old name), changing an encrypted column's type (a USING expression
// rewrites every value in the server), and making a table a partition or
// child of a configured one (the child is not configured, but holds the
// parent's rows). CREATE TABLE AS / SELECT INTO a configured name:
// intoConfigured.
func (a *analyzer) reshape(n *pg.Node) *Error {
	refuse := func(t *policy.Table, rv *pg.RangeVar, what string) *Error {
		e := tableErr(CodeFeatureNotSupported, t, "run it on a direct connection, following docs/LIMITS.md (decrypt first where names change), and update the policy",
			"%s configured table %s is not supported through pgveil", what, t.QualifiedName())
		if rv != nil {
			e.at(a.sql, rv.Location)
		}
		return e
	}
	switch {
	case n.GetCreateStmt() != nil:
		for _, p := range n.GetCreateStmt().InhRelations {
			if rv := p.GetRangeVar(); rv != nil {
				// A partition or child of a table above a configured one
				// is its sibling: nothing of the configured table's.
				if t, kind := a.configuredKind(rv); t != nil && kind != ChildAncestor {
					return refuse(t, rv, "a partition or child table (PARTITION OF, INHERITS) of")
				}
				a.pinExisting(rv)
			}
		}
	case n.GetRenameStmt() != nil:
		r := n.GetRenameStmt()
		switch r.RenameType {
		case pg.ObjectType_OBJECT_TABLE, pg.ObjectType_OBJECT_FOREIGN_TABLE, pg.ObjectType_OBJECT_INDEX,
			pg.ObjectType_OBJECT_SEQUENCE, pg.ObjectType_OBJECT_VIEW, pg.ObjectType_OBJECT_MATVIEW:
			// ALTER INDEX/SEQUENCE/VIEW … RENAME is accepted on a table too.
			if t := a.configured(r.Relation); t != nil {
				return refuse(t, r.Relation, "renaming")
			}
			if err := a.guardedMove(r.Relation, "renaming"); err != nil {
				return err
			}
		case pg.ObjectType_OBJECT_COLUMN:
			if t := a.configured(r.Relation); t != nil && pgveilColumn(t, r.Subname) {
				return refuse(t, r.Relation, "renaming column "+r.Subname+" of")
			}
		case pg.ObjectType_OBJECT_SCHEMA:
			for _, t := range a.cfg.Tables {
				if t.Schema == r.Subname {
					return refuse(t, nil, "renaming the schema of")
				}
			}
			if a.cat != nil {
				for _, g := range a.cat.Guarded {
					if g.Schema == r.Subname {
						return guardedMoveErr(g, "renaming the schema of")
					}
				}
			}
		}
	case n.GetAlterObjectSchemaStmt() != nil:
		r := n.GetAlterObjectSchemaStmt()
		if t := a.configured(r.Relation); t != nil { // any relation kind's ALTER … SET SCHEMA
			return refuse(t, r.Relation, "moving to another schema")
		}
		if err := a.guardedMove(r.Relation, "moving to another schema"); err != nil {
			return err
		}
	case n.GetAlterTableStmt() != nil:
		at := n.GetAlterTableStmt()
		t, kind := a.configuredKind(at.Relation)
		for _, c := range at.Cmds {
			cmd := c.GetAlterTableCmd()
			if cmd == nil {
				continue
			}
			switch cmd.Subtype {
			case pg.AlterTableType_AT_AddInherit:
				if rv := cmd.Def.GetRangeVar(); rv != nil {
					if pt, kind := a.configuredKind(rv); pt != nil && kind != ChildAncestor {
						return refuse(pt, rv, "INHERIT from")
					}
					a.pinExisting(rv)
				}
			case pg.AlterTableType_AT_AttachPartition:
				if t != nil && kind != ChildAncestor {
					return refuse(t, at.Relation, "ATTACH PARTITION to")
				}
				if pc := cmd.Def.GetPartitionCmd(); pc != nil {
					if ct := a.configured(pc.Name); ct != nil {
						return refuse(ct, pc.Name, "attaching as a partition of another table")
					}
				}
			case pg.AlterTableType_AT_AlterColumnType:
				if t != nil && pgveilColumn(t, cmd.Name) {
					e := refuse(t, at.Relation, "changing the type of column "+cmd.Name+" of")
					e.Column = cmd.Name
					return e
				}
				if t != nil {
					// USING runs over every row's stored values: an encrypted
					// column there is ciphertext (and a literal beside it
					// plaintext in the statement).
					if err := a.strictExpr(t, cmd.Def.GetColumnDef().GetRawDefault(), "ALTER COLUMN … TYPE … USING"); err != nil {
						return err
					}
				}
			case pg.AlterTableType_AT_DropColumn:
				// The policy would name a column the table no longer has:
				// its values, or the index that finds them, are gone, and
				// pgveil could not start again on this database.
				if t != nil && pgveilColumn(t, cmd.Name) {
					e := refuse(t, at.Relation, "dropping column "+cmd.Name+" of")
					e.Column = cmd.Name
					return e
				}
			}
		}
	}
	return nil
}

// pgveilColumn reports a column pgveil reads by name: encrypted, a blind
// index, or the key context.
func pgveilColumn(t *policy.Table, name string) bool {
	if t.Column(name) != nil || t.KeyContext == name {
		return true
	}
	b, _ := t.IndexByColumn(name)
	return b != nil
}

// intoConfigured refuses CREATE TABLE AS / SELECT INTO whose new table is
// a configured one (dropped first): it would be created holding plaintext.
func (a *analyzer) intoConfigured(into *pg.IntoClause) *Error {
	if into == nil {
		return nil
	}
	if t := a.configured(into.Rel); t != nil {
		return tableErr(CodeFeatureNotSupported, t, "create the table with CREATE TABLE and fill it with INSERT through pgveil",
			"CREATE TABLE AS / SELECT INTO configured table %s would store plaintext", t.QualifiedName()).at(a.sql, into.Rel.Location)
	}
	return nil
}

// configured returns the configured table a RangeVar names, or nil. A
// partition or inheritance child of a configured table (GuardedView.Child)
// stands for that table: its columns are the table's, and what DDL puts on
// them (a default, a constraint, an index predicate, a partition attached
// below) holds for the rows written through the table.
func (a *analyzer) configured(rv *pg.RangeVar) *policy.Table {
	t, _ := a.configuredKind(rv)
	return t
}

// configuredKind is configured that also says how the relation stands to
// the table: "" (it is the table), a GuardedView.Child kind. A table above
// a configured one (ChildAncestor) stands for it too: a default or
// constraint put on it recurses to the table. While the path is unknown,
// a name that resolves to no configured table is matched against the
// guarded relations of that name in any schema.
func (a *analyzer) configuredKind(rv *pg.RangeVar) (*policy.Table, string) {
	if rv == nil {
		return nil, ""
	}
	ref, err := a.resolveName(rv)
	if err != nil {
		return nil, ""
	}
	if ref.table != nil || a.cat == nil {
		return ref.table, ""
	}
	if g := a.cat.Guarded[ref.schema+"."+ref.name]; g != nil && g.Parent != nil {
		return g.Parent, g.Child
	}
	if ref.schema == "" && a.path.unknown {
		for _, g := range a.cat.Guarded {
			if g.Parent != nil && g.Name == ref.name {
				return g.Parent, g.Child
			}
		}
	}
	return nil, ""
}

// guardedMove refuses renaming or moving (what) a view over an encrypted
// column, or a relation of the same name while the path is unknown: until
// the transaction ends and pgveil reads its catalog again, the session
// plans the view's new name as the relation it named before (a plain
// table, or nothing), and values written through it would reach the
// encrypted column in plaintext. Partitions and children are refused as
// their configured table (configured).
func (a *analyzer) guardedMove(rv *pg.RangeVar, what string) *Error {
	if rv == nil || a.cat == nil || len(a.cat.Guarded) == 0 {
		return nil
	}
	ref, err := a.resolveName(rv)
	if err != nil {
		return err
	}
	if g := a.cat.Guarded[ref.schema+"."+ref.name]; g != nil {
		return guardedMoveErr(g, what).at(a.sql, rv.Location)
	}
	if ref.schema == "" && a.path.unknown {
		for _, g := range a.cat.Guarded {
			if g.Name == ref.name {
				return guardedMoveErr(g, what).at(a.sql, rv.Location)
			}
		}
	}
	return nil
}

func guardedMoveErr(g *GuardedView, what string) *Error {
	e := errorf(CodeFeatureNotSupported, "%s view %s.%s, which reads encrypted columns of %s, is not supported through pgveil: under its new name pgveil would not know it until it reads its catalog again, and values written through it would reach the server in plaintext", what, g.Schema, g.Name, g.Reads)
	e.Hint = "run it on a direct connection (pgveil learns the new name at its next catalog read: DDL through pgveil, SIGHUP or a restart)"
	e.Schema, e.Table = g.Schema, g.Name
	return e
}

// tenantForeignKey refuses a foreign key on the key_context column whose
// action changes it inside the server (ON UPDATE CASCADE / SET NULL / SET
// DEFAULT, ON DELETE SET NULL / SET DEFAULT of it): rows would move to
// another tenant unseen, their values sealed under the old one's key.
// column names the column of a column constraint ("" for a table one).
func (a *analyzer) tenantForeignKey(t *policy.Table, con *pg.Constraint, column string) *Error {
	kc := t.KeyContext
	if kc == "" || con.Contype != pg.ConstrType_CONSTR_FOREIGN {
		return nil
	}
	names := func(ns []*pg.Node) []string {
		var out []string
		for _, n := range ns {
			if s, ok := str(n); ok {
				out = append(out, s)
			}
		}
		return out
	}
	cols := names(con.FkAttrs)
	if column != "" {
		cols = []string{column}
	}
	if !slices.Contains(cols, kc) {
		return nil
	}
	moves := con.FkUpdAction == "c" || con.FkUpdAction == "n" || con.FkUpdAction == "d"
	if set := names(con.FkDelSetCols); (con.FkDelAction == "n" || con.FkDelAction == "d") && (len(set) == 0 || slices.Contains(set, kc)) {
		moves = true
	}
	if !moves {
		return nil
	}
	return tableErr(CodeFeatureNotSupported, t, "use NO ACTION or RESTRICT for those actions (ON DELETE CASCADE is fine)",
		"a foreign key on %s.%s that cascades an update or sets it NULL or DEFAULT is not supported: the server would move rows to another tenant, unseen by pgveil, and their values, sealed under the old tenant's key, would no longer open", t.QualifiedName(), kc).at(a.sql, con.Location)
}

// columnDef refuses a default or generated expression on an encrypted column.
func (a *analyzer) columnDef(t *policy.Table, cd *pg.ColumnDef) *Error {
	if cd.Colname == t.KeyContext {
		for _, c := range cd.Constraints {
			if con := c.GetConstraint(); con != nil {
				if err := a.tenantForeignKey(t, con, cd.Colname); err != nil {
					return err
				}
			}
		}
	}
	if err := a.declaredType(t, cd); err != nil {
		return err
	}
	enc := t.Column(cd.Colname)
	if enc == nil {
		if b := t.BlindIndexColumn(cd.Colname); b == nil {
			for _, c := range cd.Constraints {
				if err := a.strictExpr(t, c.GetConstraint().GetRawExpr(), "a column constraint"); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if cd.RawDefault != nil && !isNullConst(cd.RawDefault) {
		return unsupported(enc, "a column DEFAULT", "drop the default; pgveil encrypts the values the application writes").at(a.sql, cd.Location)
	}
	for _, c := range cd.Constraints {
		con := c.GetConstraint()
		if con == nil {
			continue
		}
		switch con.Contype {
		case pg.ConstrType_CONSTR_DEFAULT:
			if !isNullConst(con.RawExpr) {
				return unsupported(enc, "a column DEFAULT", "drop the default; pgveil encrypts the values the application writes").at(a.sql, con.Location)
			}
		case pg.ConstrType_CONSTR_GENERATED, pg.ConstrType_CONSTR_IDENTITY:
			return unsupported(enc, "a generated column", "compute the value in the application").at(a.sql, con.Location)
		case pg.ConstrType_CONSTR_CHECK:
			return unsupported(enc, "a CHECK constraint", "check the value in the application; the database sees only ciphertext").at(a.sql, con.Location)
		case pg.ConstrType_CONSTR_UNIQUE, pg.ConstrType_CONSTR_PRIMARY:
			return uniqueRefused(enc).at(a.sql, con.Location)
		}
	}
	return nil
}

// declaredType refuses a column definition of an encrypted column whose
// type cannot hold envelopes (bytea, or text for in-place adoption), and
// of a blind-index column that is not bytea: pgveil would refuse to start
// on the database, and until then writes would fail (an ORM's schema
// synchronisation declares the logical type, varchar(320)).
func (a *analyzer) declaredType(t *policy.Table, cd *pg.ColumnDef) *Error {
	enc := t.Column(cd.Colname)
	b, _ := t.IndexByColumn(cd.Colname)
	tn := cd.TypeName
	if enc == nil && b == nil || tn == nil {
		return nil
	}
	name := lastName(tn.Names)
	ok := len(tn.ArrayBounds) == 0 && len(tn.Typmods) == 0 && !tn.Setof && !tn.PctType &&
		(len(tn.Names) == 1 || len(tn.Names) == 2 && names(tn.Names[:1]) == "pg_catalog") &&
		(name == "bytea" || enc != nil && name == "text")
	if ok {
		return nil
	}
	if enc != nil {
		return colErr(CodeFeatureNotSupported, enc, "declare it bytea (the application still sees "+string(enc.Type)+"; docs/ADOPTION.md)",
			"column %s is encrypted: its type in the database must be bytea (or text for in-place adoption), not %s", enc.QualifiedName(), typeText(tn)).at(a.sql, cd.Location)
	}
	e := tableErr(CodeFeatureNotSupported, t, "declare it bytea",
		"column %s.%s is the blind index of %s: its type must be bytea, not %s", t.QualifiedName(), cd.Colname, b.Name, typeText(tn)).at(a.sql, cd.Location)
	e.Column = cd.Colname
	return e
}

// typeText names a type for a message.
func typeText(tn *pg.TypeName) string {
	s := names(tn.Names)
	if strings.HasPrefix(s, "pg_catalog.") {
		s = s[len("pg_catalog."):]
	}
	if len(tn.Typmods) > 0 {
		s += "(…)"
	}
	if len(tn.ArrayBounds) > 0 {
		s += "[]"
	}
	return s
}

// uniqueRefused is the refusal of a UNIQUE constraint or index, or a
// primary key, on an encrypted column: envelopes of equal values differ,
// so it would never hold.
func uniqueRefused(enc *policy.Column) *Error {
	hint := "set blind_index.unique in the policy: pgveil keeps a UNIQUE index on the blind-index column"
	if enc.BlindIndex != nil {
		hint = "its blind index " + enc.BlindIndex.Column + " is what a UNIQUE index goes on (blind_index.unique)"
	}
	return unsupported(enc, "a UNIQUE constraint or index (or a primary key)", hint)
}

// tableConstraint checks a table constraint of configured table t.
func (a *analyzer) tableConstraint(t *policy.Table, c *pg.Constraint) *Error {
	if err := a.strictExpr(t, c.RawExpr, "a table constraint"); err != nil {
		return err
	}
	if err := a.strictExpr(t, c.WhereClause, "an EXCLUDE constraint's WHERE"); err != nil {
		return err
	}
	if err := a.tenantForeignKey(t, c, ""); err != nil {
		return err
	}
	if c.Contype == pg.ConstrType_CONSTR_UNIQUE || c.Contype == pg.ConstrType_CONSTR_PRIMARY {
		return a.uniqueKeys(t, c.Keys, c.Location)
	}
	return nil
}

// uniqueKeys refuses a table constraint UNIQUE or PRIMARY KEY (or a
// UNIQUE index) over an encrypted column of t.
func (a *analyzer) uniqueKeys(t *policy.Table, keys []*pg.Node, loc int32) *Error {
	for _, k := range keys {
		name, _ := str(k)
		if ie := k.GetIndexElem(); ie != nil {
			name = ie.Name
		}
		if enc := t.Column(name); enc != nil {
			return uniqueRefused(enc).at(a.sql, loc)
		}
	}
	return nil
}

func isNullConst(n *pg.Node) bool {
	for n != nil && n.GetTypeCast() != nil {
		n = n.GetTypeCast().Arg
	}
	return n == nil || (n.GetAConst() != nil && n.GetAConst().Isnull)
}

// strictExpr checks an expression stored in the schema: any reference to
// an encrypted column of t refuses.
func (a *analyzer) strictExpr(t *policy.Table, n *pg.Node, what string) *Error {
	return a.strictExprAs(t, n, what)
}

// strictExprAs is strictExpr where t is seen under the given names (NEW
// and OLD in a trigger's WHEN) instead of its own.
func (a *analyzer) strictExprAs(t *policy.Table, n *pg.Node, what string, aliases ...string) *Error {
	return a.strictRef(tableRef{schema: t.Schema, name: t.Name, table: t, cat: a.catalogTable(t.Schema, t.Name)}, n, what, aliases...)
}

// strictRef is strictExprAs on the relation ref, configured or not.
func (a *analyzer) strictRef(ref tableRef, n *pg.Node, what string, aliases ...string) *Error {
	if n == nil {
		return nil
	}
	if len(aliases) == 0 {
		aliases = []string{""} // its own name
	}
	level := &scope{}
	for _, name := range aliases {
		var alias *pg.Alias
		if name != "" {
			alias = &pg.Alias{Aliasname: name}
		}
		r, err := a.baseRel(ref, alias, -1)
		if err != nil {
			return err
		}
		level.rels = append(level.rels, r)
	}
	a.strict = what
	defer func() { a.strict = "" }()
	return a.expr(n, level, what)
}

// viewExprs refuses an expression stored on rv (a column default, an
// index expression or predicate, extended statistics) when rv is a view or
// materialized view over encrypted columns (Catalog.Guarded): its columns
// hold envelopes, and a literal there would be stored in plaintext.
func (a *analyzer) viewExprs(rv *pg.RangeVar) *Error {
	_, err := a.resolveTable(rv)
	return err
}

// storedExpr checks expressions stored on relation rv that is not a
// configured table (a policy on another table): a subquery in them may
// read a configured one, and any encrypted column there refuses.
func (a *analyzer) storedExpr(rv *pg.RangeVar, what string, exprs ...*pg.Node) *Error {
	ref, err := a.resolveTable(rv)
	if err != nil {
		return err
	}
	for _, n := range exprs {
		if err := a.strictRef(ref, n, what); err != nil {
			return err
		}
	}
	return nil
}

// bodyWords splits code into the planner's words (Words), followed by the
// words of each string constant's value (two levels deep), each set apart
// by ";". A string whose value does not lex is left out. complete is false
// when code itself does not lex.
func bodyWords(code string, depth int) (words []Word, complete bool) {
	ws, err := Words(code)
	complete = err == nil
	if depth >= 2 {
		return ws, complete
	}
	l := lexer{s: code}
	for t := l.next(); t.kind != tEOF && t.kind != tError; t = l.next() {
		if t.kind != tString {
			continue
		}
		if v, _, err := LiteralValue(code, Literal{Start: t.start, End: t.end}); err == nil {
			if inner, ok := bodyWords(string(v), depth+1); ok {
				ws = append(append(ws, Word{Kind: WordOther, Text: ";"}), inner...)
			}
		}
	}
	return ws, complete
}

// updatesColumn reports whether the words of some code have a statement
// UPDATE [ONLY] [(][[db.]schema.]name[)] [[AS] alias] SET … whose SET list
// assigns col, or any column when col is "". A name the words cannot
// decode (U&"…") counts as a match. It reads each word a bounded number
// of times (linear in the code).
func updatesColumn(ws []Word, schema, name, col string) bool {
	is := func(w Word, s string) bool { return w.Kind == WordName && (w.Text == s || w.Text == "") }
	kw := func(w Word, s string) bool { return w.Kind == WordName && !w.Quoted && w.Text == s }
	punct := func(m int, s string) bool { return m < len(ws) && ws[m].Kind == WordOther && ws[m].Text == s }
	assigns := func(m int) bool { return m < len(ws) && ws[m].Kind == WordOther && strings.HasPrefix(ws[m].Text, "=") }
	skip := 0
stmts:
	for i := range ws {
		if i < skip || !kw(ws[i], "update") {
			continue
		}
		j := i + 1
		if j < len(ws) && kw(ws[j], "only") {
			j++
		}
		paren := punct(j, "(")
		if paren {
			j++
		}
		var parts []Word // [[db.]schema.]name
		for j < len(ws) && ws[j].Kind == WordName {
			parts = append(parts, ws[j])
			if !punct(j+1, ".") {
				break
			}
			j += 2
		}
		n := len(parts)
		if n == 0 || n > 3 || !is(parts[n-1], name) || n > 1 && !is(parts[n-2], schema) {
			continue
		}
		j++
		if paren && punct(j, ")") {
			j++
		}
		// SET, before the statement ends (";" at any depth: only strings,
		// gone, could hold one inside parentheses).
		k, depth := j, 0
		for ; k < len(ws); k++ {
			switch {
			case punct(k, ";"):
				skip = k
				continue stmts
			case punct(k, "("):
				depth++
			case punct(k, ")"):
				if depth--; depth < 0 {
					skip = k
					continue stmts
				}
			case depth == 0 && kw(ws[k], "set"):
			default:
				continue
			}
			if depth == 0 && kw(ws[k], "set") {
				break
			}
		}
		if k >= len(ws) {
			skip = len(ws)
			continue
		}
		if col == "" {
			return true
		}
		// The SET list, up to WHERE, RETURNING, FROM (not IS [NOT]
		// DISTINCT FROM) or the statement's end: col = …, col[…] = …,
		// col.field = …, or (…, col, …) = ….
		depth, open := 0, -1
		for m := k + 1; m < len(ws); m++ {
			skip = m
			w := ws[m]
			target := depth == 0 && (punct(m-1, ",") || kw(ws[m-1], "set"))
			switch {
			case punct(m, ";"):
				continue stmts
			case punct(m, "("):
				if target {
					open = m
				}
				depth++
			case punct(m, ")"):
				depth--
				if depth < 0 {
					continue stmts
				}
				if depth == 0 && open >= 0 && assigns(m+1) {
					for _, g := range ws[open+1 : m] {
						if is(g, col) {
							return true
						}
					}
				}
				if depth == 0 {
					open = -1
				}
			case depth == 0 && (kw(w, "where") || kw(w, "returning") || kw(w, "from") && !kw(ws[m-1], "distinct")):
				continue stmts
			case target && is(w, col) && (assigns(m+1) || punct(m+1, "[") || punct(m+1, ".")):
				return true
			}
		}
	}
	return false
}

// language is the LANGUAGE among a function's or DO block's options, in
// lower case, or def.
func language(opts []*pg.Node, def string) string {
	for _, o := range opts {
		if d := o.GetDefElem(); d != nil && d.Defname == "language" {
			if s, ok := str(d.Arg); ok {
				return strings.ToLower(s)
			}
		}
	}
	return def
}

// body refuses a function or DO body that names a configured table and one
// of its encrypted or blind-index columns: such code runs inside the server
// on values pgveil never sees. The test is textual (PL/pgSQL is not parsed),
// so it errs towards refusing.
func (a *analyzer) body(arg *pg.Node, what, lang string) *Error {
	var text []string
	walkAll(arg, func(c *pg.Node) bool {
		if s, ok := str(c); ok {
			text = append(text, s)
		}
		return true
	})
	return a.bodyText(strings.Join(text, "\n"), what, lang)
}

// rowArgs refuses a function or procedure that takes a row of a configured
// table with encrypted columns (f(c users), users[], VARIADIC, INOUT): its
// body computes on the whole row, envelopes included, without naming a
// column or a relation ($1 = ROW(…, 'a@b.c', …)::users, c::text LIKE …),
// and is called with a table's row only by code inside the server (a
// whole-row reference through pgveil is refused). Rows it returns (OUT,
// RETURNS SETOF) pass as before.
func (a *analyzer) rowArgs(cf *pg.CreateFunctionStmt) *Error {
	for _, n := range cf.Parameters {
		fp := n.GetFunctionParameter()
		if fp == nil || fp.ArgType == nil || fp.ArgType.PctType || fp.Mode == pg.FunctionParameterMode_FUNC_PARAM_OUT || fp.Mode == pg.FunctionParameterMode_FUNC_PARAM_TABLE {
			continue
		}
		var parts []string
		for _, p := range fp.ArgType.Names {
			s, _ := str(p)
			parts = append(parts, s)
		}
		if len(parts) == 0 {
			continue
		}
		rv := &pg.RangeVar{Relname: parts[len(parts)-1], Inh: true, Location: fp.ArgType.Location}
		if len(parts) > 1 {
			rv.Schemaname = parts[len(parts)-2]
		}
		if t := a.configured(rv); t != nil && len(t.Columns) > 0 {
			return unsupported(t.Columns[0], "a function argument holding a row of "+t.QualifiedName(), "pass the columns it needs (not encrypted ones) as arguments; code inside the database sees only ciphertext").at(a.sql, fp.ArgType.Location)
		}
	}
	return nil
}

// sqlBody plans each statement of a LANGUAGE sql body given as a string,
// as the server will run it, on the same catalog and path: a statement
// pgveil would have to change (an encrypted column compared or written,
// as a column or inside a whole row: c = ROW(…), row_to_json(c)) or would
// refuse, refuses the function, since the server runs the body as written.
// A body that does not parse is left to the textual check (body).
func (a *analyzer) sqlBody(code, what string, loc int32) *Error {
	tree, err := pg.Parse(code)
	if err != nil {
		return nil
	}
	for _, raw := range tree.Stmts {
		start, end := int(raw.StmtLocation), len(code)
		if raw.StmtLen > 0 {
			end = start + int(raw.StmtLen)
		}
		start, end = trimSpan(code, start, end)
		b := newAnalyzer(a.p, a.cat, code, raw, start, end, &pathState{schemas: a.path.schemas, unknown: a.path.unknown}, false)
		b.noPins, b.noOutputs = true, true
		perr := b.plan(raw.Stmt)
		if perr == nil && len(b.edits) == 0 && len(b.uses) == 0 && len(b.st.Literals) == 0 {
			continue
		}
		e := errorf(CodeFeatureNotSupported, "%s that uses an encrypted column is not supported: the server runs it on ciphertext, and a value in it would be stored unencrypted", what)
		e.Hint = "keep logic on encrypted columns in the application; code inside the database sees only ciphertext"
		if perr != nil {
			e.Detail = strings.TrimPrefix(perr.Message, "pgveil: ")
			e.Schema, e.Table, e.Column = perr.Schema, perr.Table, perr.Column
		}
		return e.at(a.sql, loc)
	}
	return nil
}

// bodyText is body on the code's text.
func (a *analyzer) bodyText(code, what, lang string) *Error {
	b := strings.ToLower(code)
	// A row moved to another tenant keeps values sealed under its old
	// tenant's key (docs/SQL.md, "Tenant moves"). Code pgveil can read
	// (SQL or PL/pgSQL that builds no statement: no EXECUTE, format or
	// quote_*) is read statement by statement: an UPDATE that sets the
	// key_context, or any UPDATE of a view over it. Other code, and
	// MERGE or INSERT … ON CONFLICT in any code, is refused when it names
	// the table (or view), the key_context and such a write.
	words, complete := bodyWords(code, 0)
	names := map[string]bool{}
	for _, w := range words {
		if w.Kind == WordName {
			names[w.Text] = true
		}
	}
	// A name in the code: as a word of it or of a string in it, or
	// anything when it spells names with Unicode escapes.
	has := func(s string) bool { return names[s] || containsWord(b, s) || strings.Contains(b, "u&") }
	if preparesStatement(words) {
		// pgveil checks a prepared statement again when it runs after a
		// catalog change (a table replaced by a view over an encrypted
		// column); one the server prepared for code it never saw, run
		// then with SQL EXECUTE or a Bind, wrote the client's plaintext
		// into the encrypted column (review 19b).
		e := errorf(CodeFeatureNotSupported, "%s that prepares a statement (PREPARE) is not supported: pgveil checks each prepared statement when it runs, and cannot follow one prepared by code in the server", what)
		e.Hint = "prepare the statement with PREPARE or the protocol's Parse, through pgveil"
		return e
	}
	if deallocatesStatement(words) {
		// A DEALLOCATE the proxy does not see drops its own statements
		// (tenant lookups, statements it rewrote) unseen: the next use
		// failed with 26000 naming pgveil's statement (review 20a).
		e := errorf(CodeFeatureNotSupported, "%s that deallocates prepared statements (DEALLOCATE) is not supported: pgveil keeps statements of its own prepared in the session, and cannot follow a DEALLOCATE run by code in the server", what)
		e.Hint = "run DEALLOCATE as a statement of its own, through pgveil"
		return e
	}
	if what != "a DO block" && executesPrepared(code, lang) {
		// A DO block's names are checked when it runs (CodeExecutedNames);
		// a function runs later, at any call, where pgveil sees no EXECUTE
		// (review 21c: after a view swap, the function ran ins over the
		// view, its plaintext argument into the encrypted column).
		e := errorf(CodeFeatureNotSupported, "%s that runs SQL EXECUTE of a prepared statement is not supported: pgveil checks each prepared statement when it runs, and cannot see code in the server run one", what)
		e.Hint = "run EXECUTE through pgveil, or write the statement in the function"
		return e
	}
	readable := complete && (lang == "sql" || lang == "plpgsql") &&
		!has("execute") && !has("format") && !strings.Contains(b, "quote_")
	writes := has("update") || has("merge") || has("conflict")
	upserts := has("merge") || has("conflict")
	for _, t := range a.cfg.Tables {
		if t.KeyContext == "" {
			continue
		}
		named := has(strings.ToLower(t.Name)) && has(strings.ToLower(t.KeyContext))
		if named && (upserts || !readable && writes) || readable && updatesColumn(words, t.Schema, t.Name, t.KeyContext) {
			return tableErr(CodeFeatureNotSupported, t, "keep writes to configured tables in the application",
				"%s that may set the key_context %s of configured table %s is not supported: a row moved to another tenant would keep values sealed under its old tenant's key", what, t.KeyContext, t.QualifiedName())
		}
	}
	if a.cat != nil {
		for k, reads := range a.cat.TenantViews {
			dot := strings.IndexByte(k, '.')
			named := has(strings.ToLower(k[dot+1:]))
			if named && (upserts || !readable && writes) || readable && updatesColumn(words, k[:dot], k[dot+1:], "") {
				e := errorf(CodeFeatureNotSupported, "%s that may write view %s, which reads the tenant column of configured table %s, is not supported: it could move rows to another tenant, whose key does not open the values they keep", what, k, reads)
				e.Hint = "keep writes to configured tables in the application"
				return e
			}
		}
	}
	if a.cat != nil {
		for _, v := range a.cat.Guarded {
			if containsWord(b, strings.ToLower(v.Name)) {
				e := errorf(CodeFeatureNotSupported, "%s names view %s.%s, which reads encrypted columns of %s: code inside the server could write plaintext through it", what, v.Schema, v.Name, v.Reads)
				if v.Child != "" {
					e = errorf(CodeFeatureNotSupported, "%s names table %s.%s, a %s of configured table %s: code inside the server could write plaintext to it", what, v.Schema, v.Name, v.Child, v.Reads)
				}
				e.Hint = "keep logic on encrypted columns in the application"
				e.Schema, e.Table = v.Schema, v.Name
				return e
			}
		}
		for _, set := range []map[string]bool{a.cat.GuardedFunctions, a.cat.GuardedRelations} {
			for name := range set {
				if containsWord(b, name) {
					e := errorf(CodeFeatureNotSupported, "%s names %s, whose code names a view over encrypted columns (or a partition or child of a configured table) or calls such code: code inside the server could write plaintext through it", what, name)
					e.Hint = "drop or replace that code so that it names the configured table"
					return e
				}
			}
		}
	}
	// U&"…" may spell any name: it counts as naming every table and column.
	escaped := strings.Contains(b, "u&")
	for _, t := range a.cfg.Tables {
		if !strings.Contains(b, strings.ToLower(t.Name)) && !escaped {
			continue
		}
		for _, c := range t.Columns {
			if strings.Contains(b, strings.ToLower(c.Name)) || mentionsIndex(b, c) || escaped {
				return unsupported(c, what+" naming the column", "keep logic on encrypted columns in the application; code inside the database sees only ciphertext and would store plaintext unencrypted")
			}
		}
		// An INSERT needs no column names to write every column.
		for _, w := range []string{"insert", "copy", "merge"} {
			if containsWord(b, w) {
				return tableErr(CodeFeatureNotSupported, t, "keep writes to configured tables in the application",
					"%s that names configured table %s and writes (%s) is not supported: code inside the server would store plaintext unencrypted", what, t.QualifiedName(), strings.ToUpper(w))
			}
		}
	}
	return nil
}

// merge refuses MERGE when it reads or writes an encrypted column (pgveil
// does not rewrite MERGE); a MERGE on other columns passes unchanged.
func (a *analyzer) merge(m *pg.MergeStmt) *Error {
	if m.WithClause != nil {
		pop, err := a.withClause(m.WithClause, nil)
		if err != nil {
			return err
		}
		defer pop()
	}
	if err := a.tenantView(m.Relation, "MERGE"); err != nil {
		return err
	}
	target, t, err := a.targetRel(m.Relation)
	if err != nil {
		return err
	}
	a.strict = "MERGE"
	defer func() { a.strict = "" }()
	level := &scope{rels: []*rel{target}}
	if _, err := a.fromItem(m.SourceRelation, level); err != nil {
		return err
	}
	if err := a.expr(m.JoinCondition, level, "MERGE … ON"); err != nil {
		return err
	}
	// WHEN NOT MATCHED sees the source only (PostgreSQL's
	// setNamespaceForMergeWhen): a bare name there is the source's column
	// even when the target has one of that name.
	notMatched := &scope{rels: level.rels[1:], hidden: []*rel{target}, hiddenHint: notMatchedHint, parent: level.parent}
	for _, w := range m.MergeWhenClauses {
		wc := w.GetMergeWhenClause()
		if wc == nil {
			continue
		}
		level := level
		if !wc.Matched {
			level = notMatched
		}
		if err := a.expr(wc.Condition, level, "MERGE … WHEN"); err != nil {
			return err
		}
		if t != nil && wc.CommandType == pg.CmdType_CMD_INSERT && len(wc.TargetList) == 0 && len(t.Columns) > 0 && len(wc.Values) > 0 {
			return unsupported(t.Columns[0], "MERGE … INSERT without a column list", "use INSERT … ON CONFLICT, which pgveil rewrites").at(a.sql, m.Relation.Location)
		}
		for _, tl := range wc.TargetList {
			rt := tl.GetResTarget()
			if rt == nil {
				continue
			}
			if t != nil {
				if err := a.checkNotIndex(t, rt.Name, rt.Location); err != nil {
					return err
				}
				if enc := t.Column(rt.Name); enc != nil {
					return unsupported(enc, "writing it with MERGE", "use INSERT … ON CONFLICT or UPDATE, which pgveil rewrites").at(a.sql, rt.Location)
				}
				if rt.Name == t.KeyContext && wc.CommandType == pg.CmdType_CMD_UPDATE {
					return tableErr(CodeFeatureNotSupported, t, "use UPDATE … SET "+t.KeyContext+" = …, which pgveil checks",
						"MERGE … UPDATE SET %s of %s is not supported: a row moved to another tenant would keep values sealed under its old tenant's key", t.KeyContext, t.QualifiedName()).at(a.sql, rt.Location)
				}
			}
			// A target pgveil does not configure still gets values that
			// may read encrypted columns of the source.
			if err := a.expr(rt.Val, level, "MERGE"); err != nil {
				return err
			}
		}
		for _, v := range wc.Values {
			if err := a.expr(v, level, "MERGE"); err != nil {
				return err
			}
		}
	}
	return nil
}

// mentionsIndex reports whether lowered text names one of c's blind-index
// columns (the next one too, during a rotation).
func mentionsIndex(lowered string, c *policy.Column) bool {
	for _, bi := range c.IndexTargets() {
		if strings.Contains(lowered, strings.ToLower(bi.Column)) {
			return true
		}
	}
	return false
}

// dmlTarget is the target relation of an INSERT, UPDATE, DELETE or MERGE.
func dmlTarget(n *pg.Node) *pg.RangeVar {
	switch {
	case n.GetInsertStmt() != nil:
		return n.GetInsertStmt().Relation
	case n.GetUpdateStmt() != nil:
		return n.GetUpdateStmt().Relation
	case n.GetDeleteStmt() != nil:
		return n.GetDeleteStmt().Relation
	case n.GetMergeStmt() != nil:
		return n.GetMergeStmt().Relation
	}
	return nil
}

// preparesStatement reports whether code words (bodyWords) hold PREPARE
// name AS or PREPARE name (: an SQL PREPARE (not PREPARE TRANSACTION, nor
// the word in a message), in the code or a string of it.
func preparesStatement(ws []Word) bool {
	for i := 0; i+2 < len(ws); i++ {
		w, n, after := ws[i], ws[i+1], ws[i+2]
		if w.Kind == WordName && !w.Quoted && w.Text == "prepare" && n.Kind == WordName && (n.Quoted || n.Text != "transaction") &&
			(after.Kind == WordName && !after.Quoted && after.Text == "as" || after.Kind == WordOther && after.Text == "(") {
			return true
		}
	}
	return false
}

// executesPrepared reports whether function code may run SQL EXECUTE of
// a prepared statement: a statement of a LANGUAGE sql body that begins
// with EXECUTE, or, in code that names EXECUTE (dynamic SQL), a string
// of it (two levels deep) with a statement that begins with EXECUTE
// (EXECUTE 'EXECUTE ins(…)', format('EXECUTE %s(…)', …), 'EXECUTE ' ||
// name).
func executesPrepared(code, lang string) bool {
	if !containsFold(code, "execute") {
		return false
	}
	startsExecute := func(ws []Word) bool {
		at := true
		for _, w := range ws {
			if at && w.Kind == WordName && !w.Quoted && w.Text == "execute" {
				return true
			}
			at = w.Kind == WordOther && w.Text == ";"
		}
		return false
	}
	ws, _ := Words(code)
	if lang == "sql" {
		return startsExecute(ws)
	}
	if !slices.ContainsFunc(ws, func(w Word) bool { return w.Kind == WordName && !w.Quoted && w.Text == "execute" }) {
		return false
	}
	var inStrings func(code string, depth int) bool
	inStrings = func(code string, depth int) bool {
		l := lexer{s: code}
		var prev, prev2 string // the words before a string
		for t := l.next(); t.kind != tEOF && t.kind != tError; t = l.next() {
			if t.kind != tString {
				prev2, prev = prev, ""
				if t.kind == tIdent {
					prev = strings.ToLower(code[t.start:t.end])
				}
				continue
			}
			if raiseFormat(prev, prev2) {
				// RAISE NOTICE 'execute done': a message, never run
				// (review 21g: a procedure with dynamic SQL that reported
				// 'execute …' was refused).
				prev2, prev = prev, ""
				continue
			}
			prev2, prev = prev, ""
			v, _, err := LiteralValue(code, Literal{Start: t.start, End: t.end})
			if err != nil {
				continue
			}
			if ws, _ := Words(string(v)); startsExecute(ws) || depth < 1 && inStrings(string(v), depth+1) {
				return true
			}
		}
		return false
	}
	return inStrings(code, 0)
}

// raiseFormat reports whether a string after the words prev2 prev (the
// nearest last) is the message of a PL/pgSQL RAISE: RAISE 'msg', RAISE
// NOTICE 'msg'.
func raiseFormat(prev, prev2 string) bool {
	if prev == "raise" {
		return true
	}
	switch prev {
	case "debug", "log", "info", "notice", "warning", "exception":
		return prev2 == "raise"
	}
	return false
}

// deallocatesStatement reports whether code words (bodyWords) hold the
// word DEALLOCATE, unquoted, in the code or a string of it (EXECUTE
// 'DEALLOCATE ALL', format('DEALLOCATE %s', …)).
func deallocatesStatement(ws []Word) bool {
	for _, w := range ws {
		if w.Kind == WordName && !w.Quoted && w.Text == "deallocate" {
			return true
		}
	}
	return false
}

// containsWord reports whether lowered text holds w as a whole word (not
// inside a longer identifier).
func containsWord(text, w string) bool {
	for off := 0; ; {
		i := strings.Index(text[off:], w)
		if i < 0 {
			return false
		}
		s, e := off+i, off+i+len(w)
		if (s == 0 || !isIdentCont(text[s-1])) && (e == len(text) || !isIdentCont(text[e])) {
			return true
		}
		off = s + 1
	}
}
