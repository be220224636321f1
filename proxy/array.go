package proxy

import (
	"encoding/binary"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/policy"
)

// indexArray turns the array parameter of `col = ANY($n)` into a bytea[]
// (binary format) of the blind index of each element, so the server
// compares it with the blind-index column. NULL elements stay NULL (they
// match nothing, as in SQL). Only one-dimensional arrays are accepted.
func (s *session) indexArray(col *policy.Column, format int16, src, dst []byte) ([]byte, error) {
	return s.mapArray(col, format, src, dst, policy.OIDBytea, func(pt, dst []byte) ([]byte, error) { return s.index(col, col.BlindIndex, pt, dst) })
}

// plaintextArray is indexArray for the migration-mode fallback of
// = ANY($n): each element's comparable plaintext, as text[] or bytea[].
func (s *session) plaintextArray(col *policy.Column, format int16, src, dst []byte) ([]byte, error) {
	elem := s.eng.catalog().physicalType(col)
	return s.mapArray(col, format, src, dst, elem, func(pt, dst []byte) ([]byte, error) {
		out, _, err := s.comparablePlaintext(col, pt, dst)
		return out, err
	})
}

// mapArray turns an array parameter of col's logical type into a binary
// one-dimensional array of elemOID whose elements are fn of each element's
// canonical plaintext.
func (s *session) mapArray(col *policy.Column, format int16, src, dst []byte, outOID uint32, fn func(pt, dst []byte) ([]byte, error)) ([]byte, error) {
	var elems [][]byte
	var elemOID uint32 // the client's element type, for binary input
	var err error
	if format == canon.BinaryFormat {
		elems, elemOID, err = parseBinaryArray(src)
	} else {
		elems, err = parseTextArray(src)
	}
	if err != nil {
		return nil, fmt.Errorf("pgveil: = ANY($n) on %s: %w", col.QualifiedName(), err)
	}
	hasNull := int32(0)
	for _, e := range elems {
		if e == nil {
			hasNull = 1
		}
	}
	dst = appendInt32(dst, 1) // ndim
	dst = appendInt32(dst, hasNull)
	dst = appendInt32(dst, int32(outOID))
	dst = appendInt32(dst, int32(len(elems)))
	dst = appendInt32(dst, 1) // lower bound
	for _, e := range elems {
		if e == nil {
			dst = appendInt32(dst, -1)
			continue
		}
		s.ptBuf, err = canon.Plaintext(col.Type, format, elemOID, e, s.ptBuf[:0])
		if err != nil {
			return nil, err
		}
		lenAt := len(dst)
		dst = appendInt32(dst, 0)
		if dst, err = fn(s.ptBuf, dst); err != nil {
			return nil, err
		}
		binary.BigEndian.PutUint32(dst[lenAt:], uint32(len(dst)-lenAt-4))
	}
	return dst, nil
}

// parseBinaryArray reads a one-dimensional array in binary format.
func parseBinaryArray(b []byte) (elems [][]byte, elemOID uint32, err error) {
	r := reader{b: b}
	ndim := r.int32("array")
	r.int32("array") // has-null flag
	elemOID = uint32(r.int32("array"))
	if r.err != nil {
		return nil, 0, r.err
	}
	switch ndim {
	case 0:
		return nil, elemOID, nil
	case 1:
	default:
		return nil, 0, fmt.Errorf("a %d-dimensional array; only one dimension is supported", ndim)
	}
	n := int(r.int32("array"))
	r.int32("array") // lower bound
	if n < 0 || n*4 > len(b)-r.off {
		return nil, 0, fmt.Errorf("malformed array")
	}
	for i := 0; i < n && r.err == nil; i++ {
		l := r.int32("array")
		if l == -1 {
			elems = append(elems, nil)
			continue
		}
		v := r.bytes(int(l), "array")
		if v == nil && r.err == nil {
			v = []byte{}
		}
		elems = append(elems, v)
	}
	if err := r.done("array"); err != nil {
		return nil, 0, fmt.Errorf("malformed array")
	}
	return elems, elemOID, nil
}

// parseTextArray reads a one-dimensional array literal such as
// {a,"b c",NULL} with pgtype's parser; elements stay in text format.
func parseTextArray(b []byte) ([][]byte, error) {
	var arr pgtype.FlatArray[*string]
	m := pgtype.NewMap()
	if err := m.Scan(pgtype.TextArrayOID, pgtype.TextFormatCode, b, &arr); err != nil {
		return nil, fmt.Errorf("malformed array literal")
	}
	out := make([][]byte, len(arr))
	for i, e := range arr {
		if e != nil {
			out[i] = []byte(*e)
		}
	}
	return out, nil
}
