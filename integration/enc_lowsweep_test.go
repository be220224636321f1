package integration

// Review 17, the LOW sweep: the known LOW protocol and planner defects,
// each through the real pgveil binary in front of PostgreSQL 15 and
// compared message for message with the same sequence sent directly to
// the plaintext mirror (prEnv, enc_proto_review_test.go).

import (
	"encoding/binary"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestLowSweepBinaryLength (item 1): a binary parameter of the wrong
// length for an encrypted column's logical type. PostgreSQL's receive
// function runs out of data (08P01 "insufficient data left in message")
// or leaves some (22P03 "incorrect binary data format in bind parameter
// N"); pgveil answered 22P02 with a message of its own.
func TestLowSweepBinaryLength(t *testing.T) {
	e := newPrEnv(t)
	org := []byte("7301")
	for _, c := range []struct {
		what string
		col  string
		v    []byte
	}{
		{"int8 short", "api_token", []byte{0, 0, 1}},
		{"int8 long", "api_token", make([]byte, 9)},
		{"int8 empty", "api_token", []byte{}},
		{"date short", "birth_date", []byte{0, 1}},
		{"date long", "birth_date", make([]byte, 5)},
	} {
		e.same(c.what+" (INSERT)",
			&pgproto3.Parse{Query: "INSERT INTO users (org_id, name, " + c.col + ") VALUES ($1, 'bl', $2)"},
			&pgproto3.Bind{Parameters: [][]byte{org, c.v}, ParameterFormatCodes: []int16{0, 1}},
			&pgproto3.Execute{},
			&pgproto3.Sync{})
	}
	ok := binary.BigEndian.AppendUint64(nil, 11)
	e.same("int8 written by UPDATE, right length, then wrong",
		&pgproto3.Parse{Name: "bl1", Query: "UPDATE users SET api_token = $2 WHERE org_id = $1 AND name = 'a' RETURNING name, api_token"},
		&pgproto3.Bind{PreparedStatement: "bl1", Parameters: [][]byte{org, ok}, ParameterFormatCodes: []int16{0, 1}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Bind{PreparedStatement: "bl1", Parameters: [][]byte{org, ok[:7]}, ParameterFormatCodes: []int16{0, 1}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Bind{PreparedStatement: "bl1", Parameters: [][]byte{org, append(ok, 0)}, ParameterFormatCodes: []int16{0, 1}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Bind{PreparedStatement: "bl1", Parameters: [][]byte{org, ok}, ParameterFormatCodes: []int16{1}},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
}

// TestLowSweepBindAfterClose (item 2): a Bind of a statement closed
// earlier in the same pipeline. PostgreSQL: 26000, the statement is gone,
// whatever the Bind carries.
func TestLowSweepBindAfterClose(t *testing.T) {
	e := newPrEnv(t)
	email := []byte(prRows[0].email)
	for _, q := range []string{"SELECT name FROM users WHERE email = $1", "SELECT $1::text"} {
		for _, name := range []string{"bc", ""} {
			for _, params := range [][][]byte{{email}, nil, {email, email}} {
				e.same("closed then bound in one pipeline: "+q+" name "+name,
					&pgproto3.Parse{Name: name, Query: q},
					&pgproto3.Sync{},
					&pgproto3.Close{ObjectType: 'S', Name: name},
					&pgproto3.Bind{PreparedStatement: name, Parameters: params},
					&pgproto3.Execute{},
					&pgproto3.Sync{})
				e.same("and in the next pipeline",
					&pgproto3.Bind{PreparedStatement: name, Parameters: params},
					&pgproto3.Execute{},
					&pgproto3.Sync{})
			}
		}
	}
	e.same("a Close the server skips keeps the statement",
		&pgproto3.Parse{Name: "bk", Query: "SELECT name FROM users WHERE email = $1"},
		&pgproto3.Sync{},
		&pgproto3.Parse{Query: "SELECT 1/0"},
		&pgproto3.Bind{},
		&pgproto3.Execute{},
		&pgproto3.Close{ObjectType: 'S', Name: "bk"},
		&pgproto3.Bind{PreparedStatement: "bk"},
		&pgproto3.Sync{},
		&pgproto3.Bind{PreparedStatement: "bk"},
		&pgproto3.Sync{},
		&pgproto3.Bind{PreparedStatement: "bk", Parameters: [][]byte{email}},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
}
