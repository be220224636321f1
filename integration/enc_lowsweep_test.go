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
