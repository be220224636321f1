package canon

import (
	"testing"

	"github.com/pgveil/pgveil/policy"
)

// TestReview20dTimestampOverflow: a timestamp whose date is in date's
// range but far past timestamp's is refused, not wrapped around int64 to
// another timestamp (5874897-12-31 named 29357-07-04 15:41:44.48384).
func TestReview20dTimestampOverflow(t *testing.T) {
	for _, in := range []string{"5874897-12-31", "5874897-12-31 10:00", "1000000-01-01", "4000000-01-01 BC"} {
		if got, err := TenantParam(policy.TypeTimestamp.OID(), policy.OIDText, TextFormat, []byte(in)); err == nil {
			t.Errorf("timestamp %q: named %q, want refused", in, got)
		}
		if got, err := Plaintext(policy.TypeTimestamptz, TextFormat, 0, []byte(in+"+00"), nil); err == nil {
			t.Errorf("timestamptz %q: %q, want refused", in, got)
		}
	}
	if got, err := TenantParam(policy.TypeTimestamp.OID(), policy.OIDText, TextFormat, []byte("294276-12-31 23:59:59.999999")); err != nil || got != "294276-12-31 23:59:59.999999" {
		t.Errorf("the last timestamp: %q %v", got, err)
	}
}
