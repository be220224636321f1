// Package keysource holds pgveil's keys: the master key providers (a local
// key file, or HashiCorp Vault Transit), the data keys wrapped by them and
// stored in pgveil.keys, and the two operations on values that need a key:
// sealing/opening an envelope and computing a blind index.
//
// The life of a key:
//
//	NewMaster(cfg)             local file/env key, or Vault Transit
//	NewKeyring(pool, master)   creates pgveil.keys if missing
//	EncryptionKey(col, tenant) newest active data key of (column, tenant):
//	                           cache → store row → create (ON CONFLICT) → unwrap
//	DataKey.Seal(dst, v)       hot path: no DB, no allocation beyond dst
//	Open(col, envelope)        key by the envelope's key id (any version), scope check, AEAD open
//	IndexKey(col).Sum(dst, v)  HMAC-SHA-256 blind index, per BlindIndex.Key
//	Rotate / RetireOlder / DropRetired / Shred / RewrapAll   operations for the CLI
//
// Unwrapped keys exist only in this process's memory. Nothing in this
// package logs or puts into an error a key's bytes or a value's plaintext;
// errors name key ids, scopes and versions only.
//
// The byte formats (envelope, AAD, key derivation, wrapping, blind index
// input) are specified in docs/FORMAT.md, whose test vectors the tests
// check.
package keysource
