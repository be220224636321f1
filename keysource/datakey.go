package keysource

import (
	"crypto/aes"
	"crypto/cipher"

	"github.com/pgveil/pgveil/keysource/envelope"
	"github.com/pgveil/pgveil/policy"
)

// DataKey is one unwrapped encryption key of one column (and tenant) at one
// version. It is immutable and safe for concurrent use; the Keyring caches
// it by id and hands the same pointer to every caller.
type DataKey struct {
	meta   keyMeta
	schema string // the column this key encrypts, split for cheap scope checks
	table  string
	column string
	aead   cipher.AEAD
	aad    []byte // envelope AAD: fixed per key, computed once
}

func newDataKey(m keyMeta, col *policy.Column, stored []byte) (*DataKey, error) {
	return newDataKeyIn(m, col.Table.Schema, col.Table.Name, col.Name, stored)
}

// newDataKeyIn is newDataKey for the column named by its parts.
func newDataKeyIn(m keyMeta, schema, table, column string, stored []byte) (*DataKey, error) {
	k, err := deriveKey(stored, m)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	return newDataKeyFromWorkingKey(m, schema, table, column, k)
}

func newDataKeyFromWorkingKey(m keyMeta, schema, table, column string, key []byte) (*DataKey, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &DataKey{
		meta: m, schema: schema, table: table, column: column, aead: g,
		aad: envelope.AppendAAD(nil, schema, table, column, m.ID),
	}, nil
}

// Seal appends a v1 envelope of plaintext to dst. It touches no database
// and allocates nothing when dst has room for len(plaintext)+33 bytes.
func (d *DataKey) Seal(dst, plaintext []byte) []byte {
	return envelope.Seal(dst, d.aead, d.meta.ID, plaintext, d.aad)
}

// open decrypts an envelope already known to carry this key's id.
func (d *DataKey) open(dst, env []byte) ([]byte, error) {
	out, err := envelope.Open(dst, d.aead, env, d.aad)
	if err != nil {
		return nil, keyError(ErrTampered, d.meta.ID, "%s", d.meta.Scope)
	}
	return out, nil
}

// ID is the key id written into every envelope this key seals.
func (d *DataKey) ID() uint32 { return d.meta.ID }

// Tenant is the key_context value the key belongs to; ok is false for a
// table without key_context.
func (d *DataKey) Tenant() (tenant string, ok bool) { return d.meta.Tenant, d.meta.HasTenant }

// Version counts the key's rotations for its column and tenant, from 1.
func (d *DataKey) Version() int { return d.meta.Version }

// Scope is "schema.table.column" (see ScopeOf).
func (d *DataKey) Scope() string { return d.meta.Scope }

// BelongsTo reports whether this key is the tenant's: the proxy's tenant
// check on read, so a value copied into another tenant's row fails closed.
func (d *DataKey) BelongsTo(tenant string, hasTenant bool) bool {
	return d.meta.HasTenant == hasTenant && (!hasTenant || d.meta.Tenant == tenant)
}

// isFor reports whether this key encrypts col, without allocating.
func (d *DataKey) isFor(col *policy.Column) bool {
	return d.column == col.Name && d.table == col.Table.Name && d.schema == col.Table.Schema
}
