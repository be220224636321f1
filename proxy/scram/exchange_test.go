package scram

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
)

// testCB is stand-in tls-server-end-point data for exchanges without a real
// certificate (channel_binding_test.go covers real ones).
var testCB = func() []byte { s := sha256.Sum256([]byte("pgveil test certificate")); return s[:] }()

// exchange runs a whole SCRAM exchange between srv and cli and returns the
// ClientKey srv recovered, or the first error of either side.
func exchange(srv *Server, cli *Client, mechanism string, clientCB []byte) ([]byte, error) {
	first := cli.First(mechanism, clientCB)
	serverFirst, err := srv.Start(mechanism, first)
	if err != nil {
		return nil, err
	}
	final, err := cli.Final(serverFirst)
	if err != nil {
		return nil, err
	}
	serverFinal, key, err := srv.Finish(final)
	if err != nil {
		return nil, err
	}
	return key, cli.Verify(serverFinal)
}

func sqlState(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.SQLState()
	}
	return ""
}

func TestRoundTrip(t *testing.T) {
	v := NewVerifier("s3cret", []byte("0123456789abcdef"), 4096)
	want, _ := keysFromPassword("s3cret", v.Salt, v.Iterations)
	for _, tc := range []struct {
		name      string
		serverCB  []byte
		mechanism string
		clientCB  []byte
	}{
		{"plain, no TLS", nil, MechanismSCRAM, nil},
		{"plain, client cannot bind, server could", testCB, MechanismSCRAM, nil},
		{"PLUS", testCB, MechanismSCRAMPlus, testCB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 1. The user logs in to pgveil with a password.
			key, err := exchange(NewServer(v, tc.serverCB), NewClientFromPassword("s3cret"), tc.mechanism, tc.clientCB)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(key, want) {
				t.Fatal("recovered ClientKey is wrong")
			}
			// 2. pgveil logs in elsewhere with the recovered key.
			key2, err := exchange(NewServer(v, tc.serverCB), NewClientFromKey(key, v), tc.mechanism, tc.clientCB)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(key2, want) {
				t.Fatal("second-hop ClientKey is wrong")
			}
		})
	}
}

func TestMechanisms(t *testing.T) {
	v := rfcVerifier(t)
	if got := NewServer(v, nil).Mechanisms(); len(got) != 1 || got[0] != MechanismSCRAM {
		t.Errorf("without TLS: %v", got)
	}
	if got := NewServer(v, testCB).Mechanisms(); len(got) != 2 || got[0] != MechanismSCRAMPlus || got[1] != MechanismSCRAM {
		t.Errorf("with TLS: %v", got)
	}
	for _, tc := range []struct {
		offered []string
		cb      []byte
		want    string
	}{
		{[]string{MechanismSCRAMPlus, MechanismSCRAM}, testCB, MechanismSCRAMPlus},
		{[]string{MechanismSCRAMPlus, MechanismSCRAM}, nil, MechanismSCRAM},
		{[]string{MechanismSCRAM}, testCB, MechanismSCRAM},
		{[]string{"OAUTHBEARER"}, testCB, ""},
	} {
		got, err := SelectMechanism(tc.offered, tc.cb)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("SelectMechanism(%v, cb=%v) = %q, %v", tc.offered, tc.cb != nil, got, err)
		}
	}
}

func TestWrongPassword(t *testing.T) {
	v := NewVerifier("right", []byte("saltsaltsaltsalt"), 4096)
	srv := NewServer(v, nil)
	srv.User = "alice"
	_, err := exchange(srv, NewClientFromPassword("wrong"), MechanismSCRAM, nil)
	if sqlState(err) != CodeInvalidPassword || err.Error() != `password authentication failed for user "alice"` {
		t.Fatalf("got %v (%s)", err, sqlState(err))
	}
}

// A mock verifier (no such role) fails exactly like a wrong password, and its
// salt is stable per user name so it cannot be told from a real role.
func TestMockVerifier(t *testing.T) {
	secret := []byte("per-process secret")
	a, b := MockVerifier("ghost", secret), MockVerifier("ghost", secret)
	if !bytes.Equal(a.Salt, b.Salt) || a.Iterations != DefaultIterations || len(a.Salt) != DefaultSaltLen {
		t.Fatal("mock salt not deterministic")
	}
	if bytes.Equal(a.Salt, MockVerifier("other", secret).Salt) {
		t.Fatal("mock salt does not depend on the user")
	}
	for _, v := range []*Verifier{a, nil} {
		srv := NewServer(v, nil)
		srv.User = "ghost"
		_, err := exchange(srv, NewClientFromPassword("anything"), MechanismSCRAM, nil)
		if sqlState(err) != CodeInvalidPassword || err.Error() != `password authentication failed for user "ghost"` {
			t.Fatalf("got %v", err)
		}
	}
}

func TestChannelBinding(t *testing.T) {
	v := NewVerifier("pw", []byte("saltsaltsaltsalt"), 4096)
	other := sha256.Sum256([]byte("a certificate of a man in the middle"))

	// The client binds to a different certificate than pgveil's: the
	// connection was intercepted.
	_, err := exchange(NewServer(v, testCB), NewClientFromPassword("pw"), MechanismSCRAMPlus, other[:])
	if sqlState(err) != CodeInvalidAuthorizationSpec || err.Error() != "SCRAM channel binding check failed" {
		t.Fatalf("mismatched binding: %v", err)
	}

	// Downgrade: the client can bind ("y") but was shown no -PLUS, while
	// pgveil offered it: someone stripped it from the offer.
	_, err = exchange(NewServer(v, testCB), NewClientFromPassword("pw"), MechanismSCRAM, testCB)
	if sqlState(err) != CodeInvalidAuthorizationSpec || !bytes.Contains([]byte(err.Error()), []byte("SCRAM channel binding negotiation error")) {
		t.Fatalf("downgrade: %v", err)
	}

	// "y" is fine when pgveil has no TLS and so offered no -PLUS.
	if _, err := exchange(NewServer(v, nil), NewClientFromPassword("pw"), MechanismSCRAM, testCB); err != nil {
		t.Fatalf("y without TLS: %v", err)
	}

	// -PLUS is not offered without TLS.
	_, err = exchange(NewServer(v, nil), NewClientFromPassword("pw"), MechanismSCRAMPlus, testCB)
	if sqlState(err) != CodeProtocolViolation || err.Error() != "client selected an invalid SASL authentication mechanism" {
		t.Fatalf("PLUS without TLS: %v", err)
	}
}

func TestOutOfOrder(t *testing.T) {
	v := rfcVerifier(t)
	srv := NewServer(v, nil)
	if _, _, err := srv.Finish([]byte(rfcClientFinal)); sqlState(err) != CodeProtocolViolation {
		t.Fatalf("Finish before Start: %v", err)
	}
	if _, err := srv.Start(MechanismSCRAM, []byte(rfcClientFirst)); sqlState(err) != CodeProtocolViolation {
		t.Fatalf("Start after failure: %v", err)
	}

	srv = NewServer(v, nil)
	srv.fixedNonce = rfcServerNonce
	if _, err := srv.Start(MechanismSCRAM, []byte(rfcClientFirst)); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Start(MechanismSCRAM, []byte(rfcClientFirst)); sqlState(err) != CodeProtocolViolation {
		t.Fatalf("Start twice: %v", err)
	}
	if _, _, err := srv.Finish([]byte(rfcClientFinal)); sqlState(err) != CodeProtocolViolation {
		t.Fatalf("Finish after failure: %v", err)
	}

	cli := NewClientFromPassword("pencil")
	if _, err := cli.Final([]byte(rfcServerFirst)); sqlState(err) != CodeProtocolViolation {
		t.Fatalf("Final before First: %v", err)
	}
	if err := NewClientFromPassword("x").Verify([]byte(rfcServerFinal)); sqlState(err) != CodeProtocolViolation {
		t.Fatalf("Verify before Final: %v", err)
	}
}
