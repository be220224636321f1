package keysource

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
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

func TestKeyFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no file modes")
	}
	dir := t.TempDir()
	key := base64.StdEncoding.EncodeToString(testMasterKey(t)) + "\n"
	load := func(name string, mode os.FileMode, uid int, previous bool) error {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(key), 0o600); err != nil {
			t.Fatal(err)
		}
		if uid >= 0 {
			if err := os.Chown(p, uid, -1); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		ls := policy.LocalKeySource{KeyFile: p}
		if previous {
			good := filepath.Join(dir, name+".current")
			os.WriteFile(good, []byte(key), 0o600)
			ls = policy.LocalKeySource{KeyFile: good, PreviousKeyFiles: []string{p}}
		}
		_, err := NewMaster(context.Background(), policy.KeySource{Kind: policy.KeySourceLocal, Local: ls})
		return err
	}
	for _, c := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o644, false}, {0o604, false}, {0o660, false}, {0o620, false}, {0o602, false}} {
		for _, previous := range []bool{false, true} {
			name := fmt.Sprintf("k%04o%v", c.mode, previous)
			err := load(name, c.mode, -1, previous)
			if (err == nil) != c.ok {
				t.Errorf("mode %04o (previous_key_files %v): %v", c.mode, previous, err)
			}
			if err != nil && (!strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "chmod 600")) {
				t.Errorf("mode %04o: unclear error %v", c.mode, err)
			}
		}
	}
	// Group read is allowed when root owns the file (PostgreSQL's rule):
	// a Kubernetes secret volume with fsGroup, a key root gives a group.
	if os.Getuid() != 0 {
		t.Skip("not root: cannot chown")
	}
	if err := load("root0640", 0o640, 0, false); err != nil {
		t.Errorf("root-owned 0640: %v", err)
	}
	if err := load("root0660", 0o660, 0, false); err == nil {
		t.Error("root-owned 0660 (group may write) loaded")
	}
	if err := load("nobody0640", 0o640, 65534, false); err == nil {
		t.Error("0640 owned by another user loaded")
	}
}
