package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

const bindAliasSchema = `
DROP TABLE IF EXISTS ba_codes;
CREATE TABLE ba_codes (id int, code bytea, code_bidx bytea);
GRANT ALL ON ba_codes TO PUBLIC;
`

const bindAliasTables = `tables:
  public.ba_codes:
    columns:
      code:
        type: int4
        blind_index: {column: code_bidx}
`

// TestBindAfterPassThroughBind: a Bind pgveil passes as it came (a
// statement it tracks but does not rewrite) must not share its parameter
// slices with the next conversion. Before, the next Bind's formats were
// rebuilt in place in the client's own: an int4 sent in text for an
// encrypted, blind-indexed column was read as text for the value and then
// as binary for its blind index (22P02).
func TestBindAfterPassThroughBind(t *testing.T) {
	relayCores(t, bindAliasSchema, bindAliasTables, func(t *testing.T, p *testProxy) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, err := pgconn.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		text := []int16{0}
		// Tracked (it returns an encrypted column), not rewritten.
		if _, err := conn.ExecParams(ctx, `SELECT code FROM ba_codes WHERE id = $1`, [][]byte{[]byte("1")}, nil, text, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecParams(ctx, `INSERT INTO ba_codes (id, code) VALUES (1, $1)`, [][]byte{[]byte("123")}, nil, text, nil).Close(); err != nil {
			t.Fatalf("INSERT after a pass-through Bind: %v", err)
		}
		res := conn.ExecParams(ctx, `SELECT code FROM ba_codes WHERE code = $1`, [][]byte{[]byte("123")}, nil, text, nil).Read()
		if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "123" {
			t.Errorf("lookup by the blind index: %v %q", res.Err, res.Rows)
		}
	})
}
