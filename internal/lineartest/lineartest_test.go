package lineartest

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Errorf.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }

// TestCheck: a quadratic cost fails, a linear one passes.
func TestCheck(t *testing.T) {
	quadratic := func(n int) {
		s := ""
		for i := 0; i < n; i++ {
			s += "x" // copies the string each time
		}
		_ = s
	}
	linear := func(n int) {
		var b strings.Builder
		for i := 0; i < 64*n; i++ {
			fmt.Fprint(&b, "x")
		}
	}
	r := &recorder{TB: t}
	Check(r, "quadratic", 20000, quadratic)
	if !r.failed {
		t.Error("a quadratic cost passed")
	}
	r = &recorder{TB: t}
	Check(r, "linear", 20000, linear)
	if r.failed {
		t.Error("a linear cost failed")
	}
}
