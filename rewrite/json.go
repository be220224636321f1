package rewrite

import (
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// JSON built in the server from encrypted columns. ORMs that load related
// rows in one statement (Drizzle's relational queries, hand-written
// "embed" queries) select them as JSON:
//
//	SELECT o.id, o.name, u.data AS users FROM orgs o LEFT JOIN LATERAL (
//	  SELECT coalesce(json_agg(json_build_array(x.id, x.org_id, x.email) ORDER BY x.id), '[]'::json) AS data
//	  FROM users x WHERE x.org_id = o.id) u ON true
//
// The server copies each envelope into the JSON as a string ("\\x…", or
// "pgv1:…" for a text column). The planner records where: a JSONShape per
// output, naming for each place the encrypted column and, beside it in the
// same json_build_array or json_build_object, its row's key_context; the
// proxy opens each envelope there and writes the value as PostgreSQL's
// to_json would. Only json_build_array, json_build_object (constant
// keys), json_agg of those, their jsonb forms, COALESCE with constants, and
// columns of subqueries and CTEs that carry such a value are followed; an
// encrypted column anywhere else in a JSON expression is refused as
// before, and so is any other use of a value that holds one (a
// comparison, ORDER BY, DISTINCT, UNION, COPY, a stored query).

// JSONKind is the kind of a JSONShape.
type JSONKind uint8

const (
	// JSONArray: json_build_array; Elems by position.
	JSONArray JSONKind = iota + 1
	// JSONObject: json_build_object; Elems by Key.
	JSONObject
	// JSONAgg: json_agg; every element of the array has the shape Each.
	JSONAgg
	// JSONScalar: the value itself is Elems[0] (each element of
	// json_agg(col), for a table without key_context).
	JSONScalar
)

// JSONShape says where encrypted columns sit in a json or jsonb value.
type JSONShape struct {
	Kind  JSONKind
	Elems []JSONElem
	Each  *JSONShape
	// JSONB: the value at this level is jsonb (jsonb_build_*, jsonb_agg, a
	// cast to jsonb), and so is everything inside it: a json value opened
	// in it is written as jsonb prints it.
	JSONB bool
}

// JSONElem is one element of a JSONArray or member of a JSONObject.
type JSONElem struct {
	Key string // JSONObject
	// Column is the encrypted column whose envelope the element holds.
	Column *policy.Column
	// Tenant is the index in Elems of the element holding the row's
	// key_context value for Column, -1 when the table has none.
	Tenant int
	// Shape is set when the element is itself JSON holding encrypted columns.
	Shape *JSONShape
	// Hidden marks an element pgveil added: the key_context of an
	// encrypted element whose call did not list it. The proxy removes it
	// from the JSON (hidden elements of an array are its last ones).
	Hidden bool
	// Send marks a hidden element holding the binary send form of the
	// key_context value (a bytea, printed as JSON text: Output.SendOf).
	Send bool
}

// FirstColumn returns the first encrypted column the shape holds.
func (s *JSONShape) FirstColumn() *policy.Column {
	if s == nil {
		return nil
	}
	if s.Each != nil {
		return s.Each.FirstColumn()
	}
	for _, e := range s.Elems {
		if e.Column != nil {
			return e.Column
		}
		if c := e.Shape.FirstColumn(); c != nil {
			return c
		}
	}
	return nil
}

// jsonFuncs are the functions whose results the planner follows.
var jsonFuncs = map[string]JSONKind{
	"json_build_array": JSONArray, "jsonb_build_array": JSONArray,
	"json_build_object": JSONObject, "jsonb_build_object": JSONObject,
	"json_agg": JSONAgg, "jsonb_agg": JSONAgg,
}

// jsonCall returns the kind of a call of one of jsonFuncs, in its plain
// form (no OVER, DISTINCT, VARIADIC, WITHIN GROUP, *), or 0.
func jsonCall(n *pg.Node) (JSONKind, *pg.FuncCall) {
	f := n.GetFuncCall()
	if f == nil || f.Over != nil || f.AggDistinct || f.FuncVariadic || f.AggWithinGroup || f.AggStar {
		return 0, nil
	}
	if len(f.Funcname) == 2 && names(f.Funcname[:1]) != "pg_catalog" || len(f.Funcname) > 2 {
		return 0, nil
	}
	k := jsonFuncs[lastName(f.Funcname)]
	if k == JSONAgg && len(f.Args) != 1 || k == JSONObject && len(f.Args)%2 != 0 {
		return 0, nil
	}
	if k != JSONAgg && (len(f.AggOrder) > 0 || f.AggFilter != nil) {
		return 0, nil
	}
	return k, f
}

// isConstant reports a constant, possibly cast ('[]'::json, NULL).
func isConstant(n *pg.Node) bool {
	for n != nil && n.GetTypeCast() != nil {
		n = n.GetTypeCast().Arg
	}
	return n != nil && n.GetAConst() != nil
}

// jsonForm reports whether n builds a JSON value the planner follows. It
// plans nothing.
func (a *analyzer) jsonForm(n *pg.Node, sc *scope) bool {
	switch {
	case n == nil:
		return false
	case n.GetTypeCast() != nil:
		tc := n.GetTypeCast()
		name := lastName(tc.TypeName.Names)
		return (name == "json" || name == "jsonb") && len(tc.TypeName.ArrayBounds) == 0 && a.jsonForm(tc.Arg, sc)
	case n.GetCoalesceExpr() != nil:
		found := false
		for _, arg := range n.GetCoalesceExpr().Args {
			switch {
			case isConstant(arg):
			case a.jsonForm(arg, sc):
				found = true
			default:
				return false
			}
		}
		return found
	case n.GetColumnRef() != nil:
		ref, err := a.resolveColumn(n.GetColumnRef(), sc)
		rc := ref.col()
		return err == nil && rc != nil && rc.json != nil
	}
	k, _ := jsonCall(n)
	return k != 0
}

// jsonValue plans n when it is a JSON form (jsonForm) and returns the
// shape of its value: nil when it holds no encrypted column. planned is
// false, with nothing planned, when n is not a JSON form.
func (a *analyzer) jsonValue(n *pg.Node, sc *scope) (shape *JSONShape, planned bool, err *Error) {
	if a.strict != "" || !a.jsonForm(n, sc) {
		return nil, false, nil
	}
	shape, err = a.jsonPlan(n, sc)
	return shape, true, err
}

func (a *analyzer) jsonPlan(n *pg.Node, sc *scope) (*JSONShape, *Error) {
	switch {
	case n.GetTypeCast() != nil:
		s, err := a.jsonPlan(n.GetTypeCast().Arg, sc)
		if s != nil && lastName(n.GetTypeCast().TypeName.Names) == "jsonb" && !s.JSONB {
			cp := *s
			cp.JSONB = true
			s = &cp
		}
		return s, err
	case n.GetCoalesceExpr() != nil:
		var shape *JSONShape
		var consts []*pg.Node
		for _, arg := range n.GetCoalesceExpr().Args {
			if isConstant(arg) {
				consts = append(consts, arg)
				continue
			}
			s, err := a.jsonPlan(arg, sc)
			if err != nil {
				return nil, err
			}
			if s != nil && shape != nil {
				return nil, unsupported(s.FirstColumn(), "COALESCE of several JSON values", "build the JSON in one call").at(a.sql, n.GetCoalesceExpr().Location)
			}
			if s != nil {
				shape = s
			}
		}
		// A constant the JSON may fall back to is the client's text: it
		// could hold an envelope pgveil would open under a tenant the
		// client names. Only an empty container of the shape's kind, or
		// null.
		for _, c := range consts {
			if shape == nil {
				break
			}
			// The check reads the constant's value: another text of the
			// shape may fall back to another constant.
			a.valueDependent = true
			v, isString := constString(c)
			empty := "[]"
			if shape.Kind == JSONObject {
				empty = "{}"
			}
			if isString && strings.TrimSpace(v) != empty && strings.TrimSpace(v) != "null" || !isString && !isNullConst(c) {
				return nil, unsupported(shape.FirstColumn(), "COALESCE of JSON built from it with a constant other than "+empty+" or NULL", "fall back to "+empty+" or NULL").at(a.sql, n.GetCoalesceExpr().Location)
			}
		}
		return shape, nil
	case n.GetColumnRef() != nil:
		ref, err := a.resolveColumn(n.GetColumnRef(), sc)
		if err != nil {
			return nil, err
		}
		return ref.col().json, nil
	}
	kind, f := jsonCall(n)
	what := "function " + lastName(f.Funcname) + "()"
	if kind == JSONAgg {
		each, _, err := a.jsonArg(f.Args[0], sc, what)
		if err != nil {
			return nil, err
		}
		for _, s := range f.AggOrder {
			if err := a.expr(s, sc, "ORDER BY"); err != nil {
				return nil, err
			}
		}
		if err := a.expr(f.AggFilter, sc, "FILTER"); err != nil {
			return nil, err
		}
		switch {
		case each.Column != nil:
			if t := each.Column.Table; t.KeyContext != "" {
				return nil, tableErr(CodeFeatureNotSupported, t, "aggregate json_build_array("+each.Column.Name+", "+t.KeyContext+") instead",
					"%s of encrypted column %s cannot carry each value's tenant column %s", what, each.Column.QualifiedName(), t.KeyContext).at(a.sql, f.Location)
			}
			return &JSONShape{Kind: JSONAgg, Each: &JSONShape{Kind: JSONScalar, Elems: []JSONElem{each}}, JSONB: lastName(f.Funcname) == "jsonb_agg"}, nil
		case each.Shape != nil:
			return &JSONShape{Kind: JSONAgg, Each: each.Shape, JSONB: lastName(f.Funcname) == "jsonb_agg"}, nil
		}
		return nil, nil
	}
	shape := &JSONShape{Kind: kind}
	var refs []colRef
	var nodes []*pg.Node
	args := f.Args
	keyed := true // every key a plain string constant
	if kind == JSONObject {
		// The keys are part of the plan (the proxy finds members by key):
		// another text of the same shape has other keys.
		a.valueDependent = true
		for i := 0; i < len(args); i += 2 {
			key, ok := plainString(args[i])
			if ok && strings.HasPrefix(key, hiddenKeyPrefix) {
				return nil, errorf(CodeFeatureNotSupported, "JSON keys starting with %s are reserved for pgveil", hiddenKeyPrefix).at(a.sql, f.Location)
			}
			if !ok {
				keyed = false
				if err := a.expr(args[i], sc, what); err != nil {
					return nil, err
				}
			}
			e, ref, err := a.jsonArg(args[i+1], sc, what)
			if err != nil {
				return nil, err
			}
			e.Key = key
			shape.Elems = append(shape.Elems, e)
			refs = append(refs, ref)
			nodes = append(nodes, args[i+1])
		}
	} else {
		for _, arg := range args {
			e, ref, err := a.jsonArg(arg, sc, what)
			if err != nil {
				return nil, err
			}
			shape.Elems = append(shape.Elems, e)
			refs = append(refs, ref)
			nodes = append(nodes, arg)
		}
	}
	any := false
	for i := range shape.Elems {
		any = any || shape.Elems[i].Column != nil || shape.Elems[i].Shape != nil
	}
	if any && kind == JSONObject {
		// Members are found by key: a key that is not a plain string
		// constant (a cast changes it, a column could be any key) or one
		// given twice could put another value where the plan expects a
		// member.
		first := shape.FirstColumn()
		if !keyed {
			return nil, unsupported(first, what+" with a key that is not a string constant", "write every key as a plain string constant").at(a.sql, f.Location)
		}
		for i := range shape.Elems {
			for j := range i {
				if shape.Elems[j].Key == shape.Elems[i].Key {
					return nil, unsupported(first, what+" with the key "+shape.Elems[i].Key+" twice", "give each member its own key").at(a.sql, f.Location)
				}
			}
		}
	}
	for i, n := 0, len(shape.Elems); i < n; i++ {
		if shape.Elems[i].Column == nil {
			continue
		}
		if send := a.tenantSend(shape.Elems[i].Column.Table); send != "" {
			// Read through its send form, even beside the column itself.
			j, ok := a.jsonHiddenTenant(f, kind, shape, &refs, i, nodes, sc, send)
			if !ok {
				t := shape.Elems[i].Column.Table
				return nil, tableErr(CodeFeatureNotSupported, t, "build the JSON from "+t.QualifiedName()+"'s columns named directly in the call, or select the columns and build the JSON in the application",
					"encrypted column %s inside JSON needs its tenant %s read as its binary form (pgveil reads a tenant of this type whatever the session's DateStyle or extra_float_digits), and pgveil cannot add it to this call", shape.Elems[i].Column.QualifiedName(), t.KeyContext).at(a.sql, f.Location)
			}
			shape.Elems[i].Tenant = j
			continue
		}
		if err := a.jsonTenant(&shape.Elems[i], refs, i, f.Location); err != nil {
			j, ok := a.jsonHiddenTenant(f, kind, shape, &refs, i, nodes, sc, "")
			if !ok {
				return nil, err
			}
			shape.Elems[i].Tenant = j // after the append, which may move the slice
		}
	}
	if !any {
		return nil, nil
	}
	if kind == JSONArray || kind == JSONObject {
		shape.JSONB = strings.HasPrefix(lastName(f.Funcname), "jsonb_")
	}
	return shape, nil
}

// plainString returns the value of a string constant written without a
// cast.
func plainString(n *pg.Node) (string, bool) {
	if c := n.GetAConst(); c != nil && c.GetSval() != nil {
		return c.GetSval().Sval, true
	}
	return "", false
}

// constString returns the value of a string constant, possibly cast.
func constString(n *pg.Node) (string, bool) {
	for n != nil && n.GetTypeCast() != nil {
		n = n.GetTypeCast().Arg
	}
	if c := n.GetAConst(); c != nil && c.GetSval() != nil {
		return c.GetSval().Sval, true
	}
	return "", false
}

// jsonArg plans one argument of a JSON call: an encrypted column, a JSON
// form, or anything else (planned as an expression, which refuses
// encrypted columns inside it).
func (a *analyzer) jsonArg(n *pg.Node, sc *scope, what string) (JSONElem, colRef, *Error) {
	e := JSONElem{Tenant: -1}
	if cr := n.GetColumnRef(); cr != nil {
		ref, err := a.resolveColumn(cr, sc)
		if err != nil {
			return e, ref, err
		}
		if rc := ref.col(); rc != nil && !ref.star {
			switch {
			case rc.enc != nil:
				e.Column = rc.enc
				return e, ref, nil
			case rc.json != nil:
				e.Shape = rc.json
				return e, ref, nil
			}
		}
		return e, ref, a.bareRef(cr, sc, what)
	}
	if a.jsonForm(n, sc) {
		s, err := a.jsonPlan(n, sc)
		e.Shape = s
		return e, colRef{idx: -1}, err
	}
	return e, colRef{idx: -1}, a.expr(n, sc, what)
}

// jsonTenant points e (at index i of a call whose arguments resolved to
// refs) to the argument holding its row's key_context, refusing when there
// is none.
func (a *analyzer) jsonTenant(e *JSONElem, refs []colRef, i int, loc int32) *Error {
	t := e.Column.Table
	if t.KeyContext == "" {
		return nil
	}
	ref := refs[i]
	rc := ref.col()
	if rc != nil && rc.tenant >= 0 && !rc.noTenant {
		for j, o := range refs {
			if o.rel == ref.rel && o.idx == rc.tenant && !o.star {
				e.Tenant = j
				return nil
			}
		}
	}
	return tableErr(CodeFeatureNotSupported, t, "list "+t.KeyContext+" in the same call",
		"encrypted column %s inside JSON needs its tenant column %s in the same json_build_array or json_build_object", e.Column.QualifiedName(), t.KeyContext).at(a.sql, loc)
}

// hiddenKeyPrefix begins the keys of the members pgveil adds to
// json_build_object.
const hiddenKeyPrefix = "__pgveil_"

// jsonHiddenTenant adds to the call f, after its last argument, the
// key_context (send: through that function, TenantSend) of the row
// element i (a column reference, arg) comes from,
// as a hidden element the proxy removes again (a member with a reserved
// key in an object), and returns its index. It fails when the tenant
// column is not in scope or the call is not the client's text.
func (a *analyzer) jsonHiddenTenant(f *pg.FuncCall, kind JSONKind, shape *JSONShape, refs *[]colRef, i int, nodes []*pg.Node, sc *scope, send string) (int, bool) {
	ref := (*refs)[i]
	rc := ref.col()
	cr := nodes[i].GetColumnRef()
	if rc == nil || rc.tenant < 0 || rc.noTenant || cr == nil || int(f.Location) < a.stmtStart || int(f.Location) >= a.stmtEnd {
		return 0, false
	}
	added := 1
	if kind == JSONObject {
		added = 2 // a key and the value
	}
	if len(f.Args)+added > 100 { // PostgreSQL takes at most 100 arguments
		return 0, false
	}
	col, ok := ref.rel.colIn(sc, rc.tenant)
	for j, o := range *refs {
		if !ok && send != "" && j < len(nodes) && o.rel == ref.rel && o.idx == rc.tenant && !o.star && nodes[j].GetColumnRef() != nil &&
			!a.mergedSendRef(ref.rel, rc.tenant, shape.Elems[i].Column.Table) {
			col, ok = columnRefText(nodes[j].GetColumnRef()) // the call's own argument naming it
		}
	}
	if !ok {
		return 0, false
	}
	end, ok := a.callEnd(int(f.Location))
	if !ok {
		return 0, false
	}
	for j, o := range *refs {
		if j != i && o.rel == ref.rel && o.idx == rc.tenant && !o.star && j < len(shape.Elems) && shape.Elems[j].Send {
			return j, true // added for an earlier element
		}
	}
	e := JSONElem{Tenant: -1, Hidden: true, Send: send != ""}
	if send != "" {
		col = send + "(" + col + ")"
	}
	text := ", " + col
	if kind == JSONObject {
		e.Key = hiddenKeyPrefix + "tenant_" + strconv.Itoa(len(shape.Elems))
		text = ", '" + e.Key + "', " + col
	}
	a.insert(end-1, text)
	shape.Elems = append(shape.Elems, e)
	*refs = append(*refs, colRef{rel: ref.rel, idx: rc.tenant})
	return len(shape.Elems) - 1, true
}

// jsonRefused refuses a use of a column that holds JSON with encrypted
// columns other than passing it on.
func (a *analyzer) jsonRefused(s *JSONShape, what string, loc int32) *Error {
	return unsupported(s.FirstColumn(), what+" of a JSON value holding it", "select the JSON value as it is; pgveil decrypts it there").at(a.sql, loc)
}

// sealed returns the encrypted column an output carries, directly or
// inside JSON, or nil.
func (c *outCol) sealed() *policy.Column {
	if c.enc != nil {
		return c.enc
	}
	return c.json.FirstColumn()
}
