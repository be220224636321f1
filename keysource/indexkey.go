package keysource

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"sync"
)

// IndexKey is the HMAC key of one blind-index key name (BlindIndex.Key):
// every column naming the same key shares it, so their indexes compare equal
// for equal values and JOIN ON works. It is never per tenant.
type IndexKey struct {
	meta keyMeta
	// macs pools HMAC states keyed with this key. hmac.New allocates and
	// pre-hashes the pads; reusing states keeps Sum allocation-free.
	macs sync.Pool
}

// SumLen is the length of a blind index.
const SumLen = sha256.Size

func newIndexKey(m keyMeta, working []byte) *IndexKey {
	key := append([]byte(nil), working...)
	ix := &IndexKey{meta: m}
	ix.macs.New = func() any { return hmac.New(sha256.New, key) }
	return ix
}

// Sum appends HMAC-SHA-256(index key, input) to dst; input is the output of
// canon.IndexInput. It allocates nothing when dst has 32 bytes of room.
func (ix *IndexKey) Sum(dst, input []byte) []byte {
	h := ix.macs.Get().(hash.Hash)
	h.Reset()
	h.Write(input)
	dst = h.Sum(dst)
	ix.macs.Put(h)
	return dst
}

// ID is the index key's id in pgveil.keys.
func (ix *IndexKey) ID() uint32 { return ix.meta.ID }

// Name is the BlindIndex.Key this key serves.
func (ix *IndexKey) Name() string { return ix.meta.Scope }

// Version is the index key's version.
func (ix *IndexKey) Version() int { return ix.meta.Version }
