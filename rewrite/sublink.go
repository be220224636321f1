package rewrite

import (
	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// sublink handles subqueries in expressions.
func (a *analyzer) sublink(s *pg.SubLink, sc *scope, what string) *Error {
	switch s.SubLinkType {
	case pg.SubLinkType_EXISTS_SUBLINK:
		_, err := a.query(s.Subselect, sc, modeSub)
		return err
	case pg.SubLinkType_ANY_SUBLINK, pg.SubLinkType_ALL_SUBLINK:
		c, cr, err := a.encOperand(s.Testexpr, sc)
		if err != nil {
			return err
		}
		if c != nil {
			op := lastName(s.OperName)
			if op == "" {
				op = "=" // x IN (SELECT …) carries no operator name
			}
			if !(s.SubLinkType == pg.SubLinkType_ANY_SUBLINK && op == "=" || s.SubLinkType == pg.SubLinkType_ALL_SUBLINK && op == "<>") {
				return unsupported(c, "operator "+op+" with a subquery", hintApp).at(a.sql, s.Location)
			}
			if c.BlindIndex == nil {
				return colErr(CodeFeatureNotSupported, c, blindIndexHint(c),
					"cannot compare encrypted column %s: it has no blind index", c.QualifiedName()).at(a.sql, cr.Location)
			}
			if err := a.renameToIndex(cr, c); err != nil {
				return err
			}
			return a.indexSubquery(s, c, sc)
		}
		if err := a.expr(s.Testexpr, sc, "a subquery comparison"); err != nil {
			return err
		}
		return a.plainSubquery(s, sc, "a comparison")
	default:
		return a.plainSubquery(s, sc, what)
	}
}

// plainSubquery plans a subquery whose values are used as plaintext: it
// must not return an encrypted column.
func (a *analyzer) plainSubquery(s *pg.SubLink, sc *scope, what string) *Error {
	res, err := a.query(s.Subselect, sc, modeSub)
	if err != nil {
		return err
	}
	for _, c := range res.cols {
		if e := c.sealed(); e != nil {
			return unsupported(e, "a subquery used in "+what, hintApp).at(a.sql, s.Location)
		}
	}
	return nil
}

// indexSubquery plans a subquery compared with encrypted column col: its
// one result column must be a column of a table sharing col's blind-index
// key, which is then replaced by its blind index.
func (a *analyzer) indexSubquery(s *pg.SubLink, col *policy.Column, sc *scope) *Error {
	res, err := a.query(s.Subselect, sc, modeSub)
	if err != nil {
		return err
	}
	bad := colErr(CodeFeatureNotSupported, col,
		"select a blind-indexed column that shares the key "+col.BlindIndex.Key+", by name, from a table",
		"a subquery compared with encrypted column %s must return one encrypted column of a table that shares its blind-index key", col.QualifiedName()).at(a.sql, s.Location)
	if len(res.cols) != 1 || !res.complete {
		return bad
	}
	o := res.cols[0]
	if o.enc == nil || o.ref == nil || o.src == nil || !o.src.base || o.enc.BlindIndex == nil || o.enc.BlindIndex.Key != col.BlindIndex.Key {
		return bad
	}
	a.refRels[o.ref] = o.src // an alias list may have renamed its index
	return a.renameToIndex(o.ref, o.enc)
}
