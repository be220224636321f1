package keysource

// Adversarial review of keysource (keys, envelopes, key store, Vault and
// local masters) at a8ab613.
//
// Failing at the time of the review (defects):
//
//   TestKeysReviewFoundShredNotSeenByOtherProcess HIGH (key resurrection
//       after shred): a Keyring keeps every key it has unwrapped in byID for
//       the life of the process and never re-reads its state; only
//       Keyring.Watch (LISTEN pgveil_keys) ever evicts it. `pgveil serve`
//       runs Watch, but the long-running operator commands that open and
//       re-write values — `pgveil migrate --decrypt` (ops.decrypter: OpenFor,
//       then writes the plaintext back into the row) and `pgveil rotate`
//       (ops.rotator.work: OpenFor, EncryptionKey, Seal) — build a Keyring
//       with ops.Env.Keyring and never Watch. When `pgveil shred` of a
//       tenant commits while one of them runs, that process goes on opening
//       the tenant's envelopes with the key it cached before: migrate
//       --decrypt writes the shredded tenant's plaintext into the table;
//       rotate, once its cached active key is older than the active TTL,
//       gets a brand-new active version from loadActive (which creates the
//       next version when the newest is shredded) and re-seals the shredded
//       plaintext under it, readable by every replica. DESIGN.md: "that
//       tenant's values then read as NULL through the proxy and can never be
//       decrypted". The test drives exactly those Keyring calls from a
//       second Keyring (a second process) without Watch. Cause:
//       keysource/keyring.go Keyring.keyByID / putActive (byID cached
//       without expiry or state re-check), keysource/shred.go Keyring.Shred
//       (invalidation only by NOTIFY), cmd/pgveil/internal/ops/env.go
//       Env.Keyring (no Watch). Should: a Keyring that may re-write values
//       follows pgveil_keys (or re-checks the key row's state before using a
//       cached key to re-write), and OpenFor after another process's shred
//       reports ErrShredded.
//
//   TestKeysReviewFoundVaultSkipVerifyEnv MEDIUM (Vault TLS verification
//       silently off): newVaultMaster starts from vault.DefaultConfig(),
//       which reads VAULT_SKIP_VERIFY from the environment and sets
//       InsecureSkipVerify; the later ConfigureTLS(&TLSConfig{CACert:
//       ca_file}) only ever sets it to true, never back. With
//       VAULT_SKIP_VERIFY=true in pgveil's environment (common in shells
//       that talk to a dev Vault) pgveil accepts any certificate from
//       `vault.address`, even with `ca_file` naming a CA that did not sign
//       it: a man in the middle receives the Vault token and every data key
//       (transit/encrypt's plaintext, transit/decrypt's answer).
//       config.example.yaml documents `ca_file: CA bundle for Vault's TLS;
//       default: system roots`, nothing about the environment. Cause:
//       keysource/vault.go newVaultMaster (vault.DefaultConfig + ConfigureTLS).
//
//   TestKeysReviewFoundVaultAgentAddrEnv MEDIUM (token and data keys sent
//       to an address the config does not name): vault.DefaultConfig reads
//       VAULT_AGENT_ADDR into Config.AgentAddress, and vault.NewClient uses
//       AgentAddress instead of Address when it is set. pgveil sets only
//       vc.Address = cfg.Address, so with VAULT_AGENT_ADDR in the environment
//       every request (X-Vault-Token, transit/encrypt with the plaintext data
//       key) goes to that address and `keysource.vault.address` is ignored
//       without a word. Cause: keysource/vault.go newVaultMaster.
//
//   TestKeysReviewFoundVaultResponseUnbounded MEDIUM (unbounded memory):
//       a Vault response is read whole, twice over (vault/api ParseSecret:
//       bytes.Buffer plus a TeeReader copy), then decoded as JSON and the
//       "plaintext" base64-decoded, with no size limit; the only bound is the
//       per-attempt timeout, during which a loopback or LAN peer delivers
//       gigabytes. A Vault (or anything answering at its address) returning
//       a 16 MiB decrypt answer costs pgveil over 200 MiB of allocation per
//       concurrent unwrap. A data-key unwrap answer is ~100 bytes. Cause:
//       keysource/vault.go vaultMaster.write (no limit around
//       client.Logical().WriteWithContext; no ResponseHeaderTimeout/body
//       limit on the transport).
//
//   TestKeysReviewFoundOpenSharedLoadWrongScope LOW (legitimate read fails
//       as "belongs to another column"): keyByID shares one load per key id
//       (flight key "id\x00<id>") among callers of different columns, and
//       the load checks the row's scope against the first caller's column.
//       When a value copied into another column (an attacker with write
//       access, or a bad UPDATE) is read first on a cold cache, every
//       concurrent legitimate read of the same key id gets ErrWrongScope
//       ("data key belongs to another column or tenant"), which the proxy
//       reports as a tampered value. Cause: keysource/keyring.go
//       Keyring.keyByID (scope check inside the shared load; it belongs
//       after it, as Open already does with dk.isFor).
//
//   TestKeysReviewFoundVaultGarbageIsUnavailable LOW (misleading error): a
//       200 answer whose body is not JSON (a captive portal, a load
//       balancer's HTML page, a wrong address) is classified as a transport
//       error (vaultRetryable: anything that is not a *vault.ResponseError),
//       retried, and reported as ErrMasterUnavailable wrapped in a
//       RetryableError ("master key source unavailable"), so the proxy
//       answers PV004/58000 "retry" forever instead of saying the response
//       is malformed. Cause: keysource/vault_call.go vaultRetryable.
//
//   TestKeysReviewFoundKeyFileModeUnchecked LOW (hardening/doc): a master
//       key file readable by group and others (0644) is loaded without an
//       error or a warning (newLocalMaster gets no logger; readKeyFile does
//       not stat the mode). docs/THREAT_MODEL.md: "The local master key file
//       should be readable only by pgveil's user". Cause: keysource/local.go
//       readKeyFile. Fixed by refusing such a file (PostgreSQL's rule for
//       its server key file); the test now asks for that error.
//
// Attacks withstood: TestKeysReviewHolds* (envelopes moved between tenants,
// columns, tables and text/binary forms; key rows relabelled or swapped in
// pgveil.keys; malformed, truncated, unknown-id and index-key-id envelopes;
// replicas racing to recreate a shredded tenant's key; a Vault that answers
// a plaintext of the wrong length; key file encodings, wrong lengths,
// symlinked keygen targets; errors and logs free of token and key bytes).

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgveil/pgveil/keysource/envelope"
	"github.com/pgveil/pgveil/keysource/vaultfake"
	"github.com/pgveil/pgveil/policy"
)

// ---------------------------------------------------------------- defects

func TestKeysReviewFoundShredNotSeenByOtherProcess(t *testing.T) {
	pool := testPool(t)
	m := testMaster(t)
	tbl := testTable(true, "email")
	col := tbl.Columns[0]

	// The proxy wrote tenant 7's value.
	proxy := testKeyring(t, pool, m)
	dk, err := proxy.EncryptionKey(ctx(), col, "7", true)
	if err != nil {
		t.Fatal(err)
	}
	env := dk.Seal(nil, []byte("tenant 7 secret"))

	// `pgveil rotate` / `pgveil migrate --decrypt`: its own Keyring, no
	// Watch (ops.Env.Keyring). Its pass has opened a value of tenant 7.
	op := testKeyring(t, testPool(t), m)
	op.SetActiveTTL(20 * time.Millisecond) // stands for the 1-minute TTL
	if pt, err := op.OpenFor(ctx(), col, "7", true, env, nil); err != nil || string(pt) != "tenant 7 secret" {
		t.Fatalf("before shred: %q, %v", pt, err)
	}
	if _, err := op.EncryptionKey(ctx(), col, "7", true); err != nil {
		t.Fatal(err)
	}

	// `pgveil shred --tenant 7` commits in a third process.
	shredder := testKeyring(t, testPool(t), m)
	ids, err := shredder.Shred(ctx(), tbl, "7")
	if err != nil || len(ids) == 0 {
		t.Fatalf("shred: %v, %v", ids, err)
	}
	if _, err := testKeyring(t, pool, m).OpenFor(ctx(), col, "7", true, env, nil); !errors.Is(err, ErrShredded) {
		t.Fatalf("fresh process after shred: %v, want ErrShredded", err)
	}

	// The operator command goes on with its pass.
	time.Sleep(50 * time.Millisecond)
	pt, err := op.OpenFor(ctx(), col, "7", true, env, nil)
	if err == nil {
		// What rotator.work does next: seal under the active key.
		nk, kerr := op.EncryptionKey(ctx(), col, "7", true)
		if kerr != nil {
			t.Fatal(kerr)
		}
		resealed := nk.Seal(nil, pt)
		back, oerr := testKeyring(t, pool, m).OpenFor(ctx(), col, "7", true, resealed, nil)
		t.Errorf("after tenant 7 was shredded (keys %v), a process that had opened one of its values before still opens it: %q "+
			"(migrate --decrypt writes it back as plaintext); rotate re-seals it under a new version %d (key %d) created for the shredded tenant, "+
			"which every replica opens: %q, %v", ids, pt, nk.Version(), nk.ID(), back, oerr)
	} else if !errors.Is(err, ErrShredded) {
		t.Errorf("after shred: %v, want ErrShredded", err)
	}
}

// tlsFront puts a TLS listener (httptest's own certificate) in front of a
// fake Vault.
func tlsFront(t *testing.T, v *vaultfake.Server) *httptest.Server {
	u, _ := url.Parse(v.URL)
	s := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(u))
	t.Cleanup(s.Close)
	return s
}

// otherCA writes a self-signed CA certificate that signed nothing.
func otherCA(t *testing.T) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "review CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeysReviewFoundVaultSkipVerifyEnv(t *testing.T) {
	v := vaultfake.New()
	defer v.Close()
	front := tlsFront(t, v)
	cfg := vaultConfig(t, v, "")
	cfg.Vault.Address = front.URL
	cfg.Vault.CAFile = otherCA(t)
	opt := WithVaultRetry(1, time.Millisecond, time.Millisecond)

	// Precondition: the certificate is not trusted.
	if m, err := NewMaster(ctx(), cfg, opt); err == nil {
		m.(io.Closer).Close()
		t.Fatal("precondition: an untrusted Vault certificate was accepted without any environment")
	}
	t.Setenv("VAULT_SKIP_VERIFY", "true")
	m, err := NewMaster(ctx(), cfg, opt)
	if err == nil {
		defer m.(io.Closer).Close()
		_, _, werr := m.Wrap(ctx(), bytes.Repeat([]byte{7}, 32))
		t.Errorf("VAULT_SKIP_VERIFY=true in the environment turned off certificate verification although ca_file names another CA: "+
			"the token and a data key went to %s (wrap err %v)", front.URL, werr)
	}
}

func TestKeysReviewFoundVaultAgentAddrEnv(t *testing.T) {
	configured := vaultfake.New()
	defer configured.Close()
	other := vaultfake.New(vaultfake.WithToken(configured.Token))
	defer other.Close()
	cfg := vaultConfig(t, configured, "")
	t.Setenv("VAULT_AGENT_ADDR", other.URL)
	m, err := NewMaster(ctx(), cfg, WithVaultRetry(1, time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatalf("NewMaster: %v", err)
	}
	defer m.(io.Closer).Close()
	if _, _, err := m.Wrap(ctx(), bytes.Repeat([]byte{7}, 32)); err != nil {
		t.Fatal(err)
	}
	toOther := other.Requests("", "/v1/auth/token/lookup-self") + other.Requests("", "/v1/transit/encrypt/pgveil")
	toConfigured := configured.Requests("", "/v1/auth/token/lookup-self") + configured.Requests("", "/v1/transit/encrypt/pgveil")
	if toOther > 0 || toConfigured == 0 {
		t.Errorf("with VAULT_AGENT_ADDR set, %d requests (token, plaintext data key) went to %s and %d to the configured address %s",
			toOther, other.URL, toConfigured, configured.URL)
	}
}

// interceptDecrypt answers transit/decrypt itself and proxies the rest to v.
func interceptDecrypt(t *testing.T, v *vaultfake.Server, h http.HandlerFunc) *httptest.Server {
	u, _ := url.Parse(v.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/transit/decrypt/pgveil") {
			io.Copy(io.Discard, r.Body)
			h(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestKeysReviewFoundVaultResponseUnbounded(t *testing.T) {
	v := vaultfake.New()
	defer v.Close()
	const body = 16 << 20
	chunk := bytes.Repeat([]byte("A"), 1<<20)
	front := interceptDecrypt(t, v, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"data":{"plaintext":"`)
		for i := 0; i < body/len(chunk); i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		io.WriteString(w, `"}}`)
	})
	cfg := vaultConfig(t, v, "")
	cfg.Vault.Address = front.URL
	cfg.Vault.Timeout = 20 * time.Second
	m, err := NewMaster(ctx(), cfg, WithVaultRetry(1, time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer m.(io.Closer).Close()
	wrapped, id, err := m.Wrap(ctx(), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	raw, err := m.Unwrap(ctx(), wrapped, id)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	if alloc > 8<<20 {
		t.Errorf("one unwrap answered with a %d MiB body allocated %d MiB (no response size limit; result %d bytes, err %v)",
			body>>20, alloc>>20, len(raw), err)
	}
}

func TestKeysReviewFoundOpenSharedLoadWrongScope(t *testing.T) {
	pool := isolatedPool(t)
	m := testMaster(t)
	tbl := testTable(false, "email", "phone")
	email, phone := tbl.Columns[0], tbl.Columns[1]
	dk, err := testKeyring(t, pool, m).EncryptionKey(ctx(), email, "", false)
	if err != nil {
		t.Fatal(err)
	}
	env := dk.Seal(nil, []byte("alice@example.com"))

	k := testKeyring(t, pool, m) // a replica with a cold cache
	// Hold the key store for a moment so that the two reads overlap.
	tx, err := pool.Begin(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx(), `LOCK TABLE pgveil.keys IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	fk := "id\x00" + itoa(dk.ID())
	errs := make(chan error, 2)
	go func() { // the copy of email's value in phone (tampered row), read first
		_, _, err := k.Open(ctx(), phone, env, nil)
		errs <- err
	}()
	waitWaiters(t, k, fk, 1)
	var legit error
	var legitPT []byte
	done := make(chan struct{})
	go func() { // the legitimate read of email
		legitPT, _, legit = k.Open(ctx(), email, env, nil)
		close(done)
	}()
	waitWaiters(t, k, fk, 2)
	tx.Rollback(ctx())
	<-done
	if tampered := <-errs; !errors.Is(tampered, ErrWrongScope) {
		t.Errorf("the moved copy: %v, want ErrWrongScope", tampered)
	}
	if legit != nil || string(legitPT) != "alice@example.com" {
		t.Errorf("a legitimate read of %s that shared the key load with a read of a copy in %s failed: %v",
			email.QualifiedName(), phone.QualifiedName(), legit)
	}
}

func itoa(id uint32) string { return big.NewInt(int64(id)).String() }

func waitWaiters(t *testing.T, k *Keyring, key string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for k.flight.waiting(key) < n {
		if time.Now().After(deadline) {
			t.Fatalf("waiters on %q: %d, want %d", key, k.flight.waiting(key), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestKeysReviewFoundVaultGarbageIsUnavailable(t *testing.T) {
	v := vaultfake.New()
	defer v.Close()
	front := interceptDecrypt(t, v, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html><body>Please log in to the corporate proxy</body></html>")
	})
	cfg := vaultConfig(t, v, "")
	cfg.Vault.Address = front.URL
	m, err := NewMaster(ctx(), cfg, WithVaultRetry(3, time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer m.(io.Closer).Close()
	wrapped, id, err := m.Wrap(ctx(), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Unwrap(ctx(), wrapped, id)
	if err == nil {
		t.Fatal("garbage accepted")
	}
	if IsRetryable(err) || errors.Is(err, ErrMasterUnavailable) {
		t.Errorf("a 200 answer that is not JSON is reported as %q (retryable, master unavailable), not as a malformed response", err)
	}
}

func TestKeysReviewFoundKeyFileModeUnchecked(t *testing.T) {
	p := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(testMasterKey(t))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	m, err := NewMaster(ctx(), policy.KeySource{Kind: policy.KeySourceLocal, Local: policy.LocalKeySource{KeyFile: p}}, WithLogger(zap.New(core)))
	if err == nil && logs.Len() == 0 {
		t.Errorf("a world-readable master key file (0644) was loaded as %s without an error or a warning", m.ID())
	}
	// Decided: refused (as PostgreSQL refuses its server key file, OpenSSH
	// a private key), with the file, its mode and the remedy.
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "0644") || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable master key file: %v, want an error naming the file, its mode and chmod 600", err)
	}
}

// ---------------------------------------------------------------- holds

func TestKeysReviewHoldsEnvelopeMoved(t *testing.T) {
	pool := testPool(t)
	m := testMaster(t)
	k := testKeyring(t, pool, m)
	tbl := testTable(true, "email", "phone")
	email, phone := tbl.Columns[0], tbl.Columns[1]
	other := testTable(true, "email")
	other.Name = tbl.Name + "_x"
	otherEmail := other.Columns[0]
	otherSchema := &policy.Table{Schema: "s2", Name: tbl.Name, KeyContext: "org_id"}
	otherSchema.Columns = []*policy.Column{{Table: otherSchema, Name: "email", Type: policy.TypeText}}

	a, _ := k.EncryptionKey(ctx(), email, "a", true)
	if _, err := k.EncryptionKey(ctx(), email, "b", true); err != nil {
		t.Fatal(err)
	}
	env := a.Seal(nil, []byte("a's secret"))
	for _, kr := range []*Keyring{k, testKeyring(t, pool, m)} { // warm and cold cache
		for _, form := range [][]byte{env, envelope.Encode(nil, env)} {
			if pt, err := kr.OpenFor(ctx(), email, "a", true, form, nil); err != nil || string(pt) != "a's secret" {
				t.Fatalf("own place: %q, %v", pt, err)
			}
			if _, err := kr.OpenFor(ctx(), email, "b", true, form, nil); !errors.Is(err, ErrWrongScope) {
				t.Errorf("other tenant: %v", err)
			}
			if _, err := kr.OpenFor(ctx(), email, "a ", true, form, nil); !errors.Is(err, ErrWrongScope) {
				t.Errorf("tenant with a trailing space: %v", err)
			}
			for _, c := range []*policy.Column{phone, otherEmail, otherSchema.Columns[0]} {
				if _, err := kr.OpenFor(ctx(), c, "a", true, form, nil); !errors.Is(err, ErrWrongScope) {
					t.Errorf("moved to %s: %v", c.QualifiedName(), err)
				}
			}
		}
	}
	// Header key id rewritten to tenant b's key: AAD and key differ.
	b, _ := k.EncryptionKey(ctx(), email, "b", true)
	forged := bytes.Clone(env)
	binary.BigEndian.PutUint32(forged[1:5], b.ID())
	if _, err := k.OpenFor(ctx(), email, "b", true, forged, nil); !errors.Is(err, ErrTampered) {
		t.Errorf("key id rewritten: %v", err)
	}
}

func TestKeysReviewHoldsKeyRowTampering(t *testing.T) {
	pool := isolatedPool(t)
	m := testMaster(t)
	k := testKeyring(t, pool, m)
	col := testTable(true, "email").Columns[0]
	a, _ := k.EncryptionKey(ctx(), col, "a", true)
	b, _ := k.EncryptionKey(ctx(), col, "b", true)
	envA := a.Seal(nil, []byte("a's secret"))
	envB := b.Seal(nil, []byte("b's secret"))

	// Relabel a's key row as tenant b's (a new version of b), then copy a's
	// envelope into a row of b.
	if _, err := pool.Exec(ctx(), `UPDATE pgveil.keys SET tenant = 'b', version = 99 WHERE key_id = $1`, int64(a.ID())); err != nil {
		t.Fatal(err)
	}
	if pt, err := testKeyring(t, pool, m).OpenFor(ctx(), col, "b", true, envA, nil); !errors.Is(err, ErrTampered) {
		t.Errorf("relabelled key row: %q, %v", pt, err)
	}
	// Key ids swapped between the two rows.
	if _, err := pool.Exec(ctx(), `UPDATE pgveil.keys SET tenant = 'a', version = 1 WHERE key_id = $1`, int64(a.ID())); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE pgveil.keys SET key_id = 4000000000 WHERE key_id = $1`, []any{int64(a.ID())}},
		{`UPDATE pgveil.keys SET key_id = $1 WHERE key_id = $2`, []any{int64(a.ID()), int64(b.ID())}},
		{`UPDATE pgveil.keys SET key_id = $1 WHERE key_id = 4000000000`, []any{int64(b.ID())}},
	} {
		if _, err := pool.Exec(ctx(), q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range [][]byte{envA, envB} {
		for _, tenant := range []string{"a", "b"} {
			if pt, err := testKeyring(t, pool, m).OpenFor(ctx(), col, tenant, true, e, nil); err == nil {
				t.Errorf("key ids swapped: opened %q as tenant %s", pt, tenant)
			}
		}
	}
}

func TestKeysReviewHoldsMalformedEnvelopes(t *testing.T) {
	pool := testPool(t)
	k := testKeyring(t, pool, testMaster(t))
	tbl := testTable(false, "email")
	col := tbl.Columns[0]
	dk, _ := k.EncryptionKey(ctx(), col, "", false)
	ix, _ := k.IndexKey(ctx(), col)
	good := dk.Seal(nil, []byte("v"))
	mk := func(id uint32, n int) []byte {
		b := make([]byte, n)
		b[0] = 1
		binary.BigEndian.PutUint32(b[1:5], id)
		return b
	}
	cases := map[string]struct {
		env  []byte
		want error
	}{
		"nil":         {nil, ErrTampered},
		"one byte":    {[]byte{1}, ErrTampered},
		"32 bytes":    {good[:32], ErrTampered},
		"version 2":   {append([]byte{2}, good[1:]...), ErrTampered},
		"key id 0":    {mk(0, 64), ErrTampered},
		"unknown id":  {mk(0xFFFFFFFF, 64), ErrUnknownKey},
		"index key":   {mk(ix.ID(), 64), ErrWrongScope},
		"text short":  {[]byte("pgv1:AQAAAAE"), nil},
		"text bad":    {[]byte("pgv1:" + strings.Repeat("!", 60)), ErrTampered},
		"text padded": {append(envelope.Encode(nil, good), '='), ErrTampered},
		"flipped tag": {append(bytes.Clone(good[:len(good)-1]), good[len(good)-1]^1), ErrTampered},
	}
	for name, c := range cases {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: panic %v", name, r)
				}
			}()
			pt, _, err := k.Open(ctx(), col, c.env, nil)
			if err == nil {
				t.Errorf("%s: opened to %q", name, pt)
			} else if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", name, err, c.want)
			}
		}()
	}
	// A large garbage text form is rejected without decoding beyond its size.
	big := append([]byte("pgv1:"), bytes.Repeat([]byte("A"), 8<<20)...)
	if _, _, err := k.Open(ctx(), col, big, nil); err == nil {
		t.Error("8 MiB of text opened")
	}
}

func TestKeysReviewHoldsRecreateAfterShredRace(t *testing.T) {
	m := testMaster(t)
	tbl := testTable(true, "email")
	col := tbl.Columns[0]
	first := testKeyring(t, testPool(t), m)
	old, _ := first.EncryptionKey(ctx(), col, "t", true)
	oldEnv := old.Seal(nil, []byte("before"))
	if _, err := first.Shred(ctx(), tbl, "t"); err != nil {
		t.Fatal(err)
	}
	var rings []*Keyring
	for range 4 {
		rings = append(rings, testKeyring(t, testPool(t), m))
	}
	var wg sync.WaitGroup
	ids := make(chan uint32, 4*8)
	start := make(chan struct{})
	for _, k := range rings {
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				dk, err := k.EncryptionKey(ctx(), col, "t", true)
				if err != nil {
					t.Error(err)
					return
				}
				ids <- dk.ID()
			}()
		}
	}
	close(start)
	wg.Wait()
	close(ids)
	seen := map[uint32]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) != 1 || seen[old.ID()] {
		t.Fatalf("recreated keys: %v (old %d)", seen, old.ID())
	}
	infos, _ := rings[0].Keys(ctx(), col)
	active := 0
	for _, i := range infos {
		if i.State == StateActive {
			active++
		}
	}
	if active != 1 || len(infos) != 2 {
		t.Fatalf("rows after recreation: %+v", infos)
	}
	for _, k := range rings {
		if _, err := k.OpenFor(ctx(), col, "t", true, oldEnv, nil); !errors.Is(err, ErrShredded) {
			t.Errorf("old value after recreation: %v", err)
		}
	}
}

func TestKeysReviewHoldsVaultWrongLengthPlaintext(t *testing.T) {
	v := vaultfake.New()
	defer v.Close()
	pool := testPool(t)
	good := newVaultTestMaster(t, v, "")
	col := testTable(false, "email").Columns[0]
	dk, err := testKeyring(t, pool, good).EncryptionKey(ctx(), col, "", false)
	if err != nil {
		t.Fatal(err)
	}
	env := dk.Seal(nil, []byte("v"))
	for name, pt := range map[string][]byte{"16 bytes": make([]byte, 16), "33 bytes": make([]byte, 33), "empty": {}} {
		front := interceptDecrypt(t, v, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"data":{"plaintext":"`+base64.StdEncoding.EncodeToString(pt)+`"}}`)
		})
		cfg := vaultConfig(t, v, "")
		cfg.Vault.Address = front.URL
		bad, err := NewMaster(ctx(), cfg, WithVaultRetry(1, time.Millisecond, time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = testKeyring(t, pool, bad).Open(ctx(), col, env, nil)
		bad.(io.Closer).Close()
		if err == nil || IsRetryable(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestKeysReviewHoldsVaultErrorsAndLogsCarryNoSecrets(t *testing.T) {
	v := vaultfake.New()
	defer v.Close()
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := vaultConfig(t, v, "")
	m, err := NewMaster(ctx(), cfg, WithVaultRetry(3, time.Millisecond, time.Millisecond), WithLogger(zap.New(core)))
	if err != nil {
		t.Fatal(err)
	}
	defer m.(io.Closer).Close()
	key := bytes.Repeat([]byte{0xA5}, 32)
	w, id, _ := m.Wrap(ctx(), key)
	v.FailNext(2) // retried, logged
	if _, err := m.Unwrap(ctx(), w, id); err != nil {
		t.Fatal(err)
	}
	v.SetUnavailable(true)
	_, _, err1 := m.Wrap(ctx(), key)
	v.SetUnavailable(false)
	_, err2 := m.Unwrap(ctx(), []byte("vault:v1:"+base64.StdEncoding.EncodeToString(key)), id)
	var all strings.Builder
	for _, e := range []error{err1, err2} {
		if e != nil {
			all.WriteString(e.Error())
		}
	}
	for _, e := range logs.All() {
		all.WriteString(e.Message)
		for k, f := range e.ContextMap() {
			all.WriteString(k)
			all.WriteString(fmtAny(f))
		}
	}
	s := all.String()
	for _, secret := range []string{v.Token, base64.StdEncoding.EncodeToString(key), hex.EncodeToString(key), string(w)} {
		if strings.Contains(s, secret) {
			t.Errorf("errors or logs carry %q", secret)
		}
	}
	if err1 == nil || !IsRetryable(err1) {
		t.Errorf("sealed vault: %v", err1)
	}
	if err2 == nil || IsRetryable(err2) || v.Requests("", "/v1/transit/decrypt/pgveil") > 4 {
		t.Errorf("bad ciphertext: %v (decrypt requests %d)", err2, v.Requests("", "/v1/transit/decrypt/pgveil"))
	}
}

func fmtAny(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case error:
		return x.Error()
	}
	return ""
}

func TestKeysReviewHoldsLocalKeyFile(t *testing.T) {
	dir := t.TempDir()
	key := testMasterKey(t)
	want, _ := LocalMasterID(key)
	b64 := base64.StdEncoding.EncodeToString(key)
	load := func(content string) (Master, error) {
		p := filepath.Join(dir, "k")
		os.Remove(p)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return NewMaster(ctx(), policy.KeySource{Kind: policy.KeySourceLocal, Local: policy.LocalKeySource{KeyFile: p}})
	}
	for _, ok := range []string{b64, b64 + "\n", b64 + "\r\n", "  " + b64 + "\n\n", strings.TrimRight(b64, "=")} {
		if m, err := load(ok); err != nil || m.ID() != want {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "\n", hex.EncodeToString(key), b64[:40], b64 + b64,
		base64.StdEncoding.EncodeToString(append(bytes.Clone(key), 0)), base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))} {
		m, err := load(bad)
		if err == nil {
			t.Errorf("%q accepted as %s", bad, m.ID())
			continue
		}
		if strings.Contains(err.Error(), b64[:12]) || (len(bad) > 12 && strings.Contains(err.Error(), bad[:12])) {
			t.Errorf("error shows key material: %v", err)
		}
	}
	// keygen never writes through a symlink or over a file.
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("keep"), 0o644)
	link := filepath.Join(dir, "link.key")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := GenerateKeyFile(link); err == nil {
		t.Error("keygen wrote through a symlink")
	}
	dangling := filepath.Join(dir, "dangling.key")
	os.Symlink(filepath.Join(dir, "nowhere"), dangling)
	if err := GenerateKeyFile(dangling); err == nil {
		t.Error("keygen followed a dangling symlink")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Error("symlink target changed")
	}
	if _, err := os.Stat(filepath.Join(dir, "nowhere")); err == nil {
		t.Error("dangling symlink target created")
	}
}

func TestKeysReviewHoldsNonceSourceAndKeySeparation(t *testing.T) {
	pool := testPool(t)
	k := testKeyring(t, pool, testMaster(t))
	tbl := testTable(true, "email")
	col := tbl.Columns[0]
	dk, _ := k.EncryptionKey(ctx(), col, "a", true)
	ix, _ := k.IndexKey(ctx(), col)
	if dk.ID() == ix.ID() {
		t.Fatal("encryption and index key share an id")
	}
	// Same plaintext: random nonces, never the blind index, never equal.
	seen := map[string]bool{}
	for range 20000 {
		e := dk.Seal(nil, []byte("x"))
		n := string(e[5:envelope.HeaderLen])
		if seen[n] {
			t.Fatal("nonce repeated")
		}
		seen[n] = true
	}
	// The index key is not the encryption key: HMAC under the working
	// encryption key differs from the index.
	a := ix.Sum(nil, []byte("x"))
	var rows int
	pool.QueryRow(ctx(), `SELECT count(DISTINCT wrapped_key) FROM pgveil.keys WHERE key_id IN ($1, $2)`, int64(dk.ID()), int64(ix.ID())).Scan(&rows)
	if rows != 2 || len(a) != SumLen {
		t.Fatalf("wrapped keys distinct: %d, sum %d bytes", rows, len(a))
	}
	// Two tenants' index keys are one key (documented): equal values match
	// across tenants; the encryption keys differ.
	b, _ := k.EncryptionKey(ctx(), col, "b", true)
	if b.ID() == dk.ID() {
		t.Fatal("two tenants share an encryption key")
	}
}
