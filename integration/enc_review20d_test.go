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
