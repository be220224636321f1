// Package pgtest runs wire-level protocol scripts against a PostgreSQL
// server, or anything that claims to speak like one, such as pgveil.
//
// It follows CockroachDB's pkg/testutils/pgtest: a script lists the frontend
// messages to send as JSON lines and, after each batch, the backend messages
// that must come back, also as JSON lines. The same script runs directly
// against Postgres and through pgveil; the proxy is transparent when both runs
// print the same thing. The expected output is only ever generated from a run
// against Postgres itself (see the -rewrite flag of this package's test).
//
// # The flow of one script
//
//	Dial ── StartupMessage ──▶ server       (user, database, script's params)
//	     ◀── auth exchange ──▶              (trust, cleartext, MD5, SCRAM-SHA-256)
//	     ◀── AuthenticationOk … ReadyForQuery   the "startup" directive's output
//	send   ── frontend messages ──▶         one write per directive (a pipeline)
//	until  ◀── backend messages ──          read through the named types
//	…
//	Terminate ──▶, read to EOF              added by the runner unless the
//	                                        script ended with "closed"
//
// # Script format
//
// A script (testdata/*.pgt) is a sequence of directives in the style of
// CockroachDB's datadriven files:
//
//	# A comment: lines starting with '#' outside an output block.
//	directive [arg ...]
//	input line
//	...
//	----
//	expected output line
//	...
//	<blank line or end of file>
//
// Every directive has the "----" separator; its output block ends at the first
// blank line. Input lines starting with '#' are comments. The directives:
//
//	startup [protocol=3.N]
//	    Input: the startup parameters as name=value lines (the value is the
//	    rest of the line, spaces included), sent in that order after the
//	    runner's own user and database. Output: every backend message up to
//	    and including ReadyForQuery, or up to an ErrorResponse, except the
//	    authentication challenge and its exchange (AuthenticationSASL,
//	    AuthenticationMD5Password, …), which differ by auth method and carry
//	    random nonces and salts; so AuthenticationOk is shown. "protocol"
//	    asks for a minor protocol version other than 3.0. Only allowed as the
//	    first directive; a script without one gets a default, silent startup.
//
//	send
//	    Input: frontend messages, one JSON object per line, in
//	    pgproto3/v2's JSON form ({"Type":"Query","String":"select 1"}).
//	    Supported: Query, Parse, Bind, Describe, Execute, Sync, Flush, Close,
//	    CopyData, CopyDone, CopyFail, FunctionCall, Terminate. Unknown fields
//	    are errors. Bind parameters are {"text":"…"}, {"binary":"<hex>"} or
//	    null (SQL NULL); one extension, for large values, repeats the bytes:
//	    {"text":"ab","repeat":"50000"}. CopyData's Data is the literal bytes
//	    as a JSON string.
//	    FunctionCall, which pgproto3/v2 cannot unmarshal, is written like
//	    Bind: {"Type":"FunctionCall","Function":<oid>,"ArgFormatCodes":[0],
//	    "Arguments":[{"text":"x"}],"ResultFormatCode":0}. All the messages of
//	    one send go out in a single write, like a client's pipeline. Output:
//	    none.
//
//	until [ignore=Type,Type...]
//	    Input: backend message type names, one per line. Reads messages until
//	    each named type has been seen, in order ("ReadyForQuery" twice reads
//	    through two of them). Output: every message read, except the ignored
//	    types.
//
//	closed
//	    No input. Reads until the server closes the connection. Output: the
//	    messages read before that.
//
// # Output
//
// Backend messages are printed one per line as compact JSON: "Type" first,
// then the fields named as in pgproto3/v2's structs. ErrorResponse and
// NoticeResponse omit empty fields. DataRow and FunctionCallResponse values
// are {"text":"…"} when the bytes are valid UTF-8 without control
// characters, {"binary":"<hex>"} otherwise, null for NULL, and
// {"len":"N","sha256":"<hex>"} for values longer than 4096 bytes, so a
// 200 kB row stays a short line. CopyData prints Data as a JSON string when it
// is valid UTF-8 and as "Binary" hex otherwise; past 4096 bytes, Data is the
// same {"len","sha256"} digest. A message type pgproto3/v2
// does not know is printed as {"Type":"Unknown","Byte":"x","Data":"<hex>"}.
//
// # Normalisation
//
// Fields that differ between two runs against the same server are replaced
// in every output: BackendKeyData's ProcessID and SecretKey and
// NotificationResponse's PID become 0; OIDs of objects a script creates
// (>= 16384, FirstNormalObjectId) in RowDescription and ParameterDescription
// are renumbered 16384, 16385, … in order of first appearance on the
// connection; temp schema names pg_temp_<n> in error and notice fields become
// pg_temp_N.
//
// The expected output in the files is also made portable across patch
// releases of the same major version: ErrorResponse and NoticeResponse lose
// File, Line and Routine (the server's C source location), and the
// server_version ParameterStatus value becomes "*". Result.Raw keeps those
// fields, so a test can still require the proxy to pass them unchanged by
// comparing a direct and a proxied run with each other. Scripts are tied to
// a major version (its set of ParameterStatus messages and its message
// texts); regenerate them with -rewrite when the server's major version
// changes.
//
// # Running
//
//	go test ./integration/pgtest                       # direct and through pgveil
//	go test ./integration/pgtest -run TestScriptsDirect
//	go test ./integration/pgtest -rewrite              # or PGTEST_REWRITE=1
//
// The test starts one throwaway Postgres (integration/harness) and, for the
// proxied tests, the pgveil binary built from ./cmd/pgveil (PGVEIL_BIN names
// a prebuilt one). -rewrite writes each file's expected blocks from a run
// directly against Postgres; the proxied tests then compare with the new
// files, never the other way round. A proxied run must also match a direct
// run field for field in the raw form, and must leave no error-level line in
// pgveil's log.
package pgtest
