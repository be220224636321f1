package integration

// Review 18b: rotate's wait for the transactions that began before the
// grace period ended.
//
// Findings:
//   - HIGH: the wait read pg_stat_activity only. A transaction it cannot
//     see there was not waited for: one of another role when the role
//     running `pgveil rotate` (upstream.service_url) has neither
//     pg_read_all_stats nor that role's privileges (its xact_start is NULL
//     there: "<insufficient privilege>"), and a prepared transaction
//     (PREPARE TRANSACTION: no session at all). Rotate's last pass did not
//     see the value such a transaction wrote under the old version, dropped
//     the version, and the value read as NULL for good after COMMIT
//     (PREPARED). Fix (ops.waitGrace): it also waits for every transaction
//     id in progress at the end of the grace period (pg_current_snapshot(),
//     which shows every role's and prepared transactions, then
//     pg_xact_status), under the same 5-minute bound and message; it says
//     when sessions of other roles are hidden from it. The snapshot is the
//     cluster's: a transaction of another database (its session's datname,
//     or pg_prepared_xacts.database) is not waited for
//     (TestOpsReview18bRotateOtherDatabase, which failed on the first
//     version of the fix: rotate waited 5 minutes and gave up).
//   - MEDIUM: `pgveil migrate` run as a role that cannot see the replicas'
//     sessions (another role than their service_url, without
//     pg_read_all_stats) found no replica, waited for none and said
//     nothing: --decrypt wrote plaintext back while a replica could still
//     take the table for complete (PV003). Fix: WaitStateApplied counts
//     the sessions hidden from the role; migrate says how many and what
//     to grant (TestOpsReview18bMigrateHiddenReplicas).
//   - (found on the first version of the domain fix, enc_review18b): the
//     proxy named a domain-over-numeric tenant by numeric equality ('1.5')
//     while the ops commands name it by its text as stored ('1.50'):
//     migrated values did not open (PV001), and values sealed before the
//     upgrade would not have either. Fix: canon.TenantBase, used by the
//     proxy's catalog and by migrate, rotate --tenant and shred, resolves
//     a domain to its base type only where the stored text is already
//     the tenant's name (integers, text, varchar, uuid); live.go resolves
//     domains through every level (it stopped at the first), so that
//     `--tenant 007` names tenant 7 for a domain over a domain over bigint
//     too. TestOpsReview18bNestedDomainTenant holds.
//
// Held: rotate's wait is bounded (5 minutes, then a ProblemError naming
// `pgveil rotate --finish`, old versions kept) and skips its own
// connection; the state listeners' key is cached once read (a key store
// going down does not fail their reloads; a replica cannot start without
// it).
//
// Noticed, not fixed (LOW): a state listener's reload that fails after its
// query (the state key cannot be unwrapped: only before the replica ever
// read it) leaves its query shown idle in pg_stat_activity until the
// connection closes, which WaitStateApplied may take for a confirmation.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/integration/harness"
)

func TestOpsReview18bRotateUnseenTransactions(t *testing.T) {
	for _, kind := range []string{"other role", "prepared"} {
		t.Run(kind, func(t *testing.T) {
			ctx := testCtx(t, 3*time.Minute)
			db := "ops_r18b_rot_role"
			if kind == "prepared" {
				db = "ops_r18b_rot_2pc"
			}
			e := newOpsEnv(t, db, r17Policy)
			su := e.conn(ctx)
			if _, err := su.Exec(ctx, rvSchema); err != nil {
				t.Fatal(err)
			}
			cfg := e.writeConfig("pgveil.yaml", e.config(""))
			e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
			p := e.proxy(e.config(""))
			app := e.appConn(ctx, p)
			var old string
			if err := su.QueryRow(ctx, `SELECT note FROM rv WHERE id = 7`).Scan(&old); err != nil {
				t.Fatal(err)
			}
			rotCfg := cfg
			lateUser := harness.SuperUser
			if kind == "other role" {
				const svc, other = "ops_r18b_svc", "ops_r18b_app"
				for _, s := range []string{
					"DROP ROLE IF EXISTS " + svc, "DROP ROLE IF EXISTS " + other,
					"CREATE ROLE " + svc + " LOGIN", "CREATE ROLE " + other + " LOGIN",
					"ALTER SCHEMA pgveil OWNER TO " + svc,
					"ALTER TABLE pgveil.keys OWNER TO " + svc,
					"ALTER TABLE pgveil.tables OWNER TO " + svc,
					"ALTER TABLE rv OWNER TO " + svc,
					"GRANT SELECT, UPDATE ON rv TO " + other,
				} {
					if _, err := su.Exec(ctx, s); err != nil {
						t.Fatalf("%s: %v", s, err)
					}
				}
				rotCfg = e.writeConfig("svc.yaml", strings.Replace(e.config(""), cluster.SocketURL(harness.SuperUser, e.db), cluster.SocketURL(svc, e.db), 1))
				lateUser = other
			}
			rot, rotOut, rotErr := e.start("rotate", "-c", rotCfg, "--grace", "4s", "--batch", "100")
			waitFor(t, time.Minute, "rotate to re-encrypt and wait out its grace period", func() (bool, error) {
				return strings.Contains(rotOut.String(), "waiting "), nil
			})
			lc, err := cluster.Connect(ctx, lateUser, e.db)
			if err != nil {
				t.Fatal(err)
			}
			defer lc.Close(context.Background())
			tx, err := lc.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background())
			if _, err := tx.Exec(ctx, `UPDATE rv SET note = $1 WHERE id = 4`, old); err != nil {
				t.Fatal(err)
			}
			finish := func() error { return tx.Commit(ctx) }
			if kind == "prepared" {
				if _, err := tx.Exec(ctx, `PREPARE TRANSACTION 'ops_r18b'`); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { su.Exec(context.Background(), `ROLLBACK PREPARED 'ops_r18b'`) })
				finish = func() error {
					_, err := su.Exec(ctx, `COMMIT PREPARED 'ops_r18b'`)
					return err
				}
			}
			exited := make(chan error, 1)
			go func() { exited <- rot.Wait() }()
			var rotRes error
			waitFor(t, 2*time.Minute, "rotate to finish or to wait for the late transaction", func() (bool, error) {
				select {
				case rotRes = <-exited:
					exited <- rotRes
					return true, nil
				default:
				}
				return strings.Contains(rotOut.String(), "transaction(s) that began before"), nil
			})
			if err := finish(); err != nil {
				t.Fatal(err)
			}
			if err := <-exited; err != nil {
				t.Errorf("rotate: %v\n%s\n%s", err, rotOut.String(), tail(rotErr.String(), 20))
			}
			var note *string
			if err := app.QueryRow(ctx, `SELECT note FROM rv WHERE id = 4`).Scan(&note); err != nil {
				t.Fatal(err)
			}
			if note == nil || *note != "note 7" {
				t.Errorf("%s: a value sealed under the old version by a transaction rotate did not wait for reads %s, want \"note 7\" (its key was dropped under it)\n%s",
					kind, fmtPtr(note), rotOut.String())
			}
		})
	}
}

// TestOpsReview18bMigrateHiddenReplicas: `pgveil migrate` run as a role
// that cannot see the replicas' sessions in pg_stat_activity (another role
// than their service_url, without pg_read_all_stats) found no replica to
// wait for and said nothing (MEDIUM: --decrypt then writes plaintext back
// while a replica may still take the table for complete). Fix: it says how
// many sessions are hidden from it and what to grant.
func TestOpsReview18bMigrateHiddenReplicas(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_r18b_hidden", rvPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	p := e.proxy(e.config("")) // a replica, as the superuser
	_ = e.appConn(ctx, p)
	waitFor(t, time.Minute, "the replica's state listener", func() (bool, error) {
		var n int
		err := su.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND starts_with(application_name, 'pgveil table states ')`).Scan(&n)
		return n > 0, err
	})
	const svc = "ops_r18b_hsvc"
	for _, s := range []string{
		"DROP ROLE IF EXISTS " + svc,
		"CREATE ROLE " + svc + " LOGIN",
		"ALTER SCHEMA pgveil OWNER TO " + svc,
		"ALTER TABLE pgveil.keys OWNER TO " + svc,
		"ALTER TABLE pgveil.tables OWNER TO " + svc,
		"ALTER TABLE rv OWNER TO " + svc,
	} {
		if _, err := su.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	svcCfg := e.writeConfig("svc.yaml", strings.Replace(e.config(""), cluster.SocketURL(harness.SuperUser, e.db), cluster.SocketURL(svc, e.db), 1))
	r := e.run(ctx, -1, "migrate", "-c", svcCfg, "--decrypt", "--apply")
	if r.code != 0 {
		t.Fatalf("migrate --decrypt: exit %d\n%s", r.code, tail(r.stderr, 10))
	}
	if !strings.Contains(r.stdout, "hidden") || !strings.Contains(r.stdout, "pg_read_all_stats") {
		t.Errorf("migrate --decrypt as a role that cannot see the replica's listener said nothing of it:\n%s", r.stdout)
	}
}

// TestOpsReview18bRotateOtherDatabase: the transaction ids rotate waits
// for are the cluster's; a transaction writing in another database of the
// same cluster holds no value of this one and must not hold rotate up
// (holds test for the fix above).
func TestOpsReview18bRotateOtherDatabase(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	other := newOpsEnv(t, "ops_r18b_rot_otherdb", rvPolicy)
	oc := other.conn(ctx)
	if _, err := oc.Exec(ctx, `CREATE TABLE busy (id int)`); err != nil {
		t.Fatal(err)
	}
	e := newOpsEnv(t, "ops_r18b_rot_thisdb", rvPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	tx, err := oc.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `INSERT INTO busy VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	r := e.run(rctx, -1, "rotate", "-c", cfg, "--grace", "1s", "--batch", "100")
	if r.code != 0 || strings.Contains(r.stdout, "transaction(s) that began before") {
		t.Errorf("rotate waited for a transaction of another database (exit %d):\n%s\n%s", r.code, r.stdout, tail(r.stderr, 10))
	}
}

// TestOpsReview18bNestedDomainTenant: `pgveil migrate` read a key_context
// column whose type is a domain over a domain over numeric as the inner
// domain, a type it does not know, and named each row's tenant by its text
// as stored ('1.50'), while the proxy names it by numeric equality ('1.5'):
// the migrated values did not open through pgveil (PV001). Fix: the ops
// commands resolve a domain to its base type through every level.
func TestOpsReview18bNestedDomainTenant(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_r18b_nested_dom", `tables:
  public.nd:
    key_context: org
    columns:
      secret: {type: text}
`)
	su := e.conn(ctx)
	for _, q := range []string{
		`CREATE DOMAIN tid1 AS numeric`,
		`CREATE DOMAIN tid2 AS tid1`,
		`CREATE TABLE nd (id int PRIMARY KEY, org tid2 NOT NULL, secret text)`,
		`INSERT INTO nd VALUES (1, 1.50, 'one'), (2, 7, 'two')`,
	} {
		if _, err := su.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	p := e.proxy(e.config(""))
	for id, want := range map[int]string{1: "one", 2: "two"} {
		app := e.appConn(ctx, p)
		var secret string
		if err := app.QueryRow(ctx, `SELECT secret FROM nd WHERE id = $1`, id).Scan(&secret); err != nil || secret != want {
			t.Errorf("row %d migrated under a nested-domain tenant reads %q: %v", id, secret, err)
		}
	}
}
