package keysource

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgveil/pgveil/keysource/vaultfake"
	"github.com/pgveil/pgveil/policy"
)

func vaultConfig(t *testing.T, v *vaultfake.Server, ns string) policy.KeySource {
	t.Setenv("PGVEIL_TEST_VAULT_TOKEN", v.Token)
	return policy.KeySource{Kind: policy.KeySourceVault, Vault: policy.VaultKeySource{
		Address: v.URL, TokenEnv: "PGVEIL_TEST_VAULT_TOKEN", Namespace: ns,
		TransitMount: "transit", KeyName: "pgveil", Timeout: 2 * time.Second,
	}}
}

func newVaultTestMaster(t *testing.T, v *vaultfake.Server, ns string) Master {
	t.Helper()
	m, err := NewMaster(context.Background(), vaultConfig(t, v, ns), WithVaultRetry(3, 5*time.Millisecond, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.(io.Closer).Close() })
	return m
}

func TestVaultWrapUnwrapRotate(t *testing.T) {
	v := vaultfake.New(vaultfake.WithNamespace("team-a"))
	defer v.Close()
	m := newVaultTestMaster(t, v, "team-a")
	if m.ID() != "vault:transit/pgveil" {
		t.Fatalf("id %q", m.ID())
	}
	dk := bytes.Repeat([]byte{9}, 32)
	w1, id, err := m.Wrap(ctx(), dk)
	if err != nil || !strings.HasPrefix(string(w1), "vault:v1:") {
		t.Fatalf("wrap %q, %v", w1, err)
	}
	if v.Requests("PUT", "/v1/transit/encrypt/pgveil") != 1 {
		t.Fatal("vault/api did not PUT transit/encrypt")
	}
	if got, err := m.Unwrap(ctx(), w1, id); err != nil || !bytes.Equal(got, dk) {
		t.Fatal(err)
	}
	// Rotation in Vault: new wraps use v2, old wraps still unwrap.
	v.Rotate("transit", "pgveil")
	w2, _, _ := m.Wrap(ctx(), dk)
	if !strings.HasPrefix(string(w2), "vault:v2:") {
		t.Fatalf("after rotate: %q", w2)
	}
	for _, w := range [][]byte{w1, w2} {
		if got, err := m.Unwrap(ctx(), w, id); err != nil || !bytes.Equal(got, dk) {
			t.Fatalf("unwrap %q: %v", w[:9], err)
		}
	}
	rw := m.(Rewrapper)
	if !rw.NeedsRewrap(w1, id) || rw.NeedsRewrap(w2, id) {
		t.Fatal("NeedsRewrap wrong")
	}
	// Tampered ciphertext: a permanent error, not a retryable one.
	bad := []byte(string(w1[:len(w1)-4]) + "AAAA")
	if _, err := m.Unwrap(ctx(), bad, id); err == nil || IsRetryable(err) {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := m.Unwrap(ctx(), w1, "vault:other/key"); err == nil {
		t.Fatal("foreign master id accepted")
	}
}

func TestVaultBadTokenAndNamespace(t *testing.T) {
	v := vaultfake.New(vaultfake.WithNamespace("team-a"))
	defer v.Close()
	if _, err := NewMaster(ctx(), vaultConfig(t, v, "team-b")); err == nil || IsRetryable(err) {
		t.Fatalf("wrong namespace: %v", err)
	}
	cfg := vaultConfig(t, v, "team-a")
	t.Setenv("PGVEIL_TEST_VAULT_TOKEN", "hvs.wrong")
	_, err := NewMaster(ctx(), cfg)
	if err == nil || !strings.Contains(err.Error(), "permission denied") || strings.Contains(err.Error(), v.Token) {
		t.Fatalf("bad token: %v", err)
	}
	t.Setenv("PGVEIL_TEST_VAULT_TOKEN", "")
	if _, err := NewMaster(ctx(), cfg); err == nil || !strings.Contains(err.Error(), "PGVEIL_TEST_VAULT_TOKEN") {
		t.Fatalf("empty token: %v", err)
	}
}

func TestVaultRetriesTransientFailures(t *testing.T) {
	v := vaultfake.New()
	defer v.Close()
	m := newVaultTestMaster(t, v, "")
	v.FailNext(2) // attempts 1 and 2 fail, 3 succeeds
	if _, _, err := m.Wrap(ctx(), make([]byte, 32)); err != nil {
		t.Fatalf("wrap after 2 transient failures: %v", err)
	}
}

func TestVaultOutage(t *testing.T) {
	v := vaultfake.New()
	defer v.Close()
	m := newVaultTestMaster(t, v, "")
	pool := testPool(t)
	k := testKeyring(t, pool, m)
	tbl := testTable(false, "email", "phone")
	cached, err := k.EncryptionKey(ctx(), tbl.Columns[0], "", false)
	if err != nil {
		t.Fatal(err)
	}
	envCached := cached.Seal(nil, []byte("cached"))
	other, _ := testKeyring(t, pool, m).EncryptionKey(ctx(), tbl.Columns[1], "", false)
	envOther := other.Seal(nil, []byte("other"))

	v.SetUnavailable(true)
	// The cached key keeps working for writes and reads.
	if dk, err := k.EncryptionKey(ctx(), tbl.Columns[0], "", false); err != nil || dk != cached {
		t.Fatalf("cached EncryptionKey during outage: %v", err)
	}
	if pt, _, err := k.Open(ctx(), tbl.Columns[0], envCached, nil); err != nil || string(pt) != "cached" {
		t.Fatalf("cached Open during outage: %v", err)
	}
	// A key this replica never unwrapped: retryable.
	_, _, err = k.Open(ctx(), tbl.Columns[1], envOther, nil)
	if !IsRetryable(err) || !errors.Is(err, ErrMasterUnavailable) {
		t.Fatalf("uncached Open during outage: %v", err)
	}
	if _, err := k.EncryptionKey(ctx(), testTable(false, "c").Columns[0], "", false); !IsRetryable(err) {
		t.Fatalf("new key during outage: %v", err)
	}
	v.SetUnavailable(false)
	if pt, _, err := k.Open(ctx(), tbl.Columns[1], envOther, nil); err != nil || string(pt) != "other" {
		t.Fatalf("after outage: %v", err)
	}
}

func TestVaultRewrapAll(t *testing.T) {
	v := vaultfake.New()
	defer v.Close()
	m := newVaultTestMaster(t, v, "")
	pool := isolatedPool(t)
	k := testKeyring(t, pool, m)
	tbl := testTable(true, "email")
	var envs [][]byte
	for _, tenant := range []string{"a", "b", "c"} {
		dk, _ := k.EncryptionKey(ctx(), tbl.Columns[0], tenant, true)
		envs = append(envs, dk.Seal(nil, []byte(tenant)))
	}
	k.IndexKey(ctx(), tbl.Columns[0])

	v.Rotate("transit", "pgveil")
	// A new process (as `pgveil rotate --master` is) learns v2 at startup.
	m2 := newVaultTestMaster(t, v, "")
	k2 := testKeyring(t, pool, m2)
	n, err := k2.RewrapAll(ctx())
	if err != nil || n != 4 {
		t.Fatalf("rewrapped %d, %v", n, err)
	}
	var old int
	pool.QueryRow(ctx(), `SELECT count(*) FROM pgveil.keys WHERE convert_from(wrapped_key, 'UTF8') NOT LIKE 'vault:v2:%'`).Scan(&old)
	if old != 0 {
		t.Fatalf("%d keys not under v2", old)
	}
	if v.Requests("", "/v1/transit/rewrap/pgveil") != 4 {
		t.Fatal("rewrap did not use transit/rewrap")
	}
	if n, _ := k2.RewrapAll(ctx()); n != 0 {
		t.Fatalf("second RewrapAll rewrapped %d", n)
	}
	// v1 may now be disallowed: everything still opens.
	vaultSetMinDecryption(t, v, 2)
	k3 := testKeyring(t, pool, m2)
	for i, env := range envs {
		if _, _, err := k3.Open(ctx(), tbl.Columns[0], env, nil); err != nil {
			t.Fatalf("envelope %d: %v", i, err)
		}
	}
}

func vaultSetMinDecryption(t *testing.T, v *vaultfake.Server, ver int) {
	t.Helper()
	m := newVaultTestMaster(t, v, "").(*vaultMaster)
	if _, err := m.client.Logical().Write("transit/keys/pgveil/config", map[string]any{"min_decryption_version": ver}); err != nil {
		t.Fatal(err)
	}
}

func TestVaultTokenRenewal(t *testing.T) {
	v := vaultfake.New(vaultfake.WithRenewableToken(time.Second))
	defer v.Close()
	m, err := NewMaster(ctx(), vaultConfig(t, v, ""), WithRenewFloor(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1600 * time.Millisecond) // past the original TTL
	if _, _, err := m.Wrap(ctx(), make([]byte, 32)); err != nil {
		t.Fatalf("token expired despite renewal: %v", err)
	}
	if n := v.Requests("PUT", "/v1/auth/token/renew-self"); n < 2 {
		t.Fatalf("%d renewals", n)
	}
	m.(io.Closer).Close()
	n := v.Requests("", "/v1/auth/token/renew-self")
	time.Sleep(700 * time.Millisecond)
	if v.Requests("", "/v1/auth/token/renew-self") != n {
		t.Fatal("renewer still running after Close")
	}
}

// TestVaultIgnoresEnvironment: the VAULT_* variables vault/api reads by
// itself change nothing; only the config (and token_env) count.
func TestVaultIgnoresEnvironment(t *testing.T) {
	v := vaultfake.New()
	defer v.Close()
	other := vaultfake.New(vaultfake.WithToken(v.Token))
	defer other.Close()
	var mu sync.Mutex
	var leaked []string
	u, _ := url.Parse(v.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"X-Vault-Namespace", "X-Vault-Wrap-Ttl", "X-From-Env"} {
			if r.Header.Get(h) != "" {
				mu.Lock()
				leaked = append(leaked, h+" on "+r.URL.Path)
				mu.Unlock()
			}
		}
		rp.ServeHTTP(w, r)
	}))
	defer front.Close()
	cfg := vaultConfig(t, v, "")
	cfg.Vault.Address = front.URL
	for k, val := range map[string]string{
		"VAULT_ADDR":           other.URL,
		"VAULT_AGENT_ADDR":     other.URL,
		"VAULT_PROXY_ADDR":     other.URL,
		"VAULT_HTTP_PROXY":     other.URL,
		"VAULT_TOKEN":          "hvs.from-the-environment",
		"VAULT_NAMESPACE":      "team-x",
		"VAULT_HEADERS":        `{"X-From-Env": "1"}`,
		"VAULT_WRAP_TTL":       "5m",
		"VAULT_SRV_LOOKUP":     "true",
		"VAULT_CLIENT_TIMEOUT": "1ns",
		"VAULT_MAX_RETRIES":    "7",
	} {
		t.Setenv(k, val)
	}
	m, err := NewMaster(ctx(), cfg, WithVaultRetry(1, time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatalf("NewMaster: %v", err)
	}
	defer m.(io.Closer).Close()
	dk := bytes.Repeat([]byte{7}, 32)
	w, id, err := m.Wrap(ctx(), dk)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m.Unwrap(ctx(), w, id); err != nil || !bytes.Equal(got, dk) {
		t.Fatalf("unwrap: %v", err)
	}
	if n := other.Requests("", "/v1/auth/token/lookup-self") + other.Requests("", "/v1/transit/encrypt/pgveil"); n != 0 {
		t.Errorf("%d requests went to the address in the environment", n)
	}
	if len(leaked) > 0 {
		t.Errorf("environment settings reached Vault: %v", leaked)
	}
}

// TestVaultMalformedAnswers: answers that are not Vault's fail at once
// with ErrMasterMalformed, neither retried nor "unavailable".
func TestVaultMalformedAnswers(t *testing.T) {
	v := vaultfake.New()
	defer v.Close()
	for name, body := range map[string]string{
		"html":       "<html>log in</html>",
		"not json":   "plaintext=AAAA",
		"wrong type": `{"data": "x"}`,
		"too large":  `{"data":{"plaintext":"` + strings.Repeat("A", maxVaultResponse) + `"}}`,
		"no data":    `{"data":{}}`,
	} {
		var hits atomic.Int32
		u, _ := url.Parse(v.URL)
		rp := httputil.NewSingleHostReverseProxy(u)
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/transit/decrypt/pgveil") {
				hits.Add(1)
				io.WriteString(w, body)
				return
			}
			rp.ServeHTTP(w, r)
		}))
		cfg := vaultConfig(t, v, "")
		cfg.Vault.Address = front.URL
		m, err := NewMaster(ctx(), cfg, WithVaultRetry(3, time.Millisecond, time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		w, id, err := m.Wrap(ctx(), bytes.Repeat([]byte{7}, 32))
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.Unwrap(ctx(), w, id)
		if !errors.Is(err, ErrMasterMalformed) || IsRetryable(err) || hits.Load() != 1 {
			t.Errorf("%s: %v after %d requests, want ErrMasterMalformed after 1", name, err, hits.Load())
		}
		m.(io.Closer).Close()
		front.Close()
	}
}
