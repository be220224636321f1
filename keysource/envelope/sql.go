package envelope

import "fmt"

// SealedSQL is an SQL predicate, true when the value of col (an
// expression) has the shape of an envelope, exactly as IsText (text
// true: a text column) or IsBinary (a bytea column) judge it:
//
//	text:  "pgv1:" prefix, at least EncodedLen(Overhead) bytes, (len-5) % 4 != 1
//	bytea: at least Overhead bytes, version 0x01, key id not 0
//
// The operator commands select the rows a pass must look at with it, and
// the proxy tells legacy plaintext from sealed values on the server with
// it. Its functions are named with their schema and its bytea constants
// read by decode, so that neither the session's search_path nor
// standard_conforming_strings changes what it means.
func SealedSQL(col string, text bool) string {
	if text {
		return fmt.Sprintf("(pg_catalog.left(%[1]s, 5) = 'pgv1:' AND pg_catalog.octet_length(%[1]s) >= %[2]d AND (pg_catalog.octet_length(%[1]s) - 5) %% 4 <> 1)",
			col, EncodedLen(Overhead))
	}
	return fmt.Sprintf(`(pg_catalog.octet_length(%[1]s) >= %[2]d AND pg_catalog.substr(%[1]s, 1, 1) = pg_catalog.decode('01', 'hex') AND pg_catalog.substr(%[1]s, 2, 4) <> pg_catalog.decode('00000000', 'hex'))`,
		col, Overhead)
}
