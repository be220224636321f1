package integration

// The Node ORMs through pgveil: Sequelize 6 and Knex 3 (over node-postgres),
// the exact versions in drivers/node/package.json and package-lock.json,
// installed by npm at test time. Each drives the suite's schema as an
// application does, with nothing pgveil-specific in its models or queries:
// Sequelize models declared in code with STRING, DATEONLY and BIGINT over
// what are now bytea columns, Knex with its query builder and raw SQL. The
// programs assert every step themselves, refusals included (SQLSTATE and a
// message naming the table and the column); the Go side then reads the rows
// back through pgveil with pgx, scans the tables directly for plaintext,
// and (startEncProxy) greps pgveil's debug log for every value written.

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgveil/pgveil/integration/harness"
)

// nodeORMValues are the values only the Node ORM programs write or look up.
type nodeORMValues struct {
	// FindOrCreate is the row Sequelize's findOrCreate creates in CopyOrg:
	// it sends its INSERT inside a temporary plpgsql function
	// (pg_temp.testfunc), whose literals pgveil seals in the body.
	FindOrCreate encUser `json:"find_or_create"`
	// UniqueDup is Users[1]'s email in another case: a create with it
	// violates the UNIQUE blind index (23505 on email_bidx).
	UniqueDup string `json:"unique_dup"`
	// MergePhone goes into a multi-row INSERT … ON CONFLICT DO UPDATE SET
	// phone = $n (Knex's merge({phone})): sealed under the rows' one
	// tenant; refused over rows of two tenants.
	MergePhone string `json:"merge_phone"`
	// CopyEmail is the email of a row read with SELECT * (blind indexes
	// included) and inserted again: pgveil writes its own indexes there.
	CopyEmail string `json:"copy_email"`
	// Mover is created in Org and moved to CopyOrg by UPDATEs that set
	// org_id without every encrypted column (refused: the values not
	// written would stay sealed under Org's key), then by one that writes
	// every encrypted column with MoverPhone (the way to move a row), and
	// deleted.
	Mover      encUser `json:"mover"`
	MoverPhone string  `json:"mover_phone"`
	// The tables' owner, for the migration (Knex migrate.latest through
	// pgveil: ALTER TABLE users ADD COLUMN nickname), and Nickname, the
	// plaintext column's value written through the app's connection.
	OwnerUser     string `json:"owner_user"`
	OwnerPassword string `json:"owner_password"`
	Nickname      string `json:"nickname"`
}

// nodeORMSpec is the ORM spec plus the Node values, as one JSON object.
type nodeORMSpec struct {
	*ormSpec
	Node nodeORMValues `json:"node"`
}

// newNodeORMSpec makes the values of one Node ORM's run in org and
// org+1000. Both programs upsert with every column (Sequelize's upsert,
// Knex's merge()), so the upserted row keeps the email of the conflicting
// insert (UpsertVariant).
func newNodeORMSpec(p *encProxy, tag string, org int64) *nodeORMSpec {
	s := &nodeORMSpec{ormSpec: newORMSpec(p, tag, org)}
	tok := strconv.FormatInt(-(8675309000000000 + org*100 + 41), 10)
	s.Node = nodeORMValues{
		FindOrCreate: encUser{Name: "foc " + tag, Email: sp("Find.Or.Create." + tag + "@Example.org"),
			Phone: sp("ph-foc-" + tag + " Zoë"), SSN: sp("ssn-foc-" + tag), Birth: sp("1977-07-07"), Token: sp(tok)},
		UniqueDup:  " " + strings.ToUpper(*s.Users[1].Email),
		MergePhone: "ph-merge-refused-" + tag + "-555-0188",
		CopyEmail:  "Copied.Row." + tag + "@example.org",
		Mover: encUser{Name: "mover " + tag, Email: sp("Mover." + tag + "@Example.org"), Phone: sp("ph-mover-" + tag),
			SSN: sp("ssn-mover-" + tag), Birth: sp("1981-01-01"), Token: sp(strconv.FormatInt(8675309000000000+org*100+43, 10))},
		MoverPhone: "ph-moved-" + tag + "-555-0191",
		OwnerUser:  harness.SuperUser, OwnerPassword: harness.Passwords[harness.SuperUser],
		Nickname: "nick " + tag,
	}
	up := len(s.Final) - 1
	s.Final[up].Email = sp(s.UpsertVariant)
	if p != nil {
		p.remember(s.Node.plaintexts()...)
	}
	return s
}

func (n nodeORMValues) plaintexts() []string {
	var out []string
	for _, u := range []encUser{n.FindOrCreate, n.Mover} {
		for _, v := range []*string{u.Email, u.Phone, u.SSN, u.Birth, u.Token} {
			if v != nil && *v != "" {
				out = append(out, *v)
			}
		}
	}
	return append(out, strings.TrimSpace(n.UniqueDup), n.MergePhone, n.CopyEmail, n.MoverPhone)
}

// plaintexts are every value of an encrypted column the run writes or
// looks up.
func (s *nodeORMSpec) plaintexts() []string {
	return append(append(s.encSpec.plaintexts(), s.ORM.plaintexts()...), s.Node.plaintexts()...)
}

func (s *nodeORMSpec) writeJSON(t *testing.T) string {
	t.Helper()
	return writeSpecJSON(t, s)
}

// nodeInstall is npm install in drivers/node (the exact versions of
// package-lock.json), run once for the tests of this file.
var nodeInstall struct {
	once      sync.Once
	dir, node string
	err       error
	took      time.Duration
}

// nodeORMDriver installs the Node packages (once) and returns the
// directory of the Node programs and the node binary.
func nodeORMDriver(t *testing.T) (dir, node string) {
	t.Helper()
	ni := &nodeInstall
	ni.once.Do(func() {
		if ni.node, ni.err = exec.LookPath("node"); ni.err != nil {
			ni.err = fmt.Errorf("node is not installed (.ci/run installs nodejs and npm): %w", ni.err)
			return
		}
		if ni.dir, ni.err = filepath.Abs(filepath.Join("drivers", "node")); ni.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		start := time.Now()
		install := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund")
		install.Dir = ni.dir
		install.Env = driverEnv()
		if out, err := install.CombinedOutput(); err != nil {
			ni.err = fmt.Errorf("npm install in %s: %w\n%s", ni.dir, err, out)
		}
		ni.took = time.Since(start)
	})
	if ni.err != nil {
		t.Fatal(ni.err)
	}
	t.Logf("npm install (once for this file's tests): %s", ni.took.Round(time.Millisecond))
	return ni.dir, ni.node
}

// verifyNodeORM reads both orgs back through pgveil with pgx (the org's
// users and contacts, and CopyOrg's users: the ORM rows and more) and
// scans every table directly.
func verifyNodeORM(t *testing.T, ctx context.Context, p *encProxy, s *nodeORMSpec, more ...encUser) {
	t.Helper()
	verifyThroughProxy(t, ctx, p, s.encSpec)
	conn := connectPgx(t, ctx, p.url())
	compareUsers(t, "users of org "+strconv.FormatInt(s.CopyOrg, 10)+" read back through pgveil",
		selectUsers(t, ctx, conn, s.CopyOrg), s.org2Final(more...))
	verifyAtRest(t, ctx, s.plaintexts())
}

// TestEncSequelize runs Sequelize 6 (postgres dialect over node-postgres)
// through pgveil: models for orgs, users and contacts declared in code
// (STRING, DATEONLY, BIGINT for the encrypted columns, email unique) with
// no pgveil-specific declaration; sync() and describeTable (the logical
// types: TEXT, DATE, BIGINT; blind indexes BYTEA); create (INSERT …
// RETURNING with bind parameters), bulkCreate (inline literals, 1 MiB
// values) and bulkCreate with updateOnDuplicate; findByPk, findOne and
// findAll by email (normalized), Op.in, Op.any, Op.or, Op.is null,
// Op.ne, Op.notIn; count, findAndCountAll; instance save() and
// Model.update by email without the tenant (pgveil looks it up; over two
// tenants refused, no row updates 0); upsert (ON CONFLICT ("email"));
// findOrCreate (found; created, its INSERT inside a pg_temp plpgsql
// function; a unique violation caught inside that function) and
// findCreateFind, with and without a transaction; destroy; the UNIQUE blind index's 23505;
// managed and unmanaged transactions with rollback and a refusal in a
// savepoint; includes over orgs→users and users→contacts (a hasMany
// keyed by email, the shared blind index; with limit it joins on a
// subquery without email_bidx, refused, and works with subQuery: false or
// separate: true); raw queries with bind parameters and replacements; and
// the refusals an adopting team meets.
func TestEncSequelize(t *testing.T) {
	relayLeakCheck(t)
	dir, node := nodeORMDriver(t)
	const org = 281
	p := startEncProxy(t, encOrgs(org, 1)...)
	ctx := testCtx(t, 2*time.Minute)
	s := newNodeORMSpec(p, "sequelize", org)
	logORMInfo(t, runDriver(t, ctx, "Sequelize", dir, node, "sequelize_scenario.js", s.writeJSON(t)))
	verifyNodeORM(t, ctx, p, s, s.Node.FindOrCreate)
}

// TestEncKnex runs Knex 3 (pg client) through pgveil: columnInfo (the
// logical types), insert().returning() of one and many rows,
// where/whereIn/whereNot/whereNull and whereRaw(= ANY(?)) on encrypted
// columns, first() (SELECT * brings the blind indexes along; a row read
// that way and inserted again gets pgveil's indexes), update by id and by email
// without the tenant (pgveil looks it up; over two tenants refused, no
// row updates 0), del with returning, batchInsert, onConflict('email')
// .ignore() and .merge() (all columns, a list, an object; an object over
// several rows of one tenant, and refused over two tenants), managed and unmanaged transactions with
// rollback and a refusal in a savepoint, a join and a whereIn subquery on
// the shared email blind index, knex.raw with positional and named
// bindings, a streamed select (pg-query-stream: a portal read a few rows
// at a time), the refusals an adopting team meets, and last a migration
// through pgveil as the tables' owner (migrate.latest: ALTER TABLE users
// ADD COLUMN nickname, written at once by the application's connection;
// migrate.rollback).
func TestEncKnex(t *testing.T) {
	relayLeakCheck(t)
	dir, node := nodeORMDriver(t)
	const org = 291
	p := startEncProxy(t, encOrgs(org, 1)...)
	ctx := testCtx(t, 2*time.Minute)
	s := newNodeORMSpec(p, "knex", org)
	logORMInfo(t, runDriver(t, ctx, "Knex", dir, node, "knex_scenario.js", s.writeJSON(t)))
	verifyNodeORM(t, ctx, p, s)
}
