package keysource

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/policy"
)

// Rotation, as `pgveil rotate` drives it:
//
//  1. Rotate(col, tenant) for each tenant (Keys lists them): a new version
//     becomes active and older active versions become retired. Retired
//     versions still open.
//  2. Re-encrypt every row whose envelope's key id is a retired one (the
//     CLI does this in batches with FOR UPDATE SKIP LOCKED).
//  3. Wait at least the active TTL (or rely on Watch) so no replica still
//     writes with an old version, re-check that no row references a retired
//     id, then DropRetired(ids): the retired keys become tombstones.

// KeyInfo describes one row of pgveil.keys, without its key material.
type KeyInfo struct {
	ID        uint32
	Purpose   Purpose
	Scope     string
	Tenant    string
	HasTenant bool
	Version   int
	State     string
	MasterID  string
	CreatedAt time.Time
}

// Keys lists every encryption key of col, every tenant and version, ordered
// by tenant and version.
func (k *Keyring) Keys(ctx context.Context, col *policy.Column) ([]KeyInfo, error) {
	rows, err := k.pool.Query(ctx, `SELECT `+rowColumns+` FROM pgveil.keys
		WHERE purpose = 'enc' AND scope = $1 ORDER BY has_tenant, tenant, version`, ScopeOf(col))
	if err != nil {
		return nil, fmt.Errorf("keysource: list keys of %s: %w", col.QualifiedName(), err)
	}
	defer rows.Close()
	var out []KeyInfo
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r.info())
	}
	return out, rows.Err()
}

func (r *keyRow) info() KeyInfo {
	return KeyInfo{ID: r.meta.ID, Purpose: r.meta.Purpose, Scope: r.meta.Scope, Tenant: r.meta.Tenant,
		HasTenant: r.meta.HasTenant, Version: r.meta.Version, State: r.state, MasterID: r.masterID, CreatedAt: r.createdAt}
}

// scopeLock serialises rotations of one (scope, tenant) across processes.
// It first takes the table lock the transaction's writes need anyway, so
// that it never holds a row lock (newestRow FOR UPDATE) while waiting for
// Shred's table lock, which waits for that row: a deadlock.
func scopeLock(ctx context.Context, tx pgx.Tx, scope, tenant string, hasTenant bool) error {
	if _, err := tx.Exec(ctx, `LOCK TABLE pgveil.keys IN ROW EXCLUSIVE MODE`); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`,
		"pgveil.keys\x1f"+scope+"\x1f"+strconv.FormatBool(hasTenant)+"\x1f"+tenant) // a collision only serialises more
	return err
}

// Rotate adds a new version of col's (and tenant's) encryption key, makes it
// the one new writes use, and retires the older versions, in one
// transaction. Other replicas see it within the active TTL, or at once with
// Watch.
func (k *Keyring) Rotate(ctx context.Context, col *policy.Column, tenant string, hasTenant bool) (*DataKey, error) {
	if err := checkTenant(col, hasTenant); err != nil {
		return nil, err
	}
	if !hasTenant {
		tenant = ""
	}
	scope := ScopeOf(col)
	raw := make([]byte, dataKeyLen)
	rand.Read(raw)
	defer clear(raw)
	wrapped, masterID, err := k.master.Wrap(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("keysource: wrap new key for %s: %w", scope, err)
	}
	var meta keyMeta
	err = pgx.BeginFunc(ctx, k.pool, func(tx pgx.Tx) error {
		if err := scopeLock(ctx, tx, scope, tenant, hasTenant); err != nil {
			return err
		}
		newest, err := newestRow(ctx, tx, PurposeEnc, scope, tenant, hasTenant, true)
		if err != nil {
			return err
		}
		meta = keyMeta{Purpose: PurposeEnc, Scope: scope, Tenant: tenant, HasTenant: hasTenant, Version: 1}
		if newest != nil {
			meta.Version = newest.meta.Version + 1
		}
		if newest != nil && newest.state == StateActive {
			// Never retire a version the configured master key cannot
			// open: its values could not be re-encrypted, and replicas
			// with the right master key could not use the new version.
			k.mu.RLock()
			_, known := k.byID[newest.meta.ID]
			k.mu.RUnlock()
			if !known {
				if err := k.checkUnwrap(ctx, newest); err != nil {
					return err
				}
			}
		}
		id, err := insertRow(ctx, tx, meta, wrapped, masterID)
		if err != nil {
			return err
		}
		if id == 0 {
			return fmt.Errorf("version %d was created concurrently; retry", meta.Version)
		}
		meta.ID = id
		if _, err := retireOlder(ctx, tx, scope, tenant, hasTenant, meta.Version); err != nil {
			return err
		}
		return notify(ctx, tx, "active")
	})
	if err != nil {
		return nil, fmt.Errorf("keysource: rotate %s: %w", scope, err)
	}
	dk, err := newDataKey(meta, col, raw)
	if err != nil {
		return nil, err
	}
	k.forgetActive()
	k.setActive(activeKeyOf(col, tenant, hasTenant), dk, 0)
	k.log.Info("keysource: rotated data key", zap.String("scope", scope), zap.Uint32("key_id", meta.ID), zap.Int("version", meta.Version))
	return dk, nil
}

// CheckUnwrap unwraps the stored bytes of each key id with the configured
// master key, keeping nothing, and returns an error naming the first it
// cannot open (shredded ids are skipped). `pgveil rotate` calls it before
// changing anything: a rotation under a master key that does not open the
// versions it retires would leave every replica without a usable key.
func (k *Keyring) CheckUnwrap(ctx context.Context, ids ...uint32) error {
	if len(ids) == 0 {
		return nil
	}
	ids64 := make([]int64, len(ids))
	for i, id := range ids {
		ids64[i] = int64(id)
	}
	rows, err := k.pool.Query(ctx, `SELECT `+rowColumns+` FROM pgveil.keys
		WHERE key_id = ANY($1) AND state <> 'shredded' ORDER BY key_id`, ids64)
	if err != nil {
		return fmt.Errorf("keysource: read keys: %w", err)
	}
	var krs []*keyRow
	for rows.Next() {
		kr, err := scanRow(rows)
		if err != nil {
			rows.Close()
			return err
		}
		krs = append(krs, kr)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("keysource: read keys: %w", err)
	}
	for _, kr := range krs {
		if err := k.checkUnwrap(ctx, kr); err != nil {
			return err
		}
	}
	return nil
}

// checkUnwrap unwraps one stored key and forgets the result.
func (k *Keyring) checkUnwrap(ctx context.Context, kr *keyRow) error {
	raw, err := k.master.Unwrap(ctx, kr.wrapped, kr.masterID)
	clear(raw)
	if err != nil {
		return fmt.Errorf("the configured master key (%s) cannot open data key %d (%s, version %d, wrapped under %s): %w",
			k.master.ID(), kr.meta.ID, kr.meta.Scope, kr.meta.Version, kr.masterID, err)
	}
	return nil
}

func retireOlder(ctx context.Context, q pgx.Tx, scope, tenant string, hasTenant bool, below int) (int64, error) {
	tag, err := q.Exec(ctx, `UPDATE pgveil.keys SET state = 'retired', retired_at = now()
		WHERE purpose = 'enc' AND scope = $1 AND has_tenant = $2 AND tenant = $3
		  AND state = 'active' AND version < $4`, scope, hasTenant, tenant, int32(below))
	return tag.RowsAffected(), err
}

// RetireOlder retires every active version of col's (and tenant's) key but
// the newest, and returns how many it retired. Rotate does this itself; the
// CLI calls it to repair a store edited by hand. It is idempotent.
func (k *Keyring) RetireOlder(ctx context.Context, col *policy.Column, tenant string, hasTenant bool) (int, error) {
	if !hasTenant {
		tenant = ""
	}
	scope := ScopeOf(col)
	var n int64
	err := pgx.BeginFunc(ctx, k.pool, func(tx pgx.Tx) error {
		if err := scopeLock(ctx, tx, scope, tenant, hasTenant); err != nil {
			return err
		}
		newest, err := newestRow(ctx, tx, PurposeEnc, scope, tenant, hasTenant, true)
		if err != nil || newest == nil {
			return err
		}
		if n, err = retireOlder(ctx, tx, scope, tenant, hasTenant, newest.meta.Version); err != nil || n == 0 {
			return err
		}
		return notify(ctx, tx, "active")
	})
	if err != nil {
		return 0, fmt.Errorf("keysource: retire old keys of %s: %w", scope, err)
	}
	return int(n), nil
}

// DropRetired destroys retired encryption keys once no row needs them: the
// wrapped bytes are deleted and the row stays as a 'shredded' tombstone, so
// a value that was missed reads as shredded rather than unknown. Ids that
// are not retired (active, already shredded, index keys) are left alone; the
// ids actually dropped are returned.
func (k *Keyring) DropRetired(ctx context.Context, ids ...uint32) ([]uint32, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ids64 := make([]int64, len(ids))
	for i, id := range ids {
		ids64[i] = int64(id)
	}
	var dropped []uint32
	err := pgx.BeginFunc(ctx, k.pool, func(tx pgx.Tx) error {
		var err error
		dropped, err = tombstone(ctx, tx, `key_id = ANY($1) AND state = 'retired' AND purpose = 'enc'`, ids64)
		if err != nil {
			return err
		}
		return notify(ctx, tx, forgetPayloads(dropped)...)
	})
	if err != nil {
		return nil, fmt.Errorf("keysource: drop retired keys: %w", err)
	}
	k.Forget(dropped...)
	k.markGoneAll(dropped)
	if len(dropped) > 0 {
		k.log.Info("keysource: dropped retired data keys", zap.Int("count", len(dropped)))
	}
	return dropped, nil
}

// tombstone shreds the rows matching where: wrapped_key becomes NULL.
func tombstone(ctx context.Context, tx pgx.Tx, where string, args ...any) ([]uint32, error) {
	rows, err := tx.Query(ctx, `UPDATE pgveil.keys SET state = 'shredded', wrapped_key = NULL, shredded_at = now()
		WHERE `+where+` RETURNING key_id`, args...)
	if err != nil {
		return nil, err
	}
	var ids []uint32
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, uint32(id))
	}
	return ids, rows.Err()
}

// forgetPayloads splits ids into NOTIFY payloads under PostgreSQL's
// 8000-byte payload limit.
func forgetPayloads(ids []uint32) []string {
	var out []string
	var b strings.Builder
	for _, id := range ids {
		if b.Len() > 7000 {
			out = append(out, b.String())
			b.Reset()
		}
		if b.Len() == 0 {
			b.WriteString("forget:")
		} else {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(id), 10))
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}

func (k *Keyring) markGoneAll(ids []uint32) {
	k.mu.Lock()
	for _, id := range ids {
		k.gone[id] = struct{}{}
	}
	k.mu.Unlock()
}
