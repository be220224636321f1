//go:build !linux

package proxy

// Event loops are built on epoll; elsewhere every session relays on its
// own goroutines.

type eventLoop struct{}

type loopSession struct{}

func startEventLoops(*Server, int) ([]*eventLoop, error) { return nil, nil }
func stopEventLoops([]*eventLoop)                        {}
func (s *session) relayOnLoop(*eventLoop) (error, bool)  { return nil, false }
func (*loopSession) wake()                               {}
func (*loopSession) forceClose()                         {}

const eventLoopsSupported = false
