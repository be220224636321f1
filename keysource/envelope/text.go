package envelope

import (
	"bytes"
	"encoding/base64"
)

// TextPrefix starts the text form of a v1 envelope, stored in physical
// columns of type text: "pgv1:" then the binary envelope in unpadded
// base64url (RFC 4648 section 5, no '=').
const TextPrefix = "pgv1:"

// b64 is strict: non-zero trailing bits are rejected, so every envelope has
// exactly one text form and the text cannot be altered without altering the
// envelope.
var b64 = base64.RawURLEncoding.Strict()

// minTextLen is the length of the text form of the shortest envelope.
var minTextLen = len(TextPrefix) + b64.EncodedLen(Overhead)

// EncodedLen is the length of the text form of an n-byte envelope.
func EncodedLen(n int) int { return len(TextPrefix) + b64.EncodedLen(n) }

// Encode appends the text form of a binary envelope to dst.
func Encode(dst, env []byte) []byte {
	dst = append(dst, TextPrefix...)
	return b64.AppendEncode(dst, env)
}

// Decode appends the binary envelope of a text form to dst, checking the
// prefix, the alphabet and the envelope's shape. It returns ErrFormat for
// anything else; the decoder's position is not reported.
func Decode(dst, text []byte) ([]byte, error) {
	if len(text) < minTextLen || len(text) > EncodedLen(MaxLen) || !bytes.HasPrefix(text, []byte(TextPrefix)) {
		return nil, ErrFormat
	}
	body := text[len(TextPrefix):]
	// encoding/base64 skips \r and \n; an envelope has exactly one form, so refuse them.
	if bytes.IndexByte(body, '\n') >= 0 || bytes.IndexByte(body, '\r') >= 0 {
		return nil, ErrFormat
	}
	start := len(dst)
	out, err := b64.AppendDecode(dst, body)
	if err != nil {
		return nil, ErrFormat
	}
	if _, err := KeyID(out[start:]); err != nil {
		return nil, ErrFormat
	}
	return out, nil
}

// IsText reports whether b starts like the text form of an envelope.
func IsText(b []byte) bool {
	return len(b) >= minTextLen && bytes.HasPrefix(b, []byte(TextPrefix)) && (len(b)-len(TextPrefix))%4 != 1
}

// IsBinary reports whether b has the shape of a binary v1 envelope.
func IsBinary(b []byte) bool {
	_, err := KeyID(b)
	return err == nil
}

// Looks reports, cheaply and without decoding, whether b has the shape of an
// envelope in either form. During online adoption it tells ciphertext from
// legacy plaintext. It is a shape test only: legacy bytea plaintext that
// happens to start with 0x01 and is at least 33 bytes long looks like an
// envelope, so a caller that gets a format or authentication error on such a
// value during adoption may treat it as plaintext; after adoption completes
// it must not.
func Looks(b []byte) bool { return IsBinary(b) || IsText(b) }
