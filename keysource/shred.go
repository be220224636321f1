package keysource

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/policy"
)

// Shred crypto-shreds one tenant of table: every version of the tenant's
// encryption key of every configured column loses its wrapped bytes in
// pgveil.keys and becomes a 'shredded' tombstone. The tenant's envelopes
// can then never be opened (Open says ErrShredded, which the proxy turns
// into NULL). Index keys are shared by all tenants and are not touched;
// the blind-index bytes left in the rows reveal only equality.
//
// The tombstone keeps the key id, scope and tenant, so a later write for the
// same tenant starts a new version with a new key. The old wrapped bytes
// may survive in dead tuples until VACUUM, in WAL and in backups; they are
// useless without the master key, so rotating the master key (RewrapAll,
// then retiring the old key file or Vault key version) finishes the job.
func (k *Keyring) Shred(ctx context.Context, table *policy.Table, tenant string) ([]uint32, error) {
	if table.KeyContext == "" {
		return nil, fmt.Errorf("keysource: %s has no key_context; shredding is per tenant", table.QualifiedName())
	}
	scopes := make([]string, len(table.Columns))
	for i, c := range table.Columns {
		scopes[i] = ScopeOf(c)
	}
	var ids []uint32
	err := pgx.BeginFunc(ctx, k.pool, func(tx pgx.Tx) error {
		// No key is created or changed while the tenant's keys are
		// destroyed, and the UPDATE's snapshot (taken after the lock, at
		// any isolation level) holds every version committed before: also
		// one made a moment ago for the tenant (loadActive after a retired
		// newest version) under which an operator command re-sealed values
		// opened with an older one. Such a command holds its opened keys'
		// rows FOR SHARE until its batch commits (lockOpened in
		// cmd/pgveil/internal/ops), which the UPDATE waits for; a batch
		// that comes later finds the keys shredded and writes nothing.
		// Readers and FOR SHARE are not blocked by this mode.
		if _, err := tx.Exec(ctx, `LOCK TABLE pgveil.keys IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		// Rows locked in key_id order, as those batches do: no deadlock.
		where := `purpose = 'enc' AND has_tenant AND tenant = $1 AND scope = ANY($2) AND state <> 'shredded'`
		if _, err := tx.Exec(ctx, `SELECT FROM pgveil.keys WHERE `+where+` ORDER BY key_id FOR UPDATE`, tenant, scopes); err != nil {
			return err
		}
		var err error
		ids, err = tombstone(ctx, tx, where, tenant, scopes)
		if err != nil {
			return err
		}
		return notify(ctx, tx, forgetPayloads(ids)...)
	})
	if err != nil {
		return nil, fmt.Errorf("keysource: shred a tenant of %s: %w", table.QualifiedName(), err)
	}
	k.Forget(ids...)
	k.markGoneAll(ids)
	k.log.Info("keysource: shredded tenant keys", zap.String("table", table.QualifiedName()), zap.Int("keys", len(ids)))
	return ids, nil
}
