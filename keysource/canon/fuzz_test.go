package canon

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/pgveil/pgveil/policy"
)

// FuzzPlaintext feeds arbitrary parameters of every type in both formats:
// Plaintext must not panic, and whatever it accepts must be a fixed point,
// readable back from its own text and binary output unchanged (so text and
// binary clients always meet on one canonical form).
func FuzzPlaintext(f *testing.F) {
	for _, c := range cases {
		for i, lt := range policy.LogicalTypes {
			if lt == c.t {
				for _, s := range c.texts {
					f.Add(uint8(i), false, []byte(s))
				}
				for _, b := range c.binary {
					f.Add(uint8(i), true, b)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, typ uint8, bin bool, in []byte) {
		lt := policy.LogicalTypes[int(typ)%len(policy.LogicalTypes)]
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(10 * time.Second): // a value must never cost seconds
				panic(fmt.Sprintf("slow input: %s binary=%v %q", lt, bin, in))
			}
		}()
		format := TextFormat
		if bin {
			format = BinaryFormat
		}
		pt, err := Plaintext(lt, format, 0, in, nil)
		if err != nil {
			return
		}
		for _, f := range []int16{TextFormat, BinaryFormat} {
			w, err := Wire(lt, f, pt, nil)
			if err != nil {
				t.Fatalf("%s: Wire(%d) of accepted %q: %v", lt, f, pt, err)
			}
			back, err := Plaintext(lt, f, 0, w, nil)
			if err != nil || !bytes.Equal(back, pt) {
				t.Fatalf("%s: %q → Wire(%d) %q → %q, %v", lt, pt, f, w, back, err)
			}
		}
		if _, err := IndexInput(lt, pt, []policy.Normalization{policy.NormTrim, policy.NormLowercase, policy.NormNFC}, nil); err != nil {
			t.Fatalf("%s: IndexInput of accepted %q: %v", lt, pt, err)
		}
	})
}
