package proxy

import (
	"fmt"
	"testing"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// TestReview21iLaterPortalsBounded: a pooler session binding thousands
// of distinct portal names, each in a transaction that ended, keeps at
// most maxIdlePortals records (21g kept one per name, never dropped).
func TestReview21iLaterPortalsBounded(t *testing.T) {
	for _, sql := range []string{"EXECUTE sp", "SELECT f($1)"} {
		s := &session{eng: &engine{planner: rewrite.NewPlanner(&policy.Config{}, 16)}, t: newTracker()}
		s.ptStmts = map[string]ptStmt{"s": {sql: sql, atExecute: runsAtExecute(sql)}}
		for i := 0; i < 5000; i++ {
			s.noteLaterPortal([]byte(fmt.Sprintf("p%d", i)), []byte("s"), passthroughStmt)
			s.t.mu.Lock()
			s.t.idleSeq = s.t.seq + 1 // a ReadyForQuery 'I' answered its Sync
			s.t.mu.Unlock()
		}
		if n := len(s.laterPortals); n > maxIdlePortals {
			t.Errorf("%s: %d portal records kept", sql, n)
		}
	}
}

// TestReview21iLeadingDo: empty statements before DO make a DO block.
func TestReview21iLeadingDo(t *testing.T) {
	for sql, want := range map[string]bool{
		";DO $$BEGIN END$$":               true,
		" ; /* c */ ;\n do $$BEGIN END$$": true,
		";done":                           false,
		"SELECT 1; DO":                    false,
	} {
		if got := runsAtExecute(sql); got != want {
			t.Errorf("runsAtExecute(%q) = %v, want %v", sql, got, want)
		}
	}
}

// TestReview21iPortalNotesBounded: a session binding distinct portal
// names to a statement with effects, idle between, keeps few notes.
func TestReview21iPortalNotesBounded(t *testing.T) {
	s := &session{t: newTracker()}
	s.t.txStatus = 'I'
	s.effStmts = map[string]uint8{"s": effPath}
	for i := 0; i < 5000; i++ {
		s.notePortalEffects([]byte(fmt.Sprintf("p%d", i)), []byte("s"))
	}
	if n := len(s.effPortals); n > maxIdlePortals {
		t.Errorf("%d portal notes kept", n)
	}
}

// TestReview21iBindAllocs: a Bind of the unnamed portal of a
// pass-through statement again records it without allocating.
func TestReview21iBindAllocs(t *testing.T) {
	s := &session{eng: &engine{planner: rewrite.NewPlanner(&policy.Config{}, 16)}, t: newTracker()}
	s.ptStmts = map[string]ptStmt{"": {sql: "SELECT $1"}}
	s.noteLaterPortal(nil, nil, passthroughStmt)
	if n := testing.AllocsPerRun(100, func() { s.noteLaterPortal(nil, nil, passthroughStmt) }); n != 0 {
		t.Errorf("%v allocations per Bind", n)
	}
}
