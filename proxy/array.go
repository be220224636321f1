package proxy

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

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

// parseTextArray reads an array literal such as {a,"b c",NULL} (or a
// text-format array parameter) as PostgreSQL's array_in reads it, and
// returns its elements in order (a multidimensional array flattened, as
// = ANY reads it): whitespace around an element is not part of it, a
// backslash takes the next character literally, NULL in any case and
// unquoted is NULL, and an optional [lo:hi]… = decoration must match the
// braces. What array_in rejects is an error: pgveil never computes an
// index of an element the server would not compare.
func parseTextArray(b []byte) ([][]byte, error) {
	p := arrayLit{s: b}
	p.space()
	var dims [][2]int
	for p.i < len(p.s) && p.s[p.i] == '[' {
		p.i++
		lo, ok1 := p.int()
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, errMalformedArray
		}
		p.i++
		hi, ok2 := p.int()
		p.space()
		if !ok1 || !ok2 || p.i >= len(p.s) || p.s[p.i] != ']' || hi < lo-1 {
			return nil, errMalformedArray
		}
		p.i++
		p.space()
		dims = append(dims, [2]int{lo, hi})
	}
	if len(dims) > 0 {
		if p.i >= len(p.s) || p.s[p.i] != '=' {
			return nil, errMalformedArray
		}
		p.i++
		p.space()
	}
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return nil, errMalformedArray
	}
	var elems [][]byte
	var sizes []int // elements per level, from the outermost
	if err := p.level(0, &sizes, &elems); err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, errMalformedArray
	}
	if len(dims) > 0 {
		if len(dims) != len(sizes) {
			return nil, errMalformedArray
		}
		for k, d := range dims {
			if d[1]-d[0]+1 != sizes[k] {
				return nil, errMalformedArray
			}
		}
	}
	return elems, nil
}

var errMalformedArray = fmt.Errorf("malformed array literal")

// arrayLit is the state of parseTextArray.
type arrayLit struct {
	s    []byte
	i    int
	leaf int // the depth of the levels of elements, once one is read (+1)
}

// arraySpace is array_isspace: the white space array_in skips.
func arraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func (p *arrayLit) space() {
	for p.i < len(p.s) && arraySpace(p.s[p.i]) {
		p.i++
	}
}

func (p *arrayLit) int() (int, bool) {
	p.space()
	j := p.i
	if j < len(p.s) && (p.s[j] == '-' || p.s[j] == '+') {
		j++
	}
	k := j
	for k < len(p.s) && p.s[k] >= '0' && p.s[k] <= '9' && k-j < 9 {
		k++
	}
	if k == j || k < len(p.s) && p.s[k] >= '0' && p.s[k] <= '9' {
		return 0, false
	}
	n, err := strconv.Atoi(string(p.s[p.i:k]))
	p.i = k
	return n, err == nil
}

// level reads one brace level at p.i ("{"): sub-arrays or elements, all
// of one kind, the same number at every position of a level (a
// rectangular array). "{}" is an empty array only as the whole literal.
func (p *arrayLit) level(depth int, sizes *[]int, elems *[][]byte) error {
	p.i++ // {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		if depth > 0 {
			return errMalformedArray
		}
		*sizes = nil
		return nil
	}
	n := 0
	var nested bool
	for {
		p.space()
		if p.i >= len(p.s) {
			return errMalformedArray
		}
		if p.s[p.i] == '{' {
			if n > 0 && !nested {
				return errMalformedArray
			}
			nested = true
			if err := p.level(depth+1, sizes, elems); err != nil {
				return err
			}
		} else {
			if nested {
				return errMalformedArray
			}
			e, err := p.element()
			if err != nil {
				return err
			}
			*elems = append(*elems, e)
		}
		n++
		p.space()
		if p.i >= len(p.s) {
			return errMalformedArray
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			continue
		case '}':
			p.i++
		default:
			return errMalformedArray
		}
		break
	}
	// The size of this level must agree with every other at its depth,
	// and levels of elements must all be the innermost.
	for len(*sizes) <= depth {
		*sizes = append(*sizes, -1)
	}
	switch {
	case (*sizes)[depth] < 0:
		(*sizes)[depth] = n
	case (*sizes)[depth] != n:
		return errMalformedArray
	}
	switch {
	case !nested && p.leaf == 0:
		p.leaf = depth + 1
	case !nested && p.leaf != depth+1, nested && p.leaf <= depth+1:
		return errMalformedArray
	}
	return nil
}

// element reads one element: "quoted" (backslash escapes, white space
// kept) or unquoted (backslash escapes, white space trimmed at both ends
// unless escaped, NULL in any case is NULL). It stops before the "," or
// "}" after it.
func (p *arrayLit) element() ([]byte, error) {
	out := []byte{}
	if p.s[p.i] == '"' {
		p.i++
		for {
			if p.i >= len(p.s) {
				return nil, errMalformedArray
			}
			c := p.s[p.i]
			p.i++
			switch c {
			case '\\':
				if p.i >= len(p.s) {
					return nil, errMalformedArray
				}
				out = append(out, p.s[p.i])
				p.i++
			case '"':
				return out, nil
			default:
				out = append(out, c)
			}
		}
	}
	kept := 0 // len(out) up to the last character that is not trailing white space
	escaped := false
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == ',' || c == '}':
			if kept == 0 && !escaped {
				return nil, errMalformedArray // an empty unquoted element
			}
			out = out[:kept]
			if !escaped && len(out) == 4 && strings.EqualFold(string(out), "NULL") {
				return nil, nil
			}
			return out, nil
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return nil, errMalformedArray
			}
			out = append(out, p.s[p.i+1])
			kept, escaped = len(out), true
			p.i += 2
			continue
		case c == '"' || c == '{':
			return nil, errMalformedArray
		case arraySpace(c):
			out = append(out, c)
		default:
			out = append(out, c)
			kept = len(out)
		}
		p.i++
	}
	return nil, errMalformedArray
}
