package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"testing"
)

func testAEAD(t testing.TB, b byte) cipher.AEAD {
	t.Helper()
	block, err := aes.NewCipher(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestRoundTrip(t *testing.T) {
	a := testAEAD(t, 1)
	aad := AppendAAD(nil, "public", "users", "email", 7)
	for _, pt := range [][]byte{{}, []byte("x"), bytes.Repeat([]byte("ab"), 3000)} {
		env := Seal(nil, a, 7, pt, aad)
		if len(env) != len(pt)+Overhead {
			t.Fatalf("len %d, want %d", len(env), len(pt)+Overhead)
		}
		if id, err := KeyID(env); err != nil || id != 7 {
			t.Fatalf("KeyID = %d, %v", id, err)
		}
		got, err := Open(nil, a, env, aad)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open = %q, %v", got, err)
		}
	}
}

func TestSealAppends(t *testing.T) {
	a := testAEAD(t, 1)
	prefix := []byte("keep")
	aad := AppendAAD(nil, "s", "t", "c", 9)
	env := Seal(append([]byte(nil), prefix...), a, 9, []byte("v"), aad)
	if !bytes.HasPrefix(env, prefix) {
		t.Fatal("prefix lost")
	}
	if _, err := Open(nil, a, env[len(prefix):], aad); err != nil {
		t.Fatal(err)
	}
}

func TestTwoSealsDiffer(t *testing.T) {
	a := testAEAD(t, 1)
	x := Seal(nil, a, 1, []byte("same"), nil)
	y := Seal(nil, a, 1, []byte("same"), nil)
	if bytes.Equal(x, y) {
		t.Fatal("two seals of one value are equal")
	}
}

func TestEveryBitFlipFails(t *testing.T) {
	a := testAEAD(t, 1)
	aad := AppendAAD(nil, "public", "users", "email", 5)
	env := Seal(nil, a, 5, []byte("alice@example.com"), aad)
	for i := 0; i < len(env)*8; i++ {
		m := bytes.Clone(env)
		m[i/8] ^= 1 << (i % 8)
		if _, err := Open(nil, a, m, aad); err == nil {
			t.Fatalf("flip of bit %d opened", i)
		}
	}
}

func TestTruncatedAndExtendedFail(t *testing.T) {
	a := testAEAD(t, 1)
	aad := AppendAAD(nil, "s", "t", "c", 5)
	env := Seal(nil, a, 5, []byte("hello"), aad)
	if _, err := Open(nil, a, env, aad); err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(env); n++ {
		if _, err := Open(nil, a, env[:n], aad); err == nil {
			t.Fatalf("truncated to %d opened", n)
		}
	}
	for _, tail := range [][]byte{{0}, {1, 2, 3}, bytes.Repeat([]byte{0}, 16)} {
		if _, err := Open(nil, a, append(bytes.Clone(env), tail...), aad); err == nil {
			t.Fatalf("extended by %d opened", len(tail))
		}
	}
}

func TestAADMismatchFails(t *testing.T) {
	a := testAEAD(t, 1)
	env := Seal(nil, a, 5, []byte("v"), AppendAAD(nil, "public", "users", "email", 5))
	for name, aad := range map[string][]byte{
		"column":      AppendAAD(nil, "public", "users", "phone", 5),
		"table":       AppendAAD(nil, "public", "admins", "email", 5),
		"schema":      AppendAAD(nil, "other", "users", "email", 5),
		"key id":      AppendAAD(nil, "public", "users", "email", 6),
		"dot shifted": AppendAAD(nil, "public.users", "", "email", 5),
		"none":        nil,
		"label only":  []byte("pgveil/envelope/v1"),
	} {
		if _, err := Open(nil, a, env, aad); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: err = %v, want ErrAuth", name, err)
		}
	}
	if _, err := Open(nil, testAEAD(t, 2), env, AppendAAD(nil, "public", "users", "email", 5)); !errors.Is(err, ErrAuth) {
		t.Errorf("wrong key: err = %v", err)
	}
}

func TestAADUnambiguous(t *testing.T) {
	x := AppendAAD(nil, "a.b", "c", "d", 1)
	y := AppendAAD(nil, "a", "b.c", "d", 1)
	if bytes.Equal(x, y) {
		t.Fatal("dotted names collide")
	}
}

func TestKeyIDZeroRejected(t *testing.T) {
	env := Seal(nil, testAEAD(t, 1), 0, []byte("v"), nil)
	if _, err := KeyID(env); !errors.Is(err, ErrFormat) {
		t.Fatalf("key id 0 accepted: %v", err)
	}
}

func TestText(t *testing.T) {
	a := testAEAD(t, 1)
	env := Seal(nil, a, 0x01020304, []byte("hello"), AppendAAD(nil, "s", "t", "c", 0x01020304))
	txt := Encode(nil, env)
	if !bytes.HasPrefix(txt, []byte("pgv1:")) || bytes.ContainsAny(txt, "=+/") {
		t.Fatalf("bad text form %q", txt)
	}
	if len(txt) != EncodedLen(len(env)) {
		t.Fatalf("EncodedLen = %d, len = %d", EncodedLen(len(env)), len(txt))
	}
	if !Looks(txt) || !Looks(env) || !IsText(txt) || IsText(env) || !IsBinary(env) {
		t.Fatal("Looks/IsText/IsBinary wrong")
	}
	back, err := Decode(nil, txt)
	if err != nil || !bytes.Equal(back, env) {
		t.Fatalf("Decode = %x, %v", back, err)
	}
	for _, bad := range []string{
		"", "pgv1:", "pgv2:" + string(txt[5:]), string(txt[:len(txt)-1]) + "!",
		string(txt[:20]) + "\n" + string(txt[20:]), string(txt) + "==", "PGV1:" + string(txt[5:]),
	} {
		if _, err := Decode(nil, []byte(bad)); err == nil {
			t.Errorf("Decode(%q) accepted", bad)
		}
	}
	for _, plain := range []string{"alice@example.com", "pgv1:short", "", "\x01abc"} {
		if Looks([]byte(plain)) {
			t.Errorf("Looks(%q) = true", plain)
		}
	}
}

func TestNonCanonicalTextRejected(t *testing.T) {
	env := Seal(nil, testAEAD(t, 1), 3, []byte("hello!"), nil) // 39 bytes: last base64 char carries spare bits
	txt := Encode(nil, env)
	last := txt[len(txt)-1]
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		if c == last {
			continue
		}
		m := bytes.Clone(txt)
		m[len(m)-1] = c
		if d, err := Decode(nil, m); err == nil && bytes.Equal(d, env) {
			t.Fatalf("second text form %q decodes to the same envelope", m)
		}
	}
}
