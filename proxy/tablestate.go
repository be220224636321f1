package proxy

import (
	"context"
	"crypto/hmac"
	"encoding/binary"
	"fmt"
	"math"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgveil/pgveil/keysource"
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
//
// The states are signed: each row carries a generation (one more than the
// row it replaced, and than any row before) and an HMAC-SHA-256 over table, state and generation
// under a key of the key store (keysource.TableStateKeyName), so someone
// who can write to the database but has no master key cannot put a
// complete table back into migration mode, which would make pgveil send
// lookups' plaintext to the server and accept planted plaintext. A row
// whose signature does not verify, or whose generation is lower than one
// this process has read before (an old row written back), counts as
// complete and is reported (StateRows.Rejected). What a signature cannot
// stop is the replay of an older signed row to a process that has not read
// a newer one (a pgveil started after the replay); docs/THREAT_MODEL.md.
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
  updated_at timestamptz NOT NULL DEFAULT now(),
  generation bigint NOT NULL DEFAULT 0,
  mac        bytea
);`

// TableStatesUpgradeDDL adds the signature columns to a pgveil.tables made
// by a pgveil before they existed.
const TableStatesUpgradeDDL = `
ALTER TABLE pgveil.tables ADD COLUMN IF NOT EXISTS generation bigint NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS mac bytea;`

// tableStatesShape reports whether pgveil.tables exists and whether it has
// the signature columns.
func tableStatesShape(ctx context.Context, q stateQuerier) (exists, signed bool, err error) {
	err = q.QueryRow(ctx, `SELECT to_regclass('pgveil.tables') IS NOT NULL,
  EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('pgveil.tables') AND attname = 'mac' AND NOT attisdropped)`).Scan(&exists, &signed)
	return exists, signed, err
}

// EnsureTableStates creates pgveil.tables if it is missing, or adds the
// signature columns to one made before them. Several replicas may run it
// at once: the DDL is serialised by an advisory lock. It looks first:
// PostgreSQL checks CREATE on the database before IF NOT EXISTS, so a
// service role without it could never run migrate --apply, even once a
// DBA had created the table.
func EnsureTableStates(ctx context.Context, pool *pgxpool.Pool) error {
	exists, signed, err := tableStatesShape(ctx, pool)
	if err != nil {
		return err
	}
	if exists && signed {
		return nil
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('pgveil.tables'))"); err != nil {
			return err
		}
		if exists {
			if _, err := tx.Exec(ctx, TableStatesUpgradeDDL); err != nil {
				return fmt.Errorf("adding the signature columns to pgveil.tables (made by an older pgveil; its owner can run:%s): %w", TableStatesUpgradeDDL, err)
			}
			return nil
		}
		_, err := tx.Exec(ctx, TableStatesDDL)
		return err
	})
}

// TableStatesUnsigned reports whether pgveil.tables exists without the
// signature columns (made by an older pgveil): `pgveil check` prints
// TableStatesUpgradeDDL then.
func TableStatesUnsigned(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	exists, signed, err := tableStatesShape(ctx, pool)
	return exists && !signed, err
}

// stateMACLabel starts the input of every pgveil.tables signature.
const stateMACLabel = "pgveil/v1/table-state"

// stateMACInput is what a pgveil.tables row's signature covers:
//
//	"pgveil/v1/table-state" | u16 len, table | u16 len, state | u64 generation
//
// (lengths and integers big-endian).
func stateMACInput(table, state string, generation int64) []byte {
	b := make([]byte, 0, len(stateMACLabel)+2+len(table)+2+len(state)+8)
	b = append(b, stateMACLabel...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(table)))
	b = append(b, table...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(state)))
	b = append(b, state...)
	return binary.BigEndian.AppendUint64(b, uint64(generation))
}

// SetTableState records a table's state, signed, and announces it to every
// replica. It returns the row's generation (WaitStateApplied).
func SetTableState(ctx context.Context, pool *pgxpool.Pool, keys *keysource.Keyring, table, state string) (generation int64, err error) {
	switch state {
	case TableMigrating, TableComplete, TableDecrypting:
	default:
		return 0, fmt.Errorf("unknown table state %q", state)
	}
	if len(table) > 0xffff {
		return 0, fmt.Errorf("table name of %d bytes", len(table))
	}
	key, err := keys.TableStateKey(ctx, true)
	if err != nil {
		return 0, fmt.Errorf("the key that signs pgveil.tables: %w", err)
	}
	if err := EnsureTableStates(ctx, pool); err != nil {
		return 0, err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// One writer at a time, so each row's generation is one more
		// than the one it replaces.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('pgveil.tables'))"); err != nil {
			return err
		}
		// The generation grows with the clock and past every signed row's,
		// so a table's new row is newer than any it had before, even one
		// deleted since. Only rows whose signature verifies count: a
		// forged row with generation 2^63-1 must not stop every later
		// state from being recorded.
		gen, err := nextGeneration(ctx, tx, key)
		if err != nil {
			return err
		}
		generation = gen
		mac := key.Sum(nil, stateMACInput(table, state, gen))
		if _, err := tx.Exec(ctx, `INSERT INTO pgveil.tables (table_name, state, generation, mac) VALUES ($1, $2, $3, $4)
ON CONFLICT (table_name) DO UPDATE SET state = EXCLUDED.state, generation = EXCLUDED.generation, mac = EXCLUDED.mac, updated_at = now()`,
			table, state, gen, mac); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "SELECT pg_notify($1, $2)", TableStateChannel, table)
		return err
	})
	if err != nil {
		return 0, err
	}
	return generation, nil
}

// nextGeneration is the generation of a new row: one more than the newest
// row whose signature verifies under key, and at least the database's
// clock in microseconds since 1970.
func nextGeneration(ctx context.Context, tx pgx.Tx, key *keysource.IndexKey) (int64, error) {
	var gen int64
	if err := tx.QueryRow(ctx, `SELECT floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint`).Scan(&gen); err != nil {
		return 0, err
	}
	rows, err := tx.Query(ctx, `SELECT table_name, state, generation, mac FROM pgveil.tables WHERE mac IS NOT NULL AND generation >= $1`, gen)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var table, state string
		var g int64
		var mac []byte
		if err := rows.Scan(&table, &state, &g, &mac); err != nil {
			return 0, err
		}
		if g < gen || !stateSigned(key, table, state, g, mac) {
			continue
		}
		if g == math.MaxInt64 {
			return 0, fmt.Errorf("pgveil.tables: the generation of %s is at its largest", table)
		}
		gen = g + 1
	}
	return gen, rows.Err()
}

// TableState is one verified row of pgveil.tables.
type TableState struct {
	State      string
	Generation int64
}

// StateKeyError is a failure to get the key that signs pgveil.tables (the
// key store is down, or the master key cannot unwrap it).
type StateKeyError struct{ Err error }

func (e *StateKeyError) Error() string { return "the key that signs pgveil.tables: " + e.Err.Error() }
func (e *StateKeyError) Unwrap() error { return e.Err }

// StateRows is pgveil.tables as read and checked.
type StateRows struct {
	// Verified holds the rows whose signature verifies, by table.
	Verified map[string]TableState
	// Rejected says, by table, why a row counts as complete instead of
	// its state: no signature (written before pgveil signed them, or by
	// hand), a signature that does not verify, or an older generation
	// than one read before.
	Rejected map[string]string
}

// States is the state of each table with a verified row.
func (s *StateRows) States() map[string]string {
	out := make(map[string]string, len(s.Verified))
	for t, v := range s.Verified {
		out[t] = v.State
	}
	return out
}

// RejectedTables lists the tables of Rejected, sorted.
func (s *StateRows) RejectedTables() []string {
	out := make([]string, 0, len(s.Rejected))
	for t := range s.Rejected {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// StateRemedy is what to do about a rejected row.
const StateRemedy = "if the table is really being migrated or decrypted, run `pgveil migrate --apply` (or `--decrypt`) again, which signs its state anew; otherwise someone wrote to pgveil.tables around pgveil: find out who, and delete the row"

// LoadTableStates reads pgveil.tables and checks each row's signature with
// keys. The key store is read only when there are rows; with keys nil (no
// key store yet) no row can verify.
func LoadTableStates(ctx context.Context, pool *pgxpool.Pool, keys *keysource.Keyring) (*StateRows, error) {
	return loadTableStates(ctx, pool, keys)
}

// stateQuerier is a pool or one connection.
type stateQuerier interface {
	QueryRow(context.Context, string, ...any) pgx.Row
	Query(context.Context, string, ...any) (pgx.Rows, error)
}

// loadTableStates is LoadTableStates on q.
func loadTableStates(ctx context.Context, q stateQuerier, keys *keysource.Keyring) (*StateRows, error) {
	out := &StateRows{Verified: map[string]TableState{}, Rejected: map[string]string{}}
	exists, signed, err := tableStatesShape(ctx, q)
	if err != nil || !exists {
		return out, err
	}
	query := statesListenerQuery
	if !signed {
		query = "SELECT table_name, state, 0::bigint, NULL::bytea FROM pgveil.tables"
	}
	type row struct {
		table, state string
		gen          int64
		mac          []byte
	}
	var all []row
	rows, err := q.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.table, &r.state, &r.gen, &r.mac); err != nil {
			rows.Close()
			return nil, err
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return out, nil
	}
	var key *keysource.IndexKey
	if keys != nil {
		if key, err = keys.TableStateKey(ctx, false); err != nil {
			return nil, &StateKeyError{err}
		}
	}
	for _, r := range all {
		switch {
		case r.mac == nil:
			out.Rejected[r.table] = fmt.Sprintf("state %q is not signed (written by hand, or by a pgveil older than signed states)", r.state)
		case key == nil:
			out.Rejected[r.table] = fmt.Sprintf("state %q cannot be verified: the key store has no key that signs pgveil.tables", r.state)
		case !stateSigned(key, r.table, r.state, r.gen, r.mac):
			out.Rejected[r.table] = fmt.Sprintf("the signature of state %q (generation %d) does not verify: the row was changed around pgveil", r.state, r.gen)
		default:
			out.Verified[r.table] = TableState{State: r.state, Generation: r.gen}
		}
	}
	return out, nil
}

// stateSigned reports whether mac is key's signature of a row of
// pgveil.tables (table names too long for the signed input never are).
func stateSigned(key *keysource.IndexKey, table, state string, gen int64, mac []byte) bool {
	if len(table) > 0xffff {
		return false
	}
	return hmac.Equal(key.Sum(nil, stateMACInput(table, state, gen)), mac)
}
