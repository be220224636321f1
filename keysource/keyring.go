package keysource

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/keysource/envelope"
	"github.com/pgveil/pgveil/policy"
)

// DefaultActiveTTL is how long the Keyring trusts its cached "newest active
// version" of a column's key before re-reading it from pgveil.keys, so that
// a rotation or shred done by another replica or by the CLI reaches every
// replica within this time even without Watch. Keys by id are cached without
// expiry while Watch listens (a version's bytes never change, and a shred is
// announced); without it, a cached key is used for this long after the store
// last showed it not shredded, then its row is read again.
const DefaultActiveTTL = time.Minute

// Keyring is the process's view of pgveil.keys: it creates, caches, rotates
// and shreds data keys. Unwrapped keys live only in its memory. It is safe
// for concurrent use; the hot path (a cached EncryptionKey, Seal, a cached
// Open, IndexKey.Sum) takes a read lock and touches no database.
type Keyring struct {
	pool   *pgxpool.Pool
	master Master
	log    *zap.Logger
	ttl    time.Duration
	now    func() time.Time

	mu       sync.RWMutex
	gen      uint64               // bumped by every Forget: see cacheable
	watching int                  // Watch calls listening now
	byID     map[uint32]*DataKey  // every loaded encryption key, any version
	checked  map[uint32]time.Time // when the store last showed a byID key not shredded
	gone     map[uint32]struct{}  // ids known to be shredded
	active   map[activeKey]activeEntry
	index    map[string]*IndexKey // by BlindIndex.Key
	flight   flight
}

type activeEntry struct {
	key     *DataKey
	expires time.Time
}

// timeNow is the Keyring's clock.
var timeNow = time.Now

// NewKeyring opens the key store behind pool, creating pgveil.keys if it is
// missing (safe when several replicas start at once).
func NewKeyring(ctx context.Context, pool *pgxpool.Pool, master Master, log *zap.Logger) (*Keyring, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := EnsureSchema(ctx, pool); err != nil {
		return nil, err
	}
	return &Keyring{
		pool: pool, master: master, log: log, ttl: DefaultActiveTTL, now: timeNow,
		byID: map[uint32]*DataKey{}, checked: map[uint32]time.Time{}, gone: map[uint32]struct{}{},
		active: map[activeKey]activeEntry{}, index: map[string]*IndexKey{},
	}, nil
}

// SetActiveTTL changes DefaultActiveTTL for this Keyring (0 disables the
// active cache; tests use short values).
func (k *Keyring) SetActiveTTL(d time.Duration) {
	k.mu.Lock()
	k.ttl = d
	k.mu.Unlock()
}

// Master is the master key source the Keyring wraps with.
func (k *Keyring) Master() Master { return k.master }

// checkTenant keeps tenants and key_context in step: a table with
// key_context has one key per tenant, so a tenant-less key for it (or a
// tenant key for a table without key_context) would be a proxy bug that
// silently shares keys.
func checkTenant(col *policy.Column, hasTenant bool) error {
	if col == nil || col.Table == nil {
		return errors.New("keysource: column without table")
	}
	if hasTenant != (col.Table.KeyContext != "") {
		if hasTenant {
			return fmt.Errorf("keysource: %s has no key_context, but a tenant was given", col.QualifiedName())
		}
		return fmt.Errorf("keysource: %s has key_context %s; a tenant value is required", col.QualifiedName(), col.Table.KeyContext)
	}
	return nil
}

// EncryptionKey returns the newest active data key of col (and tenant),
// creating version 1 on first use. Creation is safe across replicas: the
// unique constraint on (scope, tenant, purpose, version) lets exactly one
// INSERT win, and every process then re-reads the winner. The result is
// cached for the active TTL.
func (k *Keyring) EncryptionKey(ctx context.Context, col *policy.Column, tenant string, hasTenant bool) (*DataKey, error) {
	ak := activeKeyOf(col, tenant, hasTenant)
	k.mu.RLock()
	e, ok := k.active[ak]
	seen := k.gen
	k.mu.RUnlock()
	if ok && k.now().Before(e.expires) {
		return e.key, nil
	}
	if err := checkTenant(col, hasTenant); err != nil {
		return nil, err
	}
	if !mayWait(ctx) {
		return nil, &WaitError{what: "the active key of " + ScopeOf(col), key: "active\x00" + ScopeOf(col) + "\x00" + ak.tenant, warm: func(ctx context.Context) error {
			_, err := k.EncryptionKey(ctx, col, tenant, hasTenant)
			return err
		}}
	}
	for attempt := 0; ; attempt++ {
		v, err := k.flight.do(ctx, flightKey("active", ScopeOf(col), ak.tenant, hasTenant), func(ctx context.Context) (any, error) {
			gen := k.generation()
			dk, err := k.loadActive(ctx, col, ak.tenant, hasTenant, gen)
			return loadedKey{dk, gen}, err
		})
		if err != nil {
			// The store or the master is unreachable: keep writing with the
			// key we know for a little longer rather than failing every
			// write — unless a rotation or shred was announced since.
			if ok && k.setActiveAt(ak, e.key, seen, 5*time.Second) {
				k.log.Warn("keysource: refreshing active key failed; using cached version",
					zap.String("scope", ScopeOf(col)), zap.Uint32("key_id", e.key.ID()), zap.Error(err))
				return e.key, nil
			}
			return nil, err
		}
		lk := v.(loadedKey)
		if k.setActiveAt(ak, lk.dk, lk.gen, 0) || attempt == 2 {
			return lk.dk, nil
		}
		// A rotation or shred was announced while the key was read: the
		// version read may already be retired. Read it again.
	}
}

// loadedKey is a key read from the store and the cache generation at the
// start of the read.
type loadedKey struct {
	dk  *DataKey
	gen uint64
}

// generation is the cache generation, for cacheable.
func (k *Keyring) generation() uint64 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.gen
}

// cacheable reports, under k.mu, whether a key read from the store when
// the generation was gen may enter the cache: not when a Forget (a
// rotation, a shred, a reconnection of the watcher) came in between, since
// what was read may be what that Forget removed; it would then stay cached
// until its TTL (or, for a shredded key, for good).
func (k *Keyring) cacheable(gen uint64) bool { return k.gen == gen }

// setActiveAt is setActive for a key read at generation gen; it reports
// false, caching nothing, when a Forget came in between.
func (k *Keyring) setActiveAt(ak activeKey, dk *DataKey, gen uint64, ttl time.Duration) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.cacheable(gen) {
		return false
	}
	k.putActive(ak, dk, ttl)
	return true
}

func flightKey(kind, scope, tenant string, hasTenant bool) string {
	return kind + "\x00" + scope + "\x00" + strconv.FormatBool(hasTenant) + "\x00" + tenant
}

func (k *Keyring) setActive(ak activeKey, dk *DataKey, ttl time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.putActive(ak, dk, ttl)
}

// putActive caches dk as ak's active key for ttl (0: the keyring's TTL);
// k.mu is held.
func (k *Keyring) putActive(ak activeKey, dk *DataKey, ttl time.Duration) {
	if ttl == 0 {
		ttl = k.ttl
	}
	k.byID[dk.ID()] = dk
	k.checked[dk.ID()] = k.now()
	if ttl > 0 {
		k.active[ak] = activeEntry{key: dk, expires: k.now().Add(ttl)}
	}
}

// loadActive reads the newest version; if there is none, or the newest is
// not active (shredded, or retired by a crashed rotation), it creates the
// next version and re-reads.
func (k *Keyring) loadActive(ctx context.Context, col *policy.Column, tenant string, hasTenant bool, gen uint64) (*DataKey, error) {
	scope := ScopeOf(col)
	for attempt := 0; attempt < 3; attempt++ {
		row, err := newestRow(ctx, k.pool, PurposeEnc, scope, tenant, hasTenant, false)
		if err != nil {
			return nil, fmt.Errorf("keysource: read key of %s: %w", scope, err)
		}
		if row != nil && row.state == StateActive {
			return k.dataKeyFromRow(ctx, row, gen)
		}
		next := 1
		if row != nil {
			next = row.meta.Version + 1
		}
		m := keyMeta{Purpose: PurposeEnc, Scope: scope, Tenant: tenant, HasTenant: hasTenant, Version: next}
		if _, err := k.createKey(ctx, m); err != nil {
			return nil, err
		}
		// Whether our INSERT won or another replica's did, the newest row is
		// now the key everyone uses.
	}
	return nil, fmt.Errorf("keysource: no active key for %s after 3 attempts (concurrent shredding?)", scope)
}

// createKey wraps a fresh random key and inserts it as version m.Version.
// It returns 0 when another process created that version first.
func (k *Keyring) createKey(ctx context.Context, m keyMeta) (uint32, error) {
	raw := make([]byte, dataKeyLen)
	rand.Read(raw)
	defer clear(raw)
	wrapped, masterID, err := k.master.Wrap(ctx, raw)
	if err != nil {
		return 0, fmt.Errorf("keysource: wrap new key for %s: %w", m.Scope, err)
	}
	id, err := insertRow(ctx, k.pool, m, wrapped, masterID)
	if err != nil {
		return 0, fmt.Errorf("keysource: store new key for %s: %w", m.Scope, err)
	}
	if id != 0 {
		k.log.Info("keysource: created data key", zap.Uint32("key_id", id), zap.String("purpose", string(m.Purpose)),
			zap.String("scope", m.Scope), zap.Int("version", m.Version), zap.Bool("tenant", m.HasTenant))
	}
	return id, nil
}

// dataKeyFromRow returns the cached key of row's id, or unwraps it; gen is
// the cache generation from before row was read (see cacheable). The key is
// the column's that row.meta.Scope names, whoever asked: a load shared by
// readers of several columns (keyByID) serves each, and each checks the
// scope itself (Open: DataKey.isFor). A shredded row is refused before the
// cache is looked at: the row was read now, the cache may be older.
func (k *Keyring) dataKeyFromRow(ctx context.Context, row *keyRow, gen uint64) (*DataKey, error) {
	if row.meta.Purpose != PurposeEnc {
		return nil, keyError(ErrWrongScope, row.meta.ID, "an index key, not an encryption key")
	}
	if row.state == StateShredded || row.wrapped == nil {
		k.markGone(row.meta.ID)
		return nil, keyError(ErrShredded, row.meta.ID, "%s", row.meta.Scope)
	}
	k.mu.Lock()
	dk := k.byID[row.meta.ID]
	if dk != nil && k.cacheable(gen) {
		k.checked[row.meta.ID] = k.now()
	}
	k.mu.Unlock()
	if dk != nil {
		return dk, nil
	}
	schema, table, column, ok := splitScope(row.meta.Scope)
	if !ok {
		return nil, keyError(ErrWrongScope, row.meta.ID, "scope %q names no column", row.meta.Scope)
	}
	raw, err := k.unwrap(ctx, row)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	dk, err = newDataKeyIn(row.meta, schema, table, column, raw)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	if prev := k.byID[dk.ID()]; prev != nil {
		dk = prev
	} else if k.cacheable(gen) {
		k.byID[dk.ID()] = dk
		k.checked[dk.ID()] = k.now()
	}
	k.mu.Unlock()
	return dk, nil
}

func (k *Keyring) unwrap(ctx context.Context, row *keyRow) ([]byte, error) {
	raw, err := k.master.Unwrap(ctx, row.wrapped, row.masterID)
	if err != nil {
		return nil, fmt.Errorf("keysource: unwrap key %d (%s): %w", row.meta.ID, row.meta.Scope, err)
	}
	if len(raw) != dataKeyLen {
		clear(raw)
		return nil, keyError(ErrTampered, row.meta.ID, "unwrapped key has the wrong length")
	}
	return raw, nil
}

func (k *Keyring) markGone(id uint32) {
	k.mu.Lock()
	k.gone[id] = struct{}{}
	delete(k.byID, id)
	delete(k.checked, id)
	k.mu.Unlock()
}

// Open decrypts an envelope of col (binary, or the "pgv1:" text form),
// appending the plaintext to dst. It finds the key by the envelope's key id
// (any version; loaded once, then cached), checks that the key is col's,
// and opens with col's AAD. The returned key tells the caller the envelope's
// tenant (DataKey.BelongsTo). A cached binary Open allocates nothing beyond
// dst. Errors: ErrTampered, ErrUnknownKey, ErrShredded, ErrWrongScope, or a
// retryable error while the master key source is down.
func (k *Keyring) Open(ctx context.Context, col *policy.Column, env, dst []byte) ([]byte, *DataKey, error) {
	if envelope.IsText(env) {
		b, err := envelope.Decode(nil, env)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: bad text envelope", ErrTampered, col.QualifiedName())
		}
		env = b
	}
	id, err := envelope.KeyID(env)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: not an envelope", ErrTampered, col.QualifiedName())
	}
	dk, err := k.keyByID(ctx, id, col)
	if err != nil {
		return nil, nil, err
	}
	if !dk.isFor(col) {
		return nil, nil, keyError(ErrWrongScope, id, "belongs to %s, not %s", dk.Scope(), ScopeOf(col))
	}
	pt, err := dk.open(dst, env)
	if err != nil {
		return nil, nil, err
	}
	return pt, dk, nil
}

// OpenFor is Open plus the tenant check of DESIGN.md "Tenant binding on
// read": the envelope's key must be the row's tenant's, else ErrWrongScope.
func (k *Keyring) OpenFor(ctx context.Context, col *policy.Column, tenant string, hasTenant bool, env, dst []byte) ([]byte, error) {
	pt, dk, err := k.Open(ctx, col, env, dst)
	if err != nil {
		return nil, err
	}
	if !dk.BelongsTo(tenant, hasTenant) {
		return nil, keyError(ErrWrongScope, dk.ID(), "belongs to another tenant of %s", dk.Scope())
	}
	return pt, nil
}

// keyByID returns the cached key of id or loads it from the store. Without
// Watch, a cached key whose row was last read more than the active TTL ago
// is read again, so that a shred by another process (`pgveil shred` while
// `pgveil rotate` runs) reaches this one within the TTL even unannounced.
func (k *Keyring) keyByID(ctx context.Context, id uint32, col *policy.Column) (*DataKey, error) {
	k.mu.RLock()
	dk := k.byID[id]
	if dk != nil && k.watching == 0 && k.now().Sub(k.checked[id]) >= k.ttl {
		dk = nil // stale: re-read the row (dataKeyFromRow keeps the unwrapped key)
	}
	_, gone := k.gone[id]
	k.mu.RUnlock()
	if dk != nil {
		return dk, nil
	}
	if gone {
		return nil, keyError(ErrShredded, id, "%s", col.QualifiedName())
	}
	if !mayWait(ctx) {
		return nil, &WaitError{what: "key " + strconv.FormatUint(uint64(id), 10), key: "id\x00" + strconv.FormatUint(uint64(id), 10), warm: func(ctx context.Context) error {
			_, err := k.keyByID(ctx, id, col)
			return err
		}}
	}
	v, err := k.flight.do(ctx, "id\x00"+strconv.FormatUint(uint64(id), 10), func(ctx context.Context) (any, error) {
		gen := k.generation()
		row, err := rowByID(ctx, k.pool, id)
		if err != nil {
			// The store's failure, not the value's: retryable, so that it
			// is never taken for a verdict on the envelope.
			return nil, &RetryableError{Op: "keysource: read key " + strconv.FormatUint(uint64(id), 10), Err: err}
		}
		if row == nil {
			return nil, keyError(ErrUnknownKey, id, "no such key in pgveil.keys (envelope of %s)", col.QualifiedName())
		}
		return k.dataKeyFromRow(ctx, row, gen)
	})
	if err != nil {
		return nil, err
	}
	return v.(*DataKey), nil
}

// IndexKey returns the blind-index key named by col.BlindIndex.Key,
// creating it on first use; columns naming the same key share it. Index
// keys are never per tenant (equality across a JOIN needs one key).
func (k *Keyring) IndexKey(ctx context.Context, col *policy.Column) (*IndexKey, error) {
	return k.BlindIndexKey(ctx, col, col.BlindIndex)
}

// BlindIndexKey returns the key of col's blind index bi: col.BlindIndex,
// or its Next while the index key is rotated.
func (k *Keyring) BlindIndexKey(ctx context.Context, col *policy.Column, bi *policy.BlindIndex) (*IndexKey, error) {
	if bi == nil {
		return nil, fmt.Errorf("keysource: %s has no blind_index", col.QualifiedName())
	}
	name := bi.Key
	k.mu.RLock()
	ix := k.index[name]
	k.mu.RUnlock()
	if ix != nil {
		return ix, nil
	}
	if !mayWait(ctx) {
		return nil, &WaitError{what: "blind-index key " + name, key: "index\x00" + name, warm: func(ctx context.Context) error {
			_, err := k.BlindIndexKey(ctx, col, bi)
			return err
		}}
	}
	v, err := k.flight.do(ctx, flightKey("index", name, "", false), func(ctx context.Context) (any, error) {
		return k.loadIndexKey(ctx, name)
	})
	if err != nil {
		return nil, err
	}
	ix = v.(*IndexKey)
	k.mu.Lock()
	if prev := k.index[name]; prev != nil {
		ix = prev
	} else {
		k.index[name] = ix
	}
	k.mu.Unlock()
	return ix, nil
}

// TableStateKeyName is the pgveil.keys scope of the key that signs the rows
// of pgveil.tables: an index (HMAC) key of its own, random and wrapped by
// the master key like the others. Policy key names cannot start with
// "pgveil:", so no blind index shares it.
const TableStateKeyName = "pgveil:tables"

// TableStateKey returns the key that signs pgveil.tables. With create it
// makes one if there is none (the first signature); without, it returns
// nil when there is none (nothing was signed). It may wait for the key
// store: call it off the event loop.
func (k *Keyring) TableStateKey(ctx context.Context, create bool) (*IndexKey, error) {
	k.mu.RLock()
	ix := k.index[TableStateKeyName]
	k.mu.RUnlock()
	if ix != nil {
		return ix, nil
	}
	v, err := k.flight.do(ctx, flightKey("index", TableStateKeyName, "", create), func(ctx context.Context) (any, error) {
		if create {
			return k.loadIndexKey(ctx, TableStateKeyName)
		}
		row, err := newestRow(ctx, k.pool, PurposeIndex, TableStateKeyName, "", false, false)
		if err != nil || row == nil || row.state != StateActive {
			return (*IndexKey)(nil), err
		}
		return k.indexKeyFromRow(ctx, row)
	})
	if err != nil {
		return nil, err
	}
	ix = v.(*IndexKey)
	if ix == nil {
		return nil, nil
	}
	k.mu.Lock()
	if prev := k.index[TableStateKeyName]; prev != nil {
		ix = prev
	} else {
		k.index[TableStateKeyName] = ix
	}
	k.mu.Unlock()
	return ix, nil
}

func (k *Keyring) loadIndexKey(ctx context.Context, name string) (*IndexKey, error) {
	for attempt := 0; attempt < 3; attempt++ {
		row, err := newestRow(ctx, k.pool, PurposeIndex, name, "", false, false)
		if err != nil {
			return nil, fmt.Errorf("keysource: read index key %q: %w", name, err)
		}
		if row != nil && row.state == StateActive {
			return k.indexKeyFromRow(ctx, row)
		}
		next := 1
		if row != nil {
			next = row.meta.Version + 1
		}
		if _, err := k.createKey(ctx, keyMeta{Purpose: PurposeIndex, Scope: name, Version: next}); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("keysource: no active index key %q after 3 attempts", name)
}

func (k *Keyring) indexKeyFromRow(ctx context.Context, row *keyRow) (*IndexKey, error) {
	raw, err := k.unwrap(ctx, row)
	if err != nil {
		return nil, err
	}
	wk, err := deriveKey(raw, row.meta)
	clear(raw)
	if err != nil {
		return nil, err
	}
	ix := newIndexKey(row.meta, wk)
	clear(wk)
	return ix, nil
}

// Forget drops keys from the cache, for instance because another replica
// shredded them; the next use re-reads pgveil.keys. With no ids it drops
// every cached key.
func (k *Keyring) Forget(ids ...uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.gen++
	if len(ids) == 0 {
		clear(k.byID)
		clear(k.checked)
		clear(k.active)
		clear(k.gone)
		return
	}
	drop := make(map[uint32]bool, len(ids))
	for _, id := range ids {
		drop[id] = true
		delete(k.byID, id)
		delete(k.checked, id)
	}
	for ak, e := range k.active {
		if drop[e.key.ID()] {
			delete(k.active, ak)
		}
	}
}

// forgetActive drops every cached "newest version" so the next write
// re-reads it (another replica rotated a key).
func (k *Keyring) forgetActive() {
	k.mu.Lock()
	k.gen++
	clear(k.active)
	k.mu.Unlock()
}
