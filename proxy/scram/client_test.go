package scram

import (
	"strings"
	"testing"
)

func TestClientFirstFlags(t *testing.T) {
	for _, tc := range []struct {
		mechanism string
		cb        []byte
		prefix    string
	}{
		{MechanismSCRAM, nil, "n,,n=,r="},
		{MechanismSCRAM, testCB, "y,,n=,r="},
		{MechanismSCRAMPlus, testCB, "p=tls-server-end-point,,n=,r="},
	} {
		got := string(NewClientFromPassword("x").First(tc.mechanism, tc.cb))
		if !strings.HasPrefix(got, tc.prefix) || len(got) != len(tc.prefix)+24 || !isPrintable(got[len(tc.prefix):]) {
			t.Errorf("%s cb=%v: %q", tc.mechanism, tc.cb != nil, got)
		}
	}
	c := NewClientFromPassword("x")
	c.user = "a=b,c"
	if got := string(c.First(MechanismSCRAM, nil)); !strings.HasPrefix(got, "n,,n=a=3Db=2Cc,r=") {
		t.Errorf("escaping: %q", got)
	}
	for _, tc := range []struct {
		mechanism string
		cb        []byte
	}{{MechanismSCRAMPlus, nil}, {"SCRAM-SHA-1", nil}} {
		c := NewClientFromPassword("x")
		c.First(tc.mechanism, tc.cb)
		if _, err := c.Final([]byte(rfcServerFirst)); sqlState(err) != CodeProtocolViolation {
			t.Errorf("%s cb=%v: %v", tc.mechanism, tc.cb != nil, err)
		}
	}
}

// keyClient returns a Client holding the RFC 7677 user's ClientKey, past
// First with the RFC's nonce.
func keyClient(t *testing.T, v *Verifier) *Client {
	t.Helper()
	key, _ := keysFromPassword("pencil", rfcVerifier(t).Salt, 4096)
	c := NewClientFromKey(key, v)
	c.user, c.fixedNonce = "user", rfcClientNonce
	c.First(MechanismSCRAM, nil)
	return c
}

func TestClientFromKeyRefuses(t *testing.T) {
	v := rfcVerifier(t)

	// The upstream's salt or iteration count is not the verifier's: the
	// password changed since the verifier was read.
	for _, serverFirst := range []string{
		strings.Replace(rfcServerFirst, "i=4096", "i=8192", 1),
		strings.Replace(rfcServerFirst, rfcSaltB64, "c2FsdHNhbHRzYWx0c2FsdA==", 1),
	} {
		_, err := keyClient(t, v).Final([]byte(serverFirst))
		if sqlState(err) != CodeInvalidAuthorizationSpec || !strings.Contains(err.Error(), "salt or iteration count differ") {
			t.Errorf("%q: %v", serverFirst, err)
		}
	}

	// A key that does not belong to the verifier.
	other := NewVerifier("other", v.Salt, v.Iterations)
	if _, err := keyClient(t, other).Final([]byte(rfcServerFirst)); sqlState(err) != CodeInvalidAuthorizationSpec {
		t.Errorf("foreign key: %v", err)
	}
	// No verifier at all.
	if _, err := keyClient(t, nil).Final([]byte(rfcServerFirst)); sqlState(err) != CodeInvalidAuthorizationSpec {
		t.Errorf("nil verifier: %v", err)
	}
}

func TestClientFinalRefuses(t *testing.T) {
	for _, tc := range []struct{ name, msg string }{
		{"empty", ""},
		{"mandatory extension", "m=x," + rfcServerFirst},
		{"nonce not ours", strings.Replace(rfcServerFirst, "rOpr", "XOpr", 1)},
		{"no server nonce", "r=" + rfcClientNonce + ",s=" + rfcSaltB64 + ",i=4096"},
		{"non-printable nonce", "r=" + rfcClientNonce + "a b,s=" + rfcSaltB64 + ",i=4096"},
		{"no salt", "r=" + rfcClientNonce + "abc,i=4096"},
		{"bad salt", "r=" + rfcClientNonce + "abc,s=!!,i=4096"},
		{"empty salt", "r=" + rfcClientNonce + "abc,s=,i=4096"},
		{"no iterations", "r=" + rfcClientNonce + "abc,s=" + rfcSaltB64},
		{"zero iterations", "r=" + rfcClientNonce + "abc,s=" + rfcSaltB64 + ",i=0"},
		{"plus iterations", "r=" + rfcClientNonce + "abc,s=" + rfcSaltB64 + ",i=+4096"},
		{"huge iterations", "r=" + rfcClientNonce + "abc,s=" + rfcSaltB64 + ",i=99999999999"},
		{"bad extension", rfcServerFirst + ",="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := keyClient(t, rfcVerifier(t)).Final([]byte(tc.msg)); err == nil || sqlState(err) == "" {
				t.Fatalf("accepted: %q %v", out, err)
			}
		})
	}
}

func TestClientVerify(t *testing.T) {
	for _, tc := range []struct {
		name, msg, code string
	}{
		{"ok", rfcServerFinal, ""},
		{"ok with extension", rfcServerFinal + ",x=1", ""},
		{"wrong signature", "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", CodeInvalidAuthorizationSpec},
		{"server error", "e=invalid-proof", CodeInvalidAuthorizationSpec},
		{"short signature", "v=AAAA", CodeProtocolViolation},
		{"unknown attribute", "x=1", CodeProtocolViolation},
		{"empty", "", CodeProtocolViolation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := keyClient(t, rfcVerifier(t))
			if _, err := c.Final([]byte(rfcServerFirst)); err != nil {
				t.Fatal(err)
			}
			err := c.Verify([]byte(tc.msg))
			if sqlState(err) != tc.code || (tc.code == "") != (err == nil) {
				t.Fatalf("got %v (%s), want %q", err, sqlState(err), tc.code)
			}
		})
	}
}
