package rewrite

import "strings"

// reservedWords are PostgreSQL 16's keywords that are not UNRESERVED
// (kwlist.h): quote_identifier quotes these, and so do we.
var reservedWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`all analyse analyze and any array as asc asymmetric
		authorization between bigint binary bit boolean both case cast char character check
		coalesce collate collation column concurrently constraint create cross current_catalog
		current_date current_role current_schema current_time current_timestamp current_user
		dec decimal default deferrable desc distinct do else end except exists extract false
		fetch float for foreign freeze from full grant greatest group grouping having ilike in
		initially inner inout int integer intersect interval into is isnull join json_array
		json_arrayagg json_object json_objectagg lateral leading least left like limit localtime
		localtimestamp national natural nchar none normalize not notnull null nullif numeric
		offset on only or order out outer overlaps overlay placing position precision primary
		real references returning right row select session_user setof similar smallint some
		substring symmetric system_user table tablesample then time timestamp to trailing treat
		trim true union unique user using values varchar variadic verbose when where window
		with xmlattributes xmlconcat xmlelement xmlexists xmlforest xmlnamespaces xmlparse
		xmlpi xmlroot xmlserialize xmltable`) {
		m[w] = true
	}
	return m
}()

// quoteIdent returns name as PostgreSQL's quote_identifier would: bare when
// it is a lower-case simple identifier that is not a reserved word, else in
// double quotes with quotes doubled.
func quoteIdent(name string) string {
	return QuoteIdent(name)
}

// QuoteIdent returns name as PostgreSQL's quote_identifier would: bare when
// it is a lower-case simple identifier that is not a reserved word, else in
// double quotes with quotes doubled. Exported for tools that print SQL.
func QuoteIdent(name string) string {
	if needsQuote(name) {
		return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
	}
	return name
}

func needsQuote(name string) bool {
	if name == "" || reservedWords[name] {
		return true
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case (c >= '0' && c <= '9' || c == '$') && i > 0:
		default:
			return true
		}
	}
	return false
}

// identLike renders name the way the client wrote a neighbouring
// identifier: quoted when the client quoted it (so generated SQL keeps the
// client's style), else as quoteIdent would.
func identLike(name string, clientQuoted bool) string {
	if clientQuoted {
		return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
	}
	return quoteIdent(name)
}
