package proxy

import (
	"fmt"
	"slices"
	"testing"
)

// TestReview20aFailedParsesLeaveRecord: Parses of one named pass-through
// statement with other texts, more than maxEarlier of them in flight,
// each refused by the server: once their failures are in, the record
// holds the first text only (review 19b's NUL sentinel stayed for good).
func TestReview20aFailedParsesLeaveRecord(t *testing.T) {
	s := &session{t: newTracker()}
	name := []byte("x")
	parse := func(sql string) uint64 {
		s.notePassthrough(name, sql, 1)
		s.t.parsed(name, passthroughStmt)
		return s.t.lastSeq()
	}
	fail := func(seq uint64) {
		s.t.mu.Lock()
		s.t.failedPts = append(s.t.failedPts, failedDef{"x", seq})
		s.t.failedPtN.Add(1)
		s.t.mu.Unlock()
	}
	parse("SELECT 0")
	var seqs []uint64
	for i := 1; i <= 3*maxEarlier; i++ {
		seqs = append(seqs, parse(fmt.Sprint("SELECT ", i)))
	}
	if pt := s.ptStmts["x"]; len(pt.earlier) != maxEarlier+1 || pt.earlier[maxEarlier] != sentinelText || !slices.Contains(pt.earlier, "SELECT 0") {
		t.Fatalf("in flight: %q (over %d)", pt.earlier, pt.over)
	}
	for _, seq := range seqs {
		fail(seq)
	}
	s.applyClosed()
	if pt := s.ptStmts["x"]; pt.sql != "SELECT 0" || len(pt.earlier) != 0 || pt.over != 0 {
		t.Fatalf("after the failures: %q %q (over %d)", pt.sql, pt.earlier, pt.over)
	}
	// A text sent twice stays while one of its Parses may have run.
	a := parse("SELECT 0")
	fail(a)
	s.applyClosed()
	if pt := s.ptStmts["x"]; pt.sql != "SELECT 0" || len(pt.earlier) != 0 {
		t.Fatalf("sent twice: %q %q", pt.sql, pt.earlier)
	}
	// The only Parse of a name failed: no record.
	s.notePassthrough([]byte("y"), "SELECT 1", 1)
	s.t.parsed([]byte("y"), passthroughStmt)
	s.t.mu.Lock()
	s.t.failedPts = append(s.t.failedPts, failedDef{"y", s.t.seq})
	s.t.failedPtN.Add(1)
	s.t.mu.Unlock()
	s.applyClosed()
	if _, ok := s.ptStmts["y"]; ok {
		t.Fatal("a record of a statement whose only Parse failed")
	}
}
