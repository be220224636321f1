package keysource

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
)

func TestGenerateKeyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "master.key")
	if err := GenerateKeyFile(p); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(p)
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(raw) != 32 {
		t.Fatalf("key file holds %d bytes (%v)", len(raw), err)
	}
	if err := GenerateKeyFile(p); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second keygen: %v", err)
	}
	b2, _ := os.ReadFile(p)
	if !bytes.Equal(b, b2) {
		t.Fatal("existing key file changed")
	}
	m, err := NewMaster(context.Background(), policy.KeySource{Kind: policy.KeySourceLocal, Local: policy.LocalKeySource{KeyFile: p}})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^local:[0-9a-f]{16}$`).MatchString(m.ID()) {
		t.Fatalf("master id %q", m.ID())
	}
	if strings.Contains(m.ID(), strings.TrimSpace(string(b))[:8]) {
		t.Fatal("master id shows key material")
	}
}

func TestLocalMasterFromEnv(t *testing.T) {
	key := testMasterKey(t)
	t.Setenv("PGVEIL_TEST_MASTER", base64.StdEncoding.EncodeToString(key))
	m, err := NewMaster(context.Background(), policy.KeySource{Kind: policy.KeySourceLocal, Local: policy.LocalKeySource{KeyEnv: "PGVEIL_TEST_MASTER"}})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := LocalMasterID(key)
	if m.ID() != id {
		t.Fatalf("id %s, want %s", m.ID(), id)
	}
	t.Setenv("PGVEIL_TEST_MASTER", "bm90IGEga2V5")
	_, err = NewMaster(context.Background(), policy.KeySource{Kind: policy.KeySourceLocal, Local: policy.LocalKeySource{KeyEnv: "PGVEIL_TEST_MASTER"}})
	if err == nil || strings.Contains(err.Error(), "bm90IGEga2V5") {
		t.Fatalf("bad key: %v", err)
	}
}

func TestLocalWrapUnwrap(t *testing.T) {
	ctx := context.Background()
	oldKey, newKey := testMasterKey(t), testMasterKey(t)
	old, _ := NewLocalMaster(oldKey)
	dk := bytes.Repeat([]byte{7}, 32)
	w1, id1, err := old.Wrap(ctx, dk)
	if err != nil || id1 != old.ID() {
		t.Fatal(id1, err)
	}
	w2, _, _ := old.Wrap(ctx, dk)
	if bytes.Equal(w1, w2) {
		t.Fatal("two wraps are equal")
	}
	if bytes.Contains(w1, dk) {
		t.Fatal("wrap contains the key")
	}
	got, err := old.Unwrap(ctx, w1, id1)
	if err != nil || !bytes.Equal(got, dk) {
		t.Fatal(err)
	}
	w1[len(w1)-1] ^= 1
	if _, err := old.Unwrap(ctx, w1, id1); !errors.Is(err, ErrTampered) {
		t.Fatalf("tampered wrap: %v", err)
	}
	w1[len(w1)-1] ^= 1

	// A new master without the old key cannot unwrap and says which key is missing.
	cur, _ := NewLocalMaster(newKey)
	if _, err := cur.Unwrap(ctx, w1, id1); err == nil || !strings.Contains(err.Error(), id1) {
		t.Fatalf("unwrap under missing key: %v", err)
	}
	// previous_key_files make old wraps open, and Rewrap moves them.
	dir := t.TempDir()
	write := func(name string, k []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600)
		return p
	}
	m, err := NewMaster(ctx, policy.KeySource{Kind: policy.KeySourceLocal, Local: policy.LocalKeySource{
		KeyFile: write("new", newKey), PreviousKeyFiles: []string{write("old", oldKey)}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m.Unwrap(ctx, w1, id1); err != nil || !bytes.Equal(got, dk) {
		t.Fatalf("previous key: %v", err)
	}
	rw := m.(Rewrapper)
	if !rw.NeedsRewrap(w1, id1) {
		t.Fatal("old wrap does not need rewrap")
	}
	nw, nid, err := rw.Rewrap(ctx, w1, id1)
	if err != nil || nid != m.ID() || rw.NeedsRewrap(nw, nid) {
		t.Fatal(nid, err)
	}
	if got, err := cur.Unwrap(ctx, nw, nid); err != nil || !bytes.Equal(got, dk) {
		t.Fatal(err)
	}
}
