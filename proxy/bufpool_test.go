package proxy

import (
	"bytes"
	"strings"
	"testing"
)

// TestReleaseBuffers: a session gives its pooled readers and writers back
// only when nothing can still use them, and what comes back out of a pool
// carries nothing of the session that used it.
func TestReleaseBuffers(t *testing.T) {
	fill := func(s *session) {
		r := s.bufs.reader(strings.NewReader("secret bytes of one session"))
		r.Peek(5) // buffered, never consumed
		var sink bytes.Buffer
		w := s.bufs.writer(&sink)
		w.WriteString("unflushed secret")
	}

	running := &session{serverDone: make(chan struct{})}
	fill(running)
	running.releaseBuffers()
	if len(running.bufs.readers) != 1 || len(running.bufs.writers) != 1 {
		t.Error("released while serverToClient still runs")
	}

	panicked := &session{panicked: true}
	fill(panicked)
	panicked.releaseBuffers()
	if len(panicked.bufs.readers) != 1 {
		t.Error("released after a panic")
	}

	for _, s := range []*session{{}, {serverDone: closedChan()}} {
		fill(s)
		r, w := s.bufs.readers[0], s.bufs.writers[0]
		s.releaseBuffers()
		if s.bufs.readers != nil || s.bufs.writers != nil {
			t.Fatal("not released")
		}
		if r.Buffered() != 0 || w.Buffered() != 0 {
			t.Errorf("released buffers still hold %d / %d bytes", r.Buffered(), w.Buffered())
		}
		if r.Size() != readBufferSize || w.Size() != writeBufferSize {
			t.Errorf("sizes %d / %d", r.Size(), w.Size())
		}
	}

	// Whatever the pools hand out next starts empty and reads its own input.
	var next session
	r := next.bufs.reader(strings.NewReader("new"))
	got, _ := r.Peek(3)
	if string(got) != "new" || r.Buffered() != 3 {
		t.Errorf("reused reader read %q", got)
	}
	var out bytes.Buffer
	w := next.bufs.writer(&out)
	w.WriteString("x")
	w.Flush()
	if out.String() != "x" {
		t.Errorf("reused writer wrote %q", out.String())
	}
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
