package proxy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestTableStateVectors checks the pgveil.tables signature vectors of
// docs/FORMAT.md: replicas of different versions and the CLI must agree on
// the bytes signed.
func TestTableStateVectors(t *testing.T) {
	doc, err := os.ReadFile("../docs/FORMAT.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```vector table-state\n")
	if len(blocks) < 2 {
		t.Fatal("docs/FORMAT.md has no table-state vector")
	}
	for _, b := range blocks[1:] {
		f := map[string]string{}
		for _, line := range strings.Split(b[:strings.Index(b, "```")], "\n") {
			if k, v, ok := strings.Cut(line, " "); ok {
				f[k] = strings.TrimSpace(v)
			}
		}
		gen, err := strconv.ParseInt(f["generation"], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		key, err := hex.DecodeString(f["key"])
		if err != nil || len(key) != 32 {
			t.Fatalf("key %q: %v", f["key"], err)
		}
		input := stateMACInput(f["table_name"], f["state"], gen)
		if got := hex.EncodeToString(input); got != f["input"] {
			t.Errorf("input\n got %s\nwant %s", got, f["input"])
		}
		h := hmac.New(sha256.New, key)
		h.Write(input)
		if got := hex.EncodeToString(h.Sum(nil)); got != f["mac"] {
			t.Errorf("mac\n got %s\nwant %s", got, f["mac"])
		}
	}
}
