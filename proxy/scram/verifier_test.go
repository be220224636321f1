package scram

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// A secret as PostgreSQL 15 stores it for password "pencil" with the RFC 7677
// salt (same StoredKey/ServerKey as NewVerifier computes).
func TestParseVerifierRoundTrip(t *testing.T) {
	v := rfcVerifier(t)
	enc := v.Encode()
	if !strings.HasPrefix(enc, "SCRAM-SHA-256$4096:"+rfcSaltB64+"$") {
		t.Fatalf("Encode: %q", enc)
	}
	p, err := ParseVerifier(enc)
	if err != nil {
		t.Fatal(err)
	}
	if p.Iterations != 4096 || !bytes.Equal(p.Salt, v.Salt) || !bytes.Equal(p.StoredKey, v.StoredKey) || !bytes.Equal(p.ServerKey, v.ServerKey) {
		t.Fatal("round trip changed the verifier")
	}
}

func TestParseVerifierRejects(t *testing.T) {
	key := b64.EncodeToString(make([]byte, 32))
	short := b64.EncodeToString(make([]byte, 31))
	for _, s := range []string{
		"",
		"md5" + strings.Repeat("0", 32),
		"SCRAM-SHA-1$4096:c2FsdA==$" + key + ":" + key,
		"SCRAM-SHA-256$4096:c2FsdA==",
		"SCRAM-SHA-256$4096$" + key + ":" + key,
		"SCRAM-SHA-256$4096:c2FsdA==$" + key,
		"SCRAM-SHA-256$0:c2FsdA==$" + key + ":" + key,
		"SCRAM-SHA-256$-1:c2FsdA==$" + key + ":" + key,
		"SCRAM-SHA-256$x:c2FsdA==$" + key + ":" + key,
		"SCRAM-SHA-256$4294967296:c2FsdA==$" + key + ":" + key,
		"SCRAM-SHA-256$4096:$" + key + ":" + key,
		"SCRAM-SHA-256$4096:!!$" + key + ":" + key,
		"SCRAM-SHA-256$4096:c2FsdA==$" + short + ":" + key,
		"SCRAM-SHA-256$4096:c2FsdA==$" + key + ":" + short,
		"SCRAM-SHA-256$4096:c2FsdA==$" + key + ":" + key + "$",
	} {
		if v, err := ParseVerifier(s); err == nil {
			t.Errorf("ParseVerifier(%q) = %v, want error", s, v)
		} else if strings.Contains(err.Error(), key) {
			t.Errorf("error quotes the secret: %v", err)
		}
	}
}

// Printing a verifier, server or client must not reveal keys.
func TestRedaction(t *testing.T) {
	v := rfcVerifier(t)
	srv := NewServer(v, nil)
	cli := NewClientFromKey(h(v.StoredKey), v)
	secrets := []string{b64.EncodeToString(v.StoredKey), b64.EncodeToString(v.ServerKey)}
	for _, s := range []string{
		fmt.Sprint(v), fmt.Sprintf("%v %+v %#v %s", *v, v, v, v),
		fmt.Sprintf("%v %+v %#v", srv, srv, srv),
		fmt.Sprintf("%v %+v %#v", cli, cli, cli),
	} {
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Fatalf("secret printed: %s", s)
			}
		}
		if strings.Contains(s, "[") { // a printed []byte
			t.Fatalf("raw bytes printed: %s", s)
		}
	}
}
