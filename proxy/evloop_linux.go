//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/pgveil/pgveil/keysource"
)

// The event-loop relay.
//
// A session with plain TCP on both legs can be relayed by an event loop
// instead of by two goroutines of its own (with encryption too: see
// loopengine.go). Each loop is one goroutine locked to its OS thread
// that waits in epoll_wait (level-triggered) over the non-blocking sockets
// of its sessions, reads a socket only when epoll reports data, runs the
// same per-message code as the goroutine relay (tracker, metrics, size
// limit, drain) on what it read, and writes the result to the other socket
// at once: two syscalls per message hop and no goroutine wake-up, where Go's
// netpoller costs an extra failed read per awaited message and a scheduler
// hand-off per wake-up (docs/BENCH.md measures both).
//
// The loop enters epoll_wait as a raw system call, without telling the Go
// scheduler: its P stays with it, so sysmon never retakes the P and wakes
// another thread for every round trip (what made a loop built on
// unix.EpollWait no faster than goroutines on one CPU). A loop therefore
// holds one P for good; starting one raises GOMAXPROCS by one so the rest
// of pgveil keeps the Ps it had. The wait is bounded (loopWaitMillis) and
// every timeout, interruption or idle turn yields to the scheduler, so a
// garbage collection's stop-the-world, which interrupts the wait with a
// signal, never waits on a loop for long.
//
// Ownership: after authentication the session goroutine dups both sockets,
// closes its net.Conns (Go's netpoller forgets them), hands the sockets
// and whatever its readers had buffered to a loop, and waits on done. From
// then on only the loop touches the loopSession; other goroutines reach it
// through submit. The loop ends the session by composing the last messages
// (Terminate upstream, the client's FATAL), writing what the sockets take
// without blocking, and deregistering both sockets; the session goroutine
// then writes any rest with deadlines, closes the sockets and ends the
// session as the goroutine relay does.

const (
	// loopWaitMillis bounds one epoll_wait, so that the loop yields to the
	// scheduler at least this often even when no signal interrupts it.
	loopWaitMillis = 20
	// loopHighWater is the output backlog (bytes the loop holds for a
	// socket whose kernel buffer is full) above which the loop stops
	// reading the other side until the backlog is gone.
	loopHighWater = 256 * 1024
)

type eventLoop struct {
	srv    *Server
	ep     int
	efd    int // eventfd: submit's wake-up
	mu     sync.Mutex
	queue  []func()
	closed bool
	// Loop thread only.
	sides  sideTable
	quit   bool
	stops  atomic.Bool // stop has run once
	events []unix.EpollEvent
	free   [][]byte // read buffers of ended sessions, for new ones
	spin   spinner
	done   chan struct{}
}

// maxFreeBuffers bounds a loop's free list (2 per session: 64 sessions).
const maxFreeBuffers = 128

// getBuf returns a read buffer of readBufferSize bytes.
func (l *eventLoop) getBuf() []byte {
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		return b
	}
	return make([]byte, readBufferSize)
}

// putBuf keeps b for another session.
func (l *eventLoop) putBuf(b []byte) {
	if len(b) == readBufferSize && len(l.free) < maxFreeBuffers {
		l.free = append(l.free, b)
	}
}

// loopSession is a session while a loop relays it.
type loopSession struct {
	s    *session
	l    *eventLoop
	c, u loopSide // client, upstream
	// cerr ends the session from the client side (EOF, Terminate, a
	// protocol violation, shutdown), serr from the upstream side.
	cerr, serr error
	forced     bool // forceClose: no last messages
	ended      bool
	// handback: a message of an encryption session needs the goroutine
	// relay (loopengine.go); the loop let go of the session at that
	// message's boundary, and cLeft and uLeft hold what it had read and
	// not handled.
	handback     bool
	cLeft, uLeft []byte
	// uSrc is the server message engineServer lets decodeBackend read.
	uSrc      bytes.Reader
	spinStamp uint32 // the spinner's window in which it last had events
	done      chan struct{}
}

// loopSide is one socket of a loop session.
type loopSide struct {
	ls     *loopSession
	fd     int
	client bool
	in     []byte // in[r:w] is read and not yet handled
	r, w   int
	out    []byte // out[off:] waits to be written to fd
	off    int
	// stream counts the body bytes of the current message still to pass
	// through (discard: to drop) before the next header.
	stream  int
	discard bool
	paused  bool   // not reading: the peer's backlog is over loopHighWater
	events  uint32 // registered epoll events
	flow    flowCounter
	// An encryption session's side is parked while a key its current
	// message needs loads off the loop (evloop_engine_linux.go); warmErrs
	// are the failed loads for the message, waits counts its waits. The
	// server side holds the message's tracker event meanwhile.
	parked   bool
	pathWait bool // parked until the search_path question is answered
	// lookupWait: parked until a tenant lookup is answered (lookup.go)
	lookupWait bool
	warmErrs   map[string]error
	waits      map[string]int
	held       bool
	heldTyp    byte
	heldN      int
	heldEv     backendEvent
}

// sideTable finds a loop's sides by socket: a slice indexed by fd (the
// kernel hands out the lowest free fds, so it stays small), looked up once
// per epoll event.
type sideTable struct {
	byFD []*loopSide
	n    int
}

func (t *sideTable) get(fd int32) *loopSide {
	if fd < 0 || int(fd) >= len(t.byFD) {
		return nil
	}
	return t.byFD[fd]
}

// set registers sd for fd, or forgets fd when sd is nil.
func (t *sideTable) set(fd int, sd *loopSide) {
	if fd >= len(t.byFD) {
		if sd == nil {
			return
		}
		t.byFD = append(t.byFD, make([]*loopSide, fd+1-len(t.byFD))...)
	}
	switch old := t.byFD[fd]; {
	case old == nil && sd != nil:
		t.n++
	case old != nil && sd == nil:
		t.n--
	}
	t.byFD[fd] = sd
}

func (t *sideTable) len() int { return t.n }

// each calls f for every registered side (f may unregister sides).
func (t *sideTable) each(f func(*loopSide)) {
	for _, sd := range t.byFD {
		if sd != nil {
			f(sd)
		}
	}
}

// loopProcs serialises the GOMAXPROCS changes of starting and stopping loops.
var loopProcs sync.Mutex

// startEventLoops starts n loops, raising GOMAXPROCS by n (and leaving it
// alone when n is 0).
func startEventLoops(srv *Server, n int) ([]*eventLoop, error) {
	if n == 0 {
		return nil, nil
	}
	var loops []*eventLoop
	for i := 0; i < n; i++ {
		l, err := newEventLoop(srv)
		if err != nil {
			for _, l := range loops { // not running yet
				unix.Close(l.ep)
				unix.Close(l.efd)
			}
			return nil, err
		}
		loops = append(loops, l)
	}
	loopProcs.Lock()
	procs := runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(procs + n)
	loopProcs.Unlock()
	shared := &spinShared{}
	for _, l := range loops {
		// GOMAXPROCS before the loops' own is what Go derived from the
		// affinity and the cgroup's CPU quota (or what the operator set):
		// the loops poll only where that leaves a CPU to spare.
		l.spin.procs = procs
		l.spin.shared = shared
		go l.run()
	}
	return loops, nil
}

// stopEventLoops stops the loops (their sessions have ended) and gives
// their Ps back. A loop that died earlier gives its P back here too.
func stopEventLoops(loops []*eventLoop) {
	stopped := 0
	for _, l := range loops {
		if l.stop() {
			stopped++
		}
	}
	if stopped > 0 {
		loopProcs.Lock()
		runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)-stopped))
		loopProcs.Unlock()
	}
}

func newEventLoop(srv *Server) (*eventLoop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("event loop: epoll_create1: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("event loop: eventfd: %w", err)
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		unix.Close(ep)
		unix.Close(efd)
		return nil, fmt.Errorf("event loop: epoll_ctl: %w", err)
	}
	l := &eventLoop{srv: srv, ep: ep, efd: efd,
		events: make([]unix.EpollEvent, 256), done: make(chan struct{})}
	l.spin.budgetOf = func() time.Duration { return srv.Config().Proxy.LoopSpin }
	l.spin.cpuSet = threadAffinity // startEventLoops bounds the count by GOMAXPROCS
	l.spin.statOf = procStat
	l.spin.threadCPU = threadCPUTime
	if srv != nil {
		m := srv.metrics
		hits, misses := m.LoopPolls.WithLabelValues("event"), m.LoopPolls.WithLabelValues("none")
		l.spin.warn = func(msg string) { srv.log.Warn(msg) }
		l.spin.publish = func(hit, miss uint64, cpu int64) {
			hits.Add(float64(hit))
			misses.Add(float64(miss))
			m.LoopPollSeconds.Add(float64(cpu) / 1e9)
		}
	}
	return l, nil
}

// submit runs f on the loop thread. It reports false when the loop has
// stopped (f does not run).
func (l *eventLoop) submit(f func()) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.queue = append(l.queue, f)
	if len(l.queue) == 1 {
		// Under mu: run closes efd under mu once closed is set.
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		unix.Write(l.efd, one[:])
	}
	l.mu.Unlock()
	return true
}

// stop ends the loop (after its last command) and waits until it has
// released its fds. It reports whether this call stopped it (false when
// an earlier call did).
func (l *eventLoop) stop() bool {
	if l.stops.Swap(true) {
		return false
	}
	l.submit(func() { l.quit = true })
	<-l.done
	return true
}

func (l *eventLoop) run() {
	runtime.LockOSThread() // never unlocked: the thread ends with the loop
	defer func() {
		// Normally no session is left (stop runs after the last one
		// ended); after an epoll failure, end what is left and run what
		// was queued, so that no session goroutine waits forever.
		l.quit = true
		if l.spin.shared != nil {
			l.spin.shared.active.Add(-int64(l.spin.last))
		}
		l.sides.each(func(sd *loopSide) {
			if !sd.ls.ended {
				sd.ls.cerr = fatal(codeInternalError, "pgveil's event loop stopped")
				sd.ls.end()
			}
		})
		l.mu.Lock()
		l.closed = true
		q := l.queue
		l.queue = nil
		unix.Close(l.efd)
		l.mu.Unlock()
		for _, f := range q {
			l.command(f)
		}
		unix.Close(l.ep)
		close(l.done)
	}()
	for !l.quit {
		n, errno := l.wait()
		if errno != 0 && errno != unix.EINTR {
			l.srv.log.Error("event loop: epoll_wait failed; its sessions end", zap.Error(errno))
			return
		}
		if n <= 0 {
			// Timeout or a signal (often a preemption request): let the
			// scheduler run what waits on this P.
			runtime.Gosched()
			continue
		}
		l.spin.tick(now())
		for i := 0; i < n; i++ {
			ev := &l.events[i]
			if ev.Fd == int32(l.efd) {
				l.commands()
				continue
			}
			if sd := l.sides.get(ev.Fd); sd != nil && !sd.ls.ended {
				l.spin.seen(&sd.ls.spinStamp)
				sd.ls.handle(sd, ev.Events)
			}
		}
		// The batch woke the peers it wrote to. While the loop's own
		// sessions keep the CPUs busy, let one that was placed on this
		// CPU run now rather than send it, or the next wake-up, to the
		// other CPU (an inter-processor interrupt each; docs/BENCH.md runs
		// E and F). With fewer busy sessions the CPUs are taken, if at
		// all, by other processes, and yielding to them only delays this
		// loop's clients (run J).
		if l.spin.crowded() {
			schedYield()
		}
	}
}

// commands runs what submit queued.
func (l *eventLoop) commands() {
	var b [8]byte
	unix.Read(l.efd, b[:])
	l.mu.Lock()
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, f := range q {
		l.command(f)
	}
}

// command runs one queued function; a panic in it is logged, and the loop
// and its other sessions go on.
func (l *eventLoop) command(f func()) {
	defer func() {
		if r := recover(); r != nil {
			l.srv.log.Error("panic in an event loop command", zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	f()
}

// epollWaitRaw is epoll_wait as a raw system call: the Go scheduler is not
// told, so the P stays with the loop (see the comment at the top of this
// file).
// epoll_pwait with no signal mask is epoll_wait on every architecture.
func epollWaitRaw(ep int, events []unix.EpollEvent, msec int) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), uintptr(msec), 0, 0)
	return int(r), e
}

// The sockets are non-blocking, so their reads and writes are raw system
// calls too. Writes use MSG_NOSIGNAL: a peer that has gone is an EPIPE,
// never a SIGPIPE.
func rawRead(fd int, p []byte) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(r), e
}

func schedYield() { syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }

func rawSend(fd int, p []byte) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), unix.MSG_NOSIGNAL, 0, 0)
	return int(r), e
}

// adopt registers a session handed over by its goroutine and handles the
// bytes its readers had already buffered (left).
func (l *eventLoop) adopt(ls *loopSession, cLeft, uLeft []byte) {
	defer ls.recoverPanic()
	if l.quit { // queued before the loop stopped
		ls.cerr, ls.forced = fatal(codeInternalError, "pgveil's event loop stopped"), false
		ls.end()
		return
	}
	for _, side := range []struct {
		sd   *loopSide
		left []byte
	}{{&ls.c, cLeft}, {&ls.u, uLeft}} {
		sd := side.sd
		sd.in = l.getBuf()
		if len(side.left) > len(sd.in) {
			sd.in = make([]byte, growCap(len(side.left)))
		}
		sd.w = copy(sd.in, side.left)
	}
	for _, sd := range []*loopSide{&ls.c, &ls.u} {
		sd.events = unix.EPOLLIN
		if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, sd.fd, &unix.EpollEvent{Events: sd.events, Fd: int32(sd.fd)}); err != nil {
			// Cannot happen for a fresh socket; end the session cleanly.
			ls.cerr = fmt.Errorf("event loop: epoll_ctl: %w", err)
			ls.forced = true
			ls.end()
			return
		}
		l.sides.set(sd.fd, sd)
	}
	for _, sd := range []*loopSide{&ls.c, &ls.u} {
		if sd.w > sd.r && !ls.ended {
			ls.process(sd)
		}
	}
	if !ls.ended {
		ls.checkDrain()
	}
}

// handle is one epoll event of a side.
func (ls *loopSession) handle(sd *loopSide, events uint32) {
	defer ls.recoverPanic()
	if events&unix.EPOLLOUT != 0 {
		if err := ls.flush(sd); err != nil {
			ls.fail(sd, err)
			return
		}
		ls.updateEvents()
	}
	// A hang-up or error is read even while paused: the read reports it
	// (and a peer's close while its side is parked, EPOLLRDHUP).
	if events&(unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLRDHUP) != 0 || events&unix.EPOLLIN != 0 && !sd.paused && !sd.parked && !ls.handback {
		ls.readable(sd)
	}
}

func (ls *loopSession) recoverPanic() {
	if r := recover(); r != nil {
		ls.s.logPanic("event loop", r)
		if !ls.ended {
			ls.cerr = fatal(codeInternalError, "pgveil internal error")
			ls.end()
		}
	}
}

// readable reads what a side has and handles it.
func (ls *loopSession) readable(sd *loopSide) {
	if sd.w == len(sd.in) {
		sd.compact()
		if sd.w == len(sd.in) {
			// One unfinished message fills the buffer: names longer
			// than it (need grows it for whole messages).
			sd.grow(len(sd.in) * 2)
		}
	}
	n, errno := rawRead(sd.fd, sd.in[sd.w:])
	switch {
	case errno == unix.EAGAIN:
		return
	case errno != 0:
		ls.fail(sd, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", errno)})
		return
	case n == 0:
		ls.fail(sd, io.EOF)
		return
	}
	sd.w += n
	ls.process(sd)
}

// process handles the whole messages in sd's buffer (and streams bodies
// that need no look), then writes the peer's output.
func (ls *loopSession) process(sd *loopSide) {
	var err error
	drain := false
	if sd.client {
		err = ls.fromClient()
	} else {
		drain, err = ls.fromServer()
	}
	if ls.ended {
		return // a decryption failure ended the session (serverFatal)
	}
	peer := sd.peer()
	if ferr := ls.flush(peer); ferr != nil {
		// Messages before a failure still went out; now the peer is gone.
		ls.fail(peer, ferr)
		return
	}
	if err != nil {
		ls.fail(sd, err)
		return
	}
	if ls.handback && !ls.u.parked && !ls.u.held && !ls.c.parked {
		ls.s.srv.metrics.LoopHandbacks.Inc()
		ls.handBack()
		return
	}
	if peer.pending() > loopHighWater {
		sd.paused = true
	}
	ls.updateEvents()
	if drain {
		ls.checkDrain()
	}
	if !sd.client && ls.c.pathWait {
		ls.pathAnswered()
	}
	if !sd.client && ls.c.lookupWait {
		ls.lookupAnswered()
	}
}

// fromClient is clientToServer's work on the buffered client bytes.
func (ls *loopSession) fromClient() error {
	s, c, u := ls.s, &ls.c, &ls.u
	defer c.flow.publish(s.srv.metrics.bytesC2S, s.srv.metrics.msgsC2S)
	for !c.parked && !ls.handback {
		typ, n, ok, err := c.next(u, s.cr)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if s.eng != nil {
			switch typ {
			case 'Q', 'P', 'B', 'D', 'E', 'C':
				if c.w-c.r < n+1 {
					c.need(n + 1)
					return nil
				}
				done, err := ls.engineClient(typ, n)
				if err != nil || !done {
					return err
				}
				c.r += n + 1
				c.flow.add(n + 1)
				continue
			case 'F':
				s.pathEffect(effPath | effTZ) // the function may change search_path or TimeZone (set_config)
			case 'd', 'c', 'f':
				if s.copyPlan != nil || s.copyStray && typ != 'd' {
					// COPY data to encrypt (handleCopyIn), or the end of
					// dropped data (strayCopyEnd).
					ls.handback = true
					return nil
				}
				if s.copyStray {
					// Dropped: see copyOver.
					c.r += 5
					c.stream, c.discard = n-4, true
					c.flow.add(n + 1)
					continue
				}
			}
		}
		if frontendNamed(typ) {
			// The tracker reads only the names at the start of the body:
			// once they are here the rest streams through, so a 100 MB
			// Bind is neither held whole nor copied in one go on the loop
			// every session shares.
			body := n - 4
			part := c.in[c.r+5 : c.r+5+min(c.w-c.r-5, body)]
			if len(part) < body && !namesIn(typ, part) {
				break // more bytes; readable grows a full buffer
			}
			if err := s.trackFrontend(typ, part); err != nil {
				return err
			}
			u.out = append(u.out, c.in[c.r:c.r+5+len(part)]...)
			c.r += 5 + len(part)
			c.stream, c.discard = body-len(part), false
			c.flow.add(n + 1)
			continue
		}
		s.trackFrontend(typ, nil)
		u.out = append(u.out, c.in[c.r:c.r+5]...)
		c.r += 5
		c.stream, c.discard = n-4, false
		c.flow.add(n + 1)
		if typ == 'X' {
			// The server closes right after Terminate: that close is ours.
			s.upstreamClosing.Store(true)
			c.passBody(u)
			return errTerminated
		}
	}
	c.settle()
	return nil
}

// fromServer is serverToClient's work on the buffered server bytes. drain
// reports that the session became idle while pgveil drains.
func (ls *loopSession) fromServer() (drain bool, err error) {
	s, c, u := ls.s, &ls.c, &ls.u
	m := s.srv.metrics
	defer func() {
		u.flow.publish(m.bytesS2C, m.msgsS2C)
		s.checkDesync(&s.desyncsSeen)
	}()
	if u.held && !u.parked {
		// The message set aside for a key (engineServer), first.
		done, err := ls.engineServer(u.heldTyp, u.heldN, u.heldEv)
		if err != nil || !done {
			return drain, ls.serverError(err)
		}
	}
	for !u.parked {
		typ, n, ok, err := u.next(c, s.sr)
		if err != nil {
			return drain, err
		}
		if !ok {
			break
		}
		if typ == 'S' && s.eng != nil {
			// ParameterStatus: how literals and text are read.
			if u.w-u.r < n+1 {
				u.need(n + 1)
				break
			}
			s.noteParameterStatus(u.in[u.r+5 : u.r+1+n])
			c.out = append(c.out, u.in[u.r:u.r+1+n]...)
			u.r += n + 1
			u.flow.add(n + 1)
			continue
		}
		if typ == 'Z' || typ == 'E' {
			if u.w-u.r < n+1 {
				u.need(n + 1)
				break
			}
			if s.backendControl((*outBuf)(&c.out), typ, u.in[u.r:u.r+5], u.in[u.r+5:u.r+1+n]) {
				drain = true
			}
			u.r += n + 1
			u.flow.add(n + 1)
			continue
		}
		if s.eng != nil {
			cur := s.t.peek()
			switch typ {
			case 'G', 'H', 'W':
				if cur != nil && !cur.suppress && !cur.injected {
					if st := curStmt(*cur); st != nil && st.Copy != nil {
						// COPY of a configured table: its data is
						// encrypted or decrypted on the goroutine relay
						// (copy.go).
						ls.handback = true
						return drain, nil
					}
				}
			}
			if cur != nil && cur.pathSync && typ == 'D' {
				// The row answering the search_path question.
				if u.w-u.r < n+1 {
					u.need(n + 1)
					break
				}
				m.upstreamDone(s.t.onBackend(typ, nil))
				s.pathSyncMessage(typ, u.in[u.r+5:u.r+1+n])
				u.r += n + 1
				u.flow.add(n + 1)
				continue
			}
			if cur != nil && cur.lookup && (typ == 'D' || typ == 'C' || typ == 'T') {
				// The rows of a tenant lookup: pgveil's own (lookup.go).
				if u.w-u.r < n+1 {
					u.need(n + 1)
					break
				}
				extended := cur.kind != pendQuery // cur is cleared by onBackend
				m.upstreamDone(s.t.onBackend(typ, nil))
				s.lookupMessage(typ, u.in[u.r+5:u.r+1+n], extended)
				u.r += n + 1
				u.flow.add(n + 1)
				continue
			}
			if s.needsDecode(typ, cur) {
				if u.w-u.r < n+1 {
					u.need(n + 1)
					break
				}
				ev := s.t.onBackend(typ, nil)
				m.upstreamDone(ev)
				done, err := ls.engineServer(typ, n, ev)
				if err != nil || !done {
					return drain, ls.serverError(err)
				}
				continue
			}
		}
		ev := s.t.onBackend(typ, nil)
		m.upstreamDone(ev)
		u.stream, u.discard = n-4, ev.cur.suppress || ev.cur.injected || ev.cur.probe
		if !u.discard {
			c.out = append(c.out, u.in[u.r:u.r+5]...)
		}
		u.r += 5
		u.flow.add(n + 1)
	}
	u.settle()
	return drain, nil
}

// namesIn reports whether part, the start of the body of a frontendNamed
// message, holds all that trackExtended reads: its names, NUL-terminated.
func namesIn(typ byte, part []byte) bool {
	from, nuls := 0, 1
	switch typ {
	case 'B': // portal, statement
		nuls = 2
	case 'D', 'C': // 'S' or 'P', then the name
		from = 1
	}
	for i := from; i < len(part); i++ {
		if part[i] == 0 {
			if nuls--; nuls == 0 {
				return true
			}
		}
	}
	return false
}

// outBuf lets backendControl append to a side's output.
type outBuf []byte

func (b *outBuf) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

// next passes on what is buffered of the current body and reads the next
// header, judged by mr's limit (n counts itself, as on the wire). ok is
// false while more bytes are needed.
func (sd *loopSide) next(peer *loopSide, mr *msgReader) (typ byte, n int, ok bool, err error) {
	if sd.stream > 0 && !sd.passBody(peer) {
		return 0, 0, false, nil
	}
	if sd.w-sd.r < 5 {
		return 0, 0, false, nil
	}
	typ = sd.in[sd.r]
	n = int(int32(be32(sd.in[sd.r+1:])))
	return typ, n, true, mr.checkLength(typ, n)
}

// passBody moves as much of the current body as is buffered to the peer's
// output (or drops it). It reports whether the body is complete.
func (sd *loopSide) passBody(peer *loopSide) bool {
	k := min(sd.stream, sd.w-sd.r)
	if !sd.discard {
		peer.out = append(peer.out, sd.in[sd.r:sd.r+k]...)
	}
	sd.r += k
	sd.stream -= k
	return sd.stream == 0
}

// need makes room for a whole message of n bytes at in[r:].
func (sd *loopSide) need(n int) {
	if len(sd.in)-sd.r >= n {
		return
	}
	sd.compact()
	if len(sd.in) < n {
		sd.grow(n)
	}
}

func (sd *loopSide) grow(n int) {
	b := make([]byte, growCap(n))
	sd.w = copy(b, sd.in[sd.r:sd.w])
	sd.r = 0
	sd.in = b
}

func (sd *loopSide) compact() {
	if sd.r > 0 {
		sd.w = copy(sd.in, sd.in[sd.r:sd.w])
		sd.r = 0
	}
}

// settle resets an emptied buffer, and gives back one grown for a large
// message (as msgReader.readBody does).
func (sd *loopSide) settle() {
	if sd.r == sd.w {
		sd.r, sd.w = 0, 0
		if len(sd.in) > 4*streamThreshold {
			sd.in = sd.ls.l.getBuf()
		}
	}
}

func (sd *loopSide) peer() *loopSide {
	if sd.client {
		return &sd.ls.u
	}
	return &sd.ls.c
}

func (sd *loopSide) pending() int { return len(sd.out) - sd.off }

// flush writes sd's output as far as the socket takes it.
func (ls *loopSession) flush(sd *loopSide) error {
	for sd.off < len(sd.out) {
		n, errno := rawSend(sd.fd, sd.out[sd.off:])
		if errno == unix.EAGAIN {
			return nil
		}
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", errno)}
		}
		sd.off += n
	}
	sd.off = 0
	if cap(sd.out) > 4*streamThreshold {
		sd.out = nil
	} else {
		sd.out = sd.out[:0]
	}
	// The backlog is gone: read the other side again.
	sd.peer().paused = false
	return nil
}

// updateEvents registers what each side waits for: input unless paused,
// output room while bytes wait.
func (ls *loopSession) updateEvents() {
	for _, sd := range []*loopSide{&ls.c, &ls.u} {
		var ev uint32
		if !sd.paused && !sd.parked && !ls.handback {
			ev |= unix.EPOLLIN
		}
		if sd.parked {
			// Not reading, but a peer gone while its message waits
			// ends the session now, not when the wait does.
			ev |= unix.EPOLLRDHUP
		}
		if sd.pending() > 0 {
			ev |= unix.EPOLLOUT
		}
		if ev != sd.events {
			sd.events = ev
			unix.EpollCtl(ls.l.ep, unix.EPOLL_CTL_MOD, sd.fd, &unix.EpollEvent{Events: ev, Fd: int32(sd.fd)})
		}
	}
}

// fail ends the session because of err on sd.
func (ls *loopSession) fail(sd *loopSide, err error) {
	if sd.client {
		ls.cerr = err
	} else {
		ls.serr = err
	}
	ls.end()
}

// checkDrain ends an idle session while pgveil drains (FATAL 57P01, as
// the goroutine relay does at a message boundary).
func (ls *loopSession) checkDrain() {
	if ls.ended || !ls.s.srv.draining.Load() {
		return
	}
	// At a message boundary: no body under way, at most a partial header
	// (as the goroutine relay's wake-up strikes before a header is whole).
	if ls.c.stream == 0 && ls.c.w-ls.c.r < 5 && ls.s.idle() {
		ls.cerr = errDrained
		ls.end()
	}
}

// end composes the session's last messages as relay and upstreamEnded do,
// writes what the sockets take now, deregisters the session and hands it
// back to its goroutine.
func (ls *loopSession) end() {
	if ls.ended {
		return
	}
	ls.ended = true
	defer close(ls.done)
	defer func() {
		for _, sd := range []*loopSide{&ls.c, &ls.u} {
			if ls.l.sides.get(int32(sd.fd)) == sd {
				unix.EpollCtl(ls.l.ep, unix.EPOLL_CTL_DEL, sd.fd, nil)
				ls.l.sides.set(sd.fd, nil)
			}
			ls.l.putBuf(sd.in)
			sd.in, sd.r, sd.w = nil, 0, 0
		}
	}()
	s := ls.s
	// A last message goes only where no message is cut in half: not
	// after part of a body the peer is still owed.
	toClientOK := !(ls.u.stream > 0 && !ls.u.discard)
	toServerOK := !(ls.c.stream > 0 && !ls.c.discard)
	if !ls.forced {
		if ls.serr != nil {
			if !s.upstreamClosing.Load() && !s.serverSentFatal && toClientOK {
				ls.c.out = appendError(ls.c.out, s, &pgError{Severity: "FATAL", Code: codeConnectionFailure,
					Message: "pgveil lost the connection to the upstream server"})
			}
		} else {
			if !errors.Is(ls.cerr, errTerminated) && toServerOK {
				ls.u.out = append(ls.u.out, 'X', 0, 0, 0, 4)
			}
			if !errors.Is(ls.cerr, errTerminated) && !isClosedConn(ls.cerr) && toClientOK {
				ls.c.out = appendError(ls.c.out, s, ls.cerr)
			}
		}
	}
	s.upstreamClosing.Store(true)
	if !ls.forced {
		// The rest, if any, is written by the session goroutine.
		ls.flush(&ls.c)
		ls.flush(&ls.u)
	}
}

// handBack lets go of the session for the goroutine relay: the sockets
// leave the loop with what was read and not handled, and what waits to be
// written (the session goroutine writes it first).
func (ls *loopSession) handBack() {
	ls.ended = true
	for _, sd := range []*loopSide{&ls.c, &ls.u} {
		if ls.l.sides.get(int32(sd.fd)) == sd {
			unix.EpollCtl(ls.l.ep, unix.EPOLL_CTL_DEL, sd.fd, nil)
			ls.l.sides.set(sd.fd, nil)
		}
	}
	ls.cLeft = append([]byte(nil), ls.c.in[ls.c.r:ls.c.w]...)
	ls.uLeft = append([]byte(nil), ls.u.in[ls.u.r:ls.u.w]...)
	for _, sd := range []*loopSide{&ls.c, &ls.u} {
		ls.l.putBuf(sd.in)
		sd.in, sd.r, sd.w = nil, 0, 0
	}
	close(ls.done)
}

// appendError appends err as an ErrorResponse and counts it.
func appendError(b []byte, s *session, err error) []byte {
	er := toErrorResponse(err)
	s.srv.metrics.Errors.WithLabelValues(sqlstateClass(er.Code), "pgveil").Inc()
	out, _ := er.Encode(b)
	return out
}

// relayOnLoop relays the session on l. ok is false when the session could
// not be handed over (nothing changed; relay on goroutines instead).
func (s *session) relayOnLoop(l *eventLoop) (ok bool, err error) {
	cfd, err := dupSocket(rawConn(s.client))
	if err != nil {
		return false, nil
	}
	sfd, err := dupSocket(rawConn(s.server))
	if err != nil {
		unix.Close(cfd)
		return false, nil
	}
	ls := &loopSession{s: s, l: l, done: make(chan struct{})}
	ls.c = loopSide{ls: ls, fd: cfd, client: true}
	ls.u = loopSide{ls: ls, fd: sfd}
	// What the readers hold unread, then what a session back from
	// goroutines had not even read from its prefix (leftConn).
	cLeft, uLeft := append(buffered(s.cr), unread(s.client)...), append(buffered(s.sr), unread(s.server)...)
	sw, cw := s.sw, s.cw
	if s.eng != nil {
		// The handlers write into the loop's output and look keys up
		// without waiting (loopengine.go).
		s.sw, s.cw = s.bufs.writer((*outBuf)(&ls.u.out)), s.bufs.writer((*outBuf)(&ls.c.out))
		s.keyCtx = keysource.WithoutWaiting(s.ctx)
	}

	s.connMu.Lock()
	if s.forced || !l.submit(func() { l.adopt(ls, cLeft, uLeft) }) {
		// Shut down, or the loop is gone: nothing was handed over.
		s.sw, s.cw, s.keyCtx = sw, cw, s.ctx
		s.connMu.Unlock()
		unix.Close(cfd)
		unix.Close(sfd)
		return false, nil
	}
	s.onLoop = ls
	if s.eng != nil {
		s.bufs.drop(nil, []*bufio.Writer{sw, cw}) // the goroutine relay's
	}
	if s.handedBack && s.back.Load() == backClientOut {
		// Counted once the loop has it (loopreturn.go).
		s.back.Store(backNone)
		s.srv.metrics.LoopReturns.Inc()
	}
	s.log.Debug("relaying on an event loop")
	// Closing the net.Conns removes them from Go's netpoller; the sockets
	// stay open through the dups.
	s.client.Close()
	s.server.Close()
	s.connMu.Unlock()
	s.srv.metrics.LoopSessions.Inc()
	<-ls.done
	s.srv.metrics.LoopSessions.Dec()
	if ls.handback {
		return s.resumeOnGoroutines(ls, cfd, sfd)
	}

	// The last bytes the sockets did not take at once; forceClose can still
	// cut this short (restFDs).
	s.connMu.Lock()
	s.onLoop = nil
	s.restFDs = []int{cfd, sfd}
	skip := s.forced || ls.forced
	s.connMu.Unlock()
	if !skip {
		writeRest(ls.c.fd, ls.c.out[ls.c.off:], 5*time.Second)
		writeRest(ls.u.fd, ls.u.out[ls.u.off:], time.Second)
	}
	s.connMu.Lock()
	s.restFDs = nil
	unix.Close(cfd)
	unix.Close(sfd)
	s.connMu.Unlock()
	cerr, serr := ls.cerr, ls.serr
	if serr != nil {
		serr, cerr = &upstreamError{serr}, net.ErrClosed
	}
	return true, relayResult(cerr, serr)
}

// resumeOnGoroutines takes a session back from its loop (handBack): it
// rebuilds the connections and readers over the same sockets with the
// bytes the loop had read in front, leaves what the loop had not written
// and the rest of the messages it had begun to relay to the goroutines
// (s.resume), and reports ok false, so relay goes on with the goroutine
// relay.
func (s *session) resumeOnGoroutines(ls *loopSession, cfd, sfd int) (ok bool, err error) {
	s.connMu.Lock()
	s.onLoop = nil
	if s.forced {
		s.connMu.Unlock()
		unix.Close(cfd)
		unix.Close(sfd)
		return true, nil // shut down meanwhile
	}
	s.connMu.Unlock()
	cconn, cerr := fdConn(cfd)
	sconn, serr := fdConn(sfd)
	s.connMu.Lock()
	if s.forced || cerr != nil || serr != nil {
		s.connMu.Unlock()
		for _, c := range []net.Conn{cconn, sconn} {
			if c != nil {
				c.Close()
			}
		}
		if cerr == nil && serr == nil {
			return true, nil // shut down meanwhile
		}
		return true, fmt.Errorf("taking the session back from the event loop: %w", errors.Join(cerr, serr))
	}
	client, server := withPrefix(cconn, ls.cLeft), withPrefix(sconn, ls.uLeft)
	s.client, s.server = client, server // under connMu: forceClose closes these from now on
	s.connMu.Unlock()
	// The loop's writers and the readers it used for their headers are
	// done with: a session that moves often holds no more of them.
	s.bufs.drop([]*bufio.Reader{s.cr.r, s.sr.r}, []*bufio.Writer{s.sw, s.cw})
	s.setClientConn(client, s.cfg.Proxy.MaxMessage)
	s.cr.knob = "proxy.max_message"
	// The server reader wakes for the way back to the loop
	// (loopreturn.go) as the client reader does for a shutdown.
	sw := &wakeReader{conn: server}
	s.sr = s.bufs.msgReader(sw, math.MaxInt32)
	s.sr.wake = sw
	s.sw = s.bufs.writer(server)
	s.keyCtx = s.ctx
	s.handedBack = true
	s.back.Store(backNone)
	s.log.Debug("relaying on goroutines from here")
	if s.srv.draining.Load() {
		// A drain wake-up sent while the loop still had the session
		// reached only the loop; the goroutine relay checks at its next
		// message boundary.
		s.wake()
	}
	// What the loop could not write yet, and the rest of a message it had
	// begun to relay, go first, each way on its own goroutine
	// (resumeToServer, resumeToClient): each peer may be blocked sending
	// to pgveil until it reads what pgveil sends it.
	s.resume = &resumed{
		toClient: ls.c.out[ls.c.off:], fromServer: ls.u.stream, dropServer: ls.u.discard,
		toServer: ls.u.out[ls.u.off:], fromClient: ls.c.stream, dropClient: ls.c.discard,
	}
	return false, nil
}

// fdConn makes a net.Conn of a socket, which it takes over.
func fdConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "socket")
	c, err := net.FileConn(f) // a dup of fd
	f.Close()
	return c, err
}

// withPrefix returns c reading left first.
func withPrefix(c net.Conn, left []byte) net.Conn {
	if len(left) == 0 {
		return c
	}
	return &leftConn{Conn: c, left: left}
}

// leftConn is a connection whose first bytes were read already, by an
// event loop: Read returns them first.
type leftConn struct {
	net.Conn
	left []byte
}

func (c *leftConn) Read(p []byte) (int, error) {
	if len(c.left) > 0 {
		n := copy(p, c.left)
		c.left = c.left[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// rawConn is c without a leftConn around it.
func rawConn(c net.Conn) net.Conn {
	if lc, ok := c.(*leftConn); ok {
		return lc.Conn
	}
	return c
}

// unread is what a leftConn has not returned yet.
func unread(c net.Conn) []byte {
	if lc, ok := c.(*leftConn); ok {
		return lc.left
	}
	return nil
}

// buffered copies the bytes a reader had buffered (usually none).
func buffered(m *msgReader) []byte {
	n := m.r.Buffered()
	if n == 0 {
		return nil
	}
	b, _ := m.r.Peek(n)
	return append([]byte(nil), b...)
}

// dupSocket returns a duplicate of c's socket, non-blocking.
func dupSocket(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// writeRest writes b to fd, blocking up to timeout: the last bytes of a
// session that the socket did not take at once.
func writeRest(fd int, b []byte, timeout time.Duration) {
	if len(b) == 0 {
		return
	}
	if unix.SetNonblock(fd, false) != nil {
		return
	}
	deadline := time.Now().Add(timeout)
	for len(b) > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		// SO_SNDTIMEO bounds one call: set what is left of the whole.
		tv := unix.NsecToTimeval(left.Nanoseconds())
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
		n, err := unix.SendmsgN(fd, b, nil, nil, unix.MSG_NOSIGNAL)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		b = b[n:]
	}
}

// alive reports that the loop runs (it has not stopped or failed).
func (l *eventLoop) alive() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.closed
}

// shutdownSockets ends the blocking writes of writeRest at once.
func shutdownSockets(fds []int) {
	for _, fd := range fds {
		unix.Shutdown(fd, unix.SHUT_RDWR)
	}
}

// loopWake asks a loop session to end if it is idle while pgveil drains.
func (ls *loopSession) wake() { ls.l.submit(ls.checkDrain) }

// loopForceClose ends a loop session at once, with no last messages.
func (ls *loopSession) forceClose() {
	ls.l.submit(func() {
		if !ls.ended {
			ls.cerr, ls.forced = net.ErrClosed, true
			ls.end()
		}
	})
}
