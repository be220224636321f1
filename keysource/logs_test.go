package keysource

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestLogsCarryNoSecrets runs create, seal, open, rotate and shred with a
// recording logger and checks that no log entry holds the plaintext or any
// form of a key's bytes.
func TestLogsCarryNoSecrets(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	mk := testMasterKey(t)
	m, _ := NewLocalMaster(mk)
	k, err := NewKeyring(ctx(), testPool(t), m, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	tbl := testTable(true, "email")
	col := tbl.Columns[0]
	const secret = "plaintext-that-must-not-leak"
	dk, _ := k.EncryptionKey(ctx(), col, "tenant-x", true)
	env := dk.Seal(nil, []byte(secret))
	k.Open(ctx(), col, env, nil)
	k.IndexKey(ctx(), col)
	k.Rotate(ctx(), col, "tenant-x", true)
	k.Shred(ctx(), tbl, "tenant-x")
	if logs.Len() == 0 {
		t.Fatal("nothing logged; the test would prove nothing")
	}
	forbidden := []string{secret, hex.EncodeToString(mk), base64.StdEncoding.EncodeToString(mk), "tenant-x"}
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		for _, f := range forbidden {
			if strings.Contains(line, f) {
				t.Errorf("log entry %q contains a secret or tenant value", line)
			}
		}
	}
}
