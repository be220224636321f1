package rewrite

import (
	"slices"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// queryMode says whose rows a query produces.
type queryMode uint8

const (
	// modeTop: the statement's own rows, sent to the client: encrypted
	// columns become Outputs and missing tenants are appended as hidden fields.
	modeTop queryMode = iota
	// modeSub: rows of a subquery or CTE, read by an enclosing query.
	modeSub
	// modeBranch: one side of UNION ALL; like modeSub, and the combined
	// result is bound at the top.
	modeBranch
)

// outCol is one column a query returns.
type outCol struct {
	name string
	enc  *policy.Column
	// src/srcIdx: the relation column this output reads unchanged (or nil).
	src    *rel
	srcIdx int
	// tenant is src's column holding the row's key_context for enc (-1 none).
	tenant   int
	noTenant bool
	// tenantOut is the index in the result of this column's tenant, once known; -1 otherwise.
	tenantOut int
	hidden    bool
	ref       *pg.ColumnRef // the target, when it is a bare column reference
	// json is the shape of a JSON value built from encrypted columns.
	json *JSONShape
	// sendOf marks a hidden field pgveil added holding the send form of
	// sendOf's key_context column (Output.SendOf).
	sendOf *policy.Table
	// merged marks a reference to a JOIN … USING column's merged value
	// (a bare name, or one through a JOIN's alias) named like a tenant
	// column whose equal values may name different tenants (float 0 and
	// -0, a nondeterministic collation): a RIGHT JOIN's is the other
	// side's, so it is never taken for the row's tenant (findOut; review
	// 21d).
	merged bool
}

// queryResult is what a query returns, as far as the SQL tells.
type queryResult struct {
	cols []outCol
	// complete is false when a * covered a relation whose columns pgveil
	// does not list: the positions of cols are then not exact.
	complete bool
	// starRels are relations expanded by * at unknown positions; their
	// tenant columns are in the rows, found by the proxy by origin.
	starRels []*rel
	// exact, when complete is false, is how many leading cols are at
	// their exact positions: those before the first such *.
	exact int
	// merged: a * covered a JOIN … USING or NATURAL JOIN, whose columns
	// PostgreSQL lists once and first: positions after exact may then be
	// lower than pgveil's, not only higher.
	merged bool
	// leaves are the SELECTs of a UNION ALL (modeBranch), where the send
	// forms of tenants are added (setOp).
	leaves []branchLeaf
}

// branchLeaf is one SELECT of a UNION ALL: its own result, scope and
// where its select list ends.
type branchLeaf struct {
	res      *queryResult
	sc       *scope
	appendAt int
	// table is where the keyword TABLE of a TABLE t branch starts (its
	// end is appendAt), -1 otherwise: pgveil writes it as SELECT * FROM t
	// when it adds a field (review 21h, as review 21d did for a TABLE t
	// statement).
	table int
}

// visible is how many columns the client (or enclosing query) sees.
func (res *queryResult) visible() int {
	n := 0
	for i := range res.cols {
		if !res.cols[i].hidden {
			n++
		}
	}
	return n
}

// hasSealed reports whether an output carries an encrypted column (or
// JSON built from one); firstSealed returns it.
func (res *queryResult) hasSealed() bool { return res.firstSealed() != nil }

func (res *queryResult) firstSealed() *policy.Column {
	for i := range res.cols {
		if col := res.cols[i].sealed(); col != nil {
			return col
		}
	}
	return nil
}

// inexact marks the positions of the outputs from here on unknown (a *
// over a relation pgveil cannot list); those before stay exact.
func (res *queryResult) inexact() {
	if res.complete {
		res.complete, res.exact = false, len(res.cols)
	}
}

// placed is the policy column an output carries that must be placed
// exactly: encrypted, a blind index, or JSON built from encrypted columns.
func (c *outCol) placed() *policy.Column {
	if col := c.sealed(); col != nil {
		return col
	}
	if c.src != nil && c.srcIdx >= 0 {
		if rc := c.src.cols[c.srcIdx]; rc.bidxOf != nil {
			return rc.bidxOf
		}
	}
	return nil
}

// renameRefusal refuses a column alias list (FROM (…) AS x(a, b), WITH
// w(a, b) AS …, FROM w AS x(a)) that PostgreSQL applies to other columns
// than pgveil can tell: one of the first len(colnames) outputs carries an
// encrypted column (its blind index, JSON built from it) and sits after a
// * over a relation pgveil cannot list, or after a * over a USING join
// (which can move it to a lower position, into the list).
func (res *queryResult) renameRefusal(colnames []*pg.Node, sql string, loc int32) *Error {
	if res.complete || len(colnames) == 0 {
		return nil
	}
	pos := 0
	for i := range res.cols {
		c := &res.cols[i]
		if c.hidden {
			continue
		}
		if i >= res.exact && (pos < len(colnames) || res.merged && len(colnames) > res.exact) {
			if col := c.placed(); col != nil {
				return unsupported(col, "a column alias list over a * of a relation outside pgveil's catalog before it", "list the subquery's columns instead of *, or drop the alias column list").at(sql, loc)
			}
		}
		pos++
	}
	return nil
}

func (r *queryResult) hasEnc() bool {
	for _, c := range r.cols {
		if c.enc != nil {
			return true
		}
	}
	return false
}

// expandStar appends the columns of rel r for r.* (qualified) or as part
// of a bare * (whose USING join columns PostgreSQL lists once, first).
func (res *queryResult) expandStar(r *rel, bare bool) {
	if !r.complete || r.merged {
		res.inexact()
		res.merged = res.merged || r.merged && bare
		res.starRels = append(res.starRels, r)
	}
	for i, c := range r.cols {
		res.cols = append(res.cols, outCol{name: c.name, enc: c.enc, src: r, srcIdx: i, tenant: c.tenant, noTenant: c.noTenant, tenantOut: -1, json: c.json})
	}
}

// usingCol reports whether column idx of r is one a JOIN … USING or
// NATURAL JOIN r takes part in merges.
func usingCol(r *rel, idx int) bool {
	if r == nil || idx < 0 || idx >= len(r.cols) {
		return false
	}
	for _, x := range [...]*rel{r, r.joinAliasRel} {
		if x != nil && (slices.Contains(x.using, r.cols[idx].name) || slices.Contains(x.using, "*")) {
			return true
		}
	}
	return false
}

// findAdded returns the index of a hidden output pgveil added reading
// column idx of r, or -1.
func (res *queryResult) findAdded(r *rel, idx int) int {
	for j, c := range res.cols {
		if c.hidden && c.sendOf == nil && c.src == r && c.srcIdx == idx && r != nil && idx >= 0 {
			return j
		}
	}
	return -1
}

// namedTwice reports whether more than one output (shown or added) is
// called name: PostgreSQL resolves ORDER BY name and DISTINCT ON (name)
// against them.
func (res *queryResult) namedTwice(name string) bool {
	n := 0
	for _, c := range res.cols {
		if c.name == name {
			n++
		}
	}
	return n > 1
}

// findOut returns the index of the output reading column idx of r, or -1.
func (res *queryResult) findOut(r *rel, idx int) int {
	for j, c := range res.cols {
		if c.src == r && c.srcIdx == idx && r != nil && idx >= 0 && !c.merged {
			return j
		}
	}
	return -1
}

// linkTenants sets tenantOut for each encrypted output whose tenant column
// is among the outputs.
func (res *queryResult) linkTenants() {
	for i := range res.cols {
		c := &res.cols[i]
		if c.enc == nil || c.tenantOut >= 0 || c.tenant < 0 {
			continue
		}
		c.tenantOut = res.findOut(c.src, c.tenant)
	}
}

// asRel turns a subquery's or CTE's result into a relation of the enclosing query.
func (res *queryResult) asRel(name string, alias *pg.Alias) *rel {
	res.linkTenants()
	r := &rel{name: name, complete: res.complete}
	if alias != nil && alias.Aliasname != "" {
		r.name, r.aliased = alias.Aliasname, true
	}
	for _, c := range res.cols {
		if c.hidden {
			continue
		}
		rc := relCol{name: c.name, enc: c.enc, tenant: -1, noTenant: c.noTenant, json: c.json}
		if c.enc != nil && c.enc.Table.KeyContext != "" {
			if c.tenantOut >= 0 {
				rc.tenant = c.tenantOut
			} else if !c.src.inStar(res.starRels) {
				rc.noTenant = true
			}
		}
		if c.src != nil && c.srcIdx >= 0 {
			rc.bidxOf = c.src.cols[c.srcIdx].bidxOf
			rc.bidx = c.src.cols[c.srcIdx].bidx
			rc.origin = c.src.cols[c.srcIdx].origin
		}
		r.cols = append(r.cols, rc)
	}
	if alias != nil && len(alias.Colnames) > 0 {
		r.rename(alias.Colnames)
	}
	return r
}

func (r *rel) inStar(stars []*rel) bool {
	for _, s := range stars {
		if s == r {
			return true
		}
	}
	return false
}

// TenantSend is the send function of a key_context column of type oid
// (base: a domain's last base type, 0 if none) whose text depends on the
// session (DateStyle, extra_float_digits, TimeZone): date, timestamp,
// timestamptz, float4, float8. Such tenants are read through it, as a
// hidden bytea field: the type's binary form, which no setting changes
// (review 21a: three reviews found 18 ways the proxy's idea of the
// settings could be wrong, and a value moved between tenants that print
// alike opened). "" for other types.
func TenantSend(oid, base uint32) string {
	if base != 0 {
		oid = base
	}
	switch oid {
	case 1082:
		return "pg_catalog.date_send"
	case 1114:
		return "pg_catalog.timestamp_send"
	case 1184:
		return "pg_catalog.timestamptz_send"
	case 700:
		return "pg_catalog.float4send"
	case 701:
		return "pg_catalog.float8send"
	}
	return ""
}

// tenantSend is TenantSend of t's key_context column in the catalog.
func (a *analyzer) tenantSend(t *policy.Table) string {
	if a.cat == nil || t.KeyContext == "" {
		return ""
	}
	if ct := a.cat.Tables[t.QualifiedName()]; ct != nil {
		for _, c := range ct.Columns {
			if c.Name == t.KeyContext {
				return TenantSend(c.TypeOID, c.BaseOID)
			}
		}
	}
	return ""
}

// outRefText is the text of the client's own reference (a bare column
// reference in the select list) to column idx of r, which resolves to it
// anywhere in that list.
func (res *queryResult) outRefText(r *rel, idx int) (string, bool) {
	if j := res.findOut(r, idx); j >= 0 && res.cols[j].ref != nil {
		return columnRefText(res.cols[j].ref)
	}
	return "", false
}

// mergedSendRef reports whether the client's own reference to a column
// of r, read as t's send form where pgveil cannot name r, may be the
// merged value of a JOIN … USING rather than r's own (a RIGHT JOIN's is
// the right side's, a FULL JOIN's a COALESCE), for a tenant type whose
// equal values name different tenants (float 0 and -0: review 21d, the
// other side's -0 opened a value of tenant 0). Such references are not
// taken: the statement is refused.
func (a *analyzer) mergedSendRef(r *rel, idx int, t *policy.Table) bool {
	if r == nil || idx < 0 || idx >= len(r.cols) {
		return true
	}
	return a.tenantTextGuard(t) && usingCol(r, idx)
}

// mergedOutput reports whether select-list reference cr (resolved to
// ref) reads a JOIN … USING column's merged value rather than the
// relation's own column, for a name that is the key_context of a table
// whose equal tenant values may name different tenants (outCol.merged).
func (a *analyzer) mergedOutput(cr *pg.ColumnRef, ref colRef) bool {
	r := ref.rel
	if r == nil || ref.idx < 0 || ref.idx >= len(r.cols) {
		return false
	}
	if len(cr.Fields) > 1 && !r.joinAlias {
		return false // t.col: t's own column
	}
	if !usingCol(r, ref.idx) {
		return false
	}
	name := r.cols[ref.idx].name
	for _, t := range a.cfg.Tables {
		if t.KeyContext != "" && t.KeyContext == name && a.tenantTextGuard(t) {
			return true
		}
	}
	return false
}

// columnRefText writes a column reference as SQL: its names quoted.
func columnRefText(cr *pg.ColumnRef) (string, bool) {
	parts := make([]string, 0, len(cr.Fields))
	for _, f := range cr.Fields {
		sv := f.GetString_()
		if sv == nil {
			return "", false // a *
		}
		parts = append(parts, quoteIdent(sv.Sval))
	}
	return strings.Join(parts, "."), len(parts) > 0
}

// findSend returns the index of the hidden send field of column idx of r, or -1.
func (res *queryResult) findSend(r *rel, idx int) int {
	for j, c := range res.cols {
		if c.sendOf != nil && c.src == r && c.srcIdx == idx {
			return j
		}
	}
	return -1
}

// bindTenants makes sure every encrypted output of a table with a
// key_context has its row's tenant value beside it: it points to the
// key_context column the query already returns, or appends it as a hidden
// field at appendAt. cannotAppend, called only when a field must be added,
// explains why appending would change the result (DISTINCT, GROUP BY…);
// the statement is then refused. A tenant of a type TenantSend names is
// always read through a hidden field of its send form: appended even when
// the query returns the column (a function of a column already returned
// changes no DISTINCT, GROUP BY or set operation).
func (a *analyzer) bindTenants(res *queryResult, sc *scope, appendAt int, cannotAppend func() string) *Error {
	res.linkTenants()
	var added []string
	for i := range res.cols {
		c := &res.cols[i]
		if c.enc == nil || c.hidden || c.enc.Table.KeyContext == "" {
			continue
		}
		t := c.enc.Table
		send := a.tenantSend(t)
		// A * over a JOIN … USING (or NATURAL JOIN) of the tenant column
		// shows it once, merged: its origin names one side's column (the
		// left's in an inner or LEFT join, the right's in a RIGHT one,
		// none in a FULL one), and the other side's values found no
		// tenant by origin (review 21h). The relation's own column is
		// added; the proxy takes two fields of one origin as the tenant
		// only where they hold the same value.
		mergedAway := send == "" && c.src.inStar(res.starRels) && usingCol(c.src, c.tenant)
		if mergedAway && c.tenantOut >= 0 && !res.cols[c.tenantOut].hidden {
			c.tenantOut = -1 // the *'s merged column, not the relation's own
		}
		if c.tenantOut >= 0 && (send == "" || res.cols[c.tenantOut].sendOf != nil) {
			continue
		}
		hint := "select " + t.KeyContext + " too"
		if c.noTenant || c.src == nil || c.tenant < 0 {
			if send != "" && c.tenantOut >= 0 {
				return tableErr(CodeFeatureNotSupported, t, "select "+t.KeyContext+" from the table itself, not through a set operation's result",
					"encrypted column %s needs its tenant %s read as its binary form (pgveil reads a tenant of this type whatever the session's DateStyle or extra_float_digits), and pgveil cannot add that here",
					c.enc.QualifiedName(), t.KeyContext)
			}
			return tableErr(CodeFeatureNotSupported, t, "select "+t.KeyContext+" in the subquery, CTE or view too",
				"encrypted column %s is read through a subquery, CTE or view that does not return %s.%s, the tenant column pgveil needs to check its key",
				c.enc.QualifiedName(), t.QualifiedName(), t.KeyContext)
		}
		returned := c.tenantOut >= 0 || c.src.inStar(res.starRels) || res.findOut(c.src, c.tenant) >= 0
		if send == "" {
			if c.src.inStar(res.starRels) && !mergedAway {
				continue // the tenant travels in the * and the proxy finds it by origin
			}
			if mergedAway {
				if j := res.findAdded(c.src, c.tenant); j >= 0 {
					c.tenantOut = j
					continue
				}
				if appendAt < 0 || cannotAppend() != "" {
					continue // by origin, as before: where it names another side, the value does not open
				}
				if _, ok := c.src.colIn(sc, c.tenant); !ok && c.src.rowOf == "" {
					continue // likewise: no name reaches this side's own column (a JOIN alias)
				}
			} else if j := res.findOut(c.src, c.tenant); j >= 0 { // appended for an earlier column
				c.tenantOut = j
				continue
			}
		} else if j := res.findSend(c.src, c.tenant); j >= 0 {
			c.tenantOut = j
			continue
		}
		if appendAt < 0 {
			return tableErr(CodeFeatureNotSupported, t, hint+" (list "+t.KeyContext+" in the select list)",
				"encrypted column %s needs its tenant column %s in the result, and pgveil cannot add it to a query with %s",
				c.enc.QualifiedName(), t.KeyContext, cannotAppend())
		}
		if why := cannotAppend(); why != "" && !(send != "" && returned) {
			return tableErr(CodeFeatureNotSupported, t, hint+" (list "+t.KeyContext+" in the select list)",
				"encrypted column %s needs its tenant column %s in the result, and pgveil cannot add it to a query with %s",
				c.enc.QualifiedName(), t.KeyContext, why)
		}
		name := c.src.cols[c.tenant].name
		ref := quoteIdent(name)
		if c.src.rowOf != "" {
			ref = "(" + c.src.rowOf + ")." + ref
		} else if q, ok := c.src.colIn(sc, c.tenant); ok {
			ref = q
		} else if q, ok := res.outRefText(c.src, c.tenant); send != "" && ok && !a.mergedSendRef(c.src, c.tenant, t) {
			ref = q // the client's own reference to it, in this select list
		} else {
			// Any name pgveil could write might reach another relation
			// (a JOIN alias hides this one, or an inner one shadows it).
			return tableErr(CodeFeatureNotSupported, t, hint+" (list "+t.KeyContext+" in the select list)",
				"encrypted column %s needs its tenant column %s in the result, and pgveil cannot name its relation here (a JOIN alias or another relation of that name)",
				c.enc.QualifiedName(), t.KeyContext)
		}
		o := outCol{name: name, src: c.src, srcIdx: c.tenant, tenant: -1, tenantOut: -1, hidden: true}
		if send != "" {
			ref = send + "(" + ref + ")"
			o.sendOf = t
		}
		c.tenantOut = len(res.cols)
		res.cols = append(res.cols, o)
		added = append(added, ref)
	}
	// An added field named as another output (a * over a JOIN … USING
	// shows the merged column; o.org beside a.secret; a.org and b.org
	// both added) made ORDER BY org or DISTINCT ON (org) ambiguous, an
	// error PostgreSQL does not give the client's statement (review
	// 21j): it gets a name of its own. A hidden field's name is never
	// read.
	for k, j := 0, len(res.cols)-len(added); k < len(added); k, j = k+1, j+1 {
		if o := res.cols[j]; o.sendOf == nil && res.namedTwice(o.name) {
			added[k] += " AS " + quoteIdent("pgveil tenant "+strconv.Itoa(j))
		}
	}
	if len(added) > 0 {
		a.insert(appendAt, ", "+strings.Join(added, ", "))
	}
	return nil
}

// setOutputs records the statement's Outputs from its top-level result.
func (a *analyzer) setOutputs(res *queryResult) *Error {
	if res == nil {
		return nil
	}
	enc, hidden := false, false
	for _, c := range res.cols {
		enc = enc || c.enc != nil || c.json != nil
		hidden = hidden || c.hidden
	}
	if !enc && !hidden {
		return nil
	}
	if !res.complete {
		for _, c := range res.cols {
			if c.json != nil {
				e := unsupported(c.json.FirstColumn(), "JSON beside a * over a relation pgveil's catalog does not list", "list the columns instead of *")
				return e
			}
		}
		if a.viewReads > 0 {
			// PostgreSQL reports a view's own OID as a field's origin: the
			// proxy could not find the encrypted columns a view returns.
			e := errorf(CodeFeatureNotSupported, "a * over a relation pgveil's catalog does not list, in a statement that reads a view over encrypted columns: pgveil could not tell which fields to decrypt")
			e.Hint = "list the columns instead of *"
			return e
		}
		for t, n := range a.tenantRels {
			if n > 1 && res.merged {
				// Review 21j: the relation is listed; the * over a USING
				// join reorders its columns.
				return tableErr(CodeFeatureNotSupported, t, "list the columns instead of *, or join with ON",
					"a * over a JOIN … USING or NATURAL JOIN hides where %s's columns are, and %s appears twice, so pgveil could not tell whose tenant a row carries",
					t.QualifiedName(), t.QualifiedName())
			}
			if n > 1 {
				return tableErr(CodeFeatureNotSupported, t, "list the columns instead of *, or let pgveil refresh its catalog",
					"a * over a relation pgveil's catalog does not list hides where %s's columns are, and %s appears twice, so pgveil could not tell whose tenant a row carries",
					t.QualifiedName(), t.QualifiedName())
			}
		}
		a.st.OutputsByOrigin = true
		for _, c := range res.cols {
			if c.hidden {
				a.st.Outputs = append(a.st.Outputs, Output{Tenant: -1, Hidden: true, SendOf: c.sendOf})
			}
		}
		return nil
	}
	a.st.Outputs = make([]Output, len(res.cols))
	for i, c := range res.cols {
		a.st.Outputs[i] = Output{Column: c.enc, Tenant: -1, Hidden: c.hidden, JSON: c.json, SendOf: c.sendOf}
		if c.enc != nil && c.enc.Table.KeyContext != "" {
			a.st.Outputs[i].Tenant = c.tenantOut
		}
	}
	return nil
}
