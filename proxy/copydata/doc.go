// Package copydata splits, decodes and re-encodes the data of COPY FROM STDIN
// and COPY TO STDOUT, in the three formats of PostgreSQL's COPY command:
// text, CSV and binary (https://www.postgresql.org/docs/current/sql-copy.html,
// "File Formats"). It is how pgveil encrypts the configured columns of rows a
// client copies in, and decrypts them in rows a client copies out.
//
// The flow it serves, for COPY t (cols) FROM STDIN:
//
//	client CopyData ──Feed──▶ Splitter ──Next──▶ row ──Parser.Parse──▶ []Field
//	                                                                     │ encrypt some,
//	                                                                     │ append blind indexes
//	server CopyData ◀──────────────────────────── AppendRow ◀────────────┘
//	client CopyDone ──End──▶ Splitter: the last row, if it had no newline
//
// and the mirror image for COPY ... TO STDOUT, where the proxy decrypts some
// fields and drops trailing hidden ones before the row reaches the client.
//
// CopyData message boundaries are not row boundaries: a client may send half
// a row, or many rows, in one message. The Splitter buffers exactly one
// partial row and finds row ends the way PostgreSQL's own reader does
// (CopyReadLineText in src/backend/commands/copyfromparse.c): in text format
// a backslash escapes the next byte, including a newline; in CSV a newline
// inside a quoted field belongs to the field; lines may end in "\n", "\r\n" or
// "\r", but all alike; a line holding only `\.` ends the data.
//
// Parser and ParseRow resolve a row to field values as CopyReadAttributesText
// and CopyReadAttributesCSV do, and AppendRow writes values the way COPY TO
// does (CopyAttributeOutText, CopyAttributeOutCSV), so that PostgreSQL reads
// back exactly the values that were encoded. The binary format's file
// header, tuples and trailer have functions of their own.
//
// Values may be secret plaintext. No error of this package contains data:
// messages name the line number and what is wrong, never field contents.
// Errors are *Error with a SQLSTATE (22P04 bad_copy_file_format for
// malformed data, as PostgreSQL reports it).
//
// Where this package and PostgreSQL differ, this package refuses:
//   - text format: `\.` with data before it on its line (PostgreSQL 13–17
//     take the data before it as the last line; 18 refuses it too);
//   - a 0x00 byte, raw or escaped (PostgreSQL refuses it when it checks the
//     encoding);
//   - a row over Options.MaxRow.
//
// Limits that are PostgreSQL's own: with an empty NULL string in text
// format an empty value reads as NULL; COPY TO in text format writes a value
// equal to the NULL string unescaped, so it reads back as NULL (AppendRow
// escapes it). Bytes made by octal and hex escapes are not checked against
// the database encoding (PostgreSQL checks them when it stores the row).
//
// The package assumes what PostgreSQL's own parser assumes of the bytes it
// splits: an encoding in which every byte of a multibyte character has the
// high bit set (UTF8, the LATIN and ISO-8859 families, EUC_*, …). A client
// whose client_encoding is one of SJIS, SHIFT_JIS_2004, BIG5, GBK, GB18030,
// UHC or JOHAB can send a backslash or quote byte inside a character; callers
// refuse COPY for those (see EncodingSafe).
package copydata
