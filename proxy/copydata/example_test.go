package copydata_test

import (
	"bytes"
	"fmt"

	"github.com/pgveil/pgveil/proxy/copydata"
)

// A proxy's COPY FROM STDIN path: CopyData payloads cut anywhere are split
// into rows, one field is replaced and one appended, and the rows are
// written again in the stream's own line-ending style. The header and the
// end marker pass through untouched.
func Example() {
	o := copydata.Options{Format: copydata.CSV, Header: true}
	payloads := []string{"email,name\r\nalice@ex", "ample.com,\"Alice, A.\"\r\nbob@example.com,Bob\r", "\n\\.\r\n"}

	s := copydata.NewSplitter(o)
	p := copydata.NewParser(o)
	var fields []copydata.Field
	var out bytes.Buffer
	emit := func(row []byte) {
		if s.Kind() != copydata.KindData {
			out.Write(row) // header, end marker
			return
		}
		var err error
		if fields, err = p.Parse(row, fields); err != nil {
			panic(err)
		}
		email := fields[0].Value
		fields[0].Value = bytes.ToUpper(email)                                         // "encrypt"
		fields = append(fields, copydata.Field{Value: []byte(fmt.Sprint(len(email)))}) // "blind index"
		w := o
		w.EOL = s.EOL()
		out.Write(copydata.AppendRow(nil, w, fields))
	}
	for _, payload := range payloads {
		s.Feed([]byte(payload))
		for {
			row, ok := s.Next()
			if !ok {
				break
			}
			emit(row)
		}
	}
	if rest, err := s.End(); err != nil {
		panic(err)
	} else if rest != nil {
		emit(rest)
	}
	fmt.Printf("%q\n", out.String())
	// Output:
	// "email,name\r\nALICE@EXAMPLE.COM,\"Alice, A.\",17\r\nBOB@EXAMPLE.COM,Bob,15\r\n\\.\r\n"
}
