package ops

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Interrupt turns SIGINT and SIGTERM into a clean stop of a long command:
// the first signal lets the batches in flight commit and starts no new one
// (Stopped, C); the second cancels the context, rolling the batches in
// flight back. Either way a rerun continues where this run stopped.
type Interrupt struct {
	ch   chan struct{}
	once sync.Once
	sigs chan os.Signal
	stop func()
}

// WatchInterrupts starts watching; call the returned Interrupt's Close when done.
func WatchInterrupts(parent context.Context, onFirst func()) (context.Context, *Interrupt) {
	ctx, cancel := context.WithCancel(parent)
	in := &Interrupt{ch: make(chan struct{}), sigs: make(chan os.Signal, 2)}
	signal.Notify(in.sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	in.stop = func() {
		signal.Stop(in.sigs)
		close(done)
		cancel()
	}
	go func() {
		n := 0
		for {
			select {
			case <-done:
				return
			case <-in.sigs:
				n++
				if n == 1 {
					in.Trigger()
					if onFirst != nil {
						onFirst()
					}
					continue
				}
				cancel()
			}
		}
	}()
	return ctx, in
}

// Trigger stops the command as the first signal does.
func (in *Interrupt) Trigger() { in.once.Do(func() { close(in.ch) }) }

// C is closed once a stop was asked for.
func (in *Interrupt) C() <-chan struct{} { return in.ch }

// Stopped reports whether a stop was asked for.
func (in *Interrupt) Stopped() bool {
	select {
	case <-in.ch:
		return true
	default:
		return false
	}
}

// Close stops watching signals.
func (in *Interrupt) Close() { in.stop() }
