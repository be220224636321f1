package proxy

import (
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
//   - a key that is not cached (keysource.WithoutWaiting): the loop parks
//     that side of the session at the message, loads the key on another
//     goroutine (WaitError.Warm), and runs the message again when it is
//     cached; the other side and every other session go on meanwhile;
//   - the search_path question (searchpath.go) goes out as on the
//     goroutine relay, but instead of waiting for the answer the handler
//     returns errPathAsked; the loop sets the client side aside at that
//     message and runs it again when the server side has taken the answer
//     (pathAnswered);
//   - a catalog reload after DDL or for a relation the snapshot lacks, and
//     COPY of a configured table (its data and its responses, copy.go):
//     the handler returns errOffLoop before it changed anything (the
//     server side stops before a CopyInResponse or CopyOutResponse), and
//     the loop hands the session to its goroutine at that message's
//     boundary (handBack, resumeOnGoroutines), which passes on the rest of
//     any message the loop had begun to stream either way and relays the
//     session from there on.
//
// A handler that returns errOffLoop or a *keysource.WaitError has written
// nothing and changed nothing in the session's view but idempotent
// records (effects of a name it will note again), so that its second run,
// on the loop or on the goroutine, starts from the same state. One that
// returns errPathAsked has written the question and recorded it in the
// tracker, and nothing else.

// errOffLoop: the message needs the goroutine relay (see above).
var errOffLoop = errors.New("pgveil: the message needs the goroutine relay")

// errPathAsked: the search_path question went out; run the message again
// with the answer.
var errPathAsked = errors.New("pgveil: the message waits for the search_path")

// offLoop reports an error that only says the message must wait: run
// again after a key is loaded or the path is read, or on the goroutine
// relay.
func offLoop(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errOffLoop) || errors.Is(err, errPathAsked) {
		return true
	}
	_, ok := keysource.AsWait(err)
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
