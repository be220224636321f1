package keysource

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vault "github.com/hashicorp/vault/api"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/policy"
)

// vaultMaster wraps data keys with a HashiCorp Vault Transit key
// (https://developer.hashicorp.com/vault/api-docs/secret/transit):
//
//	Wrap      POST <mount>/encrypt/<key>  {"plaintext": base64(data key)} → "vault:vN:..."
//	Unwrap    POST <mount>/decrypt/<key>  {"ciphertext": "vault:vN:..."}   → base64(data key)
//	Rewrap    POST <mount>/rewrap/<key>   {"ciphertext": ...}              → "vault:vM:..." (M newest)
//
// Vault keeps every key version at or above min_decryption_version, so
// after transit/keys/<key>/rotate old wraps still unwrap; RewrapAll moves
// them forward. The wrapped bytes stored in pgveil.keys are the ciphertext
// string exactly as Vault returned it.
type vaultMaster struct {
	client *vault.Client
	mount  string
	key    string
	id     string
	opts   options
	// latest is the newest Transit key version seen in a response, 0 when
	// unknown; NeedsRewrap compares stored wraps with it.
	latest atomic.Int64

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

func newVaultMaster(ctx context.Context, cfg policy.VaultKeySource, o options) (*vaultMaster, error) {
	if cfg.Address == "" || cfg.KeyName == "" {
		return nil, fmt.Errorf("keysource: vault needs address and key_name")
	}
	tokenEnv := cfg.TokenEnv
	if tokenEnv == "" {
		tokenEnv = policy.DefaultVaultTokenEnv
	}
	token := os.Getenv(tokenEnv)
	if token == "" {
		return nil, fmt.Errorf("keysource: vault token: environment variable %s is empty", tokenEnv)
	}
	client, err := newVaultClient(cfg, token)
	if err != nil {
		return nil, err
	}
	mount := strings.Trim(cfg.TransitMount, "/")
	if mount == "" {
		mount = policy.DefaultVaultMount
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = policy.DefaultVaultTimeout
	}
	o.timeout = cfg.Timeout
	m := &vaultMaster{
		client: client, mount: mount, key: cfg.KeyName, id: "vault:" + mount + "/" + cfg.KeyName, opts: o,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	// Check the token now, so a bad one fails at startup rather than on the
	// first write, and learn whether it needs renewing.
	sec, err := m.call(ctx, "vault token lookup", func(ctx context.Context) (*vault.Secret, error) {
		return client.Auth().Token().LookupSelfWithContext(ctx)
	})
	if err != nil {
		return nil, err
	}
	m.readLatest(ctx)
	go m.renew(sec)
	return m, nil
}

func (m *vaultMaster) ID() string { return m.id }

func (m *vaultMaster) path(op string) string { return m.mount + "/" + op + "/" + m.key }

func (m *vaultMaster) Wrap(ctx context.Context, dataKey []byte) ([]byte, string, error) {
	body := map[string]any{"plaintext": base64.StdEncoding.EncodeToString(dataKey)}
	sec, err := m.write(ctx, "vault encrypt", m.path("encrypt"), body)
	if err != nil {
		return nil, "", err
	}
	ct, err := m.ciphertext(sec)
	if err != nil {
		return nil, "", err
	}
	return []byte(ct), m.id, nil
}

func (m *vaultMaster) Unwrap(ctx context.Context, wrapped []byte, masterID string) ([]byte, error) {
	if masterID != m.id {
		return nil, fmt.Errorf("keysource: data key is wrapped under %s, but the configured master is %s", masterID, m.id)
	}
	sec, err := m.write(ctx, "vault decrypt", m.path("decrypt"), map[string]any{"ciphertext": string(wrapped)})
	if err != nil {
		return nil, err
	}
	s, _ := sec.Data["plaintext"].(string)
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || s == "" {
		return nil, fmt.Errorf("%w: vault decrypt: no valid plaintext", ErrMasterMalformed)
	}
	return raw, nil
}

func (m *vaultMaster) Rewrap(ctx context.Context, wrapped []byte, masterID string) ([]byte, string, error) {
	if masterID != m.id {
		return nil, "", fmt.Errorf("keysource: data key is wrapped under %s, but the configured master is %s; Vault can only rewrap within one key", masterID, m.id)
	}
	sec, err := m.write(ctx, "vault rewrap", m.path("rewrap"), map[string]any{"ciphertext": string(wrapped)})
	if err != nil {
		return nil, "", err
	}
	ct, err := m.ciphertext(sec)
	if err != nil {
		return nil, "", err
	}
	return []byte(ct), m.id, nil
}

// NeedsRewrap: a wrap made under another master id, or under a Transit key
// version older than the newest seen. With the newest unknown, everything
// is rewrapped (rewrap is idempotent, only wasteful).
func (m *vaultMaster) NeedsRewrap(wrapped []byte, masterID string) bool {
	if masterID != m.id {
		return true
	}
	v := VaultKeyVersion(wrapped)
	latest := m.latest.Load()
	return latest == 0 || v == 0 || int64(v) < latest
}

// VaultKeyVersion returns N of a "vault:vN:..." ciphertext, 0 if malformed.
func VaultKeyVersion(ciphertext []byte) int {
	s, ok := strings.CutPrefix(string(ciphertext), "vault:v")
	if !ok {
		return 0
	}
	num, _, ok := strings.Cut(s, ":")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 {
		return 0
	}
	return n
}

// ciphertext takes "ciphertext" (and "key_version" when Vault sends it)
// from an encrypt or rewrap response.
func (m *vaultMaster) ciphertext(sec *vault.Secret) (string, error) {
	ct, _ := sec.Data["ciphertext"].(string)
	v := VaultKeyVersion([]byte(ct))
	if v == 0 {
		return "", fmt.Errorf("%w: vault: no vault:vN: ciphertext", ErrMasterMalformed)
	}
	m.seeVersion(int64(v))
	return ct, nil
}

func (m *vaultMaster) seeVersion(v int64) {
	for {
		cur := m.latest.Load()
		if v <= cur || m.latest.CompareAndSwap(cur, v) {
			return
		}
	}
}

// readLatest learns the Transit key's newest version from GET
// <mount>/keys/<key>. It is best effort: the token may lack read access, and
// the version is also learned from every encrypt and rewrap.
func (m *vaultMaster) readLatest(ctx context.Context) {
	sec, err := m.call(ctx, "vault read key", func(ctx context.Context) (*vault.Secret, error) {
		return m.client.Logical().ReadWithContext(ctx, m.mount+"/keys/"+m.key)
	})
	if err != nil || sec == nil {
		return
	}
	if v, ok := jsonInt(sec.Data["latest_version"]); ok {
		m.seeVersion(v)
	}
}

// Close stops the token renewer.
func (m *vaultMaster) Close() error {
	m.stopOnce.Do(func() { close(m.stop) })
	<-m.done
	return nil
}

func (m *vaultMaster) write(ctx context.Context, op, path string, body map[string]any) (*vault.Secret, error) {
	sec, err := m.call(ctx, op, func(ctx context.Context) (*vault.Secret, error) {
		return m.client.Logical().WriteWithContext(ctx, path, body)
	})
	if err != nil {
		return nil, err
	}
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("%w: %s: empty", ErrMasterMalformed, op)
	}
	return sec, nil
}

func (m *vaultMaster) logger() *zap.Logger { return m.opts.log }

// waitOrStop sleeps d unless the master is closed first.
func (m *vaultMaster) waitOrStop(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-m.stop:
		return false
	}
}
