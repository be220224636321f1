package copydata

import (
	"encoding/binary"
	"math"
)

// The binary format, https://www.postgresql.org/docs/current/sql-copy.html
// "Binary Format": a file header, zero or more tuples, a file trailer; all
// integers in network byte order.
//
//	header:  11-byte signature "PGCOPY\n\377\r\n\0"
//	         int32 flags (bit 16: OIDs included; bits 17-31 critical, must be 0;
//	                      bits 0-15 backwards-compatible, ignored)
//	         int32 header extension length, then that many bytes (skipped)
//	tuple:   int16 field count, then per field int32 length (-1 = NULL) and
//	         that many bytes of the field's binary value
//	trailer: int16 -1

// binarySignature is the 11-byte signature of a binary COPY file.
const binarySignature = "PGCOPY\n\xff\r\n\x00"

// MaxBinaryFields is the largest field count ParseBinaryTuple accepts:
// PostgreSQL's limit on the columns of a result row (MaxTupleAttributeNumber).
// A table has at most 1600.
const MaxBinaryFields = 1664

// BinaryHeaderLen is the length of the header AppendBinaryHeader writes.
const BinaryHeaderLen = len(binarySignature) + 8

// ParseBinaryHeader validates the binary file header at the start of b and
// returns its length, extension included. It returns ErrShort when b ends
// before the header does (a wrong signature is reported as soon as seen);
// OIDs (flag bit 16) and unknown critical flags are errors, as in
// PostgreSQL; an extension longer than DefaultMaxRow is an error.
func ParseBinaryHeader(b []byte) (n int, err error) {
	return parseBinaryHeader(b, DefaultMaxRow)
}

func parseBinaryHeader(b []byte, max int) (int, error) {
	sig := len(binarySignature)
	if len(b) < sig {
		if string(b) != binarySignature[:len(b)] {
			return 0, formatError("COPY file signature not recognized")
		}
		return 0, ErrShort
	}
	if string(b[:sig]) != binarySignature {
		return 0, formatError("COPY file signature not recognized")
	}
	if len(b) < sig+8 {
		return 0, ErrShort
	}
	flags := binary.BigEndian.Uint32(b[sig:])
	if flags&(1<<16) != 0 {
		return 0, formatError("invalid COPY file header (WITH OIDS)")
	}
	if flags>>17 != 0 {
		return 0, formatError("unrecognized critical flags in COPY file header")
	}
	ext := int32(binary.BigEndian.Uint32(b[sig+4:]))
	if ext < 0 {
		return 0, formatError("invalid COPY file header (missing length)")
	}
	if int(ext) > max-(sig+8) {
		return 0, errRowTooLong(max)
	}
	n := sig + 8 + int(ext)
	if len(b) < n {
		return 0, ErrShort
	}
	return n, nil
}

// AppendBinaryHeader appends a binary file header with no flags and no
// extension (BinaryHeaderLen bytes), as COPY TO writes it.
func AppendBinaryHeader(dst []byte) []byte {
	dst = append(dst, binarySignature...)
	return append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
}

// AppendBinaryTrailer appends the binary file trailer, a field count of -1.
func AppendBinaryTrailer(dst []byte) []byte { return append(dst, 0xff, 0xff) }

// ParseBinaryTuple decodes the tuple at the start of b into fields (reusing
// its backing array) and returns the bytes it used. Values alias b. It
// returns ErrShort when b ends inside the tuple, and ErrTrailer with n = 2
// when b starts with the file trailer. A field count over MaxBinaryFields or
// a field length below -1 or over 1 GiB-1 is an error.
func ParseBinaryTuple(b []byte, fields []Field) ([]Field, int, error) {
	fields = fields[:0]
	if len(b) < 2 {
		return fields, 0, ErrShort
	}
	count := int16(binary.BigEndian.Uint16(b))
	if count == -1 {
		return fields, 2, ErrTrailer
	}
	if count < 0 || int(count) > MaxBinaryFields {
		return fields, 0, formatError("invalid field count in COPY binary tuple")
	}
	i := 2
	for k := 0; k < int(count); k++ {
		if len(b)-i < 4 {
			return fields[:0], 0, ErrShort
		}
		size := int32(binary.BigEndian.Uint32(b[i:]))
		i += 4
		switch {
		case size == -1:
			fields = append(fields, Field{Null: true})
		case size < 0 || size > maxFieldSize:
			return fields[:0], 0, formatError("invalid field size")
		case len(b)-i < int(size):
			return fields[:0], 0, ErrShort
		default:
			end := i + int(size)
			fields = append(fields, Field{Value: b[i:end:end]})
			i = end
		}
	}
	return fields, i, nil
}

// AppendBinaryTuple appends one tuple of fields. Field.Default cannot be
// written in binary and is written as NULL (PostgreSQL refuses DEFAULT with
// binary COPY). It panics, as a programming error, on more than 32767 fields
// or a value over 2 GiB-1 bytes, which the format cannot express.
func AppendBinaryTuple(dst []byte, fields []Field) []byte {
	if len(fields) > math.MaxInt16 {
		panic("copydata: AppendBinaryTuple: more than 32767 fields")
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(fields)))
	for _, f := range fields {
		if f.Null || f.Default {
			dst = append(dst, 0xff, 0xff, 0xff, 0xff)
			continue
		}
		if len(f.Value) > math.MaxInt32 {
			panic("copydata: AppendBinaryTuple: value longer than 2 GiB-1")
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(f.Value)))
		dst = append(dst, f.Value...)
	}
	return dst
}
