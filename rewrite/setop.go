package rewrite

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// setOp plans UNION/INTERSECT/EXCEPT. Only UNION ALL may carry encrypted
// columns: the others compare whole rows, and equal values encrypt
// differently. Each encrypted column must come from the same policy column
// in every branch, with its tenant at the same position. afterLarg lets a
// recursive CTE define itself from the first branch before the second is planned.
func (a *analyzer) setOp(sel *pg.SelectStmt, sc *scope, mode queryMode, afterLarg func(*queryResult)) (*queryResult, *Error) {
	l, err := a.selectStmt(sel.Larg, sc, modeBranch)
	if err != nil {
		return nil, err
	}
	if afterLarg != nil {
		afterLarg(l)
	}
	r, err := a.selectStmt(sel.Rarg, sc, modeBranch)
	if err != nil {
		return nil, err
	}
	res, err := a.combine(sel, l, r)
	if err != nil {
		return nil, err
	}
	for _, s := range sel.SortClause {
		if err := a.sortItem(s.GetSortBy(), nil, res); err != nil {
			return nil, err
		}
	}
	if err := a.limits(sel, sc); err != nil {
		return nil, err
	}
	if mode == modeTop && !a.noOutputs {
		if err := a.branchSends(res); err != nil {
			return nil, err
		}
		if err := a.bindTenants(res, nil, -1, func() string { return setOpName(sel) }); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func setOpName(sel *pg.SelectStmt) string {
	name := strings.TrimPrefix(sel.Op.String(), "SETOP_")
	if sel.All {
		name += " ALL"
	}
	return name
}

func (a *analyzer) combine(sel *pg.SelectStmt, l, r *queryResult) (*queryResult, *Error) {
	var enc *outCol
	for _, side := range []*queryResult{l, r} {
		for i := range side.cols {
			if side.cols[i].json != nil {
				return nil, unsupported(side.cols[i].json.FirstColumn(), setOpName(sel)+" of JSON built from it", "select the JSON in one query, or build it in the application")
			}
			if side.cols[i].enc != nil && enc == nil {
				enc = &side.cols[i]
			}
		}
	}
	if enc == nil {
		res := &queryResult{cols: l.cols, complete: l.complete && r.complete}
		if !res.complete {
			res.exact = len(l.cols)
			for _, side := range []*queryResult{l, r} {
				if !side.complete {
					res.exact = min(res.exact, side.exact)
					res.merged = res.merged || side.merged
				}
			}
		}
		return res, nil
	}
	if !(sel.Op == pg.SetOperation_SETOP_UNION && sel.All) {
		return nil, unsupported(enc.enc, setOpName(sel), "use UNION ALL, or deduplicate in the application; equal values encrypt differently")
	}
	if !l.complete || !r.complete || len(l.cols) != len(r.cols) {
		return nil, unsupported(enc.enc, "UNION ALL with * or unequal column lists", "list the columns of each branch")
	}
	l.linkTenants()
	r.linkTenants()
	res := &queryResult{complete: true}
	for i := range l.cols {
		lc, rc := l.cols[i], r.cols[i]
		o := outCol{name: lc.name, enc: lc.enc, srcIdx: -1, tenant: -1, tenantOut: -1}
		if lc.enc != rc.enc {
			c := lc.enc
			if c == nil {
				c = rc.enc
			}
			return nil, unsupported(c, "UNION ALL combining it with another column", "select the same encrypted column at the same position in every branch")
		}
		if lc.enc != nil && lc.enc.Table.KeyContext != "" {
			if lc.tenantOut < 0 || lc.tenantOut != rc.tenantOut {
				t := lc.enc.Table
				return nil, tableErr(CodeFeatureNotSupported, t, "select "+t.KeyContext+" at the same position in every branch",
					"UNION ALL returning encrypted column %s needs its tenant column %s in every branch", lc.enc.QualifiedName(), t.KeyContext)
			}
			o.tenantOut = lc.tenantOut
		}
		res.cols = append(res.cols, o)
	}
	res.leaves = append(append(res.leaves, l.leaves...), r.leaves...)
	return res, nil
}

// branchSends adds to every SELECT of a UNION ALL returned to the client
// the send form (TenantSend) of each tenant column of a type that needs
// one, as hidden fields: each branch returns the column itself at the
// same position (combine), so a function of it changes no row.
func (a *analyzer) branchSends(res *queryResult) *Error {
	type need struct {
		pos  int
		t    *policy.Table
		send string
	}
	var needs []need
	n := len(res.cols)
	for i := range res.cols {
		c := &res.cols[i]
		if c.enc == nil || c.enc.Table.KeyContext == "" || c.tenantOut < 0 {
			continue
		}
		send := a.tenantSend(c.enc.Table)
		if send == "" {
			continue
		}
		k := -1
		for j, nd := range needs {
			if nd.pos == c.tenantOut {
				k = j
			}
		}
		if k < 0 {
			k = len(needs)
			needs = append(needs, need{pos: c.tenantOut, t: c.enc.Table, send: send})
		}
		c.tenantOut = n + k
	}
	if len(needs) == 0 {
		return nil
	}
	for _, leaf := range res.leaves {
		added := make([]string, len(needs))
		for k, nd := range needs {
			var lc *outCol
			if nd.pos < len(leaf.res.cols) {
				lc = &leaf.res.cols[nd.pos]
			}
			ref, ok := "", false
			if lc != nil && lc.src != nil && lc.srcIdx >= 0 {
				if lc.src.rowOf != "" {
					ref, ok = "("+lc.src.rowOf+")."+quoteIdent(lc.src.cols[lc.srcIdx].name), true
				} else if ref, ok = lc.src.colIn(leaf.sc, lc.srcIdx); !ok && lc.ref != nil && !a.mergedSendRef(lc.src, lc.srcIdx, nd.t) {
					ref, ok = columnRefText(lc.ref) // the branch's own reference to it
				}
			}
			if !ok || leaf.appendAt < 0 {
				t := nd.t
				return tableErr(CodeFeatureNotSupported, t, "select "+t.KeyContext+" by its plain column name in every branch, or run each branch as a query of its own",
					"UNION ALL returning encrypted columns of %s needs the tenant column %s read as its binary form in every branch (pgveil reads a tenant of this type whatever the session's DateStyle or extra_float_digits), and pgveil cannot name it in one branch",
					t.QualifiedName(), t.KeyContext)
			}
			added[k] = nd.send + "(" + ref + ")"
		}
		a.insert(leaf.appendAt, ", "+strings.Join(added, ", "))
		if leaf.table >= 0 {
			a.replace(leaf.table, leaf.appendAt, "SELECT *")
			a.insert(leaf.appendAt, " FROM")
		}
	}
	for _, nd := range needs {
		res.cols = append(res.cols, outCol{name: nd.t.KeyContext, srcIdx: -1, tenant: -1, tenantOut: -1, hidden: true, sendOf: nd.t})
	}
	return nil
}
