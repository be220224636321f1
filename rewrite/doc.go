// Package rewrite is pgveil's SQL planner: it decides, from a statement's
// text and the encryption policy, what the proxy must do so that the
// database only ever sees ciphertext and blind indexes of encrypted columns.
// It knows SQL and the policy, but no keys and no sockets.
//
// The flow it serves:
//
//	Query / Parse text
//	  → pre-check (no parse): can the text name a configured table? no → pass through
//	  → plan cache, keyed by (text, search_path); then by the text's shape
//	    (literals masked, shape.go), so texts that differ only in their
//	    values (drivers that interpolate) share one plan
//	  → pg_query parse → per statement: resolve names through the search path
//	    and the Catalog, rewrite by splicing edits into the client's own text
//	    (email = $1 → email_bidx = $1; INSERT (email) → (email, email_bidx)),
//	    record which parameters and literals to encrypt or index (Params,
//	    Slots), which result fields to decrypt (Outputs), and the tenant
//	    (key_context) value of every write and every decrypted field
//	  → *Plan, or an *Error carrying a SQLSTATE when pgveil cannot do it safely
//	Proxy: Render(text, fill) with sealed/indexed literals; Bind with Params;
//	       RowDescription/DataRow with Outputs; CopyData with Copy.
//
// The planner fails closed: a statement that might touch an encrypted column
// in a way it cannot rewrite is refused, never passed through. See
// docs/SQL.md for what is planned and what is refused, and why.
package rewrite
