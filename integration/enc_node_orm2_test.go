package integration

// TypeORM and Drizzle ORM (over node-postgres) through pgveil, the exact
// versions in drivers/node/package.json and package-lock.json, installed
// by npm at test time (nodeORMDriver). As for Sequelize and Knex
// (enc_node_orm_test.go), each program drives the suite's schema the way
// an application declares and queries it, with nothing pgveil-specific:
// TypeORM EntitySchemas and Drizzle pgTables with varchar/text, date and
// bigint for what are now bytea columns, no blind-index column in any
// model. The programs assert every step themselves, refusals included
// (SQLSTATE and a message naming the table and the column); the Go side
// then reads the rows back through pgveil with pgx, scans the tables
// directly for plaintext, and (startEncProxy) greps pgveil's debug log for
// every value written.

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestEncTypeORM runs TypeORM (DataSource over node-postgres,
// synchronize: false) through pgveil: EntitySchemas for orgs, users and
// contacts (varchar, date, bigint over bytea; users → orgs many-to-one on
// org_id); Repository save (insert, and update of a loaded entity),
// insert of one and many rows, find/findOne/findOneBy/findBy with In and
// IsNull, lookups in another case (the blind index normalises), update by
// id and by email without the tenant (pgveil looks it up; over two
// tenants refused), delete, upsert on id and on email, count, exists;
// QueryBuilder select/where/andWhere/orderBy/take/skip/getMany/getRawMany/
// getOne/getCount, leftJoinAndSelect of the org relation and of the
// users of an org (with take: TypeORM's DISTINCT subquery), a join of
// contacts on the shared email blind index; dataSource.transaction and a
// QueryRunner with nested transactions (savepoints) and rollbacks; raw
// query() with $1; stream(); and the refusals an adopting team meets.
func TestEncTypeORM(t *testing.T) {
	relayLeakCheck(t)
	dir, node := nodeORMDriver(t)
	const org = 9201
	p := startEncProxy(t, encOrgs(org, 1)...)
	ctx := testCtx(t, 3*time.Minute)
	s := newNodeORMSpec(p, "typeorm", org)
	logORMInfo(t, runDriver(t, ctx, "TypeORM", dir, node, "typeorm_scenario.js", s.writeJSON(t), "scenario"))
	verifyNodeORM(t, ctx, p, s)
}

// TestEncTypeORMSynchronize runs TypeORM's schema synchronisation through
// pgveil, as the tables' owner, against the encrypted table with rows in
// it: synchronize() of entities that do not declare the blind-index
// columns (TypeORM drops columns and indexes its metadata lacks), and of
// an entity that declares email as varchar(320) where pgveil's catalog
// says text (TypeORM drops and re-adds a column whose type changed). Each
// must either change nothing or be refused naming the table and the
// column; the rows must read back unchanged through pgveil afterwards,
// and the table as the database holds it (checked here directly) must
// keep its bytea columns, its blind indexes and their indexes.
func TestEncTypeORMSynchronize(t *testing.T) {
	relayLeakCheck(t)
	dir, node := nodeORMDriver(t)
	const org = 9221
	p := startEncProxy(t, encOrgs(org, 1)...)
	ctx := testCtx(t, 3*time.Minute)
	s := newNodeORMSpec(p, "typeorm-sync", org)
	su := superConn(t, ctx)
	before := describeUsersDirectly(t, ctx, su)
	logORMInfo(t, runDriver(t, ctx, "TypeORM synchronize", dir, node, "typeorm_scenario.js", s.writeJSON(t), "synchronize"))
	after := describeUsersDirectly(t, ctx, su)
	if before != after {
		t.Errorf("synchronize through pgveil changed the users table as the database holds it\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// The program wrote u1, u2 and u4 of the spec, in that order, and
	// after synchronize Node.FindOrCreate.
	conn := connectPgx(t, ctx, p.url())
	compareUsers(t, "users of org "+strconv.FormatInt(s.Org, 10)+" read back through pgveil after synchronize",
		selectUsers(t, ctx, conn, s.Org), []encUser{s.Users[0], s.Users[1], s.Users[3], s.Node.FindOrCreate})
	// The plaintext scan of every table as text works whatever columns
	// synchronize left; the full at-rest check needs the policy's columns.
	scanTablesForPlaintext(t, ctx, su, s.plaintexts())
	if before == after {
		verifyAtRest(t, ctx, s.plaintexts())
	}
}

// scanTablesForPlaintext looks for each plaintext, case-insensitively, in
// every row of orgs, users and contacts rendered as text, read directly.
func scanTablesForPlaintext(t *testing.T, ctx context.Context, su *pgx.Conn, plaintexts []string) {
	t.Helper()
	var dump strings.Builder
	for _, table := range []string{"orgs", "users", "contacts"} {
		var s string
		if err := su.QueryRow(ctx, `SELECT coalesce(string_agg(t::text, E'\n'), '') FROM `+table+` t`).Scan(&s); err != nil {
			t.Fatalf("scanning %s: %v", table, err)
		}
		dump.WriteString(strings.ToLower(s))
	}
	for _, v := range plaintexts {
		for _, needle := range searchNeedles(v) {
			if strings.Contains(dump.String(), strings.ToLower(needle)) {
				t.Errorf("at rest: the plaintext %s is stored in the clear", short(needle))
			}
		}
	}
}

// describeUsersDirectly renders the users table as the database holds it
// (columns and their types, indexes, constraints), read directly.
func describeUsersDirectly(t *testing.T, ctx context.Context, su *pgx.Conn) string {
	t.Helper()
	var out string
	err := su.QueryRow(ctx, `SELECT
  (SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END, E'\n' ORDER BY attnum)
     FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attnum > 0 AND NOT attisdropped)
  || E'\n-- indexes\n' ||
  (SELECT string_agg(indexdef, E'\n' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'users')
  || E'\n-- constraints\n' ||
  (SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), E'\n' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'public.users'::regclass)`).Scan(&out)
	if err != nil {
		t.Fatalf("describing users directly: %v", err)
	}
	for _, want := range []string{"email bytea", "email_bidx bytea", "phone bytea", "ssn bytea", "ssn_bidx bytea",
		"birth_date bytea", "api_token bytea", "users_ssn_bidx", "UNIQUE (email_bidx)"} {
		if !strings.Contains(out, want) {
			t.Errorf("users as the database holds it lacks %q:\n%s", want, out)
		}
	}
	return out
}

// TestEncDrizzle runs Drizzle ORM (drizzle-orm/node-postgres) through
// pgveil: pgTables for orgs, users and contacts (varchar, date in string
// mode, bigint in bigint mode over bytea) with relations; insert …
// values(…).returning() of one and many rows, select … where eq, inArray,
// and/or, isNull, ne, orderBy/limit/offset on plain columns, update …
// set(…).where(…) by id and by email without the tenant (pgveil looks it
// up; over two tenants refused), delete … returning,
// onConflictDoUpdate({target, set}) and onConflictDoNothing on the email
// blind index, the relational queries db.query.users.findFirst/findMany
// with { with: { org } } and db.query.orgs.findMany with their users,
// db.transaction with nested transactions (savepoints) and rollbacks,
// db.execute(sql`…`) raw, $count and count(), prepared statements
// (.prepare('name') with sql.placeholder, executed again and again), a
// join of contacts on the shared email blind index, and the refusals an
// adopting team meets.
func TestEncDrizzle(t *testing.T) {
	relayLeakCheck(t)
	dir, node := nodeORMDriver(t)
	const org = 9211
	p := startEncProxy(t, encOrgs(org, 1)...)
	ctx := testCtx(t, 3*time.Minute)
	s := newNodeORMSpec(p, "drizzle", org)
	logORMInfo(t, runDriver(t, ctx, "Drizzle", dir, node, "drizzle_scenario.js", s.writeJSON(t)))
	verifyNodeORM(t, ctx, p, s)
}
