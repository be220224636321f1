package canon

import "testing"

// TestReview19cDomainTenant: a value written to a key_context domain is
// named as PostgreSQL prints the stored value (psql -c "SELECT
// 'v'::domain" on PostgreSQL 15 gave each want).
func TestReview19cDomainTenant(t *testing.T) {
	num52 := int32(5<<16 | 2 + 4)
	ts1 := int32(1)
	for _, c := range []struct {
		base    uint32
		mod     int32
		in, out string
		rounded bool
	}{
		{1700, -1, "01.50", "1.50", false},
		{1700, -1, "1.5e1", "15", false},
		{1700, -1, "1.50e1", "15.0", false},
		{1700, -1, "-0.00", "0.00", false},
		{1700, -1, " nan ", "NaN", false},
		{1700, num52, "1.5", "1.50", false},
		{1700, num52, "7", "7.00", false},
		{1700, num52, "1.50000", "1.50", false},
		{1700, num52, "-0", "0.00", false},
		{1700, num52, "1.555", "", true},
		{16, -1, "yes", "t", false},
		{16, -1, " OFF ", "f", false},
		{1082, -1, "2026-1-2", "2026-01-02", false},
		{1114, -1, "2026-01-02 03:04:05.10", "2026-01-02 03:04:05.1", false},
		{1114, ts1, "2026-01-02 03:04:05.10", "2026-01-02 03:04:05.1", false},
		{1114, ts1, "2026-01-02 03:04:05.15", "", true},
		{1042, 5 + 4, "ab", "ab   ", false},
		{1042, 5 + 4, "abcde   ", "abcde", false},
		{1042, 3 + 4, "é", "é  ", false},
		{1042, -1, "ab ", "ab ", false},
		{25, -1, " x ", " x ", false},
	} {
		got, err := DomainTenant(c.base, c.mod, c.in)
		if c.rounded {
			if err != ErrRounded {
				t.Errorf("DomainTenant(%d, %d, %q) = %q, %v; want ErrRounded", c.base, c.mod, c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.out {
			t.Errorf("DomainTenant(%d, %d, %q) = %q, %v; want %q", c.base, c.mod, c.in, got, err, c.out)
		}
	}
}
