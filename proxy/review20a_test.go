package proxy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
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
		s.t.failedPts.addLocked(failedDef{"x", seq})
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
	// Every Parse of a name failed, more than maxEarlier of them in
	// flight, the newest first refused: no record; a failure of a Parse
	// before them (its seq outside the ones counted) counts for none.
	zs := []uint64{parse2(s, "z", "SELECT 0")}
	for i := 1; i <= 2*maxEarlier; i++ {
		zs = append(zs, parse2(s, "z", fmt.Sprint("SELECT ", i)))
	}
	s.t.mu.Lock()
	s.t.failedPts.addLocked(failedDef{"z", 1})
	for i := len(zs) - 1; i >= 0; i-- {
		s.t.failedPts.addLocked(failedDef{"z", zs[i]})
		if i == maxEarlier+1 {
			s.t.mu.Unlock()
			s.applyClosed()
			if pt := s.ptStmts["z"]; pt.over == 0 || !slices.Contains(pt.earlier, sentinelText) && pt.sql != sentinelText {
				t.Fatalf("half the failures in: %q %q (over %d)", pt.sql, pt.earlier, pt.over)
			}
			s.t.mu.Lock()
		}
	}
	s.t.mu.Unlock()
	s.applyClosed()
	if pt, ok := s.ptStmts["z"]; ok {
		t.Fatalf("every Parse failed: %q %q (over %d)", pt.sql, pt.earlier, pt.over)
	}
	// The only Parse of a name failed: no record.
	s.notePassthrough([]byte("y"), "SELECT 1", 1)
	s.t.parsed([]byte("y"), passthroughStmt)
	s.t.mu.Lock()
	s.t.failedPts.addLocked(failedDef{"y", s.t.seq})
	s.t.mu.Unlock()
	s.applyClosed()
	if _, ok := s.ptStmts["y"]; ok {
		t.Fatal("a record of a statement whose only Parse failed")
	}
}

// TestReview20aTableStateKeys: table state rows are keyed by the
// configured table's schema.name, unquoted (Table.QualifiedName). Two
// tables could share a row only if a schema or a name held a dot
// ("a.b".c and a."b.c" are both a.b.c): the policy refuses such names,
// so no configured table's key is another's (review 20a, defect 7:
// nothing to change, and rows already stored keep their keys).
func TestReview20aTableStateKeys(t *testing.T) {
	base := "listen: 127.0.0.1:0\nupstream:\n  address: 127.0.0.1:1\n  tls: disable\n  service_url: postgres://x@127.0.0.1:1/x\nadmin:\n  listen: \"\"\nkeysource:\n  local:\n    key_env: PGVEIL_R20A_KEY\n"
	for _, key := range []string{`a.b.c`, `"a.b".c`, `a."b.c"`, `.c`, `a.`} {
		yaml := base + "tables:\n  '" + key + "':\n    columns:\n      x: {type: text}\n"
		if _, err := policy.LoadBytes("t.yaml", []byte(yaml), nil); err == nil || !strings.Contains(err.Error(), "schema.table") {
			t.Errorf("table %s: %v, want it refused", key, err)
		}
	}
	yaml := base + "tables:\n  a.b:\n    columns:\n      x: {type: text}\n  c:\n    columns:\n      x: {type: text}\n"
	cfg, err := policy.LoadBytes("t.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tb := range cfg.Tables {
		got = append(got, tb.QualifiedName())
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"a.b", "public.c"}) {
		t.Errorf("keys %q", got)
	}
}

// parse2 records a pass-through Parse of name with text sql and returns
// its seq.
func parse2(s *session, name, sql string) uint64 {
	s.notePassthrough([]byte(name), sql, 1)
	s.t.parsed([]byte(name), passthroughStmt)
	return s.t.lastSeq()
}

// TestReview20aFailedPreparesLeaveRecord: SQL PREPAREs of one name with
// other texts, more than maxEarlier of them, each refused: once their
// failures are in, the record holds the first text only; a text sent
// twice stays while one of its PREPAREs may have run.
func TestReview20aFailedPreparesLeaveRecord(t *testing.T) {
	s := &session{t: newTracker()}
	prep := func(i int) *rewrite.Stmt {
		return &rewrite.Stmt{Prepares: "x", Original: fmt.Sprint("PREPARE x AS SELECT ", i)}
	}
	fail := func(st *rewrite.Stmt) {
		s.t.mu.Lock()
		s.t.preparesFailedLocked(&queryState{plan: &rewrite.Plan{Stmts: []*rewrite.Stmt{st}}}, 0)
		s.t.mu.Unlock()
	}
	s.noteSQLPrepare(prep(0))
	for i := 1; i <= 3*maxEarlier; i++ {
		s.noteSQLPrepare(prep(i))
	}
	if pr := s.sqlPrepared["x"]; len(pr.sqls) != maxEarlier+2 || pr.sqls[len(pr.sqls)-1] != sentinelText || !slices.Contains(pr.sqls, prep(0).Original) {
		t.Fatalf("in flight: %q (over %d)", pr.sqls, pr.over)
	}
	for i := 1; i <= 3*maxEarlier; i++ {
		fail(prep(i))
	}
	s.applyClosed()
	if pr := s.sqlPrepared["x"]; !slices.Equal(pr.sqls, []string{prep(0).Original}) || pr.over != 0 {
		t.Fatalf("after the failures: %q (over %d)", pr.sqls, pr.over)
	}
	s.noteSQLPrepare(prep(0))
	fail(prep(0))
	s.applyClosed()
	if pr := s.sqlPrepared["x"]; !slices.Equal(pr.sqls, []string{prep(0).Original}) {
		t.Fatalf("sent twice: %q", pr.sqls)
	}
	fail(prep(0))
	s.applyClosed()
	if _, ok := s.sqlPrepared["x"]; ok {
		t.Fatal("a record of a name whose every PREPARE failed")
	}
}
