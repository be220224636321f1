package proxy

import "testing"

// TestReview17bLookupAfterQueuedSync: an error in one pipeline makes the
// server skip up to its Sync; a tenant lookup the client side sends for
// the next pipeline, pipelined behind that Sync before its
// ReadyForQuery came back, is answered and must be sent. Before the fix
// pushUnlessSkipping refused it (the server "skipping"), and the client's
// UPDATE was dropped: only a ReadyForQuery answered its pipeline.
func TestReview17bLookupAfterQueuedSync(t *testing.T) {
	tr := newTracker()
	run(t, tr, []step{
		push(pendParse), push(pendBind), push(pendExecute), push(pendSync),
		srv('1', "Parse done"), srv('2', "Bind done"), srv('E', "Execute"),
	})
	// The next pipeline's lookup: behind the queued Sync, it is answered.
	if !tr.pushUnlessSkipping(pending{kind: pendBind, suppress: true, lookup: true}, pending{kind: pendExecute, lookup: true}) {
		t.Fatalf("a lookup behind a queued Sync was taken for skipped (queue %s)", queueString(tr))
	}
	run(t, tr, []step{rfq("I", "Sync done"), srv('2', "Bind done"), srv('C', "Execute done")})

	// Without a Sync queued, the server skips it: nothing is recorded.
	tr = newTracker()
	run(t, tr, []step{push(pendParse), push(pendBind), push(pendExecute), srv('1', "Parse done"), srv('2', "Bind done"), srv('E', "Execute")})
	if tr.pushUnlessSkipping(pending{kind: pendExecute, lookup: true}) {
		t.Fatalf("a lookup the server skips was recorded (queue %s)", queueString(tr))
	}
}
