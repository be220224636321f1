package keysource

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Key states in pgveil.keys.state.
const (
	StateActive   = "active"   // newest version: new writes use it
	StateRetired  = "retired"  // older version: still opens, no new writes
	StateShredded = "shredded" // tombstone: wrapped_key is gone for good
)

// ddlLock is the pg_advisory_xact_lock key serialising schema creation, so
// replicas starting together do not race on CREATE ... IF NOT EXISTS (which
// is not safe against concurrent creation of the same name). "pgveil" in ASCII.
const ddlLock int64 = 0x7067_7665_696c

// schemaDDL creates the key store. Every statement is idempotent. The
// tenant is NOT NULL with a has_tenant flag, rather than NULL, so that the
// unique constraint also holds for keys without a tenant on every
// PostgreSQL version (NULLs are distinct in UNIQUE before NULLS NOT
// DISTINCT, PostgreSQL 15).
const schemaDDL = `
CREATE SCHEMA IF NOT EXISTS pgveil;
CREATE SEQUENCE IF NOT EXISTS pgveil.keys_key_id_seq AS bigint MINVALUE 1 MAXVALUE 4294967295 NO CYCLE;
CREATE TABLE IF NOT EXISTS pgveil.keys (
    key_id        bigint PRIMARY KEY DEFAULT nextval('pgveil.keys_key_id_seq')
                  CHECK (key_id BETWEEN 1 AND 4294967295),
    scope         text NOT NULL,
    has_tenant    boolean NOT NULL,
    tenant        text NOT NULL DEFAULT '',
    purpose       text NOT NULL CHECK (purpose IN ('enc', 'index')),
    version       integer NOT NULL CHECK (version >= 1),
    wrapped_key   bytea,
    master_key_id text NOT NULL,
    state         text NOT NULL CHECK (state IN ('active', 'retired', 'shredded')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    retired_at    timestamptz,
    shredded_at   timestamptz,
    CONSTRAINT keys_scope_tenant_purpose_version_key UNIQUE (scope, tenant, has_tenant, purpose, version),
    CONSTRAINT keys_tenant_check CHECK (has_tenant OR tenant = ''),
    CONSTRAINT keys_wrapped_check CHECK ((state = 'shredded') = (wrapped_key IS NULL))
);
ALTER SEQUENCE pgveil.keys_key_id_seq OWNED BY pgveil.keys.key_id;
COMMENT ON TABLE pgveil.keys IS 'pgveil data keys, wrapped by the master key; see docs/FORMAT.md';
`

// SchemaDDL is the SQL that creates pgveil.keys, for `pgveil check` to print.
func SchemaDDL() string { return schemaDDL }

// EnsureSchema creates pgveil.keys if it does not exist. It is safe to call
// from several processes at once, and needs no CREATE privilege when the
// table already exists.
func EnsureSchema(ctx context.Context, pool *pgxpool.Pool) error {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('pgveil.keys') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("keysource: look for pgveil.keys: %w", err)
	}
	if exists {
		return nil
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, ddlLock); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, schemaDDL)
		return err
	})
	if err != nil {
		return fmt.Errorf("keysource: create pgveil.keys: %w", err)
	}
	return nil
}

// keyRow is one row of pgveil.keys.
type keyRow struct {
	meta      keyMeta
	wrapped   []byte
	masterID  string
	state     string
	createdAt time.Time
}

const rowColumns = `key_id, purpose, scope, has_tenant, tenant, version, wrapped_key, master_key_id, state, created_at`

func scanRow(r pgx.Row) (*keyRow, error) {
	var kr keyRow
	var id int64
	var purpose string
	var version int32
	err := r.Scan(&id, &purpose, &kr.meta.Scope, &kr.meta.HasTenant, &kr.meta.Tenant, &version,
		&kr.wrapped, &kr.masterID, &kr.state, &kr.createdAt)
	if err != nil {
		return nil, err
	}
	kr.meta.ID, kr.meta.Purpose, kr.meta.Version = uint32(id), Purpose(purpose), int(version)
	return &kr, nil
}

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// rowByID returns the row of a key id, or nil when there is none.
func rowByID(ctx context.Context, q querier, id uint32) (*keyRow, error) {
	kr, err := scanRow(q.QueryRow(ctx, `SELECT `+rowColumns+` FROM pgveil.keys WHERE key_id = $1`, int64(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return kr, err
}

// newestRow returns the highest version of a (purpose, scope, tenant), or nil.
func newestRow(ctx context.Context, q querier, p Purpose, scope, tenant string, hasTenant bool, lock bool) (*keyRow, error) {
	sql := `SELECT ` + rowColumns + ` FROM pgveil.keys
		WHERE purpose = $1 AND scope = $2 AND has_tenant = $3 AND tenant = $4
		ORDER BY version DESC LIMIT 1`
	if lock {
		sql += ` FOR UPDATE`
	}
	kr, err := scanRow(q.QueryRow(ctx, sql, string(p), scope, hasTenant, tenant))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return kr, err
}

// insertRow adds an active key version. It returns 0 when another process
// inserted that version first (unique constraint, ON CONFLICT DO NOTHING).
func insertRow(ctx context.Context, q querier, m keyMeta, wrapped []byte, masterID string) (uint32, error) {
	var id int64
	err := q.QueryRow(ctx, `INSERT INTO pgveil.keys
		(purpose, scope, has_tenant, tenant, version, wrapped_key, master_key_id, state)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 'active')
		ON CONFLICT DO NOTHING RETURNING key_id`,
		string(m.Purpose), m.Scope, m.HasTenant, m.Tenant, int32(m.Version), wrapped, masterID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return uint32(id), err
}

// notifyChannel carries cache invalidations between replicas (see Watch).
const notifyChannel = "pgveil_keys"

// notify queues NOTIFY payloads on the transaction; they are delivered at commit.
func notify(ctx context.Context, tx pgx.Tx, payloads ...string) error {
	for _, p := range payloads {
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, p); err != nil {
			return err
		}
	}
	return nil
}
