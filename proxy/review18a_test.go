package proxy

import (
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestReview18aTrackerReprepare (review 18a): the tracker's side of a
// re-prepare. A quiet Parse pgveil sends again at rest (suppressed) that
// fails is kept for another try like an injected one; a skipped Parse is
// found again by its upstream name (a Bind may hold a copy of the
// statement); a ghost stays a ghost when prepared anew, and the server's
// confirmation of the close forgets it.
func TestReview18aTrackerReprepare(t *testing.T) {
	tr := newTracker()
	plan := &rewrite.Stmt{Kind: rewrite.KindSelect, Rewritten: true}
	old := &Statement{Name: "rp", ServerName: "pgveil_x_1", Plan: plan}
	ns := &Statement{Name: "rp", ServerName: "pgveil_x_2", Plan: plan}
	for _, p := range []pending{{kind: pendParse, suppress: true, stmt: ns}, {kind: pendParse, injected: true, stmt: ns}} {
		tr.push(p)
		tr.push(pending{kind: pendSync})
		tr.onBackend('E', nil)
		tr.onBackend('Z', []byte{'I'})
		cp := *ns
		if got := tr.takeFailedReprepare(&cp); got != ns {
			t.Fatalf("failed Parse (suppress %v): not kept, or not found by name: %v", p.suppress, got)
		}
		if tr.takeFailedReprepare(ns) != nil || tr.failedReprepares.pending() {
			t.Fatal("taken twice")
		}
	}
	// An injected error's own Parse (no statement) is not one.
	tr.push(pending{kind: pendParse, suppress: true})
	tr.push(pending{kind: pendSync})
	tr.onBackend('E', nil)
	tr.onBackend('Z', []byte{'I'})
	if tr.failedReprepares.pending() {
		t.Fatal("a refusal's Parse kept as a re-prepare")
	}

	tr.defineStatement([]byte("rp"), old)
	if tr.ghostOf("rp", old) {
		t.Fatal("a statement in the view taken for a ghost")
	}
	tr.closeStatementMsg([]byte("rp"))
	tr.push(pending{kind: pendCloseStmt, defName: "rp", stmt: old})
	if !tr.ghostOf("rp", old) || tr.ghostOf("rp", ns) {
		t.Fatal("ghost not reported")
	}
	tr.reghost("rp", ns)
	if tr.statement([]byte("rp")) != ns || tr.hasStatement([]byte("rp")) {
		t.Fatal("prepared anew: not the ghost's statement, or back in the view")
	}
	tr.onBackend('3', nil) // the server's CloseComplete
	if tr.statement([]byte("rp")) != passthroughStmt {
		t.Fatal("confirmed closed: ghost kept")
	}
}
