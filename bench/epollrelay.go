package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

const epollRelayCommand = "__epoll-relay"

// runEpollRelayCommand is a bare relay built like PgBouncer rather than
// like a Go server: one event loop on one locked OS thread, level-triggered
// epoll over non-blocking sockets, a read only when epoll reports data (so
// no read ever returns EAGAIN) and the write straight after it; no
// goroutine parks, wakes or changes threads per message. It answers the
// question the Go relay cannot: what the same byte copying costs outside
// Go's netpoller and scheduler. Accepting and dialing use the net package;
// the established sockets are then handed to the loop (dup'ed file
// descriptors; O_NONBLOCK and TCP_NODELAY carry over).
func runEpollRelayCommand(args []string) int {
	fs := flag.NewFlagSet(epollRelayCommand, flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	upstream := fs.String("upstream", "", "upstream host:port")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := newEpollLoop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go l.run()
	fmt.Printf("listening %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go func() {
			u, err := net.Dial("tcp", *upstream)
			if err != nil {
				c.Close()
				return
			}
			cfd, err1 := detachFD(c)
			ufd, err2 := detachFD(u)
			if err1 != nil || err2 != nil {
				fmt.Fprintln(os.Stderr, "detach:", err1, err2)
				return
			}
			l.add(cfd, ufd)
		}()
	}
}

// detachFD returns a duplicate of the connection's socket and closes the
// Go side (which deregisters it from Go's netpoller).
func detachFD(c net.Conn) (int, error) {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.Dup(int(s)) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	c.Close()
	return fd, unix.SetNonblock(fd, true)
}

type epollEnd struct {
	fd, peer int
	pending  []byte // bytes read from peer not yet written to fd
	paused   bool   // not reading from fd until peer's pending drains
}

type epollLoop struct {
	ep   int
	mu   sync.Mutex
	ends map[int]*epollEnd
	buf  []byte
}

func newEpollLoop() (*epollLoop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &epollLoop{ep: ep, ends: map[int]*epollEnd{}, buf: make([]byte, 32*1024)}, nil
}

func (l *epollLoop) add(a, b int) {
	l.mu.Lock()
	l.ends[a] = &epollEnd{fd: a, peer: b}
	l.ends[b] = &epollEnd{fd: b, peer: a}
	l.mu.Unlock()
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, a, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(a)})
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, b, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(b)})
}

func (l *epollLoop) end(fd int) *epollEnd {
	l.mu.Lock()
	e := l.ends[fd]
	l.mu.Unlock()
	return e
}

func (l *epollLoop) closePair(e *epollEnd) {
	l.mu.Lock()
	delete(l.ends, e.fd)
	delete(l.ends, e.peer)
	l.mu.Unlock()
	unix.Close(e.fd)
	unix.Close(e.peer)
}

// interest sets fd's epoll events: EPOLLIN unless paused, EPOLLOUT while
// bytes wait to be written to it.
func (l *epollLoop) interest(e *epollEnd) {
	var ev uint32
	if !e.paused {
		ev |= unix.EPOLLIN
	}
	if len(e.pending) > 0 {
		ev |= unix.EPOLLOUT
	}
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_MOD, e.fd, &unix.EpollEvent{Events: ev, Fd: int32(e.fd)})
}

var rawWait = os.Getenv("EPOLL_RAW") != ""

// rawEpollWait blocks in epoll_wait without telling the Go scheduler: the
// loop's P stays running, so sysmon never retakes it and no handoff happens.
func rawEpollWait(ep int, events []unix.EpollEvent) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), ^uintptr(0), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func (l *epollLoop) run() {
	runtime.LockOSThread()
	events := make([]unix.EpollEvent, 128)
	for {
		var n int
		var err error
		if rawWait {
			n, err = rawEpollWait(l.ep, events)
		} else {
			n, err = unix.EpollWait(l.ep, events, -1)
		}
		if err != nil {
			if err == unix.EINTR {
				if rawWait {
					runtime.Gosched()
				}
				continue
			}
			fmt.Fprintln(os.Stderr, "epoll_wait:", err)
			os.Exit(1)
		}
		for i := 0; i < n; i++ {
			e := l.end(int(events[i].Fd))
			if e == nil {
				continue // closed earlier in this batch
			}
			if events[i].Events&unix.EPOLLOUT != 0 {
				if !l.flush(e) {
					continue
				}
			}
			if events[i].Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) != 0 && !e.paused {
				l.readable(e)
			}
		}
	}
}

// readable reads once from e and writes it all to the peer, or keeps the
// rest pending and pauses e until the peer can take more.
func (l *epollLoop) readable(e *epollEnd) {
	n, err := unix.Read(e.fd, l.buf)
	if err == unix.EAGAIN {
		return
	}
	if n <= 0 || err != nil {
		l.closePair(e)
		return
	}
	p := l.end(e.peer)
	if p == nil {
		return
	}
	b := l.buf[:n]
	for len(b) > 0 {
		w, err := unix.Write(p.fd, b)
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			l.closePair(e)
			return
		}
		b = b[w:]
	}
	if len(b) > 0 {
		p.pending = append(p.pending[:0], b...)
		e.paused = true
		l.interest(e)
		l.interest(p)
	}
}

// flush writes e's pending bytes; when they are gone the peer reads again.
// It reports false if the pair was closed.
func (l *epollLoop) flush(e *epollEnd) bool {
	for len(e.pending) > 0 {
		w, err := unix.Write(e.fd, e.pending)
		if err == unix.EAGAIN {
			return true
		}
		if err != nil {
			l.closePair(e)
			return false
		}
		e.pending = e.pending[w:]
	}
	e.pending = nil
	l.interest(e)
	if p := l.end(e.peer); p != nil {
		p.paused = false
		l.interest(p)
	}
	return true
}
