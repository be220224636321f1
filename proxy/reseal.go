package proxy

import (
	"errors"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// Statements sealed under a rotated key version (review 19).
//
// A prepared statement whose literals pgveil sealed when it was prepared
// (INSERT … VALUES ('x') through the extended protocol) carries envelopes
// in the text it has upstream, under the data-key version active then. It
// may run long after: after `pgveil rotate` retired that version and,
// once its last pass saw no value under it, dropped it. The value it
// writes then opens under no key. So a statement remembers the versions
// its text was sealed under, and a Bind that finds one of them no longer
// the active version of its column and tenant prepares the statement
// anew (reprepare, commitReprepare: the client sees nothing), sealed
// under the active one. The check is as fresh as the keyring's active
// key (a rotation is announced at once; its grace period covers a
// replica that missed it), as for any value sealed at a Bind. A statement
// that cannot be prepared anew (its tenant was looked up when it was
// prepared) is refused, to be prepared again. A tenant shredded since
// gets a new version, as a new write of it does.

// sealedKey is a data-key version a statement's text was sealed under.
type sealedKey struct {
	col    *policy.Column
	tenant string
	has    bool
	id     uint32
}

// renderSealed is p.Render of the client's text sql with its literals
// filled (fillLiteral), and the key versions they were sealed under.
func (s *session) renderSealed(p *rewrite.Plan, sql string) (string, []sealedKey, error) {
	var log []sealedKey
	s.sealLog = &log
	defer func() { s.sealLog = nil }()
	text, err := p.Render(sql, func(st *rewrite.Stmt, slot *rewrite.Slot) (string, error) { return s.fillLiteral(sql, st, slot) })
	if len(log) > 1 {
		seen := make(map[sealedKey]bool, len(log))
		uniq := log[:0]
		for _, k := range log {
			if !seen[k] {
				seen[k] = true
				uniq = append(uniq, k)
			}
		}
		log = uniq
	}
	return text, log, err
}

// resealIfRotated is stmt, or, when a key version its text was sealed
// under is no longer the active one, the statement prepared anew for
// reprepare's caller to commit; a refusal when it cannot be.
func (s *session) resealIfRotated(stmt *Statement) (*Statement, *pgError, error) {
	if len(stmt.sealed) == 0 || stmt.replaces != nil {
		return stmt, nil, nil
	}
	rotated := false
	for _, k := range stmt.sealed {
		key, err := s.eng.keys.EncryptionKey(s.keyCtx, k.col, k.tenant, k.has)
		if err != nil {
			if err = s.keyErr(err); offLoop(err) {
				return nil, nil, err
			}
			return nil, refusalFrom(err), nil // a shredded tenant, the store down
		}
		if key.ID() != k.id {
			rotated = true
			break
		}
	}
	if !rotated {
		return stmt, nil, nil
	}
	if err := s.syncSearchPathFor(stmt.SQL); err != nil {
		return nil, nil, err
	}
	p, err := s.plan(stmt.SQL)
	if offLoop(err) {
		return nil, nil, err
	}
	if err == nil {
		p = s.withCursors(p)
		if len(p.Stmts) == 1 && rewrite.SamePlan(p.Stmts[0], stmt.Plan) {
			ns, err := s.reprepare(stmt, p, stmt.catGen)
			switch {
			case offLoop(err):
				return nil, nil, err
			case err == nil:
				return ns, nil, nil
			case !errors.Is(err, errNoReprepare):
				return nil, refusalFrom(err), nil
			}
		}
	}
	return nil, staleStatement([]byte(stmt.Name), "holds values sealed under a data-key version that has been rotated since"), nil
}
