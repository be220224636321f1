package integration

// Review 15 (plan reuse and session context), end to end; planner side and
// the full list: rewrite/review15_test.go.
//   TestEncReview15FoundProtocolViewSwap HIGH: a protocol-level prepared
//     statement pgveil passed through (it names no configured table) is
//     bound again after the relation it names was replaced by a view over
//     an encrypted column, once pgveil read its catalog again (after DDL
//     through it; SIGHUP or a restart alike) and knows the view.
//     PostgreSQL plans the statement again at the Bind (its names resolve
//     anew) and writes the
//     parameter through the view into contacts.note; pgveil, which checked
//     the statement only at Parse, relayed the value as it came: plaintext
//     stored in an encrypted column. The same for a statement pgveil
//     rewrote (it decrypts a column of a configured table) whose other
//     relation became such a view: its parameter, now compared with the
//     encrypted column, reaches the server in plaintext.
//   TestEncReview15FoundSQLPrepareViewSwap HIGH: the same with SQL
//     PREPARE … EXECUTE: PREPARE was checked against the catalog of its
//     time; EXECUTE r(…, 'secret') after the view swap stored the
//     plaintext in contacts.note.
//   TestEncReview15FoundMigrationEnded HIGH: a statement prepared while
//     its table was in migration mode kept the plan with the plaintext
//     fallback after the migration completed: each lookup still sent the
//     value in plaintext (and matched rows a fresh statement does not).
//     Fixed with the above: the migration set is part of the planner's
//     generation.
//   TestEncReview15FoundDuplicateName HIGH: the fixes above checked the
//     text of the last Parse (or PREPARE) of a name; a second one of an
//     existing name fails on the server, which keeps the first statement,
//     so a harmless second text hid the first from the check.
//   TestEncReview15FoundGuardedRename HIGH: a view over an encrypted
//     column renamed through pgveil, inside a transaction, to the name of
//     a plain table: the INSERT that followed under that name wrote the
//     plaintext through the view (rewrite/review15_test.go).
//   TestEncReview15FoundCodeBeforeSwap HIGH: a function and a trigger
//     function created through pgveil while r15_fv was a plain table wrote
//     the plaintext through the view r15_fv became.
//
// PostgreSQL 15 on a plaintext schema runs all of them (the value lands in
// contacts.note); through pgveil a refusal is the acceptable answer.

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/integration/harness"
)

// rev15ViewSwap makes rel a plain table writable by scram_user and returns
// a function that replaces it by a view over contacts' encrypted note
// (directly: pgveil refuses CREATE VIEW over an encrypted column), then
// runs DDL through pgveil on conn, after which pgveil reads its catalog
// again and knows the view.
func rev15ViewSwap(t *testing.T, ctx context.Context, p *encProxy, rel string) func(*pgx.Conn) {
	t.Helper()
	su := superConn(t, ctx)
	if _, err := su.Exec(ctx, `DROP VIEW IF EXISTS `+rel+`; DROP TABLE IF EXISTS `+rel+`;
		CREATE TABLE `+rel+` (org_id int8, note text);
		GRANT ALL ON `+rel+` TO scram_user`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := su.Exec(context.Background(), `DROP VIEW IF EXISTS `+rel+`; DROP TABLE IF EXISTS `+rel); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return func(conn *pgx.Conn) {
		t.Helper()
		if _, err := su.Exec(ctx, `DROP TABLE `+rel+`; CREATE VIEW `+rel+` AS SELECT org_id, note FROM contacts; GRANT ALL ON `+rel+` TO scram_user`); err != nil {
			t.Fatalf("view swap: %v", err)
		}
		if _, err := conn.Exec(ctx, `CREATE TEMP TABLE r15_bump (); DROP TABLE r15_bump`); err != nil {
			t.Fatalf("DDL through pgveil: %v", err)
		}
		// pgveil knows the view now (from a session that prepared nothing
		// before): a statement prepared from here on is refused.
		other := connectPgx(t, ctx, p.url())
		if _, err := other.Exec(ctx, `INSERT INTO `+rel+` (org_id, note) VALUES ($1, $2)`, 1, "x"); err == nil {
			t.Fatalf("pgveil did not read its catalog again after DDL: a new INSERT into %s passed", rel)
		}
	}
}

// rev15NoPlainNote fails when contacts.note holds secret in plaintext.
func rev15NoPlainNote(t *testing.T, ctx context.Context, secret string) {
	t.Helper()
	var n int
	if err := superConn(t, ctx).QueryRow(ctx, `SELECT count(*) FROM contacts WHERE note LIKE '%' || $1 || '%'`, secret).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("contacts.note (encrypted) holds %q in plaintext (%d rows)", secret, n)
	}
}

func TestEncReview15FoundProtocolViewSwap(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9150)
	const secret, probe = "r15-proto-secret", "r15-proto-probe"
	p.remember(secret, probe)
	swap := rev15ViewSwap(t, ctx, p, "r15_pv")
	conn := connectPgx(t, ctx, p.url())
	if _, err := conn.Prepare(ctx, "r15ins", `INSERT INTO r15_pv (org_id, note) VALUES ($1, $2)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Prepare(ctx, "r15sel", `SELECT c.note FROM contacts c WHERE c.org_id IN (SELECT r.org_id FROM r15_pv r WHERE r.note = $1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "r15ins", 9150, "harmless"); err != nil {
		t.Fatal(err)
	}
	swap(conn) // the DDL from the session that prepared the statements
	if _, err := conn.Exec(ctx, "r15ins", 9150, secret); err == nil {
		t.Errorf("a prepared INSERT into r15_pv, now a view over encrypted contacts.note, ran")
	}
	rev15NoPlainNote(t, ctx, secret)
	if _, err := conn.Exec(ctx, "r15sel", probe); err == nil {
		t.Errorf("a prepared SELECT comparing $1 with r15_pv.note, now encrypted contacts.note, ran with the parameter as sent")
	}
	// Prepared again, both are planned for the view.
	if _, err := conn.Exec(ctx, `INSERT INTO r15_pv (org_id, note) VALUES ($1, $2)`, 9150, secret); err == nil {
		t.Errorf("INSERT through a view over an encrypted column was not refused")
	}
	rev15NoPlainNote(t, ctx, secret)
}

func TestEncReview15FoundSQLPrepareViewSwap(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9151)
	const secret = "r15-sqlprep-secret"
	p.remember(secret)
	swap := rev15ViewSwap(t, ctx, p, "r15_sv")
	conn := connectPgx(t, ctx, p.url())
	if _, err := conn.Exec(ctx, `PREPARE r15p AS INSERT INTO r15_sv (org_id, note) VALUES ($1, $2)`, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `EXECUTE r15p(9151, 'harmless')`, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	// The DDL from another session.
	swap(connectPgx(t, ctx, proxyURL(p.Proxy, harness.SuperUser, "sslmode=disable")))
	if _, err := conn.Exec(ctx, `EXECUTE r15p(9151, '`+secret+`')`, pgx.QueryExecModeSimpleProtocol); err == nil {
		t.Errorf("EXECUTE of a SQL-prepared INSERT into r15_sv, now a view over encrypted contacts.note, ran")
	}
	rev15NoPlainNote(t, ctx, secret)
	// The statement still works once prepared again (refused now, planned
	// for the view), and a statement on another relation is not affected.
	if _, err := conn.Exec(ctx, `DEALLOCATE r15p`, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Errorf("DEALLOCATE after the refusal: %v", err)
	}
}

// TestEncReview15FoundMigrationEnded: while a table is in migration mode a
// lookup also compares the plaintext of rows not yet backfilled (the value
// goes to the server in plaintext, rewrite/migration.go). A statement
// prepared then kept that plan after the migration completed: its lookups
// still sent the plaintext, and still matched a row whose plaintext the
// migration had not reached (a fresh statement does not).
func TestEncReview15FoundMigrationEnded(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9152)
	const email = "r15-mig@example.org"
	p.remember(email)
	su := superConn(t, ctx)
	setState := rev15SetState(t, ctx, su)
	t.Cleanup(func() {
		if _, err := su.Exec(context.Background(), `DELETE FROM pgveil.tables WHERE table_name = 'public.contacts'; SELECT pg_notify('pgveil_tables', 'public.contacts')`); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	// A row the migration has not reached: plaintext, no blind index.
	if _, err := su.Exec(ctx, `INSERT INTO contacts (org_id, email) VALUES (9152, convert_to($1, 'UTF8'))`, email); err != nil {
		t.Fatal(err)
	}
	poll := connectPgx(t, ctx, p.url())
	fresh := func() (int64, error) {
		var n int64
		err := poll.QueryRow(ctx, `SELECT count(*) FROM contacts WHERE org_id = 9152 AND email = '`+email+`'`, pgx.QueryExecModeSimpleProtocol).Scan(&n)
		return n, err
	}
	setState("migrating")
	waitFor(t, 20*time.Second, "pgveil to plan contacts in migration mode", func() (bool, error) {
		n, err := fresh()
		return n == 1, err
	})
	conn := connectPgx(t, ctx, p.url())
	const q = `SELECT count(*) FROM contacts WHERE org_id = 9152 AND email = $1`
	if _, err := conn.Prepare(ctx, "r15mig", q); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := conn.QueryRow(ctx, "r15mig", email).Scan(&n); err != nil || n != 1 {
		t.Fatalf("during the migration: %d rows, %v", n, err)
	}
	// pgx's statement cache (its default mode) with the same query.
	if err := conn.QueryRow(ctx, q+" AND true", email).Scan(&n); err != nil || n != 1 {
		t.Fatalf("during the migration, cached: %d rows, %v", n, err)
	}
	setState("complete")
	waitFor(t, 20*time.Second, "pgveil to plan contacts without migration mode", func() (bool, error) {
		n, err := fresh()
		return n == 0, err
	})
	upstream := func() int64 {
		var k int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements", pgx.QueryExecModeSimpleProtocol).Scan(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	before := upstream()
	// The statements prepared during the migration are planned again at
	// their next Bind and prepared upstream anew (their parameters and
	// result are the same): no error, and no plaintext compared.
	if err := conn.QueryRow(ctx, "r15mig", email).Scan(&n); err != nil || n != 0 {
		t.Errorf("a statement prepared during the migration, after it completed: %d rows, %v; want 0 rows, as a fresh statement", n, err)
	}
	if err := conn.QueryRow(ctx, q+" AND true", email).Scan(&n); err != nil || n != 0 {
		t.Errorf("pgx's cached statement after the migration: %d rows, %v; want 0 rows", n, err)
	}
	if after := upstream(); after != before {
		t.Errorf("upstream prepared statements: %d before, %d after being prepared anew (the old ones must be closed)", before, after)
	}
	// And back into migration mode (a second backfill, or --decrypt).
	setState("migrating")
	waitFor(t, 20*time.Second, "pgveil to plan contacts in migration mode again", func() (bool, error) {
		n, err := fresh()
		return n == 1, err
	})
	for _, name := range []string{"r15mig", q + " AND true"} {
		if err := conn.QueryRow(ctx, name, email).Scan(&n); err != nil || n != 1 {
			t.Errorf("%q in migration mode again: %d rows, %v; want 1", name, n, err)
		}
	}
	setState("complete")
}

// rev15SetState returns a function that records a migration state of
// contacts in pgveil.tables (signed) and announces it, as pgveil migrate
// does.
func rev15SetState(t *testing.T, ctx context.Context, _ *pgx.Conn) func(state string) {
	return func(state string) {
		t.Helper()
		setTableState(t, ctx, "public.contacts", state)
	}
}

// TestEncReview15FoundDuplicateName: the check above planned the text of
// the last Parse or PREPARE of a name, but a Parse or PREPARE of a name
// that exists fails on the server (42P05), which keeps the earlier
// statement: after a second Parse (or PREPARE) of the name with a
// harmless text, the view swap went unnoticed and the first statement ran
// with the plaintext.
func TestEncReview15FoundDuplicateName(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9153)
	const secret1, secret2 = "r15-dup-secret-1", "r15-dup-secret-2"
	p.remember(secret1, secret2)
	swap := rev15ViewSwap(t, ctx, p, "r15_dv")
	conn := connectPgx(t, ctx, p.url())
	pc := conn.PgConn()
	if _, err := pc.Prepare(ctx, "r15d", `INSERT INTO r15_dv (org_id, note) VALUES ($1, $2)`, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Prepare(ctx, "r15d", `SELECT $1::int8, $2::text`, nil); err == nil {
		t.Fatal("a second Parse of r15d was accepted")
	}
	if _, err := conn.Exec(ctx, `PREPARE r15q AS INSERT INTO r15_dv (org_id, note) VALUES ($1, $2)`, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `PREPARE r15q AS SELECT $1::int8, $2::text`, pgx.QueryExecModeSimpleProtocol); err == nil {
		t.Fatal("a second PREPARE of r15q was accepted")
	}
	swap(conn)
	res := pc.ExecPrepared(ctx, "r15d", [][]byte{[]byte("9153"), []byte(secret1)}, nil, nil).Read()
	if res.Err == nil {
		t.Errorf("Bind of r15d (an INSERT into r15_dv, now a view over encrypted contacts.note) ran")
	}
	if _, err := conn.Exec(ctx, `EXECUTE r15q(9153, '`+secret2+`')`, pgx.QueryExecModeSimpleProtocol); err == nil {
		t.Errorf("EXECUTE r15q (an INSERT into r15_dv, now a view over encrypted contacts.note) ran")
	}
	rev15NoPlainNote(t, ctx, secret1)
	rev15NoPlainNote(t, ctx, secret2)
}

// TestEncReview15FoundGuardedRename: a view over an encrypted column
// (created directly; pgveil knows it from its catalog snapshot) renamed
// through pgveil to the name of a plain table, inside a transaction: the
// catalog cannot be read again before the transaction ends (another
// connection does not see the rename), and the session planned the name
// by itself, as the plain table it was. The INSERT that followed went
// through the view into contacts.note in plaintext.
func TestEncReview15FoundGuardedRename(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9154)
	const secret = "r15-rename-secret"
	p.remember(secret)
	su := superConn(t, ctx)
	const drop = `DO $$ BEGIN
		IF EXISTS (SELECT 1 FROM pg_class WHERE relname = 'r15_rv' AND relkind = 'v') THEN DROP VIEW r15_rv; END IF;
	END $$;
	DROP VIEW IF EXISTS r15_gv; DROP TABLE IF EXISTS r15_rv, r15_rv_old;`
	if _, err := su.Exec(ctx, drop+`
		CREATE TABLE r15_rv (org_id int8, note text);
		CREATE VIEW r15_gv AS SELECT org_id, note FROM contacts`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := su.Exec(context.Background(), drop); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	owner := connectPgx(t, ctx, proxyURL(p.Proxy, harness.SuperUser, "sslmode=disable"))
	if _, err := owner.Exec(ctx, `CREATE TEMP TABLE r15_bump (); DROP TABLE r15_bump`); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Exec(ctx, `INSERT INTO r15_gv (org_id, note) VALUES (9154, 'x')`); err == nil {
		t.Fatal("pgveil does not know r15_gv: the test means nothing")
	}
	tx, err := owner.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, ddl := range []string{`ALTER TABLE r15_rv RENAME TO r15_rv_old`, `ALTER VIEW r15_gv RENAME TO r15_rv`} {
		if _, err := tx.Exec(ctx, ddl); err != nil {
			t.Logf("%s: %v", ddl, err)
			break
		}
	}
	tx.Exec(ctx, `INSERT INTO r15_rv (org_id, note) VALUES (9154, '`+secret+`')`, pgx.QueryExecModeSimpleProtocol)
	tx.Commit(ctx)
	rev15NoPlainNote(t, ctx, secret)
}

// TestEncReview15Holds: one text from sessions in different contexts, on
// one pgveil (one plan cache), each planned for its own context, with
// PostgreSQL's results on a plaintext schema: a temporary table named like
// a configured table in one session (values still sealed, in it and in the
// other session's configured table), a search_path on which an unconfigured
// table shadows the configured one (relayed there as sent), and a
// protocol-level statement prepared before an unrelated catalog change
// (planned again at its Bind, the same plan: it keeps working).
func TestEncReview15Holds(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9155)
	const sealed = "r15-holds-sealed"
	p.remember(sealed)
	su := superConn(t, ctx)
	if _, err := su.Exec(ctx, `DROP SCHEMA IF EXISTS r15app CASCADE; CREATE SCHEMA r15app;
		CREATE TABLE r15app.contacts (org_id int8, note text);
		GRANT USAGE ON SCHEMA r15app TO scram_user; GRANT ALL ON r15app.contacts TO scram_user`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := su.Exec(context.Background(), `DROP SCHEMA IF EXISTS r15app CASCADE`); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	a := connectPgx(t, ctx, p.url())
	b := connectPgx(t, ctx, p.url())
	prep := connectPgx(t, ctx, p.url())
	if _, err := prep.Prepare(ctx, "r15h", `SELECT note FROM contacts WHERE org_id = $1 ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, `CREATE TEMP TABLE contacts (id bigserial, org_id int8, email bytea, email_bidx bytea, note text)`); err != nil {
		t.Fatal(err)
	}
	ins := `INSERT INTO contacts (org_id, note) VALUES (9155, '` + sealed + `')`
	for _, c := range []*pgx.Conn{a, b} {
		if _, err := c.Exec(ctx, ins, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatal(err)
		}
	}
	rev15NoPlainNote(t, ctx, sealed)
	var raw string
	if err := a.QueryRow(ctx, `SELECT note FROM pg_temp.contacts`).Scan(&raw); err != nil || raw == sealed {
		t.Errorf("the temporary contacts holds %q (%v), want an envelope", raw, err)
	}
	for i, c := range []*pgx.Conn{a, b} {
		var got string
		if err := c.QueryRow(ctx, `SELECT note FROM contacts WHERE org_id = 9155`).Scan(&got); err != nil || got != sealed {
			t.Errorf("session %d reads %q (%v), want %q", i, got, err, sealed)
		}
	}
	// The same text under a path where r15app.contacts comes first.
	const plain = "r15-holds-plain"
	if _, err := b.Exec(ctx, `SET search_path = r15app, public`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Exec(ctx, `INSERT INTO contacts (org_id, note) VALUES (9155, '`+plain+`')`, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM r15app.contacts WHERE note = $1`, plain).Scan(&n); err != nil || n != 1 {
		t.Errorf("r15app.contacts holds %d rows of %q (%v), want 1 as PostgreSQL", n, plain, err)
	}
	// Unrelated DDL: the statement prepared before it plans the same.
	if _, err := a.Exec(ctx, `CREATE TEMP TABLE r15_other (); DROP TABLE r15_other`); err != nil {
		t.Fatal(err)
	}
	rows, err := prep.Query(ctx, "r15h", 9155)
	if err != nil {
		t.Fatal(err)
	}
	notes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(notes) != 1 || notes[0] != sealed {
		t.Errorf("the statement prepared before the DDL reads %q (%v), want [%s]", notes, err, sealed)
	}
}

// TestEncReview15FoundCodeBeforeSwap: a function (and a trigger function)
// created through pgveil while r15_fv was a plain table, called after
// r15_fv became a view over an encrypted column: the function's INSERT,
// resolved when it runs, wrote the plaintext argument through the view.
func TestEncReview15FoundCodeBeforeSwap(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9156)
	const secret1, secret2 = "r15-code-secret-1", "r15-code-secret-2"
	p.remember(secret1, secret2)
	swap := rev15ViewSwap(t, ctx, p, "r15_fv")
	su := superConn(t, ctx)
	t.Cleanup(func() {
		if _, err := su.Exec(context.Background(), `DROP TABLE IF EXISTS r15_ft; DROP FUNCTION IF EXISTS r15_f(int8, text), r15_tf()`); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	owner := connectPgx(t, ctx, proxyURL(p.Proxy, harness.SuperUser, "sslmode=disable"))
	for _, ddl := range []string{
		`CREATE FUNCTION r15_f(o int8, v text) RETURNS void LANGUAGE sql AS $$ INSERT INTO r15_fv (org_id, note) VALUES (o, v) $$`,
		`CREATE FUNCTION r15_tf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO r15_fv (org_id, note) VALUES (NEW.org_id, NEW.v); RETURN NEW; END $$`,
		`CREATE TABLE r15_ft (org_id int8, v text)`,
		`CREATE TRIGGER r15_t AFTER INSERT ON r15_ft FOR EACH ROW EXECUTE FUNCTION r15_tf()`,
		`GRANT ALL ON r15_ft TO scram_user`,
	} {
		if _, err := owner.Exec(ctx, ddl); err != nil {
			t.Fatalf("%s: %v", ddl, err)
		}
	}
	swap(owner)
	conn := connectPgx(t, ctx, p.url())
	if _, err := conn.Exec(ctx, `SELECT r15_f(9156, $1)`, secret1); err == nil {
		t.Errorf("a call of r15_f, whose INSERT now writes through a view over encrypted contacts.note, ran")
	}
	if _, err := conn.Exec(ctx, `INSERT INTO r15_ft (org_id, v) VALUES (9156, $1)`, secret2); err == nil {
		t.Errorf("an INSERT into r15_ft, whose trigger now writes through a view over encrypted contacts.note, ran")
	}
	rev15NoPlainNote(t, ctx, secret1)
	rev15NoPlainNote(t, ctx, secret2)
	// Dropping the code is the remedy, through pgveil too.
	if _, err := owner.Exec(ctx, `DROP TRIGGER r15_t ON r15_ft; DROP FUNCTION r15_f(int8, text)`); err != nil {
		t.Errorf("dropping the code: %v", err)
	}
}
