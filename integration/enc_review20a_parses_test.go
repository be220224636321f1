package integration

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestReview20aRefusedParsesOfOneName: a pass-through statement, then
// more Parses of its name with other texts than earlierTexts keeps (each
// refused by the server, 42P05), then DDL: the statement runs, as in
// PostgreSQL (review 19b's sentinel refused the name for good once more
// than 16 texts were kept, though the server had refused every one).
func TestReview20aRefusedParsesOfOneName(t *testing.T) {
	relayLeakCheck(t)
	r17Engines(t, 26600, func(t *testing.T, e *r17Env) {
		e.p.remember("r20a-refused-parses") // the log check wants a value to look for
		e.same("prepare", nil, &pgproto3.Parse{Name: "x", Query: "SELECT $1::int8 + 1 AS n"}, &pgproto3.Sync{})
		for round := 0; round < 2; round++ {
			for k := 0; k < 20; k++ {
				e.same(fmt.Sprint("parse again ", round, k), nil, &pgproto3.Parse{Name: "x", Query: fmt.Sprintf("SELECT $1::int8 + %d AS n", 100*round+k+2)}, &pgproto3.Sync{})
			}
			// Pipelined, without waiting.
			var msgs []pgproto3.FrontendMessage
			for k := 0; k < 20; k++ {
				msgs = append(msgs, &pgproto3.Parse{Name: "x", Query: fmt.Sprintf("SELECT $1::int8 + %d AS n", 100*round+k+50)}, &pgproto3.Sync{})
			}
			e.same(fmt.Sprint("pipelined ", round), nil, msgs...)
			e.same(fmt.Sprint("ddl ", round), nil, query("CREATE TEMP TABLE r20a_bump (); DROP TABLE r20a_bump")...)
			e.same(fmt.Sprint("bind ", round), nil, &pgproto3.Bind{PreparedStatement: "x", Parameters: [][]byte{[]byte("5")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
		}
	})
}

// TestReview20aRefusedPreparesOfOneName: TestReview20aRefusedParsesOfOneName
// for SQL PREPARE: a statement prepared, then more PREPAREs of its name
// with other texts than earlierTexts kept (each refused, 42P05), alone
// or in one string, then DDL: EXECUTE runs it, as in PostgreSQL.
func TestReview20aRefusedPreparesOfOneName(t *testing.T) {
	relayLeakCheck(t)
	r17Engines(t, 27400, func(t *testing.T, e *r17Env) {
		e.p.remember("r20a-refused-prepares") // the log check wants a value to look for
		e.same("prepare", nil, query("PREPARE x AS SELECT $1::int8 + 1 AS n")...)
		for round := 0; round < 2; round++ {
			for k := 0; k < 20; k++ {
				e.same(fmt.Sprint("prepare again ", round, k), nil, query(fmt.Sprintf("PREPARE x AS SELECT $1::int8 + %d AS n", 100*round+k+2))...)
			}
			e.same(fmt.Sprint("in one string ", round), nil, query(fmt.Sprintf("SELECT 1; PREPARE x AS SELECT $1::int8 + %d AS n; PREPARE x AS SELECT $1::int8 + %d AS n", 100*round+50, 100*round+51))...)
			e.same(fmt.Sprint("ddl ", round), nil, query("CREATE TEMP TABLE r20a_bump (); DROP TABLE r20a_bump")...)
			e.same(fmt.Sprint("execute ", round), nil, query("EXECUTE x(5)")...)
			e.same(fmt.Sprint("bind ", round), nil, &pgproto3.Bind{PreparedStatement: "x", Parameters: [][]byte{[]byte("5")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
		}
	})
}
