// Package ops holds the operator commands of pgveil that work on the
// database rather than on a client's session: check, migrate, rotate and
// shred. cmd/pgveil parses flags and calls in here; everything that touches
// the schema, the key store or the rows lives in this package.
//
// The flow of one table through these commands:
//
//	check           config + live schema (pg_catalog) → findings with the DDL that fixes each
//	migrate         plan: DDL + row counts; --apply: DDL (bidx columns, indexes
//	                CONCURRENTLY), keys, pgveil.tables = migrating, then passes
//	                of batches (below), then pgveil.tables = complete
//	migrate --decrypt  pgveil.tables = decrypting, passes that write plaintext back
//	rotate          every version to retire unwrapped first (Keyring.CheckUnwrap),
//	                Keyring.Rotate per (column, tenant), passes that re-seal values
//	                under retired key ids, grace period, last pass, DropRetired
//	rotate --master Keyring.RewrapAll: rows untouched
//	shred           refused while the table is migrating/decrypting or the tenant
//	                has plaintext; Keyring.Shred (NOTIFY pgveil_keys), blind
//	                indexes of the values under the destroyed keys set NULL, audit line
//
// A pass walks one table in primary-key order (keyset pagination). Each
// batch is one short transaction:
//
//	BEGIN
//	SELECT pk::text, tenant::text, values FROM t
//	  WHERE pk > cursor AND <row needs work> ORDER BY pk LIMIT n FOR UPDATE [SKIP LOCKED]
//	  … seal / open / index in this process …
//	UPDATE t SET c = CASE WHEN v.set THEN v.c ELSE t.c END …
//	  FROM unnest($1::text[], …) AS v(…) WHERE t.pk = v.pk
//	COMMIT
//
// "Needs work" is decided twice: a SQL predicate that is exact about the
// envelope's shape (envelope.IsText / IsBinary) keeps finished rows on the
// server, and the same test in Go decides per value. Rows are locked while
// they are read and written, so a concurrent write through the proxy is
// never overwritten: the UPDATE writes back only values this process read
// under the lock. A killed run loses at most the batch in flight; the next
// run finds the remaining work by the predicate, so runs are resumable and
// a value is never sealed twice.
//
// Nothing here logs a value: logs and errors name tables, columns, key ids,
// counts and primary-key values, never the plaintext or ciphertext of an
// encrypted column (a row whose primary key holds one is named by its
// other key columns and ctid: target.rowName).
package ops
