package canon

import (
	"errors"
	"testing"

	"github.com/pgveil/pgveil/policy"
)

// TestLowSweepBinaryLength (review 17, LOW #1): a binary value of the
// wrong length fails as PostgreSQL's receive function fails: 08P01 when
// it runs out of data, 22P03 when data is left over.
func TestLowSweepBinaryLength(t *testing.T) {
	cases := []struct {
		t        policy.LogicalType
		declared uint32
		n        int
		code     string
		msg      string
	}{
		{policy.TypeInt2, 0, 1, CodeShortBinary, "insufficient data left in message"},
		{policy.TypeInt4, 0, 5, CodeLongBinary, "incorrect binary data format"},
		{policy.TypeInt8, 0, 0, CodeShortBinary, "insufficient data left in message"},
		{policy.TypeDate, 0, 3, CodeShortBinary, "insufficient data left in message"},
		{policy.TypeTimestamp, 0, 9, CodeLongBinary, "incorrect binary data format"},
		{policy.TypeTimestamptz, 0, 7, CodeShortBinary, "insufficient data left in message"},
		{policy.TypeBool, 0, 0, CodeShortBinary, "no data left in message"},
		{policy.TypeBool, 0, 2, CodeLongBinary, "incorrect binary data format"},
		{policy.TypeUUID, 0, 15, CodeShortBinary, "insufficient data left in message"},
		{policy.TypeUUID, 0, 17, CodeLongBinary, "incorrect binary data format"},
		{policy.TypeInt8, 23, 3, CodeShortBinary, "insufficient data left in message"},
		{policy.TypeNumeric, 701, 4, CodeShortBinary, "insufficient data left in message"},
		{policy.TypeNumeric, 700, 8, CodeLongBinary, "incorrect binary data format"},
	}
	for _, c := range cases {
		_, err := Plaintext(c.t, BinaryFormat, c.declared, make([]byte, c.n), nil)
		var ce *Error
		if !errors.As(err, &ce) || ce.SQLState() != c.code || ce.Msg != c.msg {
			t.Errorf("%s (declared %d), %d bytes: %v", c.t, c.declared, c.n, err)
		}
	}
}
