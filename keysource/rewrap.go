package keysource

import (
	"bytes"
	"context"
	"fmt"

	"go.uber.org/zap"
)

// rewrapBatch is how many key rows RewrapAll reads at a time.
const rewrapBatch = 200

// RewrapAll moves every stored data key (both purposes, every state but
// shredded) under the master key version in use now (`pgveil rotate
// --master`). Row data is untouched: the data keys themselves do not
// change, only their wrapping. It returns how many keys it rewrapped. Vault
// rewraps server-side (transit/rewrap); a local master unwraps with the
// previous key file and wraps with the current one. Each row is updated
// only if it has not changed since it was read, so running it on two
// machines at once is harmless.
func (k *Keyring) RewrapAll(ctx context.Context) (int, error) {
	rw, ok := k.master.(Rewrapper)
	if !ok {
		return 0, fmt.Errorf("keysource: master %s cannot rewrap", k.master.ID())
	}
	var after int64
	n := 0
	for {
		rows, err := k.pool.Query(ctx, `SELECT key_id, wrapped_key, master_key_id FROM pgveil.keys
			WHERE key_id > $1 AND state <> 'shredded' ORDER BY key_id LIMIT $2`, after, rewrapBatch)
		if err != nil {
			return n, fmt.Errorf("keysource: rewrap: %w", err)
		}
		type item struct {
			id       int64
			wrapped  []byte
			masterID string
		}
		var batch []item
		for rows.Next() {
			var it item
			if err := rows.Scan(&it.id, &it.wrapped, &it.masterID); err != nil {
				rows.Close()
				return n, err
			}
			batch = append(batch, it)
		}
		if err := rows.Err(); err != nil {
			return n, err
		}
		if len(batch) == 0 {
			break
		}
		for _, it := range batch {
			after = it.id
			if !rw.NeedsRewrap(it.wrapped, it.masterID) {
				continue
			}
			nw, nid, err := rw.Rewrap(ctx, it.wrapped, it.masterID)
			if err != nil {
				return n, fmt.Errorf("keysource: rewrap key %d: %w", it.id, err)
			}
			if bytes.Equal(nw, it.wrapped) {
				continue
			}
			tag, err := k.pool.Exec(ctx, `UPDATE pgveil.keys SET wrapped_key = $2, master_key_id = $3
				WHERE key_id = $1 AND wrapped_key = $4`, it.id, nw, nid, it.wrapped)
			if err != nil {
				return n, fmt.Errorf("keysource: store rewrapped key %d: %w", it.id, err)
			}
			n += int(tag.RowsAffected())
		}
	}
	k.log.Info("keysource: rewrapped data keys", zap.Int("count", n), zap.String("master", k.master.ID()))
	return n, nil
}
