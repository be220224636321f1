package scram

import (
	"bytes"
	"testing"
)

// The SCRAM-SHA-256 example exchange of RFC 7677 §3 (user "user", password
// "pencil").
const (
	rfcClientNonce = "rOprNGfwEbeRWgbNEkqO"
	rfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	rfcSaltB64     = "W22ZaJ0SNY7soEsUEjb6gQ=="
	rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

func rfcVerifier(t testing.TB) *Verifier {
	t.Helper()
	salt, err := b64.DecodeString(rfcSaltB64)
	if err != nil {
		t.Fatal(err)
	}
	return NewVerifier("pencil", salt, 4096)
}

func TestRFC7677Exchange(t *testing.T) {
	v := rfcVerifier(t)

	srv := NewServer(v, nil)
	srv.fixedNonce = rfcServerNonce
	cli := NewClientFromPassword("pencil")
	cli.user, cli.fixedNonce = "user", rfcClientNonce

	first := cli.First(MechanismSCRAM, nil)
	expectMsg(t, "client-first", first, rfcClientFirst)
	serverFirst, err := srv.Start(MechanismSCRAM, first)
	if err != nil {
		t.Fatal(err)
	}
	expectMsg(t, "server-first", serverFirst, rfcServerFirst)
	final, err := cli.Final(serverFirst)
	if err != nil {
		t.Fatal(err)
	}
	expectMsg(t, "client-final", final, rfcClientFinal)
	serverFinal, clientKey, err := srv.Finish(final)
	if err != nil {
		t.Fatal(err)
	}
	expectMsg(t, "server-final", serverFinal, rfcServerFinal)
	if err := cli.Verify(serverFinal); err != nil {
		t.Fatal(err)
	}
	wantKey, _ := keysFromPassword("pencil", v.Salt, v.Iterations)
	if !bytes.Equal(clientKey, wantKey) {
		t.Fatal("recovered ClientKey differs from the one derived from the password")
	}

	// The recovered key alone produces the RFC's proof, byte for byte.
	kc := NewClientFromKey(clientKey, v)
	kc.user, kc.fixedNonce = "user", rfcClientNonce
	expectMsg(t, "key client-first", kc.First(MechanismSCRAM, nil), rfcClientFirst)
	final, err = kc.Final([]byte(rfcServerFirst))
	if err != nil {
		t.Fatal(err)
	}
	expectMsg(t, "key client-final", final, rfcClientFinal)
	if err := kc.Verify([]byte(rfcServerFinal)); err != nil {
		t.Fatal(err)
	}
}

// TestRFC7677ServerMessages drives Server with the RFC's literal client
// messages: the "n=user" it must ignore included.
func TestRFC7677ServerMessages(t *testing.T) {
	srv := NewServer(rfcVerifier(t), nil)
	srv.fixedNonce = rfcServerNonce
	sf, err := srv.Start(MechanismSCRAM, []byte(rfcClientFirst))
	if err != nil {
		t.Fatal(err)
	}
	expectMsg(t, "server-first", sf, rfcServerFirst)
	fin, _, err := srv.Finish([]byte(rfcClientFinal))
	if err != nil {
		t.Fatal(err)
	}
	expectMsg(t, "server-final", fin, rfcServerFinal)
}

func expectMsg(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if string(got) != want {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}
