package pgtest

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgproto3/v2"
)

// Config says where a script connects and as whom.
type Config struct {
	Addr     string // host:port, plain TCP (no SSLRequest is sent)
	User     string
	Password string // for cleartext, MD5 and SCRAM-SHA-256; "" for trust
	Database string
	// Timeout bounds each directive's reads (and the final wait for the
	// server to close). Zero means 10 s. It only turns a hang into a failure;
	// nothing waits for it to pass.
	Timeout time.Duration
}

func (c Config) timeout() time.Duration {
	if c.Timeout == 0 {
		return 10 * time.Second
	}
	return c.Timeout
}

// conn is one script's connection.
type conn struct {
	cfg  Config
	nc   net.Conn
	r    *bufio.Reader
	norm normalizer
	eof  bool // the server closed the connection
}

func dial(ctx context.Context, cfg Config) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	return &conn{cfg: cfg, nc: nc, r: bufio.NewReaderSize(nc, 64<<10)}, nil
}

// output is what one directive printed, in both forms (see Result).
type output struct {
	portable, raw []string
}

func (c *conn) record(out *output, m *backendMessage) {
	out.portable = append(out.portable, c.norm.render(m, true))
	out.raw = append(out.raw, c.norm.render(m, false))
}

// next reads one message within the directive's deadline.
func (c *conn) next(deadline time.Time) (*backendMessage, error) {
	if err := c.nc.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	m, err := readMessage(c.r)
	if isClosed(err) {
		c.eof = true
	}
	return m, err
}

// isClosed tells a peer's close (EOF or reset) from other read errors.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// startupMessage encodes a StartupMessage keeping the parameters' order
// (pgproto3/v2 takes a map, whose order is random).
func startupMessage(minor uint32, params [][2]string) []byte {
	buf := make([]byte, 8, 256)
	binary.BigEndian.PutUint32(buf[4:], 3<<16|minor)
	for _, p := range params {
		buf = append(buf, p[0]...)
		buf = append(buf, 0)
		buf = append(buf, p[1]...)
		buf = append(buf, 0)
	}
	buf = append(buf, 0)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)))
	return buf
}

// startup sends the StartupMessage for d (nil: the default one),
// authenticates, and reads through ReadyForQuery or an ErrorResponse.
func (c *conn) startup(d *Directive) (output, error) {
	var out output
	minor := uint32(0)
	params := [][2]string{{"user", c.cfg.User}, {"database", c.cfg.Database}}
	if d != nil {
		for _, a := range d.Args {
			v := strings.TrimPrefix(a, "protocol=")
			maj, min, ok := strings.Cut(v, ".")
			n, err := strconv.ParseUint(min, 10, 16)
			if !ok || maj != "3" || err != nil {
				return out, fmt.Errorf("startup: bad protocol %q", v)
			}
			minor = uint32(n)
		}
		for _, in := range d.Input {
			k, v, _ := strings.Cut(in, "=")
			params = append(params, [2]string{k, v})
		}
	}
	deadline := time.Now().Add(c.cfg.timeout())
	if err := c.write(startupMessage(minor, params), deadline); err != nil {
		return out, err
	}
	var sc *scramClient
	for {
		m, err := c.next(deadline)
		if err != nil {
			return out, fmt.Errorf("startup: %w (read so far: %v)", err, out.portable)
		}
		var reply pgproto3.FrontendMessage
		switch msg := m.msg.(type) {
		case *pgproto3.AuthenticationCleartextPassword:
			reply = &pgproto3.PasswordMessage{Password: c.cfg.Password}
		case *pgproto3.AuthenticationMD5Password:
			reply = &pgproto3.PasswordMessage{Password: md5Password(c.cfg.User, c.cfg.Password, msg.Salt)}
		case *pgproto3.AuthenticationSASL:
			if !slices.Contains(msg.AuthMechanisms, "SCRAM-SHA-256") {
				return out, fmt.Errorf("startup: no SCRAM-SHA-256 among %v", msg.AuthMechanisms)
			}
			sc = newSCRAMClient(c.cfg.Password)
			reply = &pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: sc.clientFirst()}
		case *pgproto3.AuthenticationSASLContinue:
			if sc == nil {
				return out, errors.New("startup: SASLContinue before SASL")
			}
			final, err := sc.clientFinal(msg.Data)
			if err != nil {
				return out, fmt.Errorf("startup: %w", err)
			}
			reply = &pgproto3.SASLResponse{Data: final}
		case *pgproto3.AuthenticationSASLFinal:
			if sc == nil {
				return out, errors.New("startup: SASLFinal before SASL")
			}
			if err := sc.verifyServer(msg.Data); err != nil {
				return out, fmt.Errorf("startup: %w", err)
			}
			continue
		case *pgproto3.AuthenticationGSS, *pgproto3.AuthenticationGSSContinue:
			return out, errors.New("startup: GSS authentication is not supported")
		}
		if reply != nil {
			b, err := reply.Encode(nil)
			if err != nil {
				return out, err
			}
			if err := c.write(b, deadline); err != nil {
				return out, err
			}
			continue
		}
		c.record(&out, m)
		if m.name == "ReadyForQuery" || m.name == "ErrorResponse" {
			return out, nil
		}
	}
}

func md5Password(user, password string, salt [4]byte) string {
	h := md5.Sum([]byte(password + user))
	h = md5.Sum(append([]byte(hex.EncodeToString(h[:])), salt[:]...))
	return "md5" + hex.EncodeToString(h[:])
}

func (c *conn) write(b []byte, deadline time.Time) error {
	if err := c.nc.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := c.nc.Write(b)
	return err
}

// send writes all of a directive's messages at once.
func (c *conn) send(d *Directive) error {
	var buf []byte
	for _, in := range d.Input {
		b, err := encodeFrontend(in)
		if err != nil {
			return err
		}
		buf = append(buf, b...)
	}
	return c.write(buf, time.Now().Add(c.cfg.timeout()))
}

// until reads until each of d's types has been seen in order.
func (c *conn) until(d *Directive) (output, error) {
	var out output
	ignore := d.ignored()
	want := make([]string, len(d.Input))
	for i, t := range d.Input {
		want[i] = strings.TrimSpace(t)
	}
	deadline := time.Now().Add(c.cfg.timeout())
	for len(want) > 0 {
		m, err := c.next(deadline)
		if err != nil {
			return out, fmt.Errorf("until %v: %w", want, err)
		}
		if m.name == want[0] {
			want = want[1:]
		}
		if !ignore[m.name] {
			c.record(&out, m)
		}
	}
	return out, nil
}

// closed reads until the server closes the connection.
func (c *conn) closed() (output, error) {
	var out output
	deadline := time.Now().Add(c.cfg.timeout())
	for {
		m, err := c.next(deadline)
		if c.eof {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("waiting for the server to close: %w", err)
		}
		c.record(&out, m)
	}
}
