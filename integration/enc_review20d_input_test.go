package integration

import (
	"testing"
	"time"

	"github.com/pgveil/pgveil/integration/harness"
	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/policy"
)

// TestReview20dDateInputPG: every text input canon names a date or
// timestamp tenant by (a parameter declared text, or a literal) names the
// value PostgreSQL stores from it, under each DateStyle order (the input
// of an ambiguous form depends on it) and a TimeZone other than UTC.
func TestReview20dDateInputPG(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	c, err := cluster.Connect(ctx, harness.SuperUser, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	inputs := []string{"2026-01-02", " 2026-01-02 ", "2026-01-02 23:30:00+05", "2026-01-02T10:00", "2026-01-02 10:00:00.5+02:30",
		"2026-1-2", "2026-01-02 BC", "2026-01-02 10:00 BC", "0099-01-02", "99-01-02", "02026-01-02", "+2026-01-02", "2026-01-02 24:00:00",
		"2026-01-02 23:59:60", "2026-01-02 10:00:00.1234567", "2026-01-02 10:00:00.9999995", "epoch", "infinity", "-infinity",
		"2026-01-02 allballs", "2026-01-02 10:00 PST", "2026-01-02 10:00 Europe/Berlin", "2026-01-02 10:00 +5", "2026-01-02 10:00z",
		"2026-01-02 10:00:00 am", "2026-01-02 10:00 pm", "2026-01-02 12:00 am", "J2461043", "2026-01-02 10", "2026-01-02 10:00:00.",
		"2026-02-30", "2026-01-02 10:00:00-00:00:30", "2026-001", "2026-01-02 040506", "2026-01-02 10.00.00", "2026-W01-1", "10000-01-01",
		"294277-01-01", "5874897-12-31", "4714-11-24 BC", "4714-11-23 BC"}
	for _, style := range []string{"ISO, MDY", "ISO, DMY", "SQL, YMD"} {
		if _, err := c.Exec(ctx, "SET DateStyle = '"+style+"'; SET TimeZone = 'Asia/Kolkata'"); err != nil {
			t.Fatal(err)
		}
		for _, typ := range []struct {
			oid uint32
			sql string
		}{{policy.TypeDate.OID(), "date"}, {policy.TypeTimestamp.OID(), "timestamp"}} {
			for _, in := range inputs {
				name, nerr := canon.TenantParam(typ.oid, policy.OIDText, canon.TextFormat, []byte(in))
				if nerr != nil {
					continue
				}
				var got string
				err := c.QueryRow(ctx, "SELECT (($1::text)::"+typ.sql+")::text FROM (SELECT set_config('DateStyle', 'ISO, '||split_part(current_setting('DateStyle'), ', ', 2), true)) s", in).Scan(&got)
				if err != nil {
					t.Errorf("%s %s %q: pgveil names %q, PostgreSQL refuses: %v", style, typ.sql, in, name, err)
					continue
				}
				if got != name {
					t.Errorf("%s %s %q: pgveil names %q, PostgreSQL stores %q", style, typ.sql, in, name, got)
				}
			}
		}
	}
}
