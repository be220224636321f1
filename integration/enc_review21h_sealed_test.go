package integration

// Review 21h: envelope.SealedSQL, now shared by the operator commands and
// the proxy's uniqueness fill, judges every value as envelope.IsText
// (text) and envelope.IsBinary (bytea) do, under
// standard_conforming_strings on and off and a search_path whose first
// schema has functions of the names it calls (holds).

import (
	"fmt"
	"testing"
	"time"

	"github.com/pgveil/pgveil/integration/harness"
	"github.com/pgveil/pgveil/keysource/envelope"
)

func TestReview21hSealedSQLMatchesGo(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	c, err := cluster.Connect(ctx, harness.SuperUser, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var texts [][]byte
	min := envelope.EncodedLen(envelope.Overhead)
	for _, n := range []int{0, 5, min - 2, min - 1, min, min + 1, min + 2, min + 3, min + 4, min + 5} {
		for _, pre := range []string{"pgv1:", "pgv2:", "PGV1:", "éé1:a"} {
			v := []byte(pre)
			for len(v) < n {
				v = append(v, 'A')
			}
			texts = append(texts, v)
		}
	}
	var bins [][]byte
	for _, n := range []int{0, 1, 5, envelope.Overhead - 1, envelope.Overhead, envelope.Overhead + 7} {
		for _, head := range [][]byte{{1, 0, 0, 0, 0}, {1, 0, 0, 0, 1}, {1, 9, 0, 0, 0}, {2, 0, 0, 0, 1}, {0, 0, 0, 0, 1}, {'\\', 'x', '0', '1', '0'}} {
			v := append([]byte(nil), head...)
			for len(v) < n {
				v = append(v, 7)
			}
			if len(v) > n {
				v = v[:n]
			}
			bins = append(bins, v)
		}
	}
	if _, err := c.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS h21shadow; CREATE OR REPLACE FUNCTION h21shadow.octet_length(varchar) RETURNS int LANGUAGE sql AS 'SELECT 1000'; CREATE OR REPLACE FUNCTION h21shadow.substr(bytea, int, int) RETURNS bytea LANGUAGE sql AS $$SELECT '\x01'::bytea$$`); err != nil {
		t.Fatal(err)
	}
	defer c.Exec(ctx, `DROP SCHEMA h21shadow CASCADE`)
	for _, setup := range []string{
		`SET standard_conforming_strings = on; SET search_path = public`,
		`SET standard_conforming_strings = off; SET search_path = h21shadow, public`,
	} {
		if _, err := c.Exec(ctx, setup); err != nil {
			t.Fatal(err)
		}
		for _, v := range texts {
			var got bool
			if err := c.QueryRow(ctx, fmt.Sprintf(`SELECT COALESCE(%s, false) FROM (SELECT $1::text AS x) s`, envelope.SealedSQL("x", true)), string(v)).Scan(&got); err != nil {
				t.Fatalf("%q: %v", v, err)
			}
			if got != envelope.IsText(v) {
				t.Errorf("%s: text %q (%d bytes): SQL %v, IsText %v", setup, v, len(v), got, envelope.IsText(v))
			}
		}
		for _, v := range bins {
			var got bool
			if err := c.QueryRow(ctx, fmt.Sprintf(`SELECT COALESCE(%s, false) FROM (SELECT $1::bytea AS x) s`, envelope.SealedSQL("x", false)), v).Scan(&got); err != nil {
				t.Fatalf("%x: %v", v, err)
			}
			if got != envelope.IsBinary(v) {
				t.Errorf("%s: bytea %x: SQL %v, IsBinary %v", setup, v, got, envelope.IsBinary(v))
			}
		}
	}
}
