package proxy

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
)

// Buffer sizes of the relay. A read buffer holds many small messages, so a
// pipeline or a burst of DataRows is handled with one read syscall; a write
// buffer is flushed once per round trip (when the reader has nothing more).
const (
	readBufferSize  = 32 * 1024
	writeBufferSize = 32 * 1024
	// streamThreshold is the body size above which a message that needs no
	// change is copied through in pieces instead of being held whole.
	streamThreshold = 64 * 1024
)

// msgReader reads typed protocol messages (a type byte, an int32 length that
// counts itself, the body) with a size limit, reusing one body buffer.
// A body returned by readBody is valid only until the next read.
type msgReader struct {
	r   *bufio.Reader
	max int // largest allowed body+4 (the length field's value)
	buf []byte
	hdr [5]byte
	// pending is the body length of the message whose header was read but
	// whose body was not yet consumed.
	pending int
	// knob names the config setting behind max, for the error message.
	knob string
	// wake, for the client side, is told when a body is being read so that
	// a shutdown wake-up never cuts a message in half.
	wake *wakeReader
	// cut is set when forwardBody failed after writing part of a message:
	// the writer's stream ends inside that message, so nothing may follow
	// it (no Terminate upstream, no ErrorResponse to the client; the peer
	// sees the stream end, as it would from the real server or client).
	cut bool
}

func newMsgReader(r io.Reader, max int) *msgReader {
	return &msgReader{r: bufio.NewReaderSize(r, readBufferSize), max: max, knob: "proxy.max_startup_message"}
}

// Sessions take their 32 KiB readers and writers from pools and give them
// back when they end: a connection otherwise leaves 128 KiB of garbage, and
// under many short connections the collector's work on it was a sixth of
// pgveil's CPU (docs/BENCH.md). A session gives them back only when no
// goroutine can still touch them (session.releaseBuffers).
var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }}
)

// pooledBuffers are the pooled readers and writers one session holds.
type pooledBuffers struct {
	readers []*bufio.Reader
	writers []*bufio.Writer
	held    atomic.Int32 // len(readers)+len(writers), for tests and leak checks
}

// reader returns a pooled reader over r, held until release.
func (p *pooledBuffers) reader(r io.Reader) *bufio.Reader {
	b := readerPool.Get().(*bufio.Reader)
	b.Reset(r)
	p.readers = append(p.readers, b)
	p.held.Add(1)
	return b
}

// writer returns a pooled writer to w, held until release.
func (p *pooledBuffers) writer(w io.Writer) *bufio.Writer {
	b := writerPool.Get().(*bufio.Writer)
	b.Reset(w)
	p.writers = append(p.writers, b)
	p.held.Add(1)
	return b
}

// msgReader returns a message reader over r with a pooled buffer.
func (p *pooledBuffers) msgReader(r io.Reader, max int) *msgReader {
	return &msgReader{r: p.reader(r), max: max, knob: "proxy.max_startup_message"}
}

// release gives every held reader and writer back, dropping what they
// buffered and the connections they pointed to.
func (p *pooledBuffers) release() {
	for _, b := range p.readers {
		b.Reset(nil)
		readerPool.Put(b)
	}
	for _, b := range p.writers {
		b.Reset(nil)
		writerPool.Put(b)
	}
	p.readers, p.writers = nil, nil
	p.held.Store(0)
}

// drop gives back the held readers and writers among rs and ws that are
// no longer used (a relay that moved between the event loop and
// goroutines), so a session that moves often holds no more of them.
func (p *pooledBuffers) drop(rs []*bufio.Reader, ws []*bufio.Writer) {
	for _, b := range rs {
		if i := slices.Index(p.readers, b); i >= 0 {
			p.readers = slices.Delete(p.readers, i, i+1)
			p.held.Add(-1)
			b.Reset(nil)
			readerPool.Put(b)
		}
	}
	for _, b := range ws {
		if i := slices.Index(p.writers, b); i >= 0 {
			p.writers = slices.Delete(p.writers, i, i+1)
			p.held.Add(-1)
			b.Reset(nil)
			writerPool.Put(b)
		}
	}
}

// tooLargeError reports a message over the configured limit. It is a
// protocol violation: the stream cannot be resynchronised, so the session ends.
type tooLargeError struct {
	typ    byte
	length int
	limit  int
	knob   string
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("message of type %q and length %d exceeds pgveil's limit of %d bytes (%s)", e.typ, e.length, e.limit, e.knob)
}

// readHeader reads the next message's type and length. The caller must then
// call readBody or forwardBody exactly once.
//
// The header is peeked before it is consumed, so a read interrupted by a
// wake-up deadline leaves the stream intact and can simply be retried.
func (m *msgReader) readHeader() (typ byte, bodyLen int, err error) {
	if m.wake != nil {
		m.wake.mid = false
	}
	h, err := m.r.Peek(5)
	if err != nil {
		if len(h) > 0 && err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, err
	}
	copy(m.hdr[:], h)
	m.r.Discard(5)
	if m.wake != nil {
		m.wake.mid = true
	}
	n := int(int32(binary.BigEndian.Uint32(m.hdr[1:])))
	if err := m.checkLength(m.hdr[0], n); err != nil {
		return 0, 0, err
	}
	m.pending = n - 4
	return m.hdr[0], m.pending, nil
}

// checkLength judges a message's length field n (which counts itself)
// against the protocol and this reader's limit.
func (m *msgReader) checkLength(typ byte, n int) error {
	if n < 4 {
		return &protocolError{msg: fmt.Sprintf("invalid length %d in message of type %q", n, typ)}
	}
	if n > m.max {
		return &tooLargeError{typ: typ, length: n, limit: m.max, knob: m.knob}
	}
	return nil
}

// readBody reads the body announced by the last header into the reused buffer.
func (m *msgReader) readBody() ([]byte, error) {
	n := m.pending
	m.pending = 0
	if cap(m.buf) < n {
		m.buf = make([]byte, n, growCap(n))
	}
	b := m.buf[:n]
	if _, err := io.ReadFull(m.r, b); err != nil {
		return nil, unexpectedEOF(err)
	}
	// Do not keep a huge buffer alive after one huge message.
	if cap(m.buf) > 4*streamThreshold && n <= streamThreshold {
		m.buf = nil
	}
	return b, nil
}

// forwardBody copies the header and body of the current message to w
// without interpreting it: small bodies through the read buffer, large
// ones streamed so that a 100 MB DataRow never sits in memory whole.
func (m *msgReader) forwardBody(w *bufio.Writer) error {
	n := m.pending
	m.pending = 0
	m.cut = true
	if _, err := w.Write(m.hdr[:]); err != nil {
		return err
	}
	if err := m.copyN(w, n); err != nil {
		return err
	}
	m.cut = false
	return nil
}

// passRest copies (or with drop, skips) the last n body bytes of a message
// whose header and start an event loop relayed.
func (m *msgReader) passRest(w *bufio.Writer, n int, drop bool) error {
	if drop {
		m.pending = n
		return m.discardBody()
	}
	m.cut = true
	if err := m.copyN(w, n); err != nil {
		return err
	}
	m.cut = false
	return nil
}

// copyN copies n bytes to w through the read buffer, a buffer-full at a
// time: no copy buffer of its own (io.CopyN would allocate one per large
// message).
func (m *msgReader) copyN(w *bufio.Writer, n int) error {
	for n > 0 {
		if m.r.Buffered() == 0 {
			if _, err := m.r.Peek(1); err != nil {
				return unexpectedEOF(err)
			}
		}
		b, _ := m.r.Peek(min(n, m.r.Buffered()))
		if _, err := w.Write(b); err != nil {
			return err
		}
		m.r.Discard(len(b))
		n -= len(b)
	}
	return nil
}

// discardBody skips the current message's body.
func (m *msgReader) discardBody() error {
	n := m.pending
	m.pending = 0
	if _, err := m.r.Discard(n); err != nil {
		return unexpectedEOF(err)
	}
	return nil
}

// header returns the 5 header bytes of the current message, for callers
// that read the body and then forward both unchanged.
func (m *msgReader) header() []byte { return m.hdr[:] }

// buffered reports whether more input is already buffered: the relay
// flushes its writer only when it is not, once per round trip.
func (m *msgReader) buffered() int { return m.r.Buffered() }

// messageBuffered reports whether the read buffer holds a whole next
// message. The relay flushes what it wrote when it does not: the rest of
// a message begun may be long in coming (the peer may wait for the
// answer to what came before it, which must not sit in pgveil's buffer).
func (m *msgReader) messageBuffered() bool {
	n := m.r.Buffered()
	if n < 5 {
		return false
	}
	h, _ := m.r.Peek(5)
	return n >= 1+int(binary.BigEndian.Uint32(h[1:]))
}

func growCap(n int) int {
	if n < 8192 {
		return 8192
	}
	return n
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// protocolError is a malformed message: the session ends with SQLSTATE 08P01.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "protocol violation: " + e.msg }

// writeMsg appends a message with type typ and body to w.
func writeMsg(w io.Writer, typ byte, body []byte) error {
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(body)+4))
	w.Write(h[:])
	_, err := w.Write(body)
	return err
}

// cstring reads a NUL-terminated string at b[off:], returning it and the
// offset after the NUL.
func cstring(b []byte, off int) (string, int, bool) {
	for i := off; i < len(b); i++ {
		if b[i] == 0 {
			return string(b[off:i]), i + 1, true
		}
	}
	return "", off, false
}

// cstringBytes is cstring without a copy; the result aliases b.
func cstringBytes(b []byte, off int) ([]byte, int, bool) {
	for i := off; i < len(b); i++ {
		if b[i] == 0 {
			return b[off:i], i + 1, true
		}
	}
	return nil, off, false
}
