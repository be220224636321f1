// Package envelope is the byte format of one encrypted value (v1), its
// additional authenticated data, and its text encoding for text columns.
//
// The life of a value: the proxy canonicalises a parameter, a data key seals
// it into an envelope (Seal), the envelope goes to the database as bytea (or,
// for a text column, through Encode as "pgv1:..."), and on the way back the
// proxy reads the key id (KeyID), finds that key, and opens the envelope
// (Open) with the same AAD. docs/FORMAT.md is the normative description; the
// test vectors there are checked by this package's tests.
//
//	offset  size  field
//	0       1     version, 0x01
//	1       4     key id, big-endian, never 0
//	5       12    nonce, random
//	17      n+16  AES-256-GCM ciphertext of n plaintext bytes, then the tag
//
// This package knows bytes and AEADs but no keys: the caller owns key
// material, so nothing here can log or leak it.
package envelope
