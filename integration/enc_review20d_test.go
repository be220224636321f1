package integration

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestReview20dDeclaredTypeTenant: a parameter declared as a type pgveil
// does not mirror (interval, money, point, float8[], oid, …) for a
// key_context column named by its stored text (citext, a domain over
// text or varchar, a domain over citext) is assigned by PostgreSQL
// through that type's input and output ('1 day 2 hours' is stored as
// '1 day 02:00:00', 1000 as '$1,000.00', '{ 0.3 }' as '{0.3}'); pgveil
// named the tenant as written, and the row opened in no session. Each
// such write must be refused, or read back.
func TestReview20dDeclaredTypeTenant(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"ci", "citext"}, {"dtx", "d20_text"}, {"dvc", "d20_vc"}, {"dci", "d20_ci"},
		{"ch", "char(40)"}, {"nm", "name"}, {"tx", "text"}, {"en", "d20_mood"}}
	e := newOpsEnv(t, "review20d_declared", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{`CREATE EXTENSION citext`, `CREATE DOMAIN d20_text AS text`,
		`CREATE DOMAIN d20_vc AS varchar(40)`, `CREATE DOMAIN d20_ci AS citext`,
		`CREATE TYPE d20_mood AS ENUM ('1 day 2 hours', '1.50', 'true')`}, types)
	p := e.proxy(e.config(""))
	var writes []review19cWrite
	for _, ty := range types {
		table := "r19_" + ty.name
		for _, w := range []review19cWrite{
			{param: []byte("1 day 2 hours"), oid: 1186},     // interval
			{param: []byte("1000"), oid: 790},               // money
			{param: []byte("( 1 , 2 )"), oid: 600},          // point
			{param: []byte("{ 0.5 , 1e1 }"), oid: 1022},     // float8[]
			{param: []byte("{ 007 }"), oid: 1007},           // int4[]
			{param: []byte("0042"), oid: 26},                // oid
			{param: []byte("10.0.0.1/32"), oid: 869},        // inet
			{param: []byte("[1,5)"), oid: 3904},             // int4range
			{param: []byte("x"), oid: 18},                   // "char"
			{param: []byte("010:00"), oid: 1083},            // time
			{param: []byte("1.50"), oid: 1700},              // numeric: stored 1.50
			{param: []byte("t"), oid: 16},                   // bool: stored true
			{param: []byte("0007"), oid: 20},                // int8
			{param: []byte(`{"b": 1,  "a": 2}`), oid: 3802}, // jsonb
			{param: []byte(` {"a":1} `), oid: 114},          // json
			{param: []byte("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), oid: 2950},
		} {
			w.table = table
			writes = append(writes, w)
		}
	}
	// The domain's base, declared by its own OID, is still accepted.
	var ciOID, moodOID uint32
	if err := e.conn(ctx).QueryRow(ctx, `SELECT 'citext'::regtype::oid, 'd20_mood'::regtype::oid`).Scan(&ciOID, &moodOID); err != nil {
		t.Fatal(err)
	}
	writes = append(writes, review19cWrite{table: "r19_dci", param: []byte("AbC "), oid: ciOID},
		review19cWrite{table: "r19_ci", param: []byte("AbC "), oid: ciOID},
		review19cWrite{table: "r19_en", param: []byte("1.50"), oid: moodOID})
	id := 0
	review19cCheck(t, ctx, func() *pgx.Conn { return e.appConn(ctx, p) }, &id, writes)
}

// TestReview20dLiteralTenantForms: literal tenant values of other types
// for key_context columns named by their text: each write pgveil accepts
// must read back.
func TestReview20dLiteralTenantForms(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"ci", "citext"}, {"ch", "char(40)"}, {"nm", "name"}, {"tx", "text"}, {"vc", "varchar(40)"}, {"dtx", "d20_text"},
		{"dnm", "d20_name"}, {"dci", "d20_ci"}}
	e := newOpsEnv(t, "review20d_literal", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{`CREATE EXTENSION citext`, `CREATE DOMAIN d20_text AS text`,
		`CREATE DOMAIN d20_name AS name`, `CREATE DOMAIN d20_ci AS citext`}, types)
	p := e.proxy(e.config(""))
	var writes []review19cWrite
	for _, ty := range types {
		for _, lit := range []string{`true`, `FALSE`, ` True `, `1.50`, `1e2`, `-0.0`, `interval '1 day 2 hours'`, `'1 day 2 hours'::interval`,
			`B'101'`, `X'1F'`, `date '2026-01-02'`, `timestamp '2026-01-02 10:00'`, `float8 '0.1'`, `numeric '1.50'`,
			`bool 't'`, `int '007'`, `'007'::int`, `text 'abc '`, `char(5) 'ab'`, `'ab'::char(5)`, `name 'x'`, `money '1000'`,
			`E'a\\tb'`, `U&'\0041'`, `$$x$$`, `0x1F`, `1_000`, `.5`, `5.`, `1e-3`, `NULL::text`, `'x' COLLATE "C"`} {
			writes = append(writes, review19cWrite{table: "r19_" + ty.name, lit: lit})
		}
	}
	id := 0
	review19cCheck(t, ctx, func() *pgx.Conn { return e.appConn(ctx, p) }, &id, writes)
}
