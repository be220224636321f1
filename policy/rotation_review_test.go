package policy

import (
	"strings"
	"testing"
)

// Review tests of blind_index.next: the rules that keep two index columns
// of one table apart and two columns sharing an index key comparable.

func reviewLoad(t *testing.T, tables string) (*Config, error) {
	t.Helper()
	return LoadBytes("c.yaml", []byte(tablesPreamble+"tables:\n"+tables), env(nil))
}

func TestReviewNextRefusals(t *testing.T) {
	for _, tc := range []struct{ name, tables, want string }{
		{"next key is another column's current key of another type", `  a:
    columns:
      x: {type: int4, blind_index: {column: xb, key: k}}
  b:
    columns:
      y: {type: text, blind_index: {column: yb, key: j, next: {column: yb2, key: k}}}
`, `tables.public.b.columns.y.blind_index.next.key: shares index key "k" with public.a.x but has type text, not int4`},
		{"next key is another column's default key of another type", `  a:
    columns:
      x: {type: int4, blind_index: {column: xb}}
  b:
    columns:
      y: {type: text, blind_index: {column: yb, next: {column: yb2, key: public.a.x}}}
`, `blind_index.next.key: shares index key "public.a.x" with public.a.x but has type text, not int4`},
		{"inherited normalisation differs from the sharer's", `  a:
    columns:
      x: {type: text, blind_index: {column: xb, key: k, normalize: [lowercase, trim]}}
  b:
    columns:
      y: {type: text, blind_index: {column: yb, key: j, normalize: [lowercase], next: {column: yb2, key: k}}}
`, `tables.public.b.columns.y.blind_index.next.normalize: shares index key "k" with public.a.x but normalizes differently`},
		{"two next indexes share a key but normalise differently", `  a:
    columns:
      x: {type: text, blind_index: {column: xb, key: k1, next: {column: xb2, key: k2, normalize: [trim]}}}
      y: {type: text, blind_index: {column: yb, key: j1, next: {column: yb2, key: k2}}}
`, `tables.public.a.columns.y.blind_index.next.normalize: shares index key "k2" with public.a.x but normalizes differently`},
		{"current key shared with an earlier column's next key of another type", `  a:
    columns:
      x: {type: text, blind_index: {column: xb, key: k1, next: {column: xb2, key: k2}}}
  b:
    columns:
      y: {type: date, blind_index: {column: yb, key: k2}}
`, `tables.public.b.columns.y.blind_index.key: shares index key "k2" with public.a.x but has type date, not text`},
		{"next column is another column's next column", `  a:
    columns:
      x: {type: text, blind_index: {column: xb, next: {column: nb, key: k2}}}
      y: {type: text, blind_index: {column: yb, next: {column: nb, key: k3}}}
`, `tables.a.columns.y.blind_index.next.column: "nb" is already the blind index of x`},
		{"next column is another column's current column", `  a:
    columns:
      x: {type: text, blind_index: {column: xb}}
      y: {type: text, blind_index: {column: yb, next: {column: xb, key: k3}}}
`, `tables.a.columns.y.blind_index.next.column: "xb" is already the blind index of x`},
		{"current column is an earlier column's next column", `  a:
    columns:
      x: {type: text, blind_index: {column: xb, next: {column: nb, key: k2}}}
      y: {type: text, blind_index: {column: nb}}
`, `tables.a.columns.y.blind_index.column: "nb" is already the blind index of x`},
		{"next column is the key_context column", `  a:
    key_context: org_id
    columns:
      x: {type: text, blind_index: {column: xb, next: {column: org_id, key: k2}}}
`, `tables.a.columns.x.blind_index.next.column: "org_id" is the key_context column`},
		{"next column is an encrypted column", `  a:
    columns:
      x: {type: text, blind_index: {column: xb, next: {column: y, key: k2}}}
      y: {type: text}
`, `tables.a.columns.x.blind_index.next.column: "y" is an encrypted column`},
		{"next column is its own column", `  a:
    columns:
      x: {type: text, blind_index: {column: xb, next: {column: x, key: k2}}}
`, `"x" is an encrypted column`},
		{"next column not an identifier", `  a:
    columns:
      x: {type: text, blind_index: {column: xb, next: {column: "", key: k2}}}
`, `blind_index.next.column: must not be empty`},
		{"next is not a mapping", `  a:
    columns:
      x: {type: text, blind_index: {column: xb, next: xb2}}
`, `blind_index.next`},
		{"next with an unknown normalisation", `  a:
    columns:
      x: {type: text, blind_index: {column: xb, next: {column: xb2, key: k2, normalize: [upper]}}}
`, `blind_index.next.normalize: item 0: unknown normalization "upper"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := reviewLoad(t, tc.tables)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestReviewNextAccepted(t *testing.T) {
	// A next key shared with another column's current key, same type and
	// normalisation (a rotation onto an existing shared key).
	cfg, err := reviewLoad(t, `  a:
    columns:
      x: {type: text, blind_index: {column: xb, key: k, normalize: [lowercase]}}
  b:
    columns:
      y: {type: text, blind_index: {column: yb, key: j, normalize: [lowercase], next: {column: yb2, key: k}}}
      z:
        type: text
        blind_index:
          column: zb
          normalize: [lowercase]
          unique: true
          next: {column: zb2, key: z2, normalize: [], unique: false}
      w: {type: text, blind_index: {column: wb, next: null}}
`)
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Table("public", "b")
	if n := b.Column("y").BlindIndex.Next; n == nil || n.Key != "k" || !sameNorms(n.Normalize, []Normalization{NormLowercase}) {
		t.Errorf("y next: %+v", n)
	}
	// normalize: [] on next drops the normalisation (a rotation may change it).
	if n := b.Column("z").BlindIndex.Next; n == nil || len(n.Normalize) != 0 || n.Unique {
		t.Errorf("z next: %+v", n)
	}
	if b.Column("w").BlindIndex.Next != nil || len(b.Column("w").IndexTargets()) != 1 {
		t.Errorf("next: null is no rotation")
	}
	if got := b.BlindIndexColumn("zb2"); got != b.Column("z") {
		t.Errorf("BlindIndexColumn(zb2) = %v", got)
	}
	if got := b.BlindIndexColumn("x"); got != nil {
		t.Errorf("BlindIndexColumn(x) = %v", got)
	}
	// The current index stays the lookup index: Next is never first.
	if ts := b.Column("z").IndexTargets(); len(ts) != 2 || ts[0].Column != "zb" || ts[1].Column != "zb2" {
		t.Errorf("targets: %+v", ts)
	}
}
