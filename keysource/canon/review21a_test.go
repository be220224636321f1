package canon

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestReview21aSendFormNamesTenant: pgveil reads a date, timestamp,
// timestamptz, float4 or float8 tenant (or one of a domain over date or
// timestamp) as the bytes of its type's send function, which PostgreSQL
// returns as a bytea whatever the session's DateStyle, TimeZone,
// extra_float_digits or bytea_output. Those bytes, decoded as the binary
// form, must name the tenant a write of the same value seals under
// (TenantParam of the value as written; DomainTenant for a domain).
func TestReview21aSendFormNamesTenant(t *testing.T) {
	url := testDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	values := map[string][]string{
		"date": {"2026-01-02", "2026-02-01", "0044-03-15 BC", "4714-11-24 BC", "5874897-12-31", "10000-01-01", "infinity", "-infinity", "epoch"},
		"timestamp": {"2026-01-02 03:04:05.5", "2026-02-01 03:04:05.000001", "0044-03-15 10:00:00.125 BC", "294276-12-31 23:59:59.999999",
			"infinity", "-infinity", "2000-01-01 00:00:00"},
		"timestamptz": {"2026-01-02 03:04:05.5+00", "2026-01-02 03:04:05.5+09", "2026-02-01 03:04:05.5-03:30", "0044-03-15 10:00:00+00 BC",
			"infinity", "-infinity"},
		"float8": {"0.3", "0.30000000000000004", "1e300", "-0", "0", "5e-324", "NaN", "Infinity", "-Infinity", "123456789012345680"},
		"float4": {"1", "1.0000001", "0.1", "-0", "3.4028235e38", "1e-45", "NaN", "-Infinity"},
	}
	oids := map[string]uint32{"date": 1082, "timestamp": 1114, "timestamptz": 1184, "float8": 701, "float4": 700}
	sends := map[string]string{"date": "date_send", "timestamp": "timestamp_send", "timestamptz": "timestamptz_send", "float8": "float8send", "float4": "float4send"}
	for _, set := range []string{
		"SET DateStyle = 'ISO, MDY'; SET TimeZone = 'UTC'; SET extra_float_digits = 1; SET bytea_output = 'hex'",
		"SET DateStyle = 'German'; SET TimeZone = 'Asia/Tokyo'; SET extra_float_digits = -15; SET bytea_output = 'escape'",
		"SET DateStyle = 'SQL, DMY'; SET TimeZone = 'America/St_Johns'; SET extra_float_digits = 0; SET bytea_output = 'hex'",
	} {
		if _, err := conn.Exec(ctx, set); err != nil {
			t.Fatal(err)
		}
		for typ, vs := range values {
			for _, v := range vs {
				// As a simple query: the bytea arrives as its text (hex or
				// escape); read as pgveil reads a hidden field.
				rs, err := conn.PgConn().Exec(ctx, "SELECT pg_catalog."+sends[typ]+"('"+v+"'::"+typ+")").ReadAll()
				if err != nil {
					t.Fatalf("%s %s: %v", typ, v, err)
				}
				raw, err := byteaText(rs[0].Rows[0][0], nil)
				if err != nil {
					t.Fatalf("%s %s: bytea text %q: %v", typ, v, rs[0].Rows[0][0], err)
				}
				got, err := TenantText(oids[typ], BinaryFormat, raw)
				if err != nil {
					t.Errorf("%s: %s %s: %v", set, typ, v, err)
					continue
				}
				want, err := TenantParam(oids[typ], 0, TextFormat, []byte(v))
				if err != nil {
					t.Fatalf("%s %s: write side: %v", typ, v, err)
				}
				if got != want {
					t.Errorf("%s: %s %s: send form names %q, a write %q", set, typ, v, got, want)
				}
				if typ == "date" || typ == "timestamp" {
					// A domain over it: read with DomainTenantRecv, written as DomainTenant.
					dgot, err1 := DomainTenantRecv(oids[typ], raw)
					dwant, err2 := DomainTenant(oids[typ], -1, v)
					if err1 != nil || err2 != nil || dgot != dwant || dgot != got {
						t.Errorf("%s: domain over %s %s: read %q %v, written %q %v", set, typ, v, dgot, err1, dwant, err2)
					}
				}
			}
		}
	}
}
