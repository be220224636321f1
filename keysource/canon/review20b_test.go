package canon

import "testing"

// TestReview20bPrintedTenant: a date or timestamp key_context value as a
// session of each DateStyle prints it (psql on PostgreSQL 15 gave each
// printed form) names the tenant pgveil names by its ISO text.
func TestReview20bPrintedTenant(t *testing.T) {
	const date, ts = 1082, 1114
	for _, c := range []struct {
		base    uint32
		order   DateOrder
		printed string
		want    string // "": refused
	}{
		{date, OrderMDY, "2026-01-02", "2026-01-02"},
		{date, OrderDMY, "2026-01-02", "2026-01-02"},
		{date, OrderDMY, "02/01/2026", "2026-01-02"},
		{date, OrderMDY, "01/02/2026", "2026-01-02"},
		{date, OrderDMY, "02-01-2026", "2026-01-02"},
		{date, OrderMDY, "01-02-2026", "2026-01-02"},
		{date, OrderMDY, "02.01.2026", "2026-01-02"}, // German is always DMY
		{date, OrderDMY, "15/03/0044 BC", "0044-03-15 BC"},
		{date, OrderMDY, "03/15/0044 BC", "0044-03-15 BC"},
		{date, OrderDMY, "15.03.0044 BC", "0044-03-15 BC"},
		{date, OrderDMY, "01/01/10000", "10000-01-01"},
		{date, OrderDMY, "01-01-10000", "10000-01-01"},
		{date, OrderDMY, "24/11/4714 BC", "4714-11-24 BC"},
		{date, OrderDMY, "31/12/5874897", "5874897-12-31"},
		{date, OrderDMY, "infinity", "infinity"},
		{date, OrderMDY, "-infinity", "-infinity"},
		{ts, OrderDMY, "02/01/2026 10:00:00.5", "2026-01-02 10:00:00.5"},
		{ts, OrderMDY, "01/02/2026 10:00:00.5", "2026-01-02 10:00:00.5"},
		{ts, OrderDMY, "02/01/2026 00:00:00", "2026-01-02 00:00:00"},
		{ts, OrderDMY, "Fri 02 Jan 10:00:00.5 2026", "2026-01-02 10:00:00.5"},
		{ts, OrderMDY, "Fri Jan 02 10:00:00.5 2026", "2026-01-02 10:00:00.5"},
		{ts, OrderUnknown, "Fri Jan 02 10:00:00.5 2026", "2026-01-02 10:00:00.5"},
		{ts, OrderDMY, "Fri 15 Mar 10:00:00 0044 BC", "0044-03-15 10:00:00 BC"},
		{ts, OrderMDY, "03/15/0044 10:00:00 BC", "0044-03-15 10:00:00 BC"},
		{ts, OrderDMY, "Sat 01 Jan 01:02:03 10000", "10000-01-01 01:02:03"},
		{ts, OrderDMY, "01/01/10000 01:02:03.000001", "10000-01-01 01:02:03.000001"},
		{ts, OrderDMY, "02.01.2026 10:00:00.5", "2026-01-02 10:00:00.5"},
		{ts, OrderDMY, "31/12/294276 23:59:59.999999", "294276-12-31 23:59:59.999999"},
		{ts, OrderDMY, "-infinity", "-infinity"},
		{ts, OrderDMY, "2026-01-02 10:00:00.5", "2026-01-02 10:00:00.5"},
		// The order decides: unknown is refused unless the fields tell.
		{date, OrderUnknown, "02/01/2026", ""},
		{date, OrderUnknown, "02-01-2026", ""},
		{date, OrderUnknown, "01/01/2026", "2026-01-01"},
		{date, OrderUnknown, "13/01/2026", "2026-01-13"},
		{date, OrderUnknown, "01/13/2026", "2026-01-13"},
		{date, OrderUnknown, "02.01.2026", "2026-01-02"},
		// Not what PostgreSQL prints.
		{date, OrderDMY, "13/13/2026", ""},
		{date, OrderMDY, "13/01/2026", ""},
		{date, OrderDMY, "01/13/2026", ""},
		{date, OrderDMY, "00/01/2026", ""},
		{date, OrderDMY, "01/01/0000", ""},
		{date, OrderDMY, "01/01/26", ""},
		{date, OrderDMY, "29/02/2025", ""},
		{date, OrderDMY, "02/01/2026 10:00:00", ""},
		{ts, OrderDMY, "02/01/2026", ""},
		{ts, OrderDMY, "Sat 02 Jan 10:00:00 2026", ""}, // 2026-01-02 is a Friday
		{ts, OrderDMY, "Fri 02 Foo 10:00:00 2026", ""},
		{ts, OrderDMY, "02/01/2026 24:00:00", ""},
		{ts, OrderDMY, "02/01/2026 10:00:00 UTC", ""},
		{ts, OrderDMY, "02/01/2026 10:00:00.1234567", ""},
		{ts, OrderDMY, "01/01/294277 00:00:00", ""},
		{date, OrderDMY, "01/01/5874898", ""},
		{date, OrderDMY, "23/11/4714 BC", ""},
		{1184, OrderDMY, "02/01/2026 10:00:00 UTC", ""}, // timestamptz: the zone is an abbreviation
		{25, OrderDMY, "02/01/2026", ""},
	} {
		got, err := PrintedTenant(c.base, c.order, []byte(c.printed))
		if c.want == "" {
			if err == nil {
				t.Errorf("PrintedTenant(%d, %v, %q) = %q; want an error", c.base, c.order, c.printed, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("PrintedTenant(%d, %v, %q) = %q, %v; want %q", c.base, c.order, c.printed, got, err, c.want)
		}
	}
}

// TestReview20bPrintedTenantDistinct: two stored tenants whose printed
// forms swap day and month never read as one name: a row of tenant
// 2026-01-02 is not taken for tenant 2026-02-01 in either order.
func TestReview20bPrintedTenantDistinct(t *testing.T) {
	for _, c := range []struct {
		order   DateOrder
		printed string // 2026-01-02 as the session prints it
	}{
		{OrderDMY, "02/01/2026"}, {OrderMDY, "01/02/2026"},
		{OrderDMY, "02-01-2026"}, {OrderMDY, "01-02-2026"},
		{OrderDMY, "02.01.2026"}, {OrderMDY, "02.01.2026"},
	} {
		got, err := PrintedTenant(1082, c.order, []byte(c.printed))
		if err != nil || got != "2026-01-02" {
			t.Errorf("PrintedTenant(date, %v, %q) = %q, %v; want 2026-01-02", c.order, c.printed, got, err)
		}
	}
}

// TestReview20bDateStyleOrder: the order a DateStyle ParameterStatus says.
func TestReview20bDateStyleOrder(t *testing.T) {
	for in, want := range map[string]DateOrder{
		"ISO, MDY": OrderMDY, "ISO, DMY": OrderDMY, "SQL, DMY": OrderDMY, "SQL, YMD": OrderMDY,
		"Postgres, YMD": OrderMDY, "German, DMY": OrderDMY, "": OrderUnknown, "SQL": OrderUnknown, "SQL, XYZ": OrderUnknown,
	} {
		if got := DateStyleOrder(in); got != want {
			t.Errorf("DateStyleOrder(%q) = %v; want %v", in, got, want)
		}
	}
}
