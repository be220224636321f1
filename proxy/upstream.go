package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/pgveil/pgveil/policy"
)

// upstreamTLS is the TLS policy towards the real server, as libpq's sslmode.
type upstreamTLS struct {
	mode    policy.UpstreamTLSMode
	config  *tls.Config // nil for disable
	address string
	timeout time.Duration
}

func newUpstreamTLS(u policy.Upstream) (*upstreamTLS, error) {
	up := &upstreamTLS{mode: u.TLS, address: u.Address, timeout: u.ConnectTimeout}
	if u.TLS == policy.UpstreamTLSDisable {
		return up, nil
	}
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(256),
	}
	switch u.TLS {
	case policy.UpstreamTLSPrefer, policy.UpstreamTLSRequire:
		// As libpq: encryption without authentication of the server.
		c.InsecureSkipVerify = true
	case policy.UpstreamTLSVerifyFull:
		c.ServerName = u.ServerName
		if u.CAFile != "" {
			pem, err := os.ReadFile(u.CAFile)
			if err != nil {
				return nil, fmt.Errorf("upstream.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("upstream.ca_file %s: no PEM certificates found", u.CAFile)
			}
			c.RootCAs = pool
		}
	}
	up.config = c
	return up, nil
}

// sslRequest is the 8-byte SSLRequest packet.
var sslRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// dial connects to the upstream server and negotiates TLS per mode. It
// returns the connection and whether it is encrypted.
func (u *upstreamTLS) dial(ctx context.Context) (net.Conn, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", u.address)
	if err != nil {
		return nil, false, err
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetKeepAlive(true)
	}
	if u.config == nil {
		return raw, false, nil
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	if _, err := raw.Write(sslRequest); err != nil {
		raw.Close()
		return nil, false, err
	}
	var answer [1]byte
	if _, err := io.ReadFull(raw, answer[:]); err != nil {
		raw.Close()
		return nil, false, err
	}
	switch answer[0] {
	case 'S':
		tc := tls.Client(raw, u.config)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, false, fmt.Errorf("TLS handshake with upstream: %w", err)
		}
		tc.SetDeadline(time.Time{})
		return tc, true, nil
	case 'N':
		if u.mode == policy.UpstreamTLSPrefer {
			raw.SetDeadline(time.Time{})
			return raw, false, nil
		}
		raw.Close()
		return nil, false, fmt.Errorf("upstream refused TLS but upstream.tls is %s", u.mode)
	default:
		raw.Close()
		return nil, false, fmt.Errorf("upstream answered SSLRequest with %q", answer[0])
	}
}

// forwardCancel relays a CancelRequest packet (length, code, key data) to
// the upstream server byte for byte. pgveil relays BackendKeyData unchanged,
// so the client's key is the server's own and the cancel works whichever
// pgveil replica receives it. The key is never logged.
func (u *upstreamTLS) forwardCancel(ctx context.Context, packet []byte) error {
	c, _, err := u.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(u.timeout))
	if _, err := c.Write(packet); err != nil {
		return err
	}
	// The server closes the connection without answering; wait for that so
	// the cancel has been read before we return.
	var b [1]byte
	c.Read(b[:])
	return nil
}

// Startup packet codes (the int32 after the length).
const (
	codeProtocol3      = 3 << 16
	codeCancelRequest  = 80877102
	codeSSLRequest     = 80877103
	codeGSSENCRequest  = 80877104
	tlsHandshakeRecord = 0x16 // first byte of a direct TLS ClientHello
)

func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
