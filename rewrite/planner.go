package rewrite

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"

	pg "github.com/pganalyze/pg_query_go/v5"
	"github.com/pganalyze/pg_query_go/v5/parser"

	"github.com/pgveil/pgveil/policy"
)

// Planner turns statement text into plans. It is safe for concurrent use:
// the policy is immutable, the catalog is swapped atomically, and plans are
// immutable values shared through the cache.
type Planner struct {
	cfg   *policy.Config
	pre   atomic.Pointer[precheck]
	cat   atomic.Pointer[Catalog]
	cache *planCache
	// migrating are the tables in migration mode (pgveil.tables); nil or
	// empty in steady state.
	migrating atomic.Pointer[map[*policy.Table]bool]
}

// NewPlanner returns a planner for cfg's policy that caches up to
// cacheSize plans (0 disables the cache).
func NewPlanner(cfg *policy.Config, cacheSize int) *Planner {
	p := &Planner{cfg: cfg, cache: newPlanCache(cacheSize)}
	p.pre.Store(newPrecheck(cfg.TableNames()))
	return p
}

// SetCatalog installs a new catalog snapshot and drops every cached plan,
// since name resolution and * expansion may change with it.
func (p *Planner) SetCatalog(c *Catalog) {
	names := p.cfg.TableNames()
	if c != nil {
		own := *c
		own.ov = buildOverlays(p.cfg, &own)
		c = &own
		if c.ov.attribute != "" {
			names = append(names, "pg_attribute")
		}
		if c.ov.columns != "" {
			names = append(names, "information_schema")
		}
		for _, v := range c.Guarded {
			names = append(names, strings.ToLower(v.Name))
		}
		for k := range c.TenantViews {
			names = append(names, strings.ToLower(k[strings.IndexByte(k, '.')+1:]))
		}
		for f := range c.PathFunctions {
			names = append(names, f)
		}
		for r := range c.PathRelations {
			names = append(names, r)
		}
		for f := range c.GuardedFunctions {
			names = append(names, f)
		}
		for r := range c.GuardedRelations {
			names = append(names, r)
		}
		if len(c.PathFunctions) > 0 || len(c.PathRelations) > 0 {
			names = append(names, "execute")
		}
	}
	p.pre.Store(newPrecheck(names))
	if c != nil && len(c.Guarded) > 0 {
		// The planner's own copy of the views: seeing through them writes
		// to them, and the caller's catalog may be in use elsewhere.
		own := *c
		own.Guarded = make(map[string]*GuardedView, len(c.Guarded))
		for k, v := range c.Guarded {
			cp := *v
			own.Guarded[k] = &cp
		}
		c = &own
		p.seeThroughViews(c)
	}
	p.cat.Store(c)
	p.cache.clear()
}

// SetMigrating installs the set of tables in migration mode and drops
// every cached plan, since lookups on those tables are planned differently.
func (p *Planner) SetMigrating(tables map[*policy.Table]bool) {
	var old map[*policy.Table]bool
	if m := p.migrating.Load(); m != nil {
		old = *m
	}
	if sameSet(old, tables) {
		p.migrating.Store(&tables)
		return // a re-read that changed nothing keeps the cache
	}
	p.migrating.Store(&tables)
	p.cache.clear()
}

func sameSet(a, b map[*policy.Table]bool) bool {
	n := 0
	for t, in := range b {
		if in {
			if !a[t] {
				return false
			}
			n++
		}
	}
	for _, in := range a {
		if in {
			n--
		}
	}
	return n == 0
}

// isMigrating reports whether t is in migration mode.
func (p *Planner) isMigrating(t *policy.Table) bool {
	m := p.migrating.Load()
	return m != nil && (*m)[t]
}

// Stats returns the plan cache's counters.
func (p *Planner) Stats() CacheStats { return p.cache.stats() }

// Generation counts the catalog snapshots (and migration sets) installed.
// A plan made under an older generation may no longer hold: a name may
// now mean a view over an encrypted column, and the server resolves the
// names of a prepared statement again when its relations change, so the
// proxy plans a prepared statement again at a Bind under a newer one.
func (p *Planner) Generation() uint64 { return p.cache.generation() }

// SamePlan reports whether a and b, plans of one text, are the same plan
// (a statement prepared before a catalog change and its new plan).
func SamePlan(a, b *Stmt) bool {
	x, y := *a, *b
	x.pieces, y.pieces = nil, nil
	return reflect.DeepEqual(x, y)
}

// SameInput reports whether a and b, plans of one text, differ at most in
// how the fields of the result are read (Outputs, OutputsByOrigin,
// Cursor): the same text sent, the same values sealed. The server, which
// resolves the text again when its relations change, returns the result b
// reads (or refuses, "cached plan must not change result type").
func SameInput(a, b *Stmt) bool {
	x, y := *a, *b
	x.pieces, y.pieces = nil, nil
	x.Outputs, y.Outputs = nil, nil
	x.OutputsByOrigin, y.OutputsByOrigin = false, false
	x.Cursor, y.Cursor = nil, nil
	return reflect.DeepEqual(x, y)
}

// SameInterface reports whether b, a new plan of a's text, shows the
// client what a showed: the same kind of statement, the same parameters
// (their number, and for each the encrypted column, if any, it is written
// to or compared with, which decides the type pgveil reports for it) and
// the same result fields (their number, and the encrypted column whose
// logical type each carries). A prepared statement planned as a can then
// run as b without the client telling: pgveil prepares b upstream anew
// (a table whose migration started or ended changes the text sent, not
// what the client sees). Statements with session effects (SET, cursors,
// PREPARE, COPY) never qualify.
func SameInterface(a, b *Stmt) bool {
	switch a.Kind {
	case KindSelect, KindInsert, KindUpdate, KindDelete:
	default:
		return false
	}
	if a.Kind != b.Kind || a.ClientParams != b.ClientParams || a.OutputsByOrigin != b.OutputsByOrigin ||
		a.Copy != nil || b.Copy != nil || a.Cursor != nil || b.Cursor != nil || a.Fetch != "" || b.Fetch != "" ||
		a.Declares != "" || b.Declares != "" || a.Prepares != "" || b.Prepares != "" || a.Deallocate != "" || b.Deallocate != "" ||
		a.CloseCursor != "" || b.CloseCursor != "" || a.SearchPath != nil || b.SearchPath != nil || a.SearchPathReset || b.SearchPathReset {
		return false
	}
	for i := 0; i < a.ClientParams; i++ {
		if paramRole(a, i) != paramRole(b, i) {
			return false
		}
	}
	va, vb := visibleOutputs(a), visibleOutputs(b)
	if len(va) != len(vb) {
		return false
	}
	for i := range va {
		if va[i].Column != vb[i].Column || (va[i].JSON == nil) != (vb[i].JSON == nil) {
			return false
		}
	}
	return true
}

// paramRole is the type pgveil reports for the client's parameter i of st
// (Param.ClientOID of its first use that is not Pass), 0 for a plain one.
func paramRole(st *Stmt, i int) uint32 {
	for _, p := range st.Params {
		if p.Client == i && p.Action != Pass {
			return p.ClientOID()
		}
	}
	return 0
}

// ClientOID is the type pgveil reports to the client for a parameter it
// feeds to p (ParameterDescription), when the client declared none: the
// logical type of the encrypted column it is sealed into or compared
// with. 0 for Pass: the server's type.
func (p Param) ClientOID() uint32 {
	switch p.Action {
	case Encrypt:
		return p.Column.Type.OID()
	case Index, IndexNext, Plaintext:
		if p.Column.Type == policy.TypeVarchar {
			return policy.OIDText // varchar = $1 is text = text to PostgreSQL
		}
		return p.Column.Type.OID()
	case IndexEach, PlaintextEach:
		return p.Column.Type.ArrayOID()
	case Ignore:
		return policy.OIDBytea
	}
	return 0
}

func visibleOutputs(st *Stmt) []Output {
	n := len(st.Outputs)
	for n > 0 && st.Outputs[n-1].Hidden {
		n--
	}
	return st.Outputs[:n]
}

// MayReference reports whether sql may name a configured table: false
// means no plan of it depends on the session's search_path. It is the
// cheap pre-check Plan itself starts with.
func (p *Planner) MayReference(sql string) bool { return p.pre.Load().mayReference(sql) }

// Plan plans the statements of sql under session s. A refusal is an *Error
// whose SQLSTATE and message go to the client; a refusal of any statement
// of a multi-statement string refuses the whole string.
//
// Caching: plans are cached by (text, search path). Plans that record
// literals (simple-protocol statements with encrypted values in them) are
// not cached: each such text is unique, caching it would only evict the
// parameterised statements that do repeat. The plan would hold no values
// anyway (only offsets), so this is about hit rate, not secrecy.
func (p *Planner) Plan(sql string, s Session) (*Plan, error) {
	if strings.IndexByte(sql, 0) >= 0 {
		// The protocol's strings end at NUL and pg_query reads C strings:
		// the text would mean different things to the parser and to us.
		return nil, errorf(CodeProtocolViolation, "statement text contains a NUL byte")
	}
	if !p.pre.Load().mayReference(sql) {
		if plan, ok := fastPlan(sql); ok {
			return plan, nil
		}
	}
	gen := p.cache.generation()
	if plan := p.cache.lookup(sql, &s); plan != nil {
		p.cache.hits.Add(1)
		return plan, nil
	}
	// A text of a shape planned before (shape.go). pg_query parses as if
	// standard_conforming_strings were on, and so does the shape lexer:
	// sessions with it off plan every text.
	var key string
	var lits []litSpan
	shaped := false
	if !s.BackslashStrings {
		if key, lits, shaped = shapeOf(sql); shaped {
			if sp := p.cache.lookup(key, &s); sp != nil && sp.shape != nil {
				if plan, ok := sp.shape.instantiate(sql, lits); ok {
					p.cache.hits.Add(1)
					p.cache.shapeHits.Add(1)
					return plan, nil
				}
			}
		}
	}
	p.cache.misses.Add(1)
	plan, cacheable, shapeOK, err := p.planText(sql, &s, p.cat.Load())
	if err != nil {
		return nil, err
	}
	if cacheable {
		p.cache.put(sql, &s, plan, gen)
	}
	if shaped && shapeOK {
		if sp, ok := newShapePlan(sql, plan, lits); ok {
			p.cache.put(key, &s, &Plan{shape: sp}, gen)
		}
	}
	return plan, nil
}

// fastPlan is the plan of a string the pre-check cleared.
func fastPlan(sql string) (*Plan, bool) {
	l := lexer{s: sql}
	if t := l.next(); t.kind == tEOF || l.isPunct(t, ";") && l.next().kind == tEOF {
		return &Plan{}, true
	}
	st, ok := fastStmt(sql)
	if !ok {
		return nil, false
	}
	// One allocation for the plan, its statement list and its statement.
	box := &struct {
		plan Plan
		list [1]*Stmt
		st   Stmt
	}{st: st}
	box.list[0] = &box.st
	box.plan.Stmts = box.list[:]
	return &box.plan, true
}

// planText parses and plans sql. A panic anywhere below (pg_query's Go
// code or the planner) becomes a refusal, never a crash.
func (p *Planner) planText(sql string, s *Session, cat *Catalog) (plan *Plan, cacheable, shapeOK bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			plan, cacheable, shapeOK = nil, false, false
			err = errorf(CodeInternalError, "internal error while planning the statement; refused (fail closed)")
		}
	}()
	mayRef := p.pre.Load().mayReference(sql)
	if s.BackslashStrings && mayRef {
		if pos, ok := backslashInPlainString(sql); ok {
			e := errorf(CodeFeatureNotSupported, "a string literal contains a backslash while standard_conforming_strings is off; pgveil cannot be sure how the server reads it")
			e.Hint = "SET standard_conforming_strings = on (the default since PostgreSQL 9.1), or write E'…' strings"
			return nil, false, false, e.at(sql, int32(pos))
		}
	}
	tree, perr := pg.Parse(sql)
	if perr != nil {
		if !mayRef {
			start, end := trimSpan(sql, 0, len(sql))
			return &Plan{Stmts: []*Stmt{{Kind: KindOther, Original: sql[start:end], OriginalStart: start}}}, false, false, nil
		}
		e := errorf(CodeSyntaxError, "%s", perr.Error())
		e.Message = perr.Error()
		e.Detail = "pgveil refuses statements it cannot parse when they may touch a configured table"
		var pe *parser.Error
		if errors.As(perr, &pe) && pe.Cursorpos > 0 {
			e.Position = pe.Cursorpos
		}
		return nil, false, false, e
	}
	if s.BackslashStrings && !mayRef {
		// pg_query reads strings as if standard_conforming_strings were
		// on: the value of a function or DO body it gives the body check
		// would not be the one the server runs.
		for _, raw := range tree.Stmts {
			if raw.Stmt.GetCreateFunctionStmt() == nil && raw.Stmt.GetDoStmt() == nil {
				continue
			}
			if pos, ok := backslashInPlainString(sql); ok {
				e := errorf(CodeFeatureNotSupported, "a function or DO body is a string literal with a backslash while standard_conforming_strings is off; pgveil cannot be sure how the server reads it")
				e.Hint = "SET standard_conforming_strings = on (the default since PostgreSQL 9.1), or write the body in $$ quotes"
				return nil, false, false, e.at(sql, int32(pos))
			}
		}
	}
	plan = &Plan{}
	cacheable, shapeOK = true, true
	path := &pathState{schemas: s.SearchPath, unknown: s.PathUnknown}
	wrap := wrapCandidate(tree.Stmts)
	if s.PathUnknown {
		path.schemas = nil
	}
	for i, raw := range tree.Stmts {
		start := int(raw.StmtLocation)
		end := len(sql)
		if raw.StmtLen > 0 {
			end = start + int(raw.StmtLen)
		}
		start, end = trimSpan(sql, start, end)
		a := newAnalyzer(p, cat, sql, raw, start, end, path, s.BackslashStrings)
		a.noPins = s.NoPins
		a.wrap = wrap
		perr := a.plan(raw.Stmt)
		if perr == nil && i == 2 && wrap != nil && wrap.fn != nil {
			a.st.Kind = KindOther // the DROP of the function the string made
		}
		if perr == nil && i == 1 {
			perr = a.wrappedCalls(raw.Stmt)
		}
		if perr == nil {
			a.unqualifyOverlaid(raw.Stmt)
			perr = a.finish()
		}
		if perr != nil {
			if len(tree.Stmts) > 1 {
				d := fmt.Sprintf("refused statement %d of %d in the query string; none was sent", i+1, len(tree.Stmts))
				if perr.Detail != "" {
					d += "; " + perr.Detail
				}
				perr.Detail = d
			}
			return nil, false, false, perr
		}
		st := a.st
		shapeOK = shapeOK && !a.valueDependent && shapeSafe(st)
		if len(st.Literals) > 0 {
			cacheable = false
		}
		path = nextPath(path, st)
		plan.Stmts = append(plan.Stmts, st)
		plan.Rewritten = plan.Rewritten || st.Rewritten
	}
	return plan, cacheable, shapeOK, nil
}

// backslashInPlainString finds a backslash inside a plain '…' literal, the
// one construct whose reading depends on standard_conforming_strings.
func backslashInPlainString(sql string) (int, bool) {
	l := lexer{s: sql, backslash: true}
	for t := l.next(); t.kind != tEOF && t.kind != tError; t = l.next() {
		if t.kind != tString {
			continue
		}
		c := sql[t.start]
		if c != '\'' && c != 'n' && c != 'N' {
			continue
		}
		for i := t.start; i < t.end; i++ {
			if sql[i] == '\\' {
				return i, true
			}
		}
	}
	return 0, false
}
