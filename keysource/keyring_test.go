package keysource

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgveil/pgveil/keysource/envelope"
)

func TestSealOpenRoundTrip(t *testing.T) {
	pool := testPool(t)
	k := testKeyring(t, pool, testMaster(t))
	tbl := testTable(false, "email")
	col := tbl.Columns[0]
	dk, err := k.EncryptionKey(ctx(), col, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if dk.Version() != 1 || dk.ID() == 0 {
		t.Fatalf("version %d id %d", dk.Version(), dk.ID())
	}
	if again, _ := k.EncryptionKey(ctx(), col, "", false); again != dk {
		t.Fatal("second EncryptionKey is not the cached key")
	}
	pt := []byte("alice@example.com")
	e1, e2 := dk.Seal(nil, pt), dk.Seal(nil, pt)
	if bytes.Equal(e1, e2) {
		t.Fatal("two encryptions are equal")
	}
	for _, env := range [][]byte{e1, e2, envelope.Encode(nil, e1)} {
		got, key, err := k.Open(ctx(), col, env, nil)
		if err != nil || !bytes.Equal(got, pt) || key != dk {
			t.Fatalf("Open = %q, %v", got, err)
		}
	}
	// A fresh replica loads the key by id.
	k2 := testKeyring(t, pool, k.Master())
	if got, _, err := k2.Open(ctx(), col, e1, nil); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("fresh keyring: %q, %v", got, err)
	}
	// Bit flips fail closed through the keyring too.
	for i := 0; i < len(e1)*8; i++ {
		m := bytes.Clone(e1)
		m[i/8] ^= 1 << (i % 8)
		if _, _, err := k.Open(ctx(), col, m, nil); err == nil {
			t.Fatalf("bit %d flipped opened", i)
		}
	}
	if _, _, err := k.Open(ctx(), col, e1[:len(e1)-1], nil); !errors.Is(err, ErrTampered) {
		t.Fatalf("truncated: %v", err)
	}
	if _, _, err := k.Open(ctx(), col, append(bytes.Clone(e1), 0), nil); !errors.Is(err, ErrTampered) {
		t.Fatalf("extended: %v", err)
	}
}

func TestTenantRequiredMatchesKeyContext(t *testing.T) {
	k := testKeyring(t, testPool(t), testMaster(t))
	if _, err := k.EncryptionKey(ctx(), testTable(true, "a").Columns[0], "", false); err == nil {
		t.Fatal("tenant-less key for a key_context table")
	}
	if _, err := k.EncryptionKey(ctx(), testTable(false, "a").Columns[0], "x", true); err == nil {
		t.Fatal("tenant key for a table without key_context")
	}
}

func TestWrongPlaceFails(t *testing.T) {
	pool := testPool(t)
	k := testKeyring(t, pool, testMaster(t))
	tbl := testTable(true, "email", "phone")
	other := testTable(true, "email")
	email, phone := tbl.Columns[0], tbl.Columns[1]
	a, _ := k.EncryptionKey(ctx(), email, "org-a", true)
	b, err := k.EncryptionKey(ctx(), email, "org-b", true)
	if err != nil || a.ID() == b.ID() {
		t.Fatal("tenants share a key", err)
	}
	env := a.Seal(nil, []byte("secret"))

	// Another column, another table: the key's scope is checked.
	for _, col := range []*struct{ name string }{{"column"}, {"table"}} {
		c := phone
		if col.name == "table" {
			c = other.Columns[0]
		}
		if _, _, err := k.Open(ctx(), c, env, nil); !errors.Is(err, ErrWrongScope) {
			t.Errorf("%s: %v", col.name, err)
		}
		// Even a fresh keyring that first meets the key through the wrong column.
		if _, _, err := testKeyring(t, pool, k.Master()).Open(ctx(), c, env, nil); !errors.Is(err, ErrWrongScope) {
			t.Errorf("%s, fresh keyring: %v", col.name, err)
		}
	}
	// Another tenant's row: the key is not theirs.
	if _, err := k.OpenFor(ctx(), email, "org-b", true, env, nil); !errors.Is(err, ErrWrongScope) {
		t.Errorf("tenant: %v", err)
	}
	if pt, err := k.OpenFor(ctx(), email, "org-a", true, env, nil); err != nil || string(pt) != "secret" {
		t.Errorf("own tenant: %v", err)
	}
	// Relabelled with the other tenant's key id: the AAD and key differ.
	m := bytes.Clone(env)
	binary.BigEndian.PutUint32(m[1:5], b.ID())
	if _, _, err := k.Open(ctx(), email, m, nil); !errors.Is(err, ErrTampered) {
		t.Errorf("relabelled key id: %v", err)
	}
}

func TestUnknownKey(t *testing.T) {
	k := testKeyring(t, testPool(t), testMaster(t))
	col := testTable(false, "c").Columns[0]
	env := make([]byte, envelope.Overhead+3)
	env[0] = envelope.Version
	binary.BigEndian.PutUint32(env[1:5], 4_000_000_000)
	_, _, err := k.Open(ctx(), col, env, nil)
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "4000000000") {
		t.Fatalf("err = %v", err)
	}
}

func TestConcurrentFirstKeyAcrossReplicas(t *testing.T) {
	m := testMaster(t)
	col := testTable(true, "email").Columns[0]
	const replicas, callers = 5, 8
	var rings []*Keyring
	for range replicas {
		rings = append(rings, testKeyring(t, testPool(t), m)) // a pool each: separate processes
	}
	ids := make(chan uint32, replicas*callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, k := range rings {
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				dk, err := k.EncryptionKey(ctx(), col, "tenant-42", true)
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
	if len(seen) != 1 {
		t.Fatalf("replicas disagree: %v", seen)
	}
	keys, err := rings[0].Keys(ctx(), col)
	if err != nil || len(keys) != 1 || keys[0].State != StateActive {
		t.Fatalf("rows: %+v, %v", keys, err)
	}
}

func TestShred(t *testing.T) {
	pool := testPool(t)
	k := testKeyring(t, pool, testMaster(t))
	tbl := testTable(true, "email", "phone")
	var envs [][]byte
	for _, c := range tbl.Columns {
		dk, _ := k.EncryptionKey(ctx(), c, "victim", true)
		envs = append(envs, dk.Seal(nil, []byte("x")))
	}
	keep, _ := k.EncryptionKey(ctx(), tbl.Columns[0], "survivor", true)
	keepEnv := keep.Seal(nil, []byte("kept"))
	old, err := k.Rotate(ctx(), tbl.Columns[0], "victim", true) // two versions of one column
	if err != nil {
		t.Fatal(err)
	}
	envs = append(envs, old.Seal(nil, []byte("y")))
	cols := []int{0, 1, 0}

	ids, err := k.Shred(ctx(), tbl, "victim")
	if err != nil || len(ids) != 3 {
		t.Fatalf("shredded %v, %v", ids, err)
	}
	fresh := testKeyring(t, pool, k.Master())
	for i, env := range envs {
		for _, ring := range []*Keyring{k, fresh} {
			if _, _, err := ring.Open(ctx(), tbl.Columns[cols[i]], env, nil); !errors.Is(err, ErrShredded) {
				t.Fatalf("envelope %d: %v", i, err)
			}
		}
	}
	if pt, _, err := fresh.Open(ctx(), tbl.Columns[0], keepEnv, nil); err != nil || string(pt) != "kept" {
		t.Fatalf("other tenant: %v", err)
	}
	var nullWraps int
	pool.QueryRow(ctx(), `SELECT count(*) FROM pgveil.keys WHERE tenant = 'victim' AND scope LIKE $1 AND wrapped_key IS NULL AND state = 'shredded'`,
		tbl.QualifiedName()+".%").Scan(&nullWraps)
	if nullWraps != 3 {
		t.Fatalf("%d tombstones, want 3", nullWraps)
	}
	// The tenant writing again gets a new key version.
	dk, err := k.EncryptionKey(ctx(), tbl.Columns[0], "victim", true)
	if err != nil || dk.Version() != 3 {
		t.Fatalf("after shred: %v, %v", dk, err)
	}
	if _, err := k.Shred(ctx(), testTable(false, "c"), "x"); err == nil {
		t.Fatal("shred of a table without key_context")
	}
}

func TestRotateRetireDrop(t *testing.T) {
	pool := testPool(t)
	k := testKeyring(t, pool, testMaster(t))
	col := testTable(false, "email").Columns[0]
	v1, _ := k.EncryptionKey(ctx(), col, "", false)
	e1 := v1.Seal(nil, []byte("one"))
	v2, err := k.Rotate(ctx(), col, "", false)
	if err != nil || v2.Version() != 2 || v2.ID() == v1.ID() {
		t.Fatalf("rotate: %v", err)
	}
	if cur, _ := k.EncryptionKey(ctx(), col, "", false); cur.ID() != v2.ID() {
		t.Fatal("new writes do not use the new version")
	}
	// Another replica with a cached v1 switches after its TTL.
	other := testKeyring(t, pool, k.Master())
	other.SetActiveTTL(50 * time.Millisecond)
	if cur, _ := other.EncryptionKey(ctx(), col, "", false); cur.ID() != v2.ID() {
		t.Fatal("other replica does not see v2")
	}
	e2 := v2.Seal(nil, []byte("two"))
	for _, ring := range []*Keyring{k, testKeyring(t, pool, k.Master())} {
		for env, want := range map[string]string{string(e1): "one", string(e2): "two"} {
			if pt, _, err := ring.Open(ctx(), col, []byte(env), nil); err != nil || string(pt) != want {
				t.Fatalf("open after rotate: %v", err)
			}
		}
	}
	keys, _ := k.Keys(ctx(), col)
	if len(keys) != 2 || keys[0].State != StateRetired || keys[1].State != StateActive {
		t.Fatalf("keys %+v", keys)
	}
	if n, err := k.RetireOlder(ctx(), col, "", false); err != nil || n != 0 {
		t.Fatalf("RetireOlder on a clean store: %d, %v", n, err)
	}
	// A store where two versions are active (edited by hand) is repaired.
	pool.Exec(ctx(), `UPDATE pgveil.keys SET state = 'active' WHERE key_id = $1`, int64(v1.ID()))
	if n, err := k.RetireOlder(ctx(), col, "", false); err != nil || n != 1 {
		t.Fatalf("RetireOlder: %d, %v", n, err)
	}
	dropped, err := k.DropRetired(ctx(), v1.ID(), v2.ID())
	if err != nil || len(dropped) != 1 || dropped[0] != v1.ID() {
		t.Fatalf("DropRetired dropped %v (active must stay), %v", dropped, err)
	}
	if _, _, err := k.Open(ctx(), col, e1, nil); !errors.Is(err, ErrShredded) {
		t.Fatalf("dropped version: %v", err)
	}
	if _, _, err := k.Open(ctx(), col, e2, nil); err != nil {
		t.Fatalf("active version: %v", err)
	}
}

// A keyring whose master key does not open the stored versions (another
// key file on the operator's host) neither passes CheckUnwrap nor rotates:
// pgveil.keys is left as it was, and the right master key still rotates.
func TestRotateRefusesWrongMaster(t *testing.T) {
	pool := testPool(t)
	k := testKeyring(t, pool, testMaster(t))
	col := testTable(false, "email").Columns[0]
	v1, err := k.EncryptionKey(ctx(), col, "", false)
	if err != nil {
		t.Fatal(err)
	}
	wrong := testKeyring(t, pool, testMaster(t))
	if err := wrong.CheckUnwrap(ctx(), v1.ID()); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("cannot open data key %d", v1.ID())) {
		t.Fatalf("CheckUnwrap under another master key: %v", err)
	}
	if _, err := wrong.Rotate(ctx(), col, "", false); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("cannot open data key %d", v1.ID())) {
		t.Fatalf("Rotate under another master key: %v", err)
	}
	if keys, _ := k.Keys(ctx(), col); len(keys) != 1 || keys[0].State != StateActive || keys[0].ID != v1.ID() {
		t.Fatalf("keys after the refused rotation: %+v", keys)
	}
	if err := k.CheckUnwrap(ctx(), v1.ID()); err != nil {
		t.Fatal(err)
	}
	if v2, err := k.Rotate(ctx(), col, "", false); err != nil || v2.Version() != 2 {
		t.Fatalf("Rotate under the right master key: %v", err)
	}
}

func TestIndexKeys(t *testing.T) {
	pool := testPool(t)
	k := testKeyring(t, pool, testMaster(t))
	a, b := testTable(true, "email"), testTable(false, "contact")
	shared := "shared-" + a.Name
	a.Columns[0].BlindIndex.Key, b.Columns[0].BlindIndex.Key = shared, shared
	ia, err := k.IndexKey(ctx(), a.Columns[0])
	if err != nil {
		t.Fatal(err)
	}
	ib, _ := testKeyring(t, pool, k.Master()).IndexKey(ctx(), b.Columns[0])
	if ia.ID() != ib.ID() || !bytes.Equal(ia.Sum(nil, []byte("v")), ib.Sum(nil, []byte("v"))) {
		t.Fatal("columns naming one index key do not share it")
	}
	ek, _ := k.EncryptionKey(ctx(), a.Columns[0], "t", true)
	if ek.ID() == ia.ID() {
		t.Fatal("index and encryption keys coincide")
	}
	c := testTable(false, "email").Columns[0]
	ic, _ := k.IndexKey(ctx(), c)
	if bytes.Equal(ic.Sum(nil, []byte("v")), ia.Sum(nil, []byte("v"))) {
		t.Fatal("different index keys give equal indexes")
	}
	if s := ia.Sum(nil, []byte("v")); len(s) != SumLen || bytes.Equal(s, ia.Sum(nil, []byte("w"))) {
		t.Fatal("bad Sum")
	}
	// An index key's id in an envelope is refused.
	env := make([]byte, envelope.Overhead)
	env[0] = 1
	binary.BigEndian.PutUint32(env[1:5], ia.ID())
	if _, _, err := testKeyring(t, pool, k.Master()).Open(ctx(), a.Columns[0], env, nil); !errors.Is(err, ErrWrongScope) {
		t.Fatalf("index key as envelope key: %v", err)
	}
}

// Wrapped bytes copied between rows of pgveil.keys do not make one tenant's
// key serve another: the working key is derived from the row too.
func TestWrappedKeySwapFailsClosed(t *testing.T) {
	pool := testPool(t)
	k := testKeyring(t, pool, testMaster(t))
	col := testTable(true, "email").Columns[0]
	a, _ := k.EncryptionKey(ctx(), col, "a", true)
	b, _ := k.EncryptionKey(ctx(), col, "b", true)
	envB := b.Seal(nil, []byte("b's secret"))
	if _, err := pool.Exec(ctx(), `UPDATE pgveil.keys SET wrapped_key = (SELECT wrapped_key FROM pgveil.keys WHERE key_id = $1) WHERE key_id = $2`,
		int64(a.ID()), int64(b.ID())); err != nil {
		t.Fatal(err)
	}
	if _, _, err := testKeyring(t, pool, k.Master()).Open(ctx(), col, envB, nil); !errors.Is(err, ErrTampered) {
		t.Fatalf("swapped wrap: %v", err)
	}
}

func TestRewrapAllLocal(t *testing.T) {
	pool := isolatedPool(t)
	oldKey, newKey := testMasterKey(t), testMasterKey(t)
	oldM, _ := NewLocalMaster(oldKey)
	k := testKeyring(t, pool, oldM)
	tbl := testTable(true, "email", "phone")
	var envs [][]byte
	for _, c := range tbl.Columns {
		for _, tenant := range []string{"x", "y"} {
			dk, _ := k.EncryptionKey(ctx(), c, tenant, true)
			envs = append(envs, dk.Seal(nil, []byte(tenant)))
		}
		k.IndexKey(ctx(), c)
	}
	both, _ := NewLocalMaster(newKey, oldKey) // previous_key_files
	k2 := testKeyring(t, pool, both)
	n, err := k2.RewrapAll(ctx())
	if err != nil || n < 6 {
		t.Fatalf("rewrapped %d, %v", n, err)
	}
	var left int
	pool.QueryRow(ctx(), `SELECT count(*) FROM pgveil.keys WHERE master_key_id = $1 AND state <> 'shredded'`, oldM.ID()).Scan(&left)
	if left != 0 {
		t.Fatalf("%d keys still under the old master", left)
	}
	if n, _ := k2.RewrapAll(ctx()); n != 0 {
		t.Fatalf("second RewrapAll rewrapped %d", n)
	}
	onlyNew, _ := NewLocalMaster(newKey)
	k3 := testKeyring(t, pool, onlyNew)
	for i, env := range envs {
		if _, _, err := k3.Open(ctx(), tbl.Columns[i/2], env, nil); err != nil {
			t.Fatalf("envelope %d after master rotation: %v", i, err)
		}
	}
	for _, c := range tbl.Columns {
		if _, err := k3.IndexKey(ctx(), c); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWatchAppliesOtherReplicasChanges(t *testing.T) {
	pool := testPool(t)
	m := testMaster(t)
	watcher := testKeyring(t, testPool(t), m)
	actor := testKeyring(t, pool, m)
	tbl := testTable(true, "email")
	col := tbl.Columns[0]
	dk, _ := watcher.EncryptionKey(ctx(), col, "t", true)
	env := dk.Seal(nil, []byte("v"))
	wctx, cancel := contextWithCancel()
	done := make(chan error, 1)
	go func() { done <- watcher.Watch(wctx) }()
	defer func() {
		cancel()
		<-done
	}()
	time.Sleep(200 * time.Millisecond) // LISTEN in place

	v2, _ := actor.Rotate(ctx(), col, "t", true)
	waitFor(t, func() bool {
		cur, err := watcher.EncryptionKey(ctx(), col, "t", true)
		return err == nil && cur.ID() == v2.ID()
	})
	if _, err := actor.Shred(ctx(), tbl, "t"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, _, err := watcher.Open(ctx(), col, env, nil)
		return errors.Is(err, ErrShredded)
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNoncesNeverRepeat(t *testing.T) {
	dk, err := newDataKeyFromWorkingKey(keyMeta{ID: 1, Purpose: PurposeEnc}, "s", "t", "c", make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	const n = 1_000_000
	seen := make(map[[12]byte]struct{}, n)
	buf := make([]byte, 0, 64)
	pt := []byte("v")
	for i := 0; i < n; i++ {
		env := dk.Seal(buf[:0], pt)
		var nonce [12]byte
		copy(nonce[:], env[5:17])
		if _, dup := seen[nonce]; dup {
			t.Fatalf("nonce repeated after %d seals", i)
		}
		seen[nonce] = struct{}{}
	}
}

func TestErrorsCarryNoPlaintext(t *testing.T) {
	pool := testPool(t)
	k := testKeyring(t, pool, testMaster(t))
	tbl := testTable(false, "email", "phone")
	dk, _ := k.EncryptionKey(ctx(), tbl.Columns[0], "", false)
	secret := "very-secret-plaintext"
	env := dk.Seal(nil, []byte(secret))
	env2 := bytes.Clone(env)
	env2[30] ^= 1
	for _, e := range [][]byte{env2, env[:20]} {
		_, _, err := k.Open(ctx(), tbl.Columns[0], e, nil)
		if err == nil || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), string(e)) {
			t.Fatalf("err = %v", err)
		}
	}
	_, _, err := k.Open(ctx(), tbl.Columns[1], env, nil)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("err = %v", err)
	}
}

// TestStaleReadNotCached: a key read from the store before a Forget (a
// rotation or shred announced meanwhile) is not cached after it. Without
// the guard, a write racing a rotation could pin the retired version for
// the active TTL, and an Open racing a shred could keep the shredded key.
func TestStaleReadNotCached(t *testing.T) {
	pool := testPool(t)
	k := testKeyring(t, pool, testMaster(t))
	tbl := testTable(true, "email")
	col := tbl.Columns[0]
	dk, err := k.EncryptionKey(ctx(), col, "t1", true)
	if err != nil {
		t.Fatal(err)
	}
	ak := activeKeyOf(col, "t1", true)

	// The active key, read before a rotation was announced.
	gen := k.generation()
	k.forgetActive()
	if k.setActiveAt(ak, dk, gen, 0) {
		t.Fatal("a key read before forgetActive was cached after it")
	}
	k.mu.RLock()
	_, cached := k.active[ak]
	k.mu.RUnlock()
	if cached {
		t.Fatal("stale active key in the cache")
	}
	// Read again now: cached.
	if !k.setActiveAt(ak, dk, k.generation(), 0) {
		t.Fatal("a fresh read was not cached")
	}

	// A key by id, read before a shred was announced.
	row, err := rowByID(ctx(), pool, dk.ID())
	if err != nil || row == nil {
		t.Fatal(row, err)
	}
	gen = k.generation()
	k.Forget(dk.ID())
	got, err := k.dataKeyFromRow(ctx(), row, gen)
	if err != nil || got.ID() != dk.ID() {
		t.Fatalf("the read itself still answers: %v %v", got, err)
	}
	k.mu.RLock()
	_, cached = k.byID[dk.ID()]
	k.mu.RUnlock()
	if cached {
		t.Fatal("a key read before Forget(id) was cached after it")
	}
}
