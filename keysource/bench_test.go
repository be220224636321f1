package keysource

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"

	"github.com/pgveil/pgveil/policy"
)

// Hot-path benchmarks: a cached key, a reused destination buffer. The
// target is a 32-byte seal plus open under 2µs with 0–2 allocations.

func benchKey(b *testing.B) (*DataKey, *IndexKey, *policy.Column) {
	tbl := &policy.Table{Schema: "public", Name: "users"}
	col := &policy.Column{Table: tbl, Name: "email", Type: policy.TypeText}
	tbl.Columns = []*policy.Column{col}
	key := make([]byte, 32)
	rand.Read(key)
	dk, err := newDataKeyFromWorkingKey(keyMeta{ID: 1, Purpose: PurposeEnc, Scope: ScopeOf(col)}, "public", "users", "email", key)
	if err != nil {
		b.Fatal(err)
	}
	return dk, newIndexKey(keyMeta{ID: 2, Purpose: PurposeIndex}, key), col
}

// benchKeyring is a Keyring whose cache already holds the key, as after
// the first use; Open then touches no database.
func benchKeyring(dk *DataKey) *Keyring {
	return &Keyring{byID: map[uint32]*DataKey{dk.ID(): dk}, gone: map[uint32]struct{}{}}
}

func sizes() []struct {
	name string
	n    int
} {
	return []struct {
		name string
		n    int
	}{{"32B", 32}, {"4KiB", 4096}}
}

func BenchmarkSeal(b *testing.B) {
	dk, _, _ := benchKey(b)
	for _, s := range sizes() {
		b.Run(s.name, func(b *testing.B) {
			pt := bytes.Repeat([]byte{'x'}, s.n)
			dst := make([]byte, 0, s.n+64)
			b.ReportAllocs()
			b.SetBytes(int64(s.n))
			for b.Loop() {
				dst = dk.Seal(dst[:0], pt)
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	dk, _, col := benchKey(b)
	k := benchKeyring(dk)
	ctx := context.Background()
	for _, s := range sizes() {
		b.Run(s.name, func(b *testing.B) {
			env := dk.Seal(nil, bytes.Repeat([]byte{'x'}, s.n))
			dst := make([]byte, 0, s.n)
			b.ReportAllocs()
			b.SetBytes(int64(s.n))
			for b.Loop() {
				out, _, err := k.Open(ctx, col, env, dst[:0])
				if err != nil {
					b.Fatal(err)
				}
				dst = out
			}
		})
	}
}

func BenchmarkSealOpen(b *testing.B) {
	dk, _, col := benchKey(b)
	k := benchKeyring(dk)
	ctx := context.Background()
	for _, s := range sizes() {
		b.Run(s.name, func(b *testing.B) {
			pt := bytes.Repeat([]byte{'x'}, s.n)
			env := make([]byte, 0, s.n+64)
			dst := make([]byte, 0, s.n)
			b.ReportAllocs()
			for b.Loop() {
				env = dk.Seal(env[:0], pt)
				out, _, err := k.Open(ctx, col, env, dst[:0])
				if err != nil {
					b.Fatal(err)
				}
				dst = out
			}
		})
	}
}

func BenchmarkBlindIndex(b *testing.B) {
	_, ix, _ := benchKey(b)
	for _, s := range sizes() {
		b.Run(s.name, func(b *testing.B) {
			in := bytes.Repeat([]byte{'x'}, s.n)
			dst := make([]byte, 0, SumLen)
			b.ReportAllocs()
			b.SetBytes(int64(s.n))
			for b.Loop() {
				dst = ix.Sum(dst[:0], in)
			}
		})
	}
}

// BenchmarkEncryptionKeyCached is the per-value key lookup on the write path.
func BenchmarkEncryptionKeyCached(b *testing.B) {
	dk, _, col := benchKey(b)
	k := benchKeyring(dk)
	k.active = map[activeKey]activeEntry{}
	k.ttl = DefaultActiveTTL
	k.now = timeNow
	k.setActive(activeKeyOf(col, "", false), dk, 0)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.EncryptionKey(ctx, col, "", false); err != nil {
			b.Fatal(err)
		}
	}
}
