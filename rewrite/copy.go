package rewrite

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// COPY moves rows as text or CSV that the proxy edits field by field:
//
//	COPY users (email, org_id) FROM STDIN
//	  → COPY users (email, org_id, email_bidx) FROM STDIN   (Fields: encrypt 0 under tenant 1; Appended: index of 0)
//	COPY users (email) TO STDOUT
//	  → COPY (SELECT email, org_id FROM users) TO STDOUT     (the tenant travels as a hidden last field)
//
// A COPY without a column list is rewritten to name the table's columns
// from the Catalog, blind-index columns left out: that is what the rows of
// an application written before pgveil contain (FROM), and what it expects
// back (TO), so a dump through pgveil restores through pgveil. BINARY format
// is planned like text (the proxy edits binary tuples; pgx's CopyFrom uses
// it); server-side files or programs are refused for configured tables.

// copyStmt plans a COPY.
func (a *analyzer) copyStmt(c *pg.CopyStmt) *Error {
	cp, err := a.copyOptions(c)
	if err != nil {
		return err
	}
	if c.Query != nil {
		return a.copyQuery(c, cp)
	}
	ref, err := a.resolveTable(c.Relation)
	if err != nil {
		return err
	}
	a.pinSchema(c.Relation, ref)
	t := ref.table
	if t == nil || len(t.Columns) == 0 {
		return nil
	}
	if c.IsProgram || c.Filename != "" {
		return tableErr(CodeFeatureNotSupported, t, "use COPY … FROM STDIN / TO STDOUT (psql's \\copy), which passes through pgveil",
			"COPY between configured table %s and a server-side file or program is not supported: the server would read or write plaintext pgveil never sees", t.QualifiedName()).at(a.sql, c.Relation.Location)
	}
	relStart := int(c.Relation.Location)
	relEnd, ok := a.qualifiedNameEnd(relStart)
	if !ok {
		return errorf(CodeInternalError, "cannot locate the table name of COPY; statement refused").at(a.sql, c.Relation.Location)
	}
	listEnd := relEnd // end of "(cols)" when present
	var cols []string
	if len(c.Attlist) > 0 {
		for _, n := range c.Attlist {
			s, _ := str(n)
			cols = append(cols, s)
		}
		open := tokenAt(a.sql, relEnd, a.backslash)
		e, ok := a.matchParen(open.start)
		if !ok {
			return errorf(CodeInternalError, "cannot locate the column list of COPY; statement refused").at(a.sql, c.Relation.Location)
		}
		listEnd = e
	} else {
		if ref.cat == nil {
			return tableErr(CodeFeatureNotSupported, t, "name the columns: COPY "+t.Name+" (col, …)",
				"COPY of %s without a column list needs pgveil's catalog, which does not list the table", t.QualifiedName()).at(a.sql, c.Relation.Location)
		}
		for _, col := range ref.cat.Columns {
			if t.BlindIndexColumn(col.Name) == nil {
				cols = append(cols, col.Name)
			}
		}
	}
	encCount := 0
	for _, name := range cols {
		if c.IsFrom {
			if err := a.checkNotIndex(t, name, c.Relation.Location); err != nil {
				return err
			}
		}
		if t.Column(name) != nil {
			encCount++
		}
	}
	if err := a.strictExpr(t, c.WhereClause, "COPY … WHERE"); err != nil {
		return err
	}
	if encCount == 0 {
		return nil
	}
	if a.copyRefusal != "" {
		return tableErr(CodeFeatureNotSupported, t, "remove the option",
			"COPY of encrypted columns of %s with %s is not supported", t.QualifiedName(), a.copyRefusal).at(a.sql, c.Relation.Location)
	}
	tenant := -1
	for i, name := range cols {
		if t.KeyContext != "" && name == t.KeyContext {
			tenant = i
		}
	}
	explicit := ""
	if len(c.Attlist) == 0 {
		quoted := make([]string, len(cols))
		for i, n := range cols {
			quoted[i] = quoteIdent(n)
		}
		explicit = " (" + strings.Join(quoted, ", ")
	}
	if c.IsFrom {
		return a.copyFrom(t, c, cp, cols, tenant, listEnd, explicit)
	}
	return a.copyTo(t, ref.cat, c, cp, cols, tenant, relStart, relEnd, listEnd, explicit)
}

func (a *analyzer) copyFrom(t *policy.Table, c *pg.CopyStmt, cp *Copy, cols []string, tenant, listEnd int, explicit string) *Error {
	if t.KeyContext != "" && tenant < 0 {
		return missingTenant(t, "among the COPY's columns", c.Relation.Location, a.sql)
	}
	cp.From = true
	var added []string
	for i, name := range cols {
		f := CopyField{Action: Pass, Tenant: -1}
		if enc := t.Column(name); enc != nil {
			if len(a.uniqueTargets(enc)) > 0 {
				return a.uniqueRefusal(enc, "COPY … FROM", c.Relation.Location) // unique.go
			}
			f = CopyField{Column: enc, Action: Encrypt, Tenant: tenant}
			for _, bi := range enc.IndexTargets() {
				cp.Appended = append(cp.Appended, CopyField{Column: enc, Action: IndexAction(enc, bi), Source: i, Tenant: -1})
				added = append(added, quoteIdent(bi.Column))
			}
		}
		cp.Fields = append(cp.Fields, f)
	}
	switch {
	case explicit != "":
		a.insert(listEnd, explicit+strings.Join(prepend(added, ", "), "")+")")
	case len(added) > 0:
		a.insert(listEnd-1, ", "+strings.Join(added, ", "))
	}
	a.st.Copy = cp
	return nil
}

func prepend(list []string, sep string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = sep + s
	}
	return out
}

func (a *analyzer) copyTo(t *policy.Table, ct *CatalogTable, c *pg.CopyStmt, cp *Copy, cols []string, tenant, relStart, relEnd, listEnd int, explicit string) *Error {
	// A tenant TenantSend names is read through its send form, a hidden
	// field, even when the COPY lists the column.
	send := a.tenantSend(t)
	hidden := t.KeyContext != "" && (tenant < 0 || send != "")
	for _, name := range cols {
		f := CopyField{Action: Pass, Tenant: -1}
		if enc := t.Column(name); enc != nil {
			f.Column = enc
			if t.KeyContext != "" {
				f.Tenant = tenant
				if hidden {
					f.Tenant = len(cols)
				}
			}
		}
		cp.Fields = append(cp.Fields, f)
	}
	switch {
	case hidden:
		cp.Fields = append(cp.Fields, CopyField{Action: Pass, Tenant: -1, Hidden: true, Send: send != ""})
		quoted := make([]string, len(cols))
		for i, n := range cols {
			quoted[i] = quoteIdent(n)
		}
		tc := quoteIdent(t.KeyContext)
		if send != "" {
			tc = send + "(" + tc + ")"
		}
		// COPY t TO reads t's own rows, never its inheritance children's
		// (review 21d: the SELECT read them too); a partitioned table,
		// which COPY t TO refuses, is read whole (its rows are all in its
		// partitions).
		from := " FROM ONLY "
		if ct != nil && ct.Partitioned {
			from = " FROM "
		}
		sel := "(SELECT " + strings.Join(quoted, ", ") + ", " + tc + from + a.sql[relStart:relEnd] + ")"
		a.replace(relStart, listEnd, sel)
	case explicit != "":
		a.insert(listEnd, explicit+")")
	}
	cp.placeForceQuote(cols)
	a.st.Copy = cp
	return nil
}

// copyQuery plans COPY (query) TO STDOUT like the query's SELECT.
func (a *analyzer) copyQuery(c *pg.CopyStmt, cp *Copy) *Error {
	res, err := a.query(c.Query, nil, modeTop)
	if err != nil {
		return err
	}
	var enc *policy.Column
	hidden := false
	for _, o := range res.cols {
		if o.json != nil {
			return unsupported(o.json.FirstColumn(), "COPY (query) TO of JSON built from it", "select the JSON through pgveil with a query")
		}
		if o.enc != nil && enc == nil {
			enc = o.enc
		}
		hidden = hidden || o.hidden
	}
	if enc == nil && !hidden {
		return nil
	}
	switch {
	case c.IsProgram || c.Filename != "":
		return unsupported(enc, "COPY to a server-side file or program", "use COPY … TO STDOUT (psql's \\copy), which passes through pgveil")
	case !res.complete:
		return unsupported(enc, "COPY (SELECT * …) over a table pgveil's catalog does not list", "name the columns in the query")
	case a.copyRefusal != "":
		return unsupported(enc, "COPY with "+a.copyRefusal, "remove the option")
	}
	names := make([]string, len(res.cols))
	for i, o := range res.cols {
		f := CopyField{Column: o.enc, Action: Pass, Tenant: -1, Hidden: o.hidden, Send: o.sendOf != nil}
		if o.enc != nil && o.enc.Table.KeyContext != "" {
			f.Tenant = o.tenantOut
		}
		cp.Fields = append(cp.Fields, f)
		names[i] = o.name
	}
	cp.placeForceQuote(names)
	a.st.Copy = cp
	return nil
}

// copyOptions reads COPY's options (modern and legacy syntax alike reach
// the parse tree as DefElems) and fills in COPY's defaults.
func (a *analyzer) copyOptions(c *pg.CopyStmt) (*Copy, *Error) {
	cp := &Copy{Format: CopyText}
	var delim, null, quote, escape *string
	defaultMarker := false
	for _, o := range c.Options {
		d := o.GetDefElem()
		if d == nil {
			continue
		}
		sval, _ := defString(d.Arg)
		switch d.Defname {
		case "format":
			switch strings.ToLower(sval) {
			case "csv":
				cp.Format = CopyCSV
			case "binary":
				cp.Format = CopyBinary
			}
		case "delimiter":
			delim = &sval
		case "null":
			null = &sval
		case "quote":
			quote = &sval
		case "escape":
			escape = &sval
		case "header":
			if d.Arg == nil {
				cp.Header = true
			} else if b := d.Arg.GetBoolean(); b != nil {
				cp.Header = b.Boolval
			} else if i := d.Arg.GetInteger(); i != nil {
				cp.Header = i.Ival != 0
			} else {
				switch strings.ToLower(sval) {
				case "true", "on", "1":
					cp.Header = true
				case "match":
					cp.Header = true
					if c.IsFrom {
						a.copyRefusal = "HEADER MATCH (pgveil adds blind-index columns the header does not name; use HEADER true)"
					}
				}
			}
		case "encoding":
			if e := strings.ToLower(strings.ReplaceAll(sval, "-", "")); e != "utf8" && e != "unicode" {
				a.copyRefusal = "ENCODING " + sval + " (pgveil encrypts UTF-8 text; convert the data or omit ENCODING)"
			}
		case "default":
			defaultMarker = true
		case "force_quote":
			if d.Arg.GetAStar() != nil {
				cp.forceQuoteAll = true
			} else {
				cp.forceQuoteNames = []string{}
				for _, n := range d.Arg.GetList().GetItems() {
					if s, ok := str(n); ok {
						cp.forceQuoteNames = append(cp.forceQuoteNames, s)
					}
				}
			}
		case "force_not_null", "force_null":
			if c.IsFrom {
				// They change which fields are NULL; the proxy would have to
				// mirror them per column to know what to encrypt.
				a.copyRefusal = strings.ToUpper(d.Defname)
			}
		}
	}
	if defaultMarker && c.IsFrom {
		a.copyRefusal = "the DEFAULT option (a default marker cannot be encrypted)"
	}
	if cp.Format == CopyCSV {
		cp.Delimiter, cp.Null, cp.Quote = ',', "", '"'
	} else {
		cp.Delimiter, cp.Null = '\t', `\N`
	}
	for _, opt := range []struct {
		s   *string
		dst *byte
	}{{delim, &cp.Delimiter}, {quote, &cp.Quote}, {escape, &cp.Escape}} {
		if opt.s == nil {
			continue
		}
		if len(*opt.s) != 1 {
			return nil, errorf(CodeFeatureNotSupported, "COPY delimiter, quote and escape must be single one-byte characters")
		}
		*opt.dst = (*opt.s)[0]
	}
	if null != nil {
		cp.Null = *null
	}
	if cp.Format == CopyCSV && cp.Escape == 0 {
		cp.Escape = cp.Quote
	}
	return cp, nil
}

func defString(n *pg.Node) (string, bool) {
	if n == nil {
		return "", false
	}
	if s, ok := str(n); ok {
		return s, true
	}
	if b := n.GetBoolean(); b != nil {
		if b.Boolval {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

// qualifiedNameEnd returns the end of a possibly qualified name at pos.
func (a *analyzer) qualifiedNameEnd(pos int) (int, bool) {
	l := lexer{s: a.sql[:a.stmtEnd], pos: pos, backslash: a.backslash}
	t := l.next()
	if t.kind != tIdent && t.kind != tQIdent {
		return 0, false
	}
	end := t.end
	for {
		save := l.pos
		if !l.isPunct(l.next(), ".") {
			l.pos = save
			return end, true
		}
		t = l.next()
		if t.kind != tIdent && t.kind != tQIdent {
			return 0, false
		}
		end = t.end
	}
}
