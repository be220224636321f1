package copydata

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/integration/harness"
)

// The tests in this file hold the package against a real PostgreSQL: what
// AppendRow writes, PostgreSQL reads back as the same values; what
// PostgreSQL writes, the Splitter and Parser read as the stored values; and
// for streams written by hand, PostgreSQL and the Parser read the same
// values, or both refuse them. The cluster starts on first use.

var (
	pgOnce    sync.Once
	pgCluster *harness.Cluster
	pgErr     error
	pgTable   atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if pgCluster != nil {
		pgCluster.Stop()
	}
	os.Exit(code)
}

func pgConnect(t *testing.T) *pgx.Conn {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster; run without -short")
	}
	pgOnce.Do(func() { pgCluster, pgErr = harness.StartCluster(harness.Options{}) })
	if pgErr != nil {
		t.Fatalf("test cluster: %v", pgErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgCluster.Connect(ctx, harness.SuperUser, harness.Database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// newTable makes a table of three text columns that keeps input order.
func newTable(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	name := fmt.Sprintf("copydata_%d", pgTable.Add(1))
	if _, err := conn.Exec(context.Background(), "CREATE TABLE "+name+" (n bigserial, a text, b text, c text)"); err != nil {
		t.Fatal(err)
	}
	return name
}

// chunkReader returns its data in random pieces: each becomes one CopyData
// message.
type chunkReader struct {
	data []byte
	r    *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.r.Intn(64))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// chunkWriter records each CopyData payload of COPY TO.
type chunkWriter struct{ chunks [][]byte }

func (c *chunkWriter) Write(p []byte) (int, error) {
	c.chunks = append(c.chunks, append([]byte(nil), p...))
	return len(p), nil
}

func copyIn(t *testing.T, conn *pgx.Conn, table, with string, data []byte, r *rand.Rand) error {
	t.Helper()
	_, err := conn.PgConn().CopyFrom(context.Background(), &chunkReader{data: data, r: r},
		"COPY "+table+" (a, b, c) FROM STDIN "+with)
	return err
}

func selectRows(t *testing.T, conn *pgx.Conn, table string) [][]Field {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT a, b, c FROM "+table+" ORDER BY n")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]Field
	for rows.Next() {
		var a, b, c *string
		if err := rows.Scan(&a, &b, &c); err != nil {
			t.Fatal(err)
		}
		var fs []Field
		for _, s := range []*string{a, b, c} {
			if s == nil {
				fs = append(fs, Field{Null: true})
			} else {
				fs = append(fs, Field{Value: []byte(*s)})
			}
		}
		out = append(out, fs)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func compareRows(t *testing.T, what string, got, want [][]Field) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !fieldsEqual(got[i], want[i]) {
			t.Fatalf("%s: row %d is %s, want %s", what, i, showFields(got[i]), showFields(want[i]))
		}
	}
}

// splitAndParse runs COPY TO output (or any stream) through a Splitter and
// a Parser; it returns the data rows and the raw rows of every kind.
func splitAndParse(o Options, chunks [][]byte) (rows [][]Field, raw []string, kinds []RowKind, err error) {
	s := NewSplitter(o)
	p := NewParser(o)
	take := func(row []byte) error {
		raw = append(raw, string(row))
		kinds = append(kinds, s.Kind())
		if s.Kind() != KindData {
			return nil
		}
		fs, err := p.Parse(row, nil)
		if err != nil {
			return atLine(err, s.Line())
		}
		rows = append(rows, cloneFields(fs)) // values live until the next Parse or Feed
		return nil
	}
	for _, c := range chunks {
		s.Feed(c)
		for {
			row, ok := s.Next()
			if !ok {
				break
			}
			if err := take(row); err != nil {
				return rows, raw, kinds, err
			}
		}
		if s.Err() != nil {
			return rows, raw, kinds, s.Err()
		}
	}
	rest, err := s.End()
	if err != nil {
		return rows, raw, kinds, err
	}
	if rest != nil {
		err = take(rest)
	}
	return rows, raw, kinds, err
}

// pgOptionSets pair Options with the COPY options PostgreSQL is given.
var pgOptionSets = []struct {
	name string
	o    Options
	with string
}{
	{"text", Options{}, ""},
	{"text custom", Options{Delimiter: '|', Null: "nil", NullSet: true}, "(DELIMITER '|', NULL 'nil')"},
	{"text header crlf", Options{Header: true, EOL: CRLF}, "(HEADER)"},
	{"csv", Options{Format: CSV}, "(FORMAT csv)"},
	{"csv custom", Options{Format: CSV, Delimiter: '|', Null: "nil", NullSet: true, Quote: '\'', Escape: '\\'},
		`(FORMAT csv, DELIMITER '|', NULL 'nil', QUOTE '''', ESCAPE '\')`},
	{"csv header cr", Options{Format: CSV, Header: true, EOL: CR, Null: `\N`, NullSet: true}, `(FORMAT csv, HEADER, NULL '\N')`},
	{"binary", Options{Format: Binary}, "(FORMAT binary)"},
}

// TestPostgresRoundTrip: rows written by AppendRow (and the binary
// functions) load into PostgreSQL as exactly those values, and COPY TO
// output split and parsed gives them back; for text and CSV, COPY TO's
// bytes are AppendRow's bytes.
func TestPostgresRoundTrip(t *testing.T) {
	conn := pgConnect(t)
	ctx := context.Background()
	r := rand.New(rand.NewSource(5))
	for _, set := range pgOptionSets {
		t.Run(set.name, func(t *testing.T) {
			o := set.o
			table := newTable(t, conn)
			var want [][]Field
			for _, v := range trickyValues {
				want = append(want, vals(v, nil, v))
			}
			for i := 0; i < 400; i++ {
				want = append(want, randFields(r, 3, true, false))
			}
			var stream []byte
			if o.Format == Binary {
				stream = AppendBinaryHeader(stream)
			} else if o.Header {
				stream = AppendRow(stream, o, vals("a", "b", "c"))
			}
			for _, fs := range want {
				stream = AppendRow(stream, o, fs)
			}
			if o.Format == Binary {
				stream = AppendBinaryTrailer(stream)
			}
			if err := copyIn(t, conn, table, set.with, stream, r); err != nil {
				t.Fatalf("COPY FROM: %v", err)
			}
			compareRows(t, "SELECT after COPY FROM", selectRows(t, conn, table), want)

			var w chunkWriter
			if _, err := conn.PgConn().CopyTo(ctx, &w, "COPY (SELECT a, b, c FROM "+table+" ORDER BY n) TO STDOUT "+set.with); err != nil {
				t.Fatalf("COPY TO: %v", err)
			}
			got, raw, kinds, err := splitAndParse(o, w.chunks)
			if err != nil {
				t.Fatalf("parsing COPY TO output: %v", err)
			}
			compareRows(t, "COPY TO output", got, copyToSees(o, want))

			// Byte for byte what COPY TO writes, with its "\n".
			out := o
			out.EOL = LF
			var mine []byte
			if o.Format == Binary {
				mine = AppendBinaryHeader(mine)
			}
			theirs := []byte(strings.Join(raw, ""))
			for i, row := range raw {
				switch kinds[i] {
				case KindHeader:
					if o.Format != Binary {
						mine = append(mine, row...)
					}
				case KindEnd:
					mine = AppendBinaryTrailer(mine)
				default:
					fs, _ := ParseRow(o, []byte(row), nil)
					mine = AppendRow(mine, out, fs)
				}
			}
			if !bytes.Equal(mine, theirs) {
				t.Fatalf("AppendRow differs from COPY TO:\nmine   %q\ntheirs %q", head(mine), head(theirs))
			}
		})
	}
}

// copyToSees is what a reader of COPY TO gets for rows: in text format
// COPY TO writes a value that equals the NULL string unescaped, and it reads
// back as NULL (PostgreSQL's own limitation; AppendRow escapes such values).
func copyToSees(o Options, rows [][]Field) [][]Field {
	if o.Format != Text {
		return rows
	}
	o = o.WithDefaults()
	var out [][]Field
	for _, fs := range rows {
		fs = cloneFields(fs)
		for i, f := range fs {
			if !f.Null && string(appendTextValue(nil, f.Value, o.Delimiter)) == o.Null {
				fs[i] = Field{Null: true}
			}
		}
		out = append(out, fs)
	}
	return out
}

func head(b []byte) []byte { return b[:min(len(b), 400)] }

// TestPostgresNullLookalike: a text value that equals the NULL string
// loads as that value, not as NULL (AppendRow escapes its first byte).
func TestPostgresNullLookalike(t *testing.T) {
	conn := pgConnect(t)
	r := rand.New(rand.NewSource(6))
	table := newTable(t, conn)
	o := Options{Delimiter: '|', Null: "nil", NullSet: true}
	want := [][]Field{vals("nil", nil, "nil!"), vals(`\N`, "", "n")}
	var stream []byte
	for _, fs := range want {
		stream = AppendRow(stream, o, fs)
	}
	if err := copyIn(t, conn, table, "(DELIMITER '|', NULL 'nil')", stream, r); err != nil {
		t.Fatal(err)
	}
	compareRows(t, "SELECT", selectRows(t, conn, table), want)
}

// TestPostgresForceOptions: FORCE_NOT_NULL and FORCE_NULL read as
// PostgreSQL reads them; FORCE_QUOTE writes as COPY TO writes.
func TestPostgresForceOptions(t *testing.T) {
	conn := pgConnect(t)
	r := rand.New(rand.NewSource(7))
	table := newTable(t, conn)
	o := Options{Format: CSV, ForceNotNull: []bool{true, false, false}, ForceNull: []bool{false, true, false}}
	stream := []byte(",,\n\"\",\"\",\"\"\nx,\"y\",z\n")
	with := "(FORMAT csv, FORCE_NOT_NULL (a), FORCE_NULL (b))"
	if err := copyIn(t, conn, table, with, stream, r); err != nil {
		t.Fatal(err)
	}
	got, _, _, err := splitAndParse(o, [][]byte{stream})
	if err != nil {
		t.Fatal(err)
	}
	compareRows(t, "FORCE_NOT_NULL/FORCE_NULL", selectRows(t, conn, table), got)

	var w chunkWriter
	if _, err := conn.PgConn().CopyTo(context.Background(), &w, "COPY (SELECT a, b, c FROM "+table+" ORDER BY n) TO STDOUT (FORMAT csv, FORCE_QUOTE (a, c))"); err != nil {
		t.Fatal(err)
	}
	q := Options{Format: CSV, ForceQuote: []bool{true, false, true}}
	var mine []byte
	for _, fs := range got {
		mine = AppendRow(mine, q, fs)
	}
	if theirs := bytes.Join(w.chunks, nil); !bytes.Equal(mine, theirs) {
		t.Fatalf("FORCE_QUOTE: mine %q, theirs %q", mine, theirs)
	}
}

// TestPostgresDefaultMarker: the DEFAULT marker (PostgreSQL 16+).
func TestPostgresDefaultMarker(t *testing.T) {
	conn := pgConnect(t)
	if pgCluster.Version < 16 {
		t.Skipf("DEFAULT needs PostgreSQL 16, server is %d", pgCluster.Version)
	}
	table := newTable(t, conn)
	if _, err := conn.Exec(context.Background(), "ALTER TABLE "+table+" ALTER b SET DEFAULT 'dflt'"); err != nil {
		t.Fatal(err)
	}
	o := Options{Format: CSV, Default: "D", DefaultSet: true}
	stream := AppendRow(nil, o, vals("D", Field{Default: true}, nil))
	if err := copyIn(t, conn, table, "(FORMAT csv, DEFAULT 'D')", stream, rand.New(rand.NewSource(8))); err != nil {
		t.Fatal(err)
	}
	compareRows(t, "DEFAULT", selectRows(t, conn, table), [][]Field{vals("D", "dflt", nil)})
}
