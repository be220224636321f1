// Package canon turns a client's parameter into the bytes pgveil seals (the
// canonical plaintext), turns sealed bytes back into what a client asked
// for, and makes the equality form a blind index is computed over.
//
// The flow of one value:
//
//	Bind parameter (text or binary, declared OID)
//	  → Plaintext     canonical text (PostgreSQL's own output form) or raw bytes for bytea
//	  → DataKey.Seal  the envelope stored in the database
//	  → IndexInput    equality form + normalisation → IndexKey.Sum
//	DataRow
//	  → Keyring.Open  canonical plaintext
//	  → Wire          text or binary, as the client's result format asks
//
// A canonical form is chosen so that values PostgreSQL calls equal map to
// one byte string: 7 and 007, '2024-01-02' and the binary date, 1.5 and
// 1.50 (in IndexInput; the plaintext keeps the scale, as numeric does).
// docs/FORMAT.md lists the form of every logical type.
//
// Errors never contain the value: they name the type and what is wrong.
package canon
