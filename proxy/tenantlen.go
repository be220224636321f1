package proxy

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgveil/pgveil/policy"
)

// varlenaHeader is what atttypmod adds to a varchar(n)'s n (VARHDRSZ).
const varlenaHeader = 4

// tenantLengths reads the length n of each key_context column of type
// varchar(n) (or a domain over one): PostgreSQL assigns a longer value to
// it by cutting the spaces beyond n ('abc   ' is stored 'abc'), and the
// tenant a write's values are sealed under must be the one stored (LOW
// sweep 2: they were sealed under 'abc   ', and the row did not open).
func tenantLengths(ctx context.Context, pool *pgxpool.Pool, c *catalog) error {
	var oids []uint32
	var names []string
	for _, ct := range c.byOID {
		if ct.policy.KeyContext != "" && ct.tenantType == policy.TypeVarchar.OID() {
			oids = append(oids, ct.oid)
			names = append(names, ct.policy.KeyContext)
		}
	}
	if len(oids) == 0 {
		return nil
	}
	rows, err := pool.Query(ctx, `SELECT a.attrelid, a.attname::text, CASE WHEN a.atttypmod >= 0 THEN a.atttypmod ELSE t.typtypmod END
		FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = ANY($1) AND a.attname = ANY($2::text[]) AND a.attnum > 0 AND NOT a.attisdropped`, oids, names)
	if err != nil {
		return fmt.Errorf("reading the catalog (tenant column lengths): %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var oid uint32
		var name string
		var mod int32
		if err := rows.Scan(&oid, &name, &mod); err != nil {
			return err
		}
		if ct := c.byOID[oid]; ct != nil && ct.policy.KeyContext == name && mod > varlenaHeader {
			ct.tenantLen = int(mod - varlenaHeader)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the catalog (tenant column lengths): %w", err)
	}
	return nil
}

// storedTenant is the tenant name a write's key_context value names as
// t's column stores it: a varchar(n) column cuts a longer value's spaces
// beyond n (a value with other characters there is refused by the server,
// whatever pgveil names it).
func (c *catalog) storedTenant(t *policy.Table, tenant string) string {
	ct := c.byTable[t]
	if ct == nil || ct.tenantLen <= 0 || utf8.RuneCountInString(tenant) <= ct.tenantLen {
		return tenant
	}
	cut, n := 0, 0
	for i := range tenant {
		if n == ct.tenantLen {
			cut = i
			break
		}
		n++
	}
	for _, r := range tenant[cut:] {
		if r != ' ' {
			return tenant
		}
	}
	return tenant[:cut]
}
