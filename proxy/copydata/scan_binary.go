package copydata

import (
	"encoding/binary"
	"errors"
)

// scanBinary finds the end of the binary header, tuple or trailer that
// starts at s.r, resuming a tuple's field walk at s.i.
func (s *Splitter) scanBinary(final bool) (end int, kind RowKind, ok bool, err error) {
	b := s.buf
	if !s.gotHeader {
		n, err := parseBinaryHeader(b[s.r:], s.max)
		if errors.Is(err, ErrShort) {
			if final {
				return 0, 0, false, formatError("COPY file signature not recognized or header incomplete")
			}
			return 0, 0, false, nil
		}
		if err != nil {
			return 0, 0, false, err
		}
		return s.r + n, KindHeader, true, nil
	}
	// Nothing past the longest tuple allowed is looked at, so that what is
	// reported does not depend on how the stream was cut.
	i := s.i
	if s.fieldsLeft < 0 {
		if i+2-s.r > s.max {
			return 0, 0, false, errRowTooLong(s.max)
		}
		if len(b)-i < 2 {
			if final && len(b) > i {
				return 0, 0, false, formatError("unexpected EOF in COPY data")
			}
			return 0, 0, false, nil // at the end of the data a missing trailer is allowed
		}
		count := int16(binary.BigEndian.Uint16(b[i:]))
		if count == -1 {
			return i + 2, KindEnd, true, nil
		}
		if count < 0 || int(count) > MaxBinaryFields {
			return 0, 0, false, formatError("invalid field count in COPY binary tuple")
		}
		s.fieldsLeft = int(count)
		i += 2
		s.i = i
	}
	for s.fieldsLeft > 0 {
		if i+4-s.r > s.max {
			return 0, 0, false, errRowTooLong(s.max)
		}
		if len(b)-i < 4 {
			break
		}
		size := int32(binary.BigEndian.Uint32(b[i:]))
		switch {
		case size == -1:
			i += 4
		case size < 0 || size > maxFieldSize:
			return 0, 0, false, formatError("invalid field size")
		default:
			if i+4+int(size)-s.r > s.max {
				return 0, 0, false, errRowTooLong(s.max)
			}
			if len(b)-i-4 < int(size) {
				s.i = i
				if final {
					return 0, 0, false, formatError("unexpected EOF in COPY data")
				}
				return 0, 0, false, nil
			}
			i += 4 + int(size)
		}
		s.fieldsLeft--
		s.i = i
	}
	if s.fieldsLeft > 0 {
		if final {
			return 0, 0, false, formatError("unexpected EOF in COPY data")
		}
		return 0, 0, false, nil
	}
	return i, KindData, true, nil
}
