package integration

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgveil/pgveil/integration/harness"
	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestOpsReview20aStateAckTrackActivitiesOff: with track_activities off
// for the replicas' sessions, pg_stat_activity shows their listener's
// state as disabled and no query: `pgveil migrate` never saw a replica
// confirm a table state (statesReadQuery) and waited 30 s per change
// (review 20a, defect 8). A replica also says the generation it applied
// in its listener's application_name, which pg_stat_activity shows
// whatever track_activities is: the state is confirmed at once.
func TestOpsReview20aStateAckTrackActivitiesOff(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_r20a_ack", r17Policy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	if _, err := su.Exec(ctx, "ALTER DATABASE "+e.db+" SET track_activities = off"); err != nil {
		t.Fatal(err)
	}
	e.proxy(e.config(""))
	waitFor(t, 20*time.Second, "the replica's state listener, its activity untracked", func() (bool, error) {
		var n int
		err := su.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND starts_with(application_name, 'pgveil table states ') AND state = 'disabled'`).Scan(&n)
		return n == 1, err
	})
	pool, err := pgxpool.New(ctx, cluster.SocketURL(harness.SuperUser, e.db))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	m, err := keysource.NewMaster(ctx, policy.KeySource{Kind: policy.KeySourceLocal, Local: policy.LocalKeySource{KeyFile: e.key}})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keysource.NewKeyring(ctx, pool, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, state := range []string{proxy.TableMigrating, proxy.TableComplete} {
		gen, err := proxy.SetTableState(ctx, pool, keys, "public.rv", state)
		if err != nil {
			t.Fatal(err)
		}
		total, pending, _, err := proxy.WaitStateApplied(ctx, pool, gen, 20*time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		if total != 1 || pending != 0 {
			t.Errorf("%s: replicas %d, not confirmed %d; want 1 and 0", state, total, pending)
		}
	}
}
