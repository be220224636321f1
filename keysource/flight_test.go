package keysource

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// waitUntil polls cond (a state change in another goroutine that has no
// channel to wait on) until it holds or 10 s pass.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type flightResult struct {
	v   any
	err error
}

func flightCaller(f *flight, ctx context.Context, key string, fn func(context.Context) (any, error)) <-chan flightResult {
	ch := make(chan flightResult, 1)
	go func() {
		v, err := f.do(ctx, key, fn)
		ch <- flightResult{v, err}
	}()
	return ch
}

// TestFlightCallerGoneLoadGoesOn: the caller that started a load goes away
// (its context cancelled: its session ended); it returns at once, and the
// load it started still completes for the caller that shares it.
func TestFlightCallerGoneLoadGoesOn(t *testing.T) {
	var f flight
	release := make(chan struct{})
	var loads atomic.Int32
	fn := func(ctx context.Context) (any, error) {
		loads.Add(1)
		<-release
		return "the key", ctx.Err()
	}
	actx, cancelA := context.WithCancel(context.Background())
	a := flightCaller(&f, actx, "k", fn)
	waitUntil(t, "the first caller", func() bool { return f.waiting("k") == 1 })
	b := flightCaller(&f, context.Background(), "k", fn)
	waitUntil(t, "the second caller", func() bool { return f.waiting("k") == 2 })
	cancelA()
	if r := <-a; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("the caller that went away: %v %v", r.v, r.err)
	}
	close(release)
	if r := <-b; r.err != nil || r.v != "the key" {
		t.Fatalf("the caller that stayed: %v %v; want the key the shared load read", r.v, r.err)
	}
	if n := loads.Load(); n != 1 {
		t.Errorf("%d loads, want 1", n)
	}
	waitUntil(t, "the call to be forgotten", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.calls) == 0
	})
}

// TestFlightLoadTimeout: a load is bounded even when no caller's context
// is.
func TestFlightLoadHasDeadline(t *testing.T) {
	var f flight
	v, err := f.do(context.Background(), "k", func(ctx context.Context) (any, error) {
		d, ok := ctx.Deadline()
		if !ok || time.Until(d) > loadTimeout {
			t.Errorf("load context deadline %v %v, want within %v", d, ok, loadTimeout)
		}
		return 1, nil
	})
	if v != 1 || err != nil {
		t.Fatal(v, err)
	}
}

// TestFlightPanicIsAnError: a load that panics fails its callers; it does
// not take the process down from a goroutine no caller runs on.
func TestFlightPanicIsAnError(t *testing.T) {
	var f flight
	_, err := f.do(context.Background(), "k", func(context.Context) (any, error) { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "panicked: boom") {
		t.Fatalf("err = %v", err)
	}
	if _, err := f.do(context.Background(), "k", func(context.Context) (any, error) { return 2, nil }); err != nil {
		t.Fatalf("the next load: %v", err)
	}
}

// gatedMaster is a master whose Wrap and Unwrap wait for open: a key store
// that is slow to answer (Vault, under load).
type gatedMaster struct {
	Master
	open  chan struct{}
	calls atomic.Int32
}

func (m *gatedMaster) Wrap(ctx context.Context, dk []byte) ([]byte, string, error) {
	m.calls.Add(1)
	select {
	case <-m.open:
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	return m.Master.Wrap(ctx, dk)
}

func (m *gatedMaster) Unwrap(ctx context.Context, w []byte, id string) ([]byte, error) {
	m.calls.Add(1)
	select {
	case <-m.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return m.Master.Unwrap(ctx, w, id)
}

// TestKeyLoadOutlivesItsCaller: two sessions wait on the first key of a
// column while the master is slow; the one whose load it is ends. The
// other still gets the key.
func TestKeyLoadOutlivesItsCaller(t *testing.T) {
	m := &gatedMaster{Master: testMaster(t), open: make(chan struct{})}
	k := testKeyring(t, testPool(t), m)
	col := testTable(false, "email").Columns[0]
	fk := flightKey("active", ScopeOf(col), "", false)
	type res struct {
		dk  *DataKey
		err error
	}
	call := func(ctx context.Context) <-chan res {
		ch := make(chan res, 1)
		go func() {
			dk, err := k.EncryptionKey(ctx, col, "", false)
			ch <- res{dk, err}
		}()
		return ch
	}
	actx, cancelA := context.WithCancel(context.Background())
	a := call(actx)
	waitUntil(t, "the first session's load", func() bool { return k.flight.waiting(fk) == 1 && m.calls.Load() == 1 })
	b := call(context.Background())
	waitUntil(t, "the second session", func() bool { return k.flight.waiting(fk) == 2 })
	cancelA()
	if r := <-a; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("the session that ended: %v", r.err)
	}
	close(m.open)
	r := <-b
	if r.err != nil {
		t.Fatalf("the session that stayed: %v", r.err)
	}
	again, err := k.EncryptionKey(context.Background(), col, "", false)
	if err != nil || again.ID() != r.dk.ID() {
		t.Fatalf("the key again: %v %v", again, err)
	}
}
