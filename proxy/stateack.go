package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Confirming a table state (review 17a). `pgveil migrate` must not write
// plaintext back (--decrypt) before every running replica reads the table
// as decrypting: a replica still at complete would take each such value
// for an attack (PV003, or NULL under on_error: null) and miss it in
// lookups. NOTIFY says nothing about who applied it, so each replica's
// table-state listener names its connection StateListenerApp plus an id of
// its own, and after each reload of the states it has applied (at LISTEN,
// on each notification, and as its heartbeat) runs statesReadQuery on it,
// whose text names the newest generation among the verified rows it read.
// Generations only grow (SetTableState: each new row's is greater than
// every verified row's), so a replica whose last such query names the
// generation of the row just written, or a greater one, has applied it.
// WaitStateApplied waits for that.
//
// (Until review 19 a replica counted once its listener's reload query had
// started after a time taken before the write: a heartbeat's reload that
// began in the moment before the commit read the old state and counted,
// and so did a reload whose rows were read but not applied, its key not
// unwrapped.)

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

// statesListenerQuery reads pgveil.tables (a state listener's reload, and
// LoadTableStates).
const statesListenerQuery = "SELECT table_name, state, generation, mac FROM pgveil.tables"

// statesReadSuffix ends statesReadQuery; statesReadPattern matches it.
const (
	statesReadSuffix  = " AS pgveil_table_states_read"
	statesReadPattern = `^SELECT [0-9]{1,19} AS pgveil_table_states_read$`
)

// statesReadQuery is what a state listener runs once it has applied the
// states it read, the newest verified generation among them gen: the query
// pg_stat_activity shows on its connection until its next reload.
func statesReadQuery(gen int64) string {
	return "SELECT " + strconv.FormatInt(max(gen, 0), 10) + statesReadSuffix
}

// WaitStateApplied waits until every replica following pgveil.tables in
// the database has applied a state row of generation gen or newer (the
// generation SetTableState returned), or until timeout. It returns how
// many replicas follow the states and how many had not confirmed when it
// returned. Replicas whose listener is down confirm when it reconnects
// (their heartbeat finds a silent one within keysource.HeartbeatIdle +
// HeartbeatTimeout); a role that cannot see other roles' sessions in
// pg_stat_activity (pg_read_all_stats) does not see them at all: hidden
// counts the sessions in the database hidden from it (review 18b), among
// which may be replicas it did not wait for.
func WaitStateApplied(ctx context.Context, pool *pgxpool.Pool, gen int64, timeout time.Duration, waiting func(pending int)) (total, pending, hidden int, err error) {
	deadline := time.Now().Add(timeout)
	told := false
	poll := 2 * time.Millisecond // a listening replica answers in a few
	for {
		err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE NOT ok),
			(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type IS NULL) FROM (
			SELECT application_name, bool_or(coalesce(CASE WHEN query ~ $3 THEN split_part(query, ' ', 2)::numeric >= $1 END, false)) AS ok
			FROM pg_stat_activity
			WHERE datname = current_database() AND backend_type = 'client backend'
			  AND starts_with(application_name, $2)
			GROUP BY application_name) r`, gen, StateListenerApp, statesReadPattern).Scan(&total, &pending, &hidden)
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
