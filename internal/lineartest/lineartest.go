// Package lineartest checks in tests that a cost grows no faster than
// linearly, by ratios of timings taken in the same run: they hold on a
// loaded machine (the CI machine shares its two cores with PostgreSQL and
// the suite), where a fixed time limit does not.
package lineartest

import (
	"testing"
	"time"
)

// Check fails t when run(n) grows faster than linearly: the fastest of
// three runs at 4n against the fastest of three at n. A linear cost gives
// about 4×, a quadratic one 16×; the bound is 10×. Runs under 20 ms at 4n
// pass: too short to tell. A comparison over the bound is taken again,
// up to three times in all, and fails only if each is: a burst of load
// on the shared machine during the runs at 4n made one linear cost read
// as worse (review 21d saw it once), while a quadratic one is over the
// bound every time.
func Check(t testing.TB, what string, n int, run func(n int)) {
	t.Helper()
	fastest := func(n int) time.Duration {
		best := time.Duration(1<<63 - 1)
		for i := 0; i < 3; i++ {
			st := time.Now()
			run(n)
			best = min(best, time.Since(st))
		}
		return best
	}
	var small, big time.Duration
	for attempt := 0; attempt < 3; attempt++ {
		small, big = fastest(n), fastest(4*n)
		if big <= 20*time.Millisecond || big <= 10*small {
			return
		}
	}
	t.Errorf("%s: %v at %d, %v at 4× that: worse than linear", what, small, n, big)
}
