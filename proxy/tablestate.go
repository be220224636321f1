package proxy

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Table states, kept in pgveil.tables and shared by every proxy replica and
// the CLI. A configured table without a row is TableComplete: every value
// must be an envelope (fail closed).
//
//	migrating   `pgveil migrate --apply` is encrypting existing plaintext:
//	            values without an envelope are returned as they are, and
//	            equality lookups also match rows whose blind index is still
//	            NULL by their plaintext, so the application sees no gap.
//	complete    every value is sealed; plaintext is an error on read.
//	decrypting  `pgveil migrate --decrypt` is turning envelopes back into
//	            plaintext (leaving pgveil): read like migrating.
const (
	TableMigrating  = "migrating"
	TableComplete   = "complete"
	TableDecrypting = "decrypting"
)

// TableStateChannel is the LISTEN/NOTIFY channel on which a state change
// is announced (payload: the schema-qualified table name).
const TableStateChannel = "pgveil_tables"

// TableStatesDDL creates pgveil.tables (idempotent); `pgveil check` prints it.
const TableStatesDDL = `
CREATE SCHEMA IF NOT EXISTS pgveil;
CREATE TABLE IF NOT EXISTS pgveil.tables (
  table_name text PRIMARY KEY,
  state      text NOT NULL CHECK (state IN ('migrating', 'complete', 'decrypting')),
  updated_at timestamptz NOT NULL DEFAULT now()
);`

// EnsureTableStates creates pgveil.tables if it is missing. Several
// replicas may run it at once: the DDL is serialised by an advisory lock.
// It looks first: PostgreSQL checks CREATE on the database before IF NOT
// EXISTS, so a service role without it could never run migrate --apply,
// even once a DBA had created the table.
func EnsureTableStates(ctx context.Context, pool *pgxpool.Pool) error {
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('pgveil.tables') IS NOT NULL").Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('pgveil.tables'))"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, TableStatesDDL)
		return err
	})
}

// SetTableState records a table's state and announces it to every replica.
func SetTableState(ctx context.Context, pool *pgxpool.Pool, table, state string) error {
	switch state {
	case TableMigrating, TableComplete, TableDecrypting:
	default:
		return fmt.Errorf("unknown table state %q", state)
	}
	if err := EnsureTableStates(ctx, pool); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO pgveil.tables (table_name, state) VALUES ($1, $2)
ON CONFLICT (table_name) DO UPDATE SET state = EXCLUDED.state, updated_at = now()`, table, state); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", TableStateChannel, table)
		return err
	})
}

// LoadTableStates reads every recorded state, by schema-qualified name.
func LoadTableStates(ctx context.Context, pool *pgxpool.Pool) (map[string]string, error) {
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('pgveil.tables') IS NOT NULL").Scan(&exists); err != nil {
		return nil, err
	}
	out := map[string]string{}
	if !exists {
		return out, nil
	}
	rows, err := pool.Query(ctx, "SELECT table_name, state FROM pgveil.tables")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var t, s string
		if err := rows.Scan(&t, &s); err != nil {
			return nil, err
		}
		out[t] = s
	}
	return out, rows.Err()
}
