package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Confirming a table state (review 17a). `pgveil migrate` must not write
// plaintext back (--decrypt) before every running replica reads the table
// as decrypting: a replica still at complete would take each such value
// for an attack (PV003, or NULL under on_error: null) and miss it in
// lookups. NOTIFY says nothing about who applied it, so each replica's
// table-state listener names its connection StateListenerApp plus an id of
// its own, and runs every query on it as a reload of the states (at
// LISTEN, on each notification, and as its heartbeat). A replica has
// applied a state committed at t once one of its listener connections
// started its reload query at or after t and finished it. WaitStateApplied
// waits for that.

// StateListenerApp prefixes the application_name of the connections on
// which replicas follow pgveil.tables.
const StateListenerApp = "pgveil table states "

// stateListenerApp is this process's: one id for all its engines, so that
// a connection left behind by a listener that reconnected does not count
// as another replica once the new one has confirmed.
var stateListenerApp = func() string {
	b := make([]byte, 8)
	rand.Read(b)
	return StateListenerApp + hex.EncodeToString(b)
}()

// statesListenerQuery is the reload of a state listener: the query
// pg_stat_activity must show on its connection, begun after a change, for
// the change to count as read (not its SET or LISTEN, which come before the
// first reload). LoadTableStates runs it too.
const statesListenerQuery = "SELECT table_name, state, generation, mac FROM pgveil.tables"

// WaitStateApplied waits until every replica following pgveil.tables in
// the database has read the states since the server time since (taken
// after the change committed), or until timeout. It returns how many
// replicas follow the states and how many had not confirmed when it
// returned. Replicas whose listener is down confirm when it reconnects
// (their heartbeat finds a silent one within keysource.HeartbeatIdle +
// HeartbeatTimeout); a role that cannot see other roles' sessions in
// pg_stat_activity (pg_read_all_stats) does not see them at all: hidden
// counts the sessions in the database hidden from it (review 18b), among
// which may be replicas it did not wait for.
func WaitStateApplied(ctx context.Context, pool *pgxpool.Pool, since time.Time, timeout time.Duration, waiting func(pending int)) (total, pending, hidden int, err error) {
	deadline := time.Now().Add(timeout)
	told := false
	poll := 2 * time.Millisecond // a listening replica answers in a few
	for {
		err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE NOT ok),
			(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type IS NULL) FROM (
			SELECT application_name, bool_or(coalesce(query_start >= $1 AND state = 'idle' AND query = $3, false)) AS ok
			FROM pg_stat_activity
			WHERE datname = current_database() AND backend_type = 'client backend'
			  AND starts_with(application_name, $2)
			GROUP BY application_name) r`, since, StateListenerApp, statesListenerQuery).Scan(&total, &pending, &hidden)
		if err != nil || pending == 0 || time.Now().After(deadline) {
			return total, pending, hidden, err
		}
		if !told && waiting != nil && poll >= 50*time.Millisecond {
			told = true
			waiting(pending)
		}
		select {
		case <-ctx.Done():
			return total, pending, hidden, ctx.Err()
		case <-time.After(poll):
		}
		poll = min(2*poll, 50*time.Millisecond)
	}
}
