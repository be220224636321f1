package ops

import (
	"strings"

	"github.com/pgveil/pgveil/rewrite"
)

// quoteIdent quotes an identifier as PostgreSQL's quote_identifier does.
func quoteIdent(name string) string { return rewrite.QuoteIdent(name) }

// qualified is schema.name, each part quoted as needed.
func qualified(schema, name string) string { return quoteIdent(schema) + "." + quoteIdent(name) }

// quoteLiteral is a standard-conforming SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// maxIdentLen is NAMEDATALEN-1: PostgreSQL truncates longer identifiers.
const maxIdentLen = 63

// indexName is the name PostgreSQL itself would choose for an index on
// table(column): table_column_idx, the longer part shortened to fit 63 bytes
// (ChooseRelationName).
func indexName(table, column string) string {
	const suffix = "_idx"
	a, b := table, column
	for len(a)+1+len(b)+len(suffix) > maxIdentLen {
		if len(a) >= len(b) {
			a = a[:len(a)-1]
		} else {
			b = b[:len(b)-1]
		}
	}
	return a + "_" + b + suffix
}
