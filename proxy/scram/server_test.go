package scram

import (
	"strings"
	"testing"
)

// TestServerStartRefuses holds Server.Start against read_client_first_message
// in PostgreSQL's auth-scram.c: same SQLSTATE, same message and detail.
func TestServerStartRefuses(t *testing.T) {
	plusHeader := "p=tls-server-end-point,,"
	for _, tc := range []struct {
		name      string
		tls       bool
		mechanism string
		msg       string
		code      string
		text      string // Error() of the expected error
	}{
		{"unknown mechanism", true, "SCRAM-SHA-1", "n,,n=,r=abc", "08P01", "client selected an invalid SASL authentication mechanism"},
		{"empty", false, MechanismSCRAM, "", "08P01", "malformed SCRAM message: The message is empty."},
		{"NUL byte", false, MechanismSCRAM, "n,,n=\x00,r=abc", "08P01", "malformed SCRAM message: Message length does not match input length."},
		{"too long", false, MechanismSCRAM, "n,,n=,r=" + strings.Repeat("a", maxMessageLen), "08P01", "malformed SCRAM message: The message is too long."},
		{"bad flag", false, MechanismSCRAM, "x,,n=,r=abc", "08P01", `malformed SCRAM message: Unexpected channel-binding flag "'x'".`},
		{"no comma after flag", false, MechanismSCRAM, "n;,n=,r=abc", "08P01", `malformed SCRAM message: Comma expected, but found character "';'".`},
		{"downgrade", true, MechanismSCRAM, "y,,n=,r=abc", "28000", "SCRAM channel binding negotiation error: The client supports SCRAM channel binding but thinks the server does not.  However, this server does support channel binding."},
		{"p flag with plain mechanism", true, MechanismSCRAM, plusHeader + "n=,r=abc", "08P01", "malformed SCRAM message: The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data."},
		{"n flag with PLUS", true, MechanismSCRAMPlus, "n,,n=,r=abc", "08P01", "malformed SCRAM message: The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data."},
		{"y flag with PLUS", true, MechanismSCRAMPlus, "y,,n=,r=abc", "08P01", "malformed SCRAM message: The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data."},
		{"tls-unique", true, MechanismSCRAMPlus, "p=tls-unique,,n=,r=abc", "08P01", `unsupported SCRAM channel-binding type "tls-unique"`},
		{"tls-exporter", true, MechanismSCRAMPlus, "p=tls-exporter,,n=,r=abc", "08P01", `unsupported SCRAM channel-binding type "tls-exporter"`},
		{"authzid", false, MechanismSCRAM, "n,a=admin,n=,r=abc", "0A000", "client uses authorization identity, but it is not supported"},
		{"junk after flag", false, MechanismSCRAM, "n,x,n=,r=abc", "08P01", `malformed SCRAM message: Unexpected attribute "'x'" in client-first-message.`},
		{"mandatory extension", false, MechanismSCRAM, "n,,m=ext,n=,r=abc", "0A000", "client requires an unsupported SCRAM extension"},
		{"no user", false, MechanismSCRAM, "n,,r=abc", "08P01", `malformed SCRAM message: Expected attribute "n" but found "'r'".`},
		{"no nonce", false, MechanismSCRAM, "n,,n=", "08P01", `malformed SCRAM message: Expected attribute "r" but found "0x00".`},
		{"no equals", false, MechanismSCRAM, "n,,n=,r", "08P01", `malformed SCRAM message: Expected character "=" for attribute "r".`},
		{"empty nonce", false, MechanismSCRAM, "n,,n=,r=", "08P01", "non-printable characters in SCRAM nonce"},
		{"non-printable nonce", false, MechanismSCRAM, "n,,n=,r=ab c", "08P01", "non-printable characters in SCRAM nonce"},
		{"bad extension", false, MechanismSCRAM, "n,,n=,r=abc,1=x", "08P01", `malformed SCRAM message: Attribute expected, but found invalid character "'1'".`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cb []byte
			if tc.tls {
				cb = testCB
			}
			srv := NewServer(rfcVerifier(t), cb)
			out, err := srv.Start(tc.mechanism, []byte(tc.msg))
			if err == nil || out != nil {
				t.Fatalf("accepted: %q", out)
			}
			if sqlState(err) != tc.code || err.Error() != tc.text {
				t.Fatalf("got %s %q\nwant %s %q", sqlState(err), err.Error(), tc.code, tc.text)
			}
		})
	}
}

// TestServerStartAccepts lists client-first messages PostgreSQL accepts.
func TestServerStartAccepts(t *testing.T) {
	for _, msg := range []string{
		"n,,n=,r=abc",
		"n,,n=ignored user,r=abc",
		"n,,n=,r=abc,x=extension,y=another",
		"n,,n=,r=abc,", // PostgreSQL tolerates one trailing comma
		"y,,n=,r=abc",  // no TLS: "y" is honest
	} {
		if _, err := NewServer(rfcVerifier(t), nil).Start(MechanismSCRAM, []byte(msg)); err != nil {
			t.Errorf("%q: %v", msg, err)
		}
	}
	if _, err := NewServer(rfcVerifier(t), testCB).Start(MechanismSCRAMPlus, []byte("p=tls-server-end-point,,n=,r=abc")); err != nil {
		t.Errorf("PLUS: %v", err)
	}
}

// TestServerFinishRefuses holds Server.Finish against
// read_client_final_message and verify_final_nonce in PostgreSQL.
func TestServerFinishRefuses(t *testing.T) {
	const nonce = rfcClientNonce + rfcServerNonce
	proof := "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	for _, tc := range []struct {
		name  string
		first string
		final string
		code  string
		text  string
	}{
		{"empty", rfcClientFirst, "", "08P01", "malformed SCRAM message: The message is empty."},
		{"no c", rfcClientFirst, "r=" + nonce + ",p=" + proof, "08P01", `malformed SCRAM message: Expected attribute "c" but found "'r'".`},
		{"c is y for n", rfcClientFirst, "c=eSws,r=" + nonce + ",p=" + proof, "08P01", "unexpected SCRAM channel-binding attribute in client-final-message"},
		{"c with data for n", rfcClientFirst, "c=" + b64.EncodeToString(append([]byte("n,,"), testCB...)) + ",r=" + nonce + ",p=" + proof, "08P01", "unexpected SCRAM channel-binding attribute in client-final-message"},
		{"c is n for y", "y" + rfcClientFirst[1:], "c=biws,r=" + nonce + ",p=" + proof, "08P01", "unexpected SCRAM channel-binding attribute in client-final-message"},
		{"no r", rfcClientFirst, "c=biws,p=" + proof, "08P01", `malformed SCRAM message: Expected attribute "r" but found "'p'".`},
		{"no proof", rfcClientFirst, "c=biws,r=" + nonce, "08P01", "malformed SCRAM message: Attribute expected, but found end of string."},
		{"short proof", rfcClientFirst, "c=biws,r=" + nonce + ",p=AAAA", "08P01", "malformed SCRAM message: Malformed proof in client-final-message."},
		{"proof not base64", rfcClientFirst, "c=biws,r=" + nonce + ",p=" + strings.Repeat("!", 44), "08P01", "malformed SCRAM message: Malformed proof in client-final-message."},
		{"garbage after proof", rfcClientFirst, "c=biws,r=" + nonce + ",p=" + proof + ",x=1", "08P01", "malformed SCRAM message: Garbage found at the end of client-final-message."},
		{"nonce without server part", rfcClientFirst, "c=biws,r=" + rfcClientNonce + ",p=" + proof, "08P01", "invalid SCRAM response: Nonce does not match."},
		{"nonce changed", rfcClientFirst, "c=biws,r=" + nonce[:len(nonce)-1] + "X,p=" + proof, "08P01", "invalid SCRAM response: Nonce does not match."},
		{"nonce longer", rfcClientFirst, "c=biws,r=" + nonce + "X,p=" + proof, "08P01", "invalid SCRAM response: Nonce does not match."},
		{"proof flipped", rfcClientFirst, "c=biws,r=" + nonce + ",p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "28P01", `password authentication failed for user "user"`},
		// An extension changes AuthMessage, so the RFC's proof no longer fits.
		{"extension before proof", rfcClientFirst, "c=biws,r=" + nonce + ",x=1,p=" + proof, "28P01", `password authentication failed for user "user"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := NewServer(rfcVerifier(t), nil)
			srv.User = "user"
			srv.fixedNonce = rfcServerNonce
			if _, err := srv.Start(MechanismSCRAM, []byte(tc.first)); err != nil {
				t.Fatal(err)
			}
			out, key, err := srv.Finish([]byte(tc.final))
			if err == nil || out != nil || key != nil {
				t.Fatalf("accepted: %q", out)
			}
			if sqlState(err) != tc.code || err.Error() != tc.text {
				t.Fatalf("got %s %q\nwant %s %q", sqlState(err), err.Error(), tc.code, tc.text)
			}
		})
	}
}

// An extension between nonce and proof is part of AuthMessage; a client
// that signs it is accepted.
func TestServerFinishExtension(t *testing.T) {
	v := rfcVerifier(t)
	srv := NewServer(v, nil)
	sf, err := srv.Start(MechanismSCRAM, []byte("n,,n=,r=abc"))
	if err != nil {
		t.Fatal(err)
	}
	nonce := strings.TrimPrefix(strings.Split(string(sf), ",")[0], "r=")
	withoutProof := "c=biws,r=" + nonce + ",x=ext"
	authMessage := "n=,r=abc," + string(sf) + "," + withoutProof
	clientKey, _ := keysFromPassword("pencil", v.Salt, v.Iterations)
	proof := xor(clientKey, hmacSHA256(v.StoredKey, authMessage))
	if _, _, err := srv.Finish([]byte(withoutProof + ",p=" + b64.EncodeToString(proof))); err != nil {
		t.Fatal(err)
	}
}
