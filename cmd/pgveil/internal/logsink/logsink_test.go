package logsink

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer for one writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// gate is a writer that takes nothing until opened: a stderr nobody
// drains.
type gate struct {
	open chan struct{}
	syncBuffer
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	return g.syncBuffer.Write(p)
}

func line(i int) []byte { return []byte(fmt.Sprintf("{\"msg\":\"line %06d\"}\n", i)) }

// within fails the test if f does not return within d: what a blocked
// Write would do.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// TestStalledWriterNeverBlocks: with stderr taking nothing, writes return
// at once; what fits is kept in order, the rest is counted; once stderr
// drains, the kept lines come out whole and in order, then the report of
// the drop.
func TestStalledWriterNeverBlocks(t *testing.T) {
	g := newGate()
	s := New(g, 4096)
	reported := make(chan uint64, 10)
	s.OnDrop(func(n uint64) {
		s.Write([]byte("{\"msg\":\"dropped\"}\n"))
		reported <- n
	})
	const lines = 10000
	within(t, 10*time.Second, "10000 writes to a stalled sink", func() {
		for i := range lines {
			if n, err := s.Write(line(i)); n != len(line(i)) || err != nil {
				t.Errorf("Write = %d, %v", n, err)
				return
			}
		}
	})
	dropped := s.Dropped()
	kept := lines - int(dropped)
	// The writer may have taken one buffer before blocking in Write: at
	// most two buffers' worth is kept.
	per := len(line(0))
	if dropped == 0 || kept < 4096/per || kept > 2*4096/per+1 {
		t.Fatalf("kept %d, dropped %d lines of %d bytes with a 4096-byte buffer", kept, dropped, per)
	}
	close(g.open)
	// Once stderr drains, the kept lines go out, then the report.
	select {
	case n := <-reported:
		if n != dropped {
			t.Fatalf("reported %d dropped, want %d", n, dropped)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no report of the dropped lines")
	}
	within(t, 10*time.Second, "Sync after stderr drained", func() { s.Sync() })
	out := strings.Split(strings.TrimSuffix(g.String(), "\n"), "\n")
	if len(out) != kept+1 || out[kept] != `{"msg":"dropped"}` {
		t.Fatalf("%d lines out, want %d kept and the report; last %q", len(out), kept, out[len(out)-1])
	}
	// Whole lines, in the order written; the dropped ones leave gaps.
	prev := -1
	for _, l := range out[:kept] {
		var n int
		if _, err := fmt.Sscanf(l, "{\"msg\":\"line %06d\"}", &n); err != nil || l+"\n" != string(line(n)) || n <= prev {
			t.Fatalf("line %q after line %d: a torn line or lost order", l, prev)
		}
		prev = n
	}
	select {
	case n := <-reported:
		t.Fatalf("a second report (%d) with nothing dropped since", n)
	default:
	}
	if !s.Close(time.Second) {
		t.Fatal("Close: not everything written")
	}
}

// TestSyncWaitsForTheWrite: what was written before Sync is in the
// writer when Sync returns.
func TestSyncWaitsForTheWrite(t *testing.T) {
	var b syncBuffer
	s := New(&b, 0)
	for i := range 100 {
		s.Write(line(i))
		s.Sync()
		if got, want := b.Len(), (i+1)*len(line(0)); got != want {
			t.Fatalf("after Sync %d: %d bytes out, want %d", i, got, want)
		}
	}
	s.Close(time.Second)
}

// TestCloseGivesUpOnAStalledWriter: Close waits its timeout, not
// forever, and reports that lines were left; later lines are dropped.
func TestCloseGivesUpOnAStalledWriter(t *testing.T) {
	g := newGate()
	s := New(g, 0)
	s.Write(line(1))
	s.Write(line(2))
	var ok bool
	within(t, 10*time.Second, "Close", func() { ok = s.Close(50 * time.Millisecond) })
	if ok {
		t.Fatal("Close reported everything written to a writer that took nothing")
	}
	before := s.Dropped()
	s.Write(line(3))
	if s.Dropped() != before+1 {
		t.Fatal("a write after Close was not dropped")
	}
	within(t, time.Second, "Sync after Close", func() { s.Sync() })
	close(g.open) // let the writer goroutine finish its Write
}

// TestConcurrentWritersWholeLines: lines from many goroutines come out
// whole.
func TestConcurrentWritersWholeLines(t *testing.T) {
	var b syncBuffer
	s := New(&b, 64<<20)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				s.Write(line(g*1000 + i))
			}
		}()
	}
	wg.Wait()
	s.Close(10 * time.Second)
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		var n int
		if _, err := fmt.Sscanf(l, "{\"msg\":\"line %06d\"}", &n); err != nil || l+"\n" != string(line(n)) {
			t.Fatalf("torn line %q", l)
		}
		seen[l] = true
	}
	if len(seen) != 8000 || s.Dropped() != 0 {
		t.Fatalf("%d distinct lines, %d dropped; want 8000, 0", len(seen), s.Dropped())
	}
}
