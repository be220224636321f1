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

// With track_activities off for the listener's session, pg_stat_activity
// shows its state as disabled and no query: migrate never saw a replica
// confirm, and waited stateSettleTimeout at each state change (review
// 20a). Its application_name is shown whatever track_activities is: a
// listener also names the generation it applied there
// (statesAppQuery), before statesReadQuery.

// statesAppIDLen is the length of stateListenerApp: the prefix and the
// process's id, by which WaitStateApplied groups a replica's connections.
const statesAppIDLen = len(StateListenerApp) + 16

// statesAppPattern matches a listener's application_name naming the
// generation it applied.
const statesAppPattern = `^pgveil table states [0-9a-f]{16} [0-9]{1,19}$`

// statesAppQuery names the listener's connection after the generation
// gen it applied (statesAppPattern).
func statesAppQuery(gen int64) string {
	return "SET application_name = '" + stateListenerApp + " " + strconv.FormatInt(max(gen, 0), 10) + "'"
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
// which may be replicas it did not wait for. A replica of a version before
// review 20a whose session has track_activities off cannot confirm: once
// only such replicas are left, it returns without waiting for them
// (UntrackedListeners counts them).
func WaitStateApplied(ctx context.Context, pool *pgxpool.Pool, gen int64, timeout time.Duration, waiting func(pending int)) (total, pending, hidden int, err error) {
	deadline := time.Now().Add(timeout)
	told := false
	poll := 2 * time.Millisecond // a listening replica answers in a few
	for {
		var blind int
		err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE NOT ok), count(*) FILTER (WHERE NOT ok AND blind),
			(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type IS NULL) FROM (
			SELECT left(application_name, $4) AS replica,
			  bool_or(coalesce(CASE WHEN query ~ $3 THEN split_part(query, ' ', 2)::numeric >= $1 END, false)
			    OR coalesce(CASE WHEN application_name ~ $5 THEN split_part(application_name, ' ', 5)::numeric >= $1 END, false)) AS ok,
			  bool_and(state = 'disabled' AND application_name !~ $5) AS blind
			FROM pg_stat_activity
			WHERE datname = current_database() AND backend_type = 'client backend'
			  AND starts_with(application_name, $2)
			GROUP BY 1) r`, gen, StateListenerApp, statesReadPattern, statesAppIDLen, statesAppPattern).Scan(&total, &pending, &blind, &hidden)
		if err != nil || pending == 0 || pending == blind || time.Now().After(deadline) {
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

// UntrackedListeners counts the replicas following pgveil.tables that
// cannot confirm a table state: their listener's session has
// track_activities off (pg_stat_activity shows it disabled, no query)
// and names no generation in its application_name (a version before
// review 20a).
func UntrackedListeners(ctx context.Context, pool *pgxpool.Pool) (n int, err error) {
	err = pool.QueryRow(ctx, `SELECT count(*) FROM (
		SELECT left(application_name, $2) FROM pg_stat_activity
		WHERE datname = current_database() AND backend_type = 'client backend' AND starts_with(application_name, $1)
		GROUP BY 1 HAVING bool_and(state = 'disabled' AND application_name !~ $3)) r`,
		StateListenerApp, statesAppIDLen, statesAppPattern).Scan(&n)
	return n, err
}
