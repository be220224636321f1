package keysource

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/keysource/envelope"
	"github.com/pgveil/pgveil/policy"
)

// The test vectors live in docs/FORMAT.md, in fenced blocks opened with
// "```vector <kind>": one "name value" pair per line. The tests read them
// from the document itself, so the document and the code cannot drift.
const formatDoc = "../docs/FORMAT.md"

type vector struct {
	kind string
	line int
	f    map[string]string
}

func (v vector) hex(t *testing.T, name string) []byte {
	t.Helper()
	s, ok := v.f[name]
	if !ok {
		t.Fatalf("FORMAT.md:%d: %s vector lacks %q", v.line, v.kind, name)
	}
	if s == "(empty)" {
		return []byte{}
	}
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("FORMAT.md:%d: %s: %v", v.line, name, err)
	}
	return b
}

func (v vector) str(t *testing.T, name string) string {
	t.Helper()
	s, ok := v.f[name]
	if !ok {
		t.Fatalf("FORMAT.md:%d: %s vector lacks %q", v.line, v.kind, name)
	}
	if s == "(empty)" {
		return ""
	}
	return s
}

func readVectors(t *testing.T) map[string][]vector {
	t.Helper()
	f, err := os.Open(formatDoc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]vector{}
	var cur *vector
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```vector "):
			cur = &vector{kind: strings.TrimSpace(line[len("```vector "):]), line: n, f: map[string]string{}}
		case cur != nil && strings.HasPrefix(line, "```"):
			out[cur.kind] = append(out[cur.kind], *cur)
			cur = nil
		case cur != nil && strings.TrimSpace(line) != "" && !strings.HasPrefix(strings.TrimSpace(line), "#"):
			name, val, _ := strings.Cut(strings.TrimSpace(line), " ")
			cur.f[name] = strings.TrimSpace(val)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFormatVectorsEnvelope(t *testing.T) {
	vs := readVectors(t)["envelope"]
	if len(vs) < 3 {
		t.Fatalf("FORMAT.md has %d envelope vectors, want at least 3", len(vs))
	}
	for _, v := range vs {
		key, nonce, pt, env := v.hex(t, "key"), v.hex(t, "nonce"), v.hex(t, "plaintext"), v.hex(t, "envelope")
		id64, err := strconv.ParseUint(v.str(t, "key_id"), 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		id := uint32(id64)
		aad := envelope.AppendAAD(nil, v.str(t, "schema"), v.str(t, "table"), v.str(t, "column"), id)
		if !bytes.Equal(aad, v.hex(t, "aad")) {
			t.Errorf("FORMAT.md:%d: AAD %x, document says %x", v.line, aad, v.hex(t, "aad"))
		}
		g := gcmFor(t, key)
		// Seal with the document's nonce gives the document's bytes...
		if got := envelope.SealWithNonce(nil, g, id, nonce, pt, aad); !bytes.Equal(got, env) {
			t.Errorf("FORMAT.md:%d: sealed %x, document says %x", v.line, got, env)
		}
		// ...and the document's bytes open to the document's plaintext.
		if got, err := envelope.Open(nil, g, env, aad); err != nil || !bytes.Equal(got, pt) {
			t.Errorf("FORMAT.md:%d: opened %x, %v", v.line, got, err)
		}
		if txt := v.str(t, "text"); string(envelope.Encode(nil, env)) != txt {
			t.Errorf("FORMAT.md:%d: text form %s, document says %s", v.line, envelope.Encode(nil, env), txt)
		} else if back, err := envelope.Decode(nil, []byte(txt)); err != nil || !bytes.Equal(back, env) {
			t.Errorf("FORMAT.md:%d: text form does not decode: %v", v.line, err)
		}
		// Through a DataKey too, which is what the proxy uses.
		dk, err := newDataKeyFromWorkingKey(keyMeta{ID: id, Purpose: PurposeEnc}, v.str(t, "schema"), v.str(t, "table"), v.str(t, "column"), key)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := dk.open(nil, env); err != nil || !bytes.Equal(got, pt) {
			t.Errorf("FORMAT.md:%d: DataKey opened %x, %v", v.line, got, err)
		}
	}
}

func gcmFor(t *testing.T, key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestFormatVectorsBlindIndex(t *testing.T) {
	vs := readVectors(t)["blind-index"]
	if len(vs) < 3 {
		t.Fatalf("FORMAT.md has %d blind-index vectors, want at least 3", len(vs))
	}
	for _, v := range vs {
		typ := policy.LogicalType(v.str(t, "type"))
		format := int16(0)
		if v.str(t, "format") == "binary" {
			format = 1
		}
		in := v.hex(t, "value")
		var norms []policy.Normalization
		if n := v.str(t, "normalize"); n != "" && n != "none" {
			for _, s := range strings.Split(n, ",") {
				norms = append(norms, policy.Normalization(s))
			}
		}
		pt, err := canon.Plaintext(typ, format, 0, in, nil)
		if err != nil {
			t.Fatalf("FORMAT.md:%d: %v", v.line, err)
		}
		if want := v.hex(t, "plaintext"); !bytes.Equal(pt, want) {
			t.Errorf("FORMAT.md:%d: plaintext %x, document says %x", v.line, pt, want)
		}
		input, err := canon.IndexInput(typ, pt, norms, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := v.hex(t, "index_input"); !bytes.Equal(input, want) {
			t.Errorf("FORMAT.md:%d: index input %x, document says %x", v.line, input, want)
		}
		ix := newIndexKey(keyMeta{Purpose: PurposeIndex}, v.hex(t, "key"))
		if got, want := ix.Sum(nil, input), v.hex(t, "index"); !bytes.Equal(got, want) {
			t.Errorf("FORMAT.md:%d: index %x, document says %x", v.line, got, want)
		}
	}
}

func TestFormatVectorsKeyDerivation(t *testing.T) {
	vs := readVectors(t)["derive"]
	if len(vs) == 0 {
		t.Fatal("FORMAT.md has no derive vector")
	}
	for _, v := range vs {
		id, _ := strconv.ParseUint(v.str(t, "key_id"), 10, 32)
		ver, _ := strconv.Atoi(v.str(t, "version"))
		m := keyMeta{ID: uint32(id), Purpose: Purpose(v.str(t, "purpose")), Scope: v.str(t, "scope"),
			Tenant: v.str(t, "tenant"), HasTenant: v.str(t, "has_tenant") == "true", Version: ver}
		if info := deriveInfo(m); !bytes.Equal(info, v.hex(t, "info")) {
			t.Errorf("FORMAT.md:%d: info %x, document says %x", v.line, info, v.hex(t, "info"))
		}
		k, err := deriveKey(v.hex(t, "stored_key"), m)
		if err != nil || !bytes.Equal(k, v.hex(t, "working_key")) {
			t.Errorf("FORMAT.md:%d: working key %x, document says %x", v.line, k, v.hex(t, "working_key"))
		}
	}
}

func TestFormatVectorsLocalWrap(t *testing.T) {
	vs := readVectors(t)["local-wrap"]
	if len(vs) == 0 {
		t.Fatal("FORMAT.md has no local-wrap vector")
	}
	for _, v := range vs {
		k, err := newLocalKey(v.hex(t, "master_key"))
		if err != nil {
			t.Fatal(err)
		}
		if k.id != v.str(t, "master_id") {
			t.Errorf("FORMAT.md:%d: master id %s, document says %s", v.line, k.id, v.str(t, "master_id"))
		}
		dk, wrapped := v.hex(t, "data_key"), v.hex(t, "wrapped")
		if got := k.wrap(v.hex(t, "nonce"), dk); !bytes.Equal(got, wrapped) {
			t.Errorf("FORMAT.md:%d: wrapped %x, document says %x", v.line, got, wrapped)
		}
		m := &localMaster{current: k, byID: map[string]*localKey{k.id: k}}
		if got, err := m.Unwrap(context.Background(), wrapped, k.id); err != nil || !bytes.Equal(got, dk) {
			t.Errorf("FORMAT.md:%d: unwrapped %x, %v", v.line, got, err)
		}
	}
}

// TestPrintVectors regenerates the vector blocks (PGVEIL_PRINT_VECTORS=1
// go test -run TestPrintVectors -v); FORMAT.md holds its output.
func TestPrintVectors(t *testing.T) {
	if os.Getenv("PGVEIL_PRINT_VECTORS") == "" {
		t.Skip("set PGVEIL_PRINT_VECTORS=1 to print")
	}
	seq := func(start, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(start + i)
		}
		return b
	}
	for _, c := range []struct {
		key                   []byte
		id                    uint32
		schema, table, column string
		nonce, pt             []byte
	}{
		{seq(0, 32), 1, "public", "users", "email", seq(0xa0, 12), []byte("alice@example.com")},
		{seq(0x40, 32), 0x01020304, "billing", "invoices", "amount", seq(0xb0, 12), []byte("1234.50")},
		{seq(0x80, 32), 4294967295, "public", "notes", "body", seq(0xc0, 12), []byte{}},
		{seq(0x11, 32), 7, "public", "users", "birth_date", make([]byte, 12), []byte("2024-01-02")},
	} {
		aad := envelope.AppendAAD(nil, c.schema, c.table, c.column, c.id)
		env := envelope.SealWithNonce(nil, gcmFor(t, c.key), c.id, c.nonce, c.pt, aad)
		pt := hex.EncodeToString(c.pt)
		if pt == "" {
			pt = "(empty)"
		}
		fmt.Printf("```vector envelope\nkey        %x\nkey_id     %d\nschema     %s\ntable      %s\ncolumn     %s\nnonce      %x\nplaintext  %s\naad        %x\nenvelope   %x\ntext       %s\n```\n\n",
			c.key, c.id, c.schema, c.table, c.column, c.nonce, pt, aad, env, envelope.Encode(nil, env))
	}
	for _, c := range []struct {
		typ    policy.LogicalType
		norm   string
		text   string
		binary []byte
	}{
		{policy.TypeText, "trim,lowercase", "  Alice@Example.COM ", nil},
		{policy.TypeInt4, "none", "007", nil},
		{policy.TypeInt4, "none", "", []byte{0, 0, 0, 7}},
		{policy.TypeNumeric, "none", "1.50", nil},
		{policy.TypeDate, "none", "", []byte{0, 0, 0x22, 0x3f}},
		{policy.TypeTimestamptz, "none", "2024-01-02 03:04:05.5+02:00", nil},
		{policy.TypeText, "nfc", "e\u0301cole", nil},
	} {
		key := seq(0x20, 32)
		format, in := int16(0), []byte(c.text)
		if c.binary != nil {
			format, in = 1, c.binary
		}
		var norms []policy.Normalization
		if c.norm != "none" {
			for _, s := range strings.Split(c.norm, ",") {
				norms = append(norms, policy.Normalization(s))
			}
		}
		pt, err := canon.Plaintext(c.typ, format, 0, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		input, _ := canon.IndexInput(c.typ, pt, norms, nil)
		sum := newIndexKey(keyMeta{}, key).Sum(nil, input)
		value := fmt.Sprintf("# value %q as text\nformat       text\nvalue        %x", c.text, c.text)
		if c.binary != nil {
			value = fmt.Sprintf("# value %x as binary\nformat       binary\nvalue        %x", c.binary, c.binary)
		}
		fmt.Printf("```vector blind-index\n%s\nkey          %x\ntype         %s\nnormalize    %s\nplaintext    %x\nindex_input  %x\nindex        %x\n```\n\n",
			value, key, c.typ, c.norm, pt, input, sum)
	}
	m := keyMeta{ID: 42, Purpose: PurposeEnc, Scope: "public.users.email", Tenant: "org-7", HasTenant: true, Version: 2}
	wk, _ := deriveKey(seq(0x30, 32), m)
	fmt.Printf("```vector derive\nstored_key   %x\nkey_id       %d\npurpose      %s\nscope        %s\nhas_tenant   %t\ntenant       %s\nversion      %d\ninfo         %x\nworking_key  %x\n```\n\n",
		seq(0x30, 32), m.ID, m.Purpose, m.Scope, m.HasTenant, m.Tenant, m.Version, deriveInfo(m), wk)
	lk, _ := newLocalKey(seq(0x50, 32))
	fmt.Printf("```vector local-wrap\nmaster_key   %x\nmaster_id    %s\nnonce        %x\ndata_key     %x\nwrapped      %x\n```\n",
		seq(0x50, 32), lk.id, seq(0xd0, 12), seq(0x60, 32), lk.wrap(seq(0xd0, 12), seq(0x60, 32)))
}
