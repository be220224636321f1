package envelope

import (
	"bytes"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to the envelope parser and opener: they
// must never panic, and only a genuine envelope may open.
func FuzzOpen(f *testing.F) {
	a := testAEAD(f, 1)
	aad := AppendAAD(nil, "public", "users", "email", 5)
	// A fixed nonce: fuzz workers are separate processes that rerun this setup.
	good := SealWithNonce(nil, a, 5, make([]byte, NonceLen), []byte("seed"), aad)
	f.Add(bytes.Clone(good))
	f.Add(bytes.Clone(good[:HeaderLen]))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add(bytes.Repeat([]byte{1}, Overhead))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := KeyID(b)
		if err == nil && id == 0 {
			t.Fatal("key id 0 accepted")
		}
		pt, err := Open(nil, a, b, aad)
		if err == nil && !bytes.Equal(b, good) {
			// Only a forgery would reach here.
			t.Fatalf("forged envelope opened to %q", pt)
		}
	})
}

// FuzzDecode feeds arbitrary text to the text decoder: it must never panic,
// whatever it accepts must be a well-formed envelope, and re-encoding it must
// give back the same text (one text form per envelope).
func FuzzDecode(f *testing.F) {
	env := Seal(nil, testAEAD(f, 1), 5, []byte("seed"), nil)
	f.Add(Encode(nil, env))
	f.Add([]byte("pgv1:"))
	f.Add([]byte("pgv1:AQAAAAU"))
	f.Add([]byte("alice@example.com"))
	f.Add(append([]byte("pgv1:"), bytes.Repeat([]byte("A"), 45)...))
	f.Fuzz(func(t *testing.T, text []byte) {
		looks := IsText(text)
		b, err := Decode(nil, text)
		if err != nil {
			return
		}
		if !looks {
			t.Fatalf("Decode accepted %q but IsText did not", text)
		}
		if _, err := KeyID(b); err != nil {
			t.Fatal("decoded bytes are not an envelope")
		}
		if !bytes.Equal(Encode(nil, b), text) {
			t.Fatalf("text form not canonical: %q", text)
		}
	})
}
