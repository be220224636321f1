//go:build !linux

package proxy

// Event loops are built on epoll; elsewhere every session relays on its
// own goroutines.

type eventLoop struct{}

type loopSession struct{}

func startEventLoops(*Server, int) ([]*eventLoop, error) { return nil, nil }
func stopEventLoops([]*eventLoop)                        {}
func (s *session) relayOnLoop(*eventLoop) (bool, error)  { return false, nil }
func (*loopSession) wake()                               {}
func (*loopSession) forceClose()                         {}
func shutdownSockets([]int)                              {}
func (*eventLoop) alive() bool                           { return false }
