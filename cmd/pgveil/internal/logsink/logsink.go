// Package logsink is the process log's writer: it never makes the writer
// of a log line wait for stderr.
//
// pgveil logs from its event loops, where one OS thread relays many
// sessions. A write to stderr that blocks (a full pipe: a container log
// driver or a journald that is behind, a terminal paused with Ctrl-S)
// would stall every session on that loop, and every goroutine that logs.
// A Sink takes each line into a bounded buffer and returns; one goroutine
// writes the buffer out. When the buffer is full, lines are dropped and
// counted (Dropped, pgveil_log_lines_dropped_total), and the count is
// reported by a line of its own once stderr drains.
package logsink

import (
	"io"
	"sync"
	"time"
)

// DefaultLimit is the buffer's size: about four thousand lines of a
// session's log.
const DefaultLimit = 1 << 20

// Sink is a zapcore.WriteSyncer. Create it with New; Close it at exit.
type Sink struct {
	w     io.Writer
	limit int

	mu      sync.Mutex
	pending []byte // written by callers, not yet by the writer
	spare   []byte // the writer's last buffer, for reuse
	wake    chan struct{}
	queued  uint64 // bytes ever queued
	written uint64 // bytes ever written out (or failed)
	flushed *sync.Cond
	dropped uint64 // lines dropped, ever
	told    uint64 // of those, reported by OnDrop
	closed  bool
	done    chan struct{}
	onDrop  func(n uint64)
}

// New returns a Sink writing to w that queues at most limit bytes
// (DefaultLimit when limit <= 0), besides the buffer being written out:
// memory stays under about twice limit.
func New(w io.Writer, limit int) *Sink {
	if limit <= 0 {
		limit = DefaultLimit
	}
	s := &Sink{w: w, limit: limit, wake: make(chan struct{}, 1), done: make(chan struct{})}
	s.flushed = sync.NewCond(&s.mu)
	go s.run()
	return s
}

// Write queues p, one whole log line as zap writes it, and never waits
// for w. A line that does not fit is dropped and counted. The result is
// always len(p), nil: a logger has nowhere to report its own failure.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	if s.closed || len(s.pending)+len(p) > s.limit {
		s.dropped++
		s.mu.Unlock()
		return len(p), nil
	}
	s.pending = append(s.pending, p...)
	s.queued += uint64(len(p))
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// OnDrop sets f to be called on the writer's goroutine with the number of
// lines dropped since its last call, once the lines queued before them
// are out. pgveil logs a warning from it.
func (s *Sink) OnDrop(f func(n uint64)) {
	s.mu.Lock()
	s.onDrop = f
	s.mu.Unlock()
}

// Dropped is the number of lines dropped so far.
func (s *Sink) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Sync waits until what was queued before it is written out, or timeout
// passes; it reports nothing else, since w's own Sync is not for us to
// call from a logging caller (zap calls Sync on Fatal and at exit).
func (s *Sink) Sync() error {
	s.flush(5 * time.Second)
	return nil
}

// flush waits up to timeout for the writer to catch up with what is
// queued now.
func (s *Sink) flush(timeout time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	target := s.queued
	if s.written >= target {
		return true
	}
	expired := false
	t := time.AfterFunc(timeout, func() {
		s.mu.Lock()
		expired = true
		s.mu.Unlock()
		s.flushed.Broadcast()
	})
	defer t.Stop()
	for s.written < target && !expired && !s.closed {
		s.flushed.Wait()
	}
	return s.written >= target
}

// Close writes out what is queued (waiting up to timeout for w), then
// stops the writer; later lines are dropped. It reports whether
// everything queued was written.
func (s *Sink) Close(timeout time.Duration) bool {
	ok := s.flush(timeout)
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.mu.Unlock()
	s.flushed.Broadcast()
	return ok
}

func (s *Sink) run() {
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		for {
			s.mu.Lock()
			buf := s.pending
			var n uint64
			onDrop := s.onDrop
			if len(buf) > 0 {
				s.pending, s.spare = s.spare[:0], nil
			} else {
				// Report drops only once what was queued is out, so the
				// report follows the lines before the gap.
				n, s.told = s.dropped-s.told, s.dropped
			}
			s.mu.Unlock()
			if len(buf) == 0 {
				if n > 0 && onDrop != nil {
					onDrop(n) // queues a line: round once more
					continue
				}
				break
			}
			s.w.Write(buf) // an error is dropped: there is nowhere to report it
			s.mu.Lock()
			s.written += uint64(len(buf))
			s.spare = buf[:0]
			s.mu.Unlock()
			s.flushed.Broadcast()
		}
	}
}
