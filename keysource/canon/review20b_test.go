package canon

import "testing"

// TestReview20bPrintedTenant: a date or timestamp key_context value as a
// session of each DateStyle prints it (psql on PostgreSQL 15 gave each
// printed form) names the tenant pgveil names by its ISO text.
func TestReview20bPrintedTenant(t *testing.T) {
	const date, ts = 1082, 1114
	for _, c := range []struct {
		base    uint32
		style   string // as ParameterStatus reports it; "": not known
		printed string
		want    string // "": refused
	}{
		{date, "ISO, MDY", "2026-01-02", "2026-01-02"},
		{date, "SQL, DMY", "2026-01-02", "2026-01-02"},
		{date, "SQL, DMY", "02/01/2026", "2026-01-02"},
		{date, "SQL, MDY", "01/02/2026", "2026-01-02"},
		{date, "SQL, YMD", "01/02/2026", "2026-01-02"},
		{date, "Postgres, DMY", "02-01-2026", "2026-01-02"},
		{date, "Postgres, MDY", "01-02-2026", "2026-01-02"},
		{date, "Postgres, YMD", "01-02-2026", "2026-01-02"},
		{date, "German, MDY", "02.01.2026", "2026-01-02"}, // German is always DMY
		{date, "", "02.01.2026", "2026-01-02"},
		{date, "SQL, DMY", "15/03/0044 BC", "0044-03-15 BC"},
		{date, "SQL, MDY", "03/15/0044 BC", "0044-03-15 BC"},
		{date, "German, DMY", "15.03.0044 BC", "0044-03-15 BC"},
		{date, "SQL, DMY", "01/01/10000", "10000-01-01"},
		{date, "Postgres, DMY", "01-01-10000", "10000-01-01"},
		{date, "SQL, DMY", "24/11/4714 BC", "4714-11-24 BC"},
		{date, "SQL, DMY", "31/12/5874897", "5874897-12-31"},
		{date, "SQL, DMY", "infinity", "infinity"},
		{date, "", "-infinity", "-infinity"},
		{ts, "SQL, DMY", "02/01/2026 10:00:00.5", "2026-01-02 10:00:00.5"},
		{ts, "SQL, MDY", "01/02/2026 10:00:00.5", "2026-01-02 10:00:00.5"},
		{ts, "SQL, DMY", "02/01/2026 00:00:00", "2026-01-02 00:00:00"},
		{ts, "Postgres, DMY", "Fri 02 Jan 10:00:00.5 2026", "2026-01-02 10:00:00.5"},
		{ts, "Postgres, MDY", "Fri Jan 02 10:00:00.5 2026", "2026-01-02 10:00:00.5"},
		{ts, "", "Fri Jan 02 10:00:00.5 2026", "2026-01-02 10:00:00.5"},
		{ts, "Postgres, DMY", "Fri 15 Mar 10:00:00 0044 BC", "0044-03-15 10:00:00 BC"},
		{ts, "SQL, MDY", "03/15/0044 10:00:00 BC", "0044-03-15 10:00:00 BC"},
		{ts, "Postgres, DMY", "Sat 01 Jan 01:02:03 10000", "10000-01-01 01:02:03"},
		{ts, "SQL, DMY", "01/01/10000 01:02:03.000001", "10000-01-01 01:02:03.000001"},
		{ts, "German, DMY", "02.01.2026 10:00:00.5", "2026-01-02 10:00:00.5"},
		{ts, "SQL, DMY", "31/12/294276 23:59:59.999999", "294276-12-31 23:59:59.999999"},
		{ts, "SQL, DMY", "-infinity", "-infinity"},
		{ts, "SQL, DMY", "2026-01-02 10:00:00.5", "2026-01-02 10:00:00.5"},
		// The order decides: one not known, or reported for another
		// style than the one that printed the value, is not taken.
		{date, "", "02/01/2026", ""},
		{date, "", "02-01-2026", ""},
		{date, "ISO, DMY", "02/01/2026", ""},
		{date, "Postgres, DMY", "02/01/2026", ""},
		{date, "SQL, DMY", "02-01-2026", ""},
		{ts, "German, DMY", "02/01/2026 10:00:00", ""},
		{date, "", "01/01/2026", "2026-01-01"},
		{date, "", "13/01/2026", "2026-01-13"},
		{date, "ISO, MDY", "13/01/2026", "2026-01-13"},
		{date, "", "01/13/2026", "2026-01-13"},
		// Not what PostgreSQL prints.
		{date, "SQL, DMY", "13/13/2026", ""},
		{date, "SQL, MDY", "13/01/2026", ""},
		{date, "SQL, DMY", "01/13/2026", ""},
		{date, "SQL, DMY", "00/01/2026", ""},
		{date, "SQL, DMY", "01/01/0000", ""},
		{date, "SQL, DMY", "01/01/26", ""},
		{date, "SQL, DMY", "29/02/2025", ""},
		{date, "SQL, DMY", "02/01/2026 10:00:00", ""},
		{date, "SQL, DMY", "02/01/2026 AD", ""},
		{ts, "SQL, DMY", "02/01/2026", ""},
		{ts, "Postgres, DMY", "Sat 02 Jan 10:00:00 2026", ""}, // 2026-01-02 is a Friday
		{ts, "Postgres, DMY", "Fri 02 Foo 10:00:00 2026", ""},
		{ts, "Postgres, DMY", "02-01-2026 10:00:00", ""},
		{ts, "SQL, DMY", "02/01/2026 24:00:00", ""},
		{ts, "SQL, DMY", "02/01/2026 10:00:00 UTC", ""},
		{ts, "SQL, DMY", "02/01/2026 10:00:00.1234567", ""},
		{ts, "SQL, DMY", "02/01/2026 10:00:00.50", ""},
		{ts, "SQL, DMY", "01/01/294277 00:00:00", ""},
		{date, "SQL, DMY", "01/01/5874898", ""},
		{date, "SQL, DMY", "23/11/4714 BC", ""},
		{1184, "SQL, DMY", "02/01/2026 10:00:00 UTC", ""}, // timestamptz: the zone is an abbreviation
		{1184, "ISO, DMY", "2026-01-02 10:00:00+00", ""},
		{25, "SQL, DMY", "02/01/2026", ""},
	} {
		got, err := PrintedTenant(c.base, ParseDateStyle(c.style), []byte(c.printed))
		if c.want == "" {
			if err == nil {
				t.Errorf("PrintedTenant(%d, %q, %q) = %q; want an error", c.base, c.style, c.printed, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("PrintedTenant(%d, %q, %q) = %q, %v; want %q", c.base, c.style, c.printed, got, err, c.want)
		}
	}
}

// TestReview20bPrintedTenantDistinct: two stored tenants whose printed
// forms swap day and month never read as one name: a row of tenant
// 2026-01-02 is read as 2026-01-02 (not the key's 2026-02-01) in each
// style and order, and 2026-02-01 as 2026-02-01.
func TestReview20bPrintedTenantDistinct(t *testing.T) {
	for _, c := range []struct {
		style      string
		jan2, feb1 string
	}{
		{"SQL, DMY", "02/01/2026", "01/02/2026"}, {"SQL, MDY", "01/02/2026", "02/01/2026"},
		{"Postgres, DMY", "02-01-2026", "01-02-2026"}, {"Postgres, MDY", "01-02-2026", "02-01-2026"},
		{"German, DMY", "02.01.2026", "01.02.2026"}, {"German, MDY", "02.01.2026", "01.02.2026"},
	} {
		for printed, want := range map[string]string{c.jan2: "2026-01-02", c.feb1: "2026-02-01"} {
			got, err := PrintedTenant(1082, ParseDateStyle(c.style), []byte(printed))
			if err != nil || got != want {
				t.Errorf("PrintedTenant(date, %q, %q) = %q, %v; want %s", c.style, printed, got, err, want)
			}
		}
	}
}

// TestReview20bParseDateStyle: the style and order a DateStyle
// ParameterStatus says.
func TestReview20bParseDateStyle(t *testing.T) {
	for in, want := range map[string]DateStyle{
		"ISO, MDY": StyleISO | DateStyle(OrderMDY)<<4, "ISO, DMY": StyleISO | DateStyle(OrderDMY)<<4,
		"SQL, DMY": StyleSQL | DateStyle(OrderDMY)<<4, "SQL, YMD": StyleSQL | DateStyle(OrderMDY)<<4,
		"Postgres, YMD": StylePostgres | DateStyle(OrderMDY)<<4, "German, DMY": StyleGerman | DateStyle(OrderDMY)<<4,
		"": 0, "SQL": 0, "SQL, XYZ": 0, "Foo, DMY": 0,
	} {
		if got := ParseDateStyle(in); got != want {
			t.Errorf("ParseDateStyle(%q) = %v; want %v", in, got, want)
		}
	}
}

// FuzzReview20bPrintedTenant: PrintedTenant never panics, and a name it
// gives is an ISO tenant name (TenantText of it is itself), printed back
// by PostgreSQL's rules in the style it was read in.
func FuzzReview20bPrintedTenant(f *testing.F) {
	for _, s := range []string{"02/01/2026", "02-01-2026", "02.01.2026 10:00:00.5", "Fri 02 Jan 10:00:00.5 2026 BC",
		"Fri Jan 02 10:00:00.5 2026", "2026-01-02", "infinity", "01/01/10000 01:02:03.000001", "31/12/5874897", "Sat 01 Jan 01:02:03 10000"} {
		for _, st := range []uint8{0, 0x21, 0x22, 0x13, 0x14, 0x11} {
			f.Add(true, st, []byte(s))
			f.Add(false, st, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, date bool, style uint8, in []byte) {
		base := uint32(1114)
		if date {
			base = 1082
		}
		name, err := PrintedTenant(base, DateStyle(style), in)
		if err != nil {
			return
		}
		again, err := TenantText(base, TextFormat, []byte(name))
		if err != nil || again != name {
			t.Fatalf("PrintedTenant(%d, %#x, %q) = %q, not an ISO name (%q, %v)", base, style, in, name, again, err)
		}
	})
}
