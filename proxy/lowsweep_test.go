package proxy

import (
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestLowSweepClosedInPipeline (review 17, LOW #2): a statement pgveil
// rewrote, closed by a Close message after the last Sync, is one a Bind
// can only find gone (26000) or skipped; after a Sync it may still exist
// (the server skipped the Close) and is bound as before. A DEALLOCATE
// (applyEffects, at Parse) is not such a Close: it acts when it runs.
func TestLowSweepClosedInPipeline(t *testing.T) {
	tr := newTracker()
	plan := &rewrite.Stmt{Kind: rewrite.KindSelect, Rewritten: true}
	st := &Statement{Name: "c", ServerName: "pgveil_x_1", Plan: plan}
	for _, name := range []string{"c", ""} {
		tr.defineStatement([]byte(name), st)
		tr.push(pending{kind: pendSync})
		tr.closeStatementMsg([]byte(name))
		tr.push(pending{kind: pendCloseStmt, defName: name, stmt: st})
		if !tr.closedInPipeline([]byte(name)) || tr.statement([]byte(name)) != st {
			t.Fatalf("%q: closed in this pipeline: not reported", name)
		}
		tr.push(pending{kind: pendSync})
		if tr.closedInPipeline([]byte(name)) {
			t.Fatalf("%q: closed before the last Sync: reported", name)
		}
	}
	tr.defineStatement([]byte("d"), st)
	tr.push(pending{kind: pendSync})
	tr.closeStatement([]byte("d")) // DEALLOCATE d, through the extended protocol
	tr.push(pending{kind: pendParse})
	if tr.closedInPipeline([]byte("d")) {
		t.Fatal("a DEALLOCATE not yet run: reported")
	}
	tr.defineStatement([]byte("e"), passthroughStmt)
	tr.closeStatementMsg([]byte("e"))
	tr.push(pending{kind: pendCloseStmt, defName: "e"})
	if tr.closedInPipeline([]byte("e")) {
		t.Fatal("a pass-through statement: reported")
	}
}
