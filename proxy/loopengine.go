package proxy

import (
	"context"
	"errors"

	"github.com/pgveil/pgveil/keysource"
)

// Sessions with encryption on an event loop.
//
// A session of a config with tables relays on an event loop like any
// plain-TCP session, and the loop runs the same handlers as the goroutine
// relay on its messages (handleQuery, handleExtended, decodeBackend): the
// planner, the cached keys, sealing and opening are CPU work. What would
// wait on the network is never done on the loop:
//
//   - a key that is not cached (keysource.WithoutWaiting) and a catalog
//     reload (after DDL the session sent, to settle it, or for a relation
//     the snapshot lacks): the handler returns a loopWait; the loop parks
//     that side of the session at the message, does the waiting work on
//     another goroutine (Warm), and runs the message again when it is
//     done; the other side and every other session go on meanwhile;
//   - the search_path question (searchpath.go) goes out as on the
//     goroutine relay, but instead of waiting for the answer the handler
//     returns errPathAsked; the loop sets the client side aside at that
//     message and runs it again when the server side has taken the answer
//     (pathAnswered);
//   - COPY of a configured table (its data and its responses, copy.go):
//     the loop hands the session to its goroutine at a message boundary
//     (the client side before CopyData, the server side before a
//     CopyInResponse or CopyOutResponse; handBack, resumeOnGoroutines),
//     which passes on the rest of any message the loop had begun to stream
//     either way and relays the session until both sides are at rest
//     again, then gives it back to the loop (loopreturn.go). So does a
//     message that had to wait for one thing more than maxWaits times.
//
// A handler that returns a loopWait has written nothing and changed
// nothing in the session's view but idempotent records (effects of a name
// it will note again), so that its second run, on the loop or on the
// goroutine, starts from the same state; what the wait found out reaches
// the second run through the session (warmErrs, catalogWait.done). One
// that returns errPathAsked has written the question and recorded it in
// the tracker, and nothing else.

// loopWait is a wait that a handler met on the loop and the loop does off
// it: a key load (*keysource.WaitError) or a catalog reload
// (*catalogWait). Key names what is waited for.
type loopWait interface {
	error
	Key() string
	Warm(ctx context.Context) error
}

// catalogWait is a catalog reload a handler needs before it goes on.
type catalogWait struct {
	what string
	run  func(ctx context.Context) error
	// done records the outcome in the session, on the loop, before the
	// message runs again.
	done func(err error)
}

func (w *catalogWait) Error() string                  { return "pgveil: the message waits for " + w.what }
func (w *catalogWait) Key() string                    { return w.what }
func (w *catalogWait) Warm(ctx context.Context) error { return w.run(ctx) }

// asLoopWait reports whether err is a loopWait, and returns it.
func asLoopWait(err error) (loopWait, bool) {
	if we, ok := keysource.AsWait(err); ok {
		return we, true
	}
	var cw *catalogWait
	if errors.As(err, &cw) {
		return cw, true
	}
	return nil, false
}

// errPathAsked: the search_path question went out; run the message again
// with the answer.
var errPathAsked = errors.New("pgveil: the message waits for the search_path")

// offLoop reports an error that only says the message must wait: run
// again after a key or the catalog is loaded or the path is read.
func offLoop(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errPathAsked) || errors.Is(err, errLookupAsked) || errors.Is(err, errHandBack) {
		return true
	}
	_, ok := asLoopWait(err)
	return ok
}

// keyErr is a key lookup's error as the handler should see it: after the
// loop waited for that key off the loop and the load failed (warmErrs),
// the failure itself, so the message fails as it would on the goroutine
// relay.
func (s *session) keyErr(err error) error {
	if we, ok := keysource.AsWait(err); ok {
		if werr, ok := s.warmErrs[we.Key()]; ok {
			return werr
		}
	}
	return err
}
