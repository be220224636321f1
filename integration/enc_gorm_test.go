package integration

// GORM (gorm.io/gorm v1.31 with gorm.io/driver/postgres over pgx's
// database/sql driver) through pgveil, unchanged: models declared as an
// application declares them, with logical Go types (string, *string,
// *time.Time for a date, int64) over what are now bytea columns, and no
// field for the blind-index columns. The scenario runs with GORM's
// defaults (pgx's extended protocol, statement cache), with
// PreferSimpleProtocol (values inlined by pgx) and with PrepareStmt
// (database/sql prepared statements), each in an org of its own: Create
// (one, a slice, CreateInBatches, Select(cols), RETURNING *), First, Take,
// Find, Where (string, struct, map, IN, Or, Not, a subquery on the shared
// blind-index key), Pluck, Count, Select, Limit/Offset, Scan, Rows and
// ScanRows, Find into maps, FindInBatches, FOR UPDATE, Save (also of a new
// record with its id, and moving a row to another tenant), Update,
// Updates (map, struct, by email), UpdateColumn, RETURNING on UPDATE and
// DELETE, Delete, upserts (UpdateAll on id and on email, one row and
// several, DoUpdates, DoNothing), the UNIQUE blind index's 23505,
// FirstOrCreate/FirstOrInit with Attrs and Assign, Preload, Joins,
// Association, transactions, savepoints, a context cancelled during a
// slow query, Raw and Exec, and the refusals an application meets (each
// with SQLSTATE and a message naming table and column); then AutoMigrate
// on the encrypted table and on a new plain table. Every step is a
// subtest of its own and logs the SQL GORM sent when it fails. Afterwards
// the rows are read back through pgveil with pgx (another driver), the
// tables are scanned directly for plaintext and envelopes, and pgveil's
// debug log is grepped for every value written (startEncProxy).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/goleak"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"github.com/pgveil/pgveil/integration/harness"
)

// gormOrg is orgs, with its users (has-many by org_id).
type gormOrg struct {
	ID    int64
	Name  string     `gorm:"not null"`
	Users []gormUser `gorm:"foreignKey:OrgID"`
}

func (gormOrg) TableName() string { return "orgs" }

// gormUser is users as the application declared it before pgveil: email,
// phone and ssn are text, birth_date a date, api_token a bigint. The
// blind-index columns (email_bidx, ssn_bidx) are not in the model.
type gormUser struct {
	ID        int64
	OrgID     int64 `gorm:"not null"`
	Name      string
	Email     string
	Phone     *string
	SSN       *string    `gorm:"column:ssn"`
	BirthDate *time.Time `gorm:"type:date"`
	APIToken  int64      `gorm:"column:api_token"`
	CreatedAt time.Time  `gorm:"default:now()"`
	// Org is the user's org (belongs-to, for Joins); Contacts the org's
	// contacts (has-many on org_id, for Preload).
	Org      *gormOrg      `gorm:"foreignKey:OrgID"`
	Contacts []gormContact `gorm:"foreignKey:OrgID;references:OrgID"`
}

func (gormUser) TableName() string { return "users" }

// gormUserTimestamp is users with birth_date declared as a plain
// time.Time: GORM's type for it is timestamptz, so AutoMigrate wants to
// change the column's type.
type gormUserTimestamp struct {
	ID        int64
	OrgID     int64 `gorm:"not null"`
	Name      string
	Email     string
	Phone     *string
	SSN       *string `gorm:"column:ssn"`
	BirthDate time.Time
	APIToken  int64     `gorm:"column:api_token"`
	CreatedAt time.Time `gorm:"default:now()"`
}

func (gormUserTimestamp) TableName() string { return "users" }

// gormContact is contacts (no tenant column; note is encrypted into text).
type gormContact struct {
	ID    int64
	OrgID int64 `gorm:"not null"`
	Email string
	Note  *string
	Org   *gormOrg `gorm:"foreignKey:OrgID"`
}

func (gormContact) TableName() string { return "contacts" }

// gormWidget is a new plain table created by AutoMigrate through pgveil.
type gormWidget struct {
	ID    int64
	Label string `gorm:"size:64;not null"`
	Qty   int32
}

func (gormWidget) TableName() string { return "gorm_widgets" }

// gormSQLLog is GORM's logger at Info level: it records every statement
// GORM sent (with its values, for this test's output only), so a failing
// step can show exactly what went to pgveil.
type gormSQLLog struct {
	mu    sync.Mutex
	stmts []string
}

func (l *gormSQLLog) LogMode(logger.LogLevel) logger.Interface     { return l }
func (l *gormSQLLog) Info(context.Context, string, ...interface{}) {}
func (l *gormSQLLog) Warn(context.Context, string, ...interface{}) {}
func (l *gormSQLLog) Error(context.Context, string, ...interface{}) {
}

func (l *gormSQLLog) Trace(_ context.Context, _ time.Time, fc func() (string, int64), err error) {
	s, rows := fc()
	line := fmt.Sprintf("%s  [rows %d]", s, rows)
	if err != nil {
		line += "  → " + describePgErr(err)
	}
	l.mu.Lock()
	l.stmts = append(l.stmts, line)
	l.mu.Unlock()
}

func (l *gormSQLLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.stmts)
}

func (l *gormSQLLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.stmts[n:])
}

// gormRun is one GORM configuration's run of the scenario in one org.
type gormRun struct {
	p    *encProxy
	db   *gorm.DB
	log  *gormSQLLog
	org  int64
	tag  string
	want map[int64]gormUser // the org's users as they must be, by id
	// direct is the same GORM configuration straight to PostgreSQL, for
	// what GORM does without pgveil.
	direct *gorm.DB
}

// step runs f as a subtest; when it fails, the SQL GORM sent is logged.
func (r *gormRun) step(t *testing.T, name string, f func(t *testing.T, db *gorm.DB)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		n := r.log.mark()
		defer func() {
			if t.Failed() {
				t.Logf("SQL GORM sent in this step:\n  %s", strings.Join(r.log.since(n), "\n  "))
			}
		}()
		f(t, r.db)
	})
}

// newGormDB opens GORM on url with the given dialect and GORM settings.
func newGormDB(t *testing.T, url string, simple, prepare bool, l *gormSQLLog) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(postgres.New(postgres.Config{DSN: url, PreferSimpleProtocol: simple}),
		&gorm.Config{PrepareStmt: prepare, Logger: l})
	if err != nil {
		t.Fatalf("gorm.Open through pgveil: %v", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqlDB.Close() })
	return db
}

func gormDate(y int, m time.Month, d int) *time.Time {
	v := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return &v
}

// user makes a user of the run's org with values that carry the tag, and
// remembers its plaintexts.
func (r *gormRun) user(n int, first string) gormUser {
	u := gormUser{
		OrgID:     r.org,
		Name:      fmt.Sprintf("g%d %s", n, r.tag),
		Email:     fmt.Sprintf("%s.%d.%s@Example.com", first, n, r.tag),
		Phone:     sp(fmt.Sprintf("ph-%d-%s Zoë 555-01%02d", n, r.tag, n)),
		SSN:       sp(fmt.Sprintf("ssn-%d-%s", n, r.tag)),
		BirthDate: gormDate(1950+n, time.Month(1+n%12), 1+n),
		APIToken:  -(8675309000000000 + r.org*1000 + int64(n)),
	}
	r.remember(u)
	return u
}

func (r *gormRun) remember(u gormUser) {
	r.p.remember(u.Email)
	for _, v := range []*string{u.Phone, u.SSN} {
		if v != nil {
			r.p.remember(*v)
		}
	}
	if u.BirthDate != nil {
		r.p.remember(u.BirthDate.Format("2006-01-02"))
	}
	r.p.remember(strconv.FormatInt(u.APIToken, 10))
}

// lookup is email as a user might type it: other case, spaces around.
func lookup(email string) string { return "  " + strings.ToUpper(email) + " " }

// userRow renders u as selectUsers reads it.
func userRow(u gormUser) []*string {
	var birth *string
	if u.BirthDate != nil {
		birth = sp(u.BirthDate.Format("2006-01-02"))
	}
	return []*string{sp(u.Name), sp(u.Email), u.Phone, u.SSN, birth, sp(strconv.FormatInt(u.APIToken, 10))}
}

// sameUser compares what GORM read with what was written.
func sameUser(t *testing.T, what string, got, want gormUser) {
	t.Helper()
	g, w := userRow(got), userRow(want)
	compareRows(t, what, [][]*string{append([]*string{sp(strconv.FormatInt(got.ID, 10)), sp(strconv.FormatInt(got.OrgID, 10))}, g...)},
		[][]*string{append([]*string{sp(strconv.FormatInt(want.ID, 10)), sp(strconv.FormatInt(want.OrgID, 10))}, w...)})
}

func gormNames(us []gormUser) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Name)
	}
	return out
}

func (r *gormRun) wantSorted() []gormUser {
	var out []gormUser
	for _, u := range r.want {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b gormUser) int { return int(a.ID - b.ID) })
	return out
}

// wantRefused checks a refusal: the SQLSTATE and a message naming the
// table and the column.
func wantRefused(t *testing.T, err error, code, table, column string) {
	t.Helper()
	if err == nil {
		t.Errorf("want a refusal %s naming %s.%s, got success", code, table, column)
		return
	}
	pe := pgErr(err)
	if pe == nil {
		t.Errorf("want a refusal %s naming %s.%s, got %v", code, table, column, err)
		return
	}
	if pe.Code != code || !strings.Contains(pe.Message, table) || !strings.Contains(pe.Message, column) {
		t.Errorf("want a refusal %s naming %s and %s, got %s", code, table, column, describePgErr(err))
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %s", what, describePgErr(err))
	}
}

// TestEncGORM runs the GORM scenario through pgveil in three
// configurations, then AutoMigrate, then checks the data from outside.
func TestEncGORM(t *testing.T) {
	// relayLeakCheck, except for the goroutine of GORM's prepared
	// statement cache (PrepareStmt), which GORM never stops (its
	// internal/lru: "done channel is never closed").
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, before, goleak.IgnoreAnyFunction("gorm.io/gorm/internal/lru.NewLRU[...].func1"))
	})
	const orgDefault, orgSimple, orgPrepare, orgMigrate = 9101, 9102, 9103, 9104
	// Each run's org N also has org N+10, where a row is moved.
	p := startEncProxy(t, orgDefault, orgSimple, orgPrepare, orgMigrate, orgDefault+10, orgSimple+10, orgPrepare+10)
	ctx := testCtx(t, 4*time.Minute)
	t.Cleanup(func() {
		su, err := cluster.Connect(context.Background(), harness.SuperUser, harness.Database)
		if err == nil {
			su.Exec(context.Background(), `DROP TABLE IF EXISTS gorm_widgets`)
			su.Close(context.Background())
		}
	})

	var runs []*gormRun
	for _, m := range []struct {
		name            string
		org             int64
		simple, prepare bool
	}{
		{"default", orgDefault, false, false},
		{"simple_protocol", orgSimple, true, false},
		{"prepare_stmt", orgPrepare, false, true},
	} {
		t.Run(m.name, func(t *testing.T) {
			l := &gormSQLLog{}
			app := "gorm_" + m.name
			r := &gormRun{p: p, log: l, org: m.org, tag: "gorm-" + m.name, want: map[int64]gormUser{},
				db: newGormDB(t, p.url("application_name="+app), m.simple, m.prepare, l)}
			r.direct = newGormDB(t, directURL(harness.SCRAMUser, "sslmode=disable"), m.simple, m.prepare, &gormSQLLog{})
			runs = append(runs, r)
			r.scenario(t, ctx)
			r.cancel(t, ctx, p.url("application_name="+app+"_cancel"), m.simple, m.prepare)
			r.verify(t, ctx)
		})
	}

	t.Run("automigrate", func(t *testing.T) {
		l := &gormSQLLog{}
		owner := proxyURL(p.Proxy, harness.SuperUser, "sslmode=disable", "application_name=gorm_migrate")
		r := &gormRun{p: p, log: l, org: orgMigrate, tag: "gorm-migrate", want: map[int64]gormUser{},
			db: newGormDB(t, owner, false, false, l)}
		r.automigrate(t, ctx, runs)
	})

	// From outside pgveil: every stored value an envelope, blind indexes
	// set where their column is, no plaintext anywhere in the tables.
	verifyAtRest(t, ctx, p.secrets())
	su := superConn(t, ctx)
	for _, r := range runs {
		var n, envelopes, bidx int
		err := su.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE get_byte(email, 0) = 1 AND coalesce(get_byte(phone, 0), 1) = 1 AND get_byte(api_token, 0) = 1),
			count(*) FILTER (WHERE length(email_bidx) = 32) FROM users WHERE org_id = $1`, r.org).Scan(&n, &envelopes, &bidx)
		noErr(t, "reading users directly", err)
		if n != len(r.want) || envelopes != n || bidx != n {
			t.Errorf("org %d directly: %d rows (want %d), %d with envelopes in email, phone and api_token, %d with a 32-byte email_bidx",
				r.org, n, len(r.want), envelopes, bidx)
		}
	}
}

// scenario is every GORM call of the brief, in r's org.
func (r *gormRun) scenario(t *testing.T, ctx context.Context) {
	var u1, u2, u3, u4, u5, u6 gormUser
	u1 = r.user(1, "Alice")

	r.step(t, "Create", func(t *testing.T, db *gorm.DB) {
		res := db.Create(&u1)
		noErr(t, "Create", res.Error)
		if u1.ID == 0 || res.RowsAffected != 1 {
			t.Fatalf("Create: id %d, %d rows", u1.ID, res.RowsAffected)
		}
		r.want[u1.ID] = u1
	})
	r.step(t, "Create slice", func(t *testing.T, db *gorm.DB) {
		us := []gormUser{r.user(2, "Bob"), r.user(3, "Carol")}
		us[1].Phone = nil // a NULL encrypted value
		res := db.Create(&us)
		noErr(t, "Create(slice)", res.Error)
		if res.RowsAffected != 2 || us[0].ID == 0 || us[1].ID == 0 {
			t.Fatalf("Create(slice): %d rows, ids %d %d", res.RowsAffected, us[0].ID, us[1].ID)
		}
		u2, u3 = us[0], us[1]
		r.want[u2.ID], r.want[u3.ID] = u2, u3
	})
	r.step(t, "CreateInBatches", func(t *testing.T, db *gorm.DB) {
		us := []gormUser{r.user(4, "Dave"), r.user(5, "Erin"), r.user(6, "Frank")}
		res := db.CreateInBatches(&us, 2)
		noErr(t, "CreateInBatches", res.Error)
		if res.RowsAffected != 3 {
			t.Fatalf("CreateInBatches: %d rows", res.RowsAffected)
		}
		u4, u5, u6 = us[0], us[1], us[2]
		for _, u := range us {
			if u.ID == 0 {
				t.Fatalf("CreateInBatches: no id for %s", u.Name)
			}
			r.want[u.ID] = u
		}
	})

	// Reads.
	r.step(t, "First by id", func(t *testing.T, db *gorm.DB) {
		var got gormUser
		noErr(t, "First", db.First(&got, u1.ID).Error)
		sameUser(t, "First", got, u1)
	})
	r.step(t, "Take by email in another case", func(t *testing.T, db *gorm.DB) {
		var got gormUser
		noErr(t, "Take", db.Take(&got, "email = ?", lookup(u2.Email)).Error)
		sameUser(t, "Take", got, u2)
	})
	r.step(t, "Find ordered by id", func(t *testing.T, db *gorm.DB) {
		var got []gormUser
		noErr(t, "Find", db.Order("id").Find(&got, "org_id = ?", r.org).Error)
		want := r.wantSorted()
		if len(got) != len(want) {
			t.Fatalf("Find: %v, want %v", gormNames(got), gormNames(want))
		}
		for i := range got {
			sameUser(t, "Find", got[i], want[i])
		}
	})
	r.step(t, "Where email = ?", func(t *testing.T, db *gorm.DB) {
		var got gormUser
		noErr(t, "Where.First", db.Where("email = ?", lookup(u3.Email)).First(&got).Error)
		sameUser(t, "Where(email = ?).First", got, u3)
		// A value that is in no row.
		err := db.Where("email = ?", "nobody."+r.tag+"@example.com").First(&got).Error
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			t.Errorf("First of an absent email: %v, want ErrRecordNotFound", err)
		}
	})
	r.step(t, "Where struct", func(t *testing.T, db *gorm.DB) {
		var got gormUser
		noErr(t, "Where(&User{Email}).First", db.Where(&gormUser{Email: lookup(u4.Email)}).First(&got).Error)
		sameUser(t, "Where(&User{Email})", got, u4)
		var got2 gormUser
		noErr(t, "Where(&User{Email, OrgID}).First", db.Where(&gormUser{Email: u4.Email, OrgID: r.org}).First(&got2).Error)
		sameUser(t, "Where(&User{Email, OrgID})", got2, u4)
	})
	r.step(t, "Where email IN ?", func(t *testing.T, db *gorm.DB) {
		var got []gormUser
		err := db.Where("email IN ?", []string{strings.ToLower(u1.Email), lookup(u5.Email), "absent." + r.tag + "@example.org"}).Order("id").Find(&got).Error
		noErr(t, "Where(email IN ?)", err)
		if len(got) != 2 || got[0].ID != u1.ID || got[1].ID != u5.ID {
			t.Fatalf("Where(email IN ?): %v, want [%s %s]", gormNames(got), u1.Name, u5.Name)
		}
		sameUser(t, "IN", got[1], u5)
	})
	r.step(t, "Pluck", func(t *testing.T, db *gorm.DB) {
		var emails []string
		noErr(t, "Pluck", db.Model(&gormUser{}).Where("org_id = ?", r.org).Order("id").Pluck("email", &emails).Error)
		var want []string
		for _, u := range r.wantSorted() {
			want = append(want, u.Email)
		}
		if !slices.Equal(emails, want) {
			t.Errorf("Pluck(email): %q, want %q", emails, want)
		}
		var tokens []int64
		noErr(t, "Pluck(api_token)", db.Model(&gormUser{}).Where("id = ?", u1.ID).Pluck("api_token", &tokens).Error)
		if len(tokens) != 1 || tokens[0] != u1.APIToken {
			t.Errorf("Pluck(api_token): %v, want [%d]", tokens, u1.APIToken)
		}
	})
	r.step(t, "Count", func(t *testing.T, db *gorm.DB) {
		var n int64
		noErr(t, "Count", db.Model(&gormUser{}).Where("email = ?", lookup(u1.Email)).Count(&n).Error)
		if n != 1 {
			t.Errorf("Count(email = ?) = %d, want 1", n)
		}
		noErr(t, "Count", db.Model(&gormUser{}).Where("org_id = ? AND phone IS NULL", r.org).Count(&n).Error)
		if n != 1 {
			t.Errorf("Count(phone IS NULL) = %d, want 1 (%s)", n, u3.Name)
		}
	})
	r.step(t, "Select columns", func(t *testing.T, db *gorm.DB) {
		var got gormUser
		noErr(t, "Select", db.Select("email, phone").Where("id = ?", u2.ID).First(&got).Error)
		if got.Email != u2.Email || got.Phone == nil || *got.Phone != *u2.Phone || got.SSN != nil || got.Name != "" {
			t.Errorf("Select(email, phone): email %q phone %s ssn %s name %q, want %q %s NULL \"\"", got.Email, fmtPtr(got.Phone), fmtPtr(got.SSN), got.Name, u2.Email, fmtPtr(u2.Phone))
		}
	})
	r.step(t, "Limit Offset", func(t *testing.T, db *gorm.DB) {
		var got []gormUser
		noErr(t, "Limit/Offset", db.Where("org_id = ?", r.org).Order("id").Limit(2).Offset(1).Find(&got).Error)
		if len(got) != 2 || got[0].ID != u2.ID || got[1].ID != u3.ID {
			t.Fatalf("Limit(2).Offset(1): %v, want [%s %s]", gormNames(got), u2.Name, u3.Name)
		}
		sameUser(t, "Limit/Offset", got[0], u2)
	})
	r.step(t, "Scan into struct", func(t *testing.T, db *gorm.DB) {
		var row struct {
			Name      string
			Email     string
			BirthDate time.Time
			APIToken  int64
		}
		noErr(t, "Scan", db.Model(&gormUser{}).Select("name, email, birth_date, api_token").Where("id = ?", u5.ID).Scan(&row).Error)
		if row.Name != u5.Name || row.Email != u5.Email || !row.BirthDate.Equal(*u5.BirthDate) || row.APIToken != u5.APIToken {
			t.Errorf("Scan: %+v, want %s %s %s %d", row, u5.Name, u5.Email, u5.BirthDate.Format("2006-01-02"), u5.APIToken)
		}
	})
	r.step(t, "Rows", func(t *testing.T, db *gorm.DB) {
		rows, err := db.Model(&gormUser{}).Select("id, email, ssn, api_token").Where("org_id = ?", r.org).Order("id").Rows()
		noErr(t, "Rows", err)
		defer rows.Close()
		want := r.wantSorted()
		i := 0
		for ; rows.Next(); i++ {
			var id, tok int64
			var email string
			var ssn sql.NullString
			if i%2 == 0 {
				noErr(t, "rows.Scan", rows.Scan(&id, &email, &ssn, &tok))
			} else {
				var u gormUser
				noErr(t, "db.ScanRows", db.ScanRows(rows, &u))
				id, email, ssn, tok = u.ID, u.Email, sql.NullString{String: *u.SSN, Valid: u.SSN != nil}, u.APIToken
			}
			if i < len(want) && (id != want[i].ID || email != want[i].Email || ssn.String != *want[i].SSN || tok != want[i].APIToken) {
				t.Errorf("Rows: row %d = %d %q %q %d, want %d %s", i, id, email, ssn.String, tok, want[i].ID, fmtRows([][]*string{userRow(want[i])}))
			}
		}
		noErr(t, "rows.Err", rows.Err())
		if i != len(want) {
			t.Errorf("Rows: %d rows, want %d", i, len(want))
		}
	})

	// Writes.
	r.step(t, "Save", func(t *testing.T, db *gorm.DB) {
		var u gormUser
		noErr(t, "First", db.First(&u, u1.ID).Error)
		old := u.Email
		u.Email = "Alice.Renamed." + r.tag + "@Example.com"
		u.Phone = sp("ph-saved-" + r.tag + " Zoë")
		u.BirthDate = gormDate(1961, 2, 3)
		r.remember(u)
		res := db.Save(&u)
		noErr(t, "Save", res.Error)
		if res.RowsAffected != 1 {
			t.Errorf("Save: %d rows", res.RowsAffected)
		}
		u1 = u
		r.want[u.ID] = u
		var got gormUser
		noErr(t, "First by new email", db.Where("email = ?", lookup(u.Email)).First(&got).Error)
		sameUser(t, "after Save", got, u)
		var n int64
		noErr(t, "Count old email", db.Model(&gormUser{}).Where("email = ?", old).Count(&n).Error)
		if n != 0 {
			t.Errorf("the old email still finds %d rows after Save", n)
		}
	})
	r.step(t, "Update", func(t *testing.T, db *gorm.DB) {
		p := "ph-updated-" + r.tag + "-555-0199"
		r.p.remember(p)
		u := u2
		res := db.Model(&u).Update("phone", p)
		noErr(t, "Update(phone)", res.Error)
		if res.RowsAffected != 1 {
			t.Errorf("Update: %d rows", res.RowsAffected)
		}
		u2.Phone = sp(p)
		r.want[u2.ID] = u2
		var got gormUser
		noErr(t, "First", db.First(&got, u2.ID).Error)
		sameUser(t, "after Update", got, u2)
	})
	r.step(t, "Updates map", func(t *testing.T, db *gorm.DB) {
		e, tok := "Bob.Mapped."+r.tag+"@Example.com", -(8675309000000000 + r.org*1000 + 77)
		r.p.remember(e, strconv.FormatInt(tok, 10))
		u := u2
		res := db.Model(&u).Updates(map[string]interface{}{"email": e, "api_token": tok, "birth_date": nil})
		noErr(t, "Updates(map)", res.Error)
		if res.RowsAffected != 1 {
			t.Errorf("Updates(map): %d rows", res.RowsAffected)
		}
		u2.Email, u2.APIToken, u2.BirthDate = e, tok, nil
		r.want[u2.ID] = u2
		var got gormUser
		noErr(t, "First by new email", db.Where("email = ?", lookup(e)).First(&got).Error)
		sameUser(t, "after Updates(map)", got, u2)
	})
	r.step(t, "Updates struct", func(t *testing.T, db *gorm.DB) {
		p := "ph-struct-" + r.tag + " O'Brien \\ ✓"
		r.p.remember(p)
		u := u3
		res := db.Model(&u).Updates(gormUser{Name: "g3b " + r.tag, Phone: sp(p)})
		noErr(t, "Updates(struct)", res.Error)
		if res.RowsAffected != 1 {
			t.Errorf("Updates(struct): %d rows", res.RowsAffected)
		}
		u3.Name, u3.Phone = "g3b "+r.tag, sp(p)
		r.want[u3.ID] = u3
		var got gormUser
		noErr(t, "First", db.First(&got, u3.ID).Error)
		sameUser(t, "after Updates(struct)", got, u3)
	})
	r.step(t, "UpdateColumn", func(t *testing.T, db *gorm.DB) {
		s := "ssn-column-" + r.tag
		r.p.remember(s)
		u := u3
		noErr(t, "UpdateColumn(ssn)", db.Model(&u).UpdateColumn("ssn", s).Error)
		u3.SSN = sp(s)
		r.want[u3.ID] = u3
		var got gormUser
		noErr(t, "First by ssn", db.Where("ssn = ?", s).First(&got).Error)
		sameUser(t, "after UpdateColumn", got, u3)
	})
	r.step(t, "Delete", func(t *testing.T, db *gorm.DB) {
		u := u6
		res := db.Delete(&u)
		noErr(t, "Delete", res.Error)
		if res.RowsAffected != 1 {
			t.Errorf("Delete: %d rows", res.RowsAffected)
		}
		delete(r.want, u6.ID)
	})
	r.step(t, "Where Delete", func(t *testing.T, db *gorm.DB) {
		res := db.Where("email = ?", lookup(u5.Email)).Delete(&gormUser{})
		noErr(t, "Where(email).Delete", res.Error)
		if res.RowsAffected != 1 {
			t.Errorf("Where(email).Delete: %d rows", res.RowsAffected)
		}
		delete(r.want, u5.ID)
		var n int64
		noErr(t, "Count", db.Model(&gormUser{}).Where("org_id = ?", r.org).Count(&n).Error)
		if n != int64(len(r.want)) {
			t.Errorf("%d users left, want %d", n, len(r.want))
		}
	})

	// Upserts.
	r.step(t, "Upsert UpdateAll on id", func(t *testing.T, db *gorm.DB) {
		u := u4
		u.Name = "g4 upserted " + r.tag
		u.Phone = sp("ph-upsert-all-" + r.tag)
		u.Email = "Dave.Upserted." + r.tag + "@Example.com"
		r.remember(u)
		res := db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&u)
		noErr(t, "OnConflict{UpdateAll}.Create", res.Error)
		if u.ID != u4.ID {
			t.Errorf("upsert returned id %d, want %d", u.ID, u4.ID)
		}
		u4 = u
		r.want[u.ID] = u
		var got gormUser
		noErr(t, "First by new email", db.Where("email = ?", lookup(u.Email)).First(&got).Error)
		sameUser(t, "after upsert on id", got, u)
	})
	r.step(t, "Upsert UpdateAll on email", func(t *testing.T, db *gorm.DB) {
		u := r.user(7, "Upsert")
		u.Email = strings.ToLower(u1.Email) // conflicts with u1 through the blind index
		res := db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "email"}}, UpdateAll: true}).Create(&u)
		noErr(t, "OnConflict{email, UpdateAll}.Create", res.Error)
		if u.ID != u1.ID {
			t.Errorf("upsert on email returned id %d, want %d (%s)", u.ID, u1.ID, u1.Name)
		}
		u.ID = u1.ID
		u.CreatedAt = u1.CreatedAt
		u1 = u
		r.want[u.ID] = u
		var got gormUser
		noErr(t, "First", db.First(&got, u1.ID).Error)
		sameUser(t, "after upsert on email", got, u1)
	})
	r.step(t, "Upsert DoUpdates phone", func(t *testing.T, db *gorm.DB) {
		u := r.user(8, "Ignored")
		u.Email = lookup(u2.Email)
		res := db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "email"}}, DoUpdates: clause.AssignmentColumns([]string{"phone"})}).Create(&u)
		noErr(t, "OnConflict{email, DoUpdates phone}.Create", res.Error)
		if u.ID != u2.ID {
			t.Errorf("upsert returned id %d, want %d", u.ID, u2.ID)
		}
		u2.Phone = u.Phone
		r.want[u2.ID] = u2
		var got gormUser
		noErr(t, "First", db.First(&got, u2.ID).Error)
		sameUser(t, "after DoUpdates(phone)", got, u2)
	})
	r.step(t, "Upsert DoNothing", func(t *testing.T, db *gorm.DB) {
		u := r.user(9, "Nothing")
		u.Email = strings.ToUpper(u3.Email)
		res := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&u)
		noErr(t, "OnConflict{DoNothing}.Create", res.Error)
		if res.RowsAffected != 0 || u.ID != 0 {
			t.Errorf("DoNothing on a conflict: %d rows, id %d", res.RowsAffected, u.ID)
		}
		fresh := r.user(10, "Fresh")
		res = db.Clauses(clause.OnConflict{DoNothing: true}).Create(&fresh)
		noErr(t, "OnConflict{DoNothing}.Create (no conflict)", res.Error)
		if res.RowsAffected != 1 || fresh.ID == 0 {
			t.Errorf("DoNothing without a conflict: %d rows, id %d", res.RowsAffected, fresh.ID)
		}
		r.want[fresh.ID] = fresh
		var got gormUser
		noErr(t, "First", db.First(&got, u3.ID).Error)
		sameUser(t, "after DoNothing", got, u3)
	})

	// FirstOrCreate, FirstOrInit, Attrs, Assign.
	r.step(t, "FirstOrCreate", func(t *testing.T, db *gorm.DB) {
		var found gormUser
		noErr(t, "FirstOrCreate (found)", db.Where(&gormUser{Email: lookup(u3.Email)}).FirstOrCreate(&found).Error)
		sameUser(t, "FirstOrCreate found", found, u3)

		nu := r.user(11, "Created")
		var created gormUser
		res := db.Where(&gormUser{Email: nu.Email}).Attrs(gormUser{OrgID: r.org, Name: nu.Name, Phone: nu.Phone, SSN: nu.SSN,
			BirthDate: nu.BirthDate, APIToken: nu.APIToken}).FirstOrCreate(&created)
		noErr(t, "FirstOrCreate with Attrs (created)", res.Error)
		if res.RowsAffected != 1 || created.ID == 0 {
			t.Fatalf("FirstOrCreate with Attrs: %d rows, id %d", res.RowsAffected, created.ID)
		}
		nu.ID = created.ID
		r.want[nu.ID] = nu
		var got gormUser
		noErr(t, "First", db.First(&got, nu.ID).Error)
		sameUser(t, "FirstOrCreate created", got, nu)

		p := "ph-assigned-" + r.tag
		r.p.remember(p)
		var assigned gormUser
		noErr(t, "FirstOrCreate with Assign (found)", db.Where(&gormUser{Email: lookup(nu.Email)}).Assign(gormUser{Phone: sp(p)}).FirstOrCreate(&assigned).Error)
		nu.Phone = sp(p)
		r.want[nu.ID] = nu
		noErr(t, "First", db.First(&got, nu.ID).Error)
		sameUser(t, "FirstOrCreate with Assign", got, nu)
	})
	r.step(t, "FirstOrInit", func(t *testing.T, db *gorm.DB) {
		var found gormUser
		noErr(t, "FirstOrInit (found)", db.Where(&gormUser{Email: lookup(u2.Email)}).FirstOrInit(&found).Error)
		sameUser(t, "FirstOrInit found", found, u2)
		e := "Init.Only." + r.tag + "@example.com"
		r.p.remember(e)
		var init gormUser
		noErr(t, "FirstOrInit (not found)", db.Where(&gormUser{Email: e}).Attrs(gormUser{OrgID: r.org, Name: "init"}).FirstOrInit(&init).Error)
		if init.ID != 0 || init.Email != e || init.OrgID != r.org {
			t.Errorf("FirstOrInit (not found): %+v", init)
		}
		var n int64
		noErr(t, "Count", db.Model(&gormUser{}).Where("email = ?", e).Count(&n).Error)
		if n != 0 {
			t.Errorf("FirstOrInit wrote a row")
		}
	})

	// Associations.
	r.step(t, "Create contacts", func(t *testing.T, db *gorm.DB) {
		cs := []gormContact{
			{OrgID: r.org, Email: lookup(u2.Email), Note: sp("note-a-" + r.tag + " Zoë")},
			{OrgID: r.org, Email: "Other.Contact." + r.tag + "@example.net", Note: sp("note-b-" + r.tag)},
		}
		for _, c := range cs {
			r.p.remember(strings.TrimSpace(c.Email), *c.Note)
		}
		noErr(t, "Create(contacts)", db.Create(&cs).Error)
	})
	r.step(t, "Preload", func(t *testing.T, db *gorm.DB) {
		var o gormOrg
		err := db.Preload("Users", func(db *gorm.DB) *gorm.DB { return db.Order("users.id") }).First(&o, r.org).Error
		noErr(t, "Preload(Users).First(org)", err)
		want := r.wantSorted()
		if o.Name != fmt.Sprintf("org %d", r.org) || len(o.Users) != len(want) {
			t.Fatalf("Preload: org %q with %v, want %v", o.Name, gormNames(o.Users), gormNames(want))
		}
		for i := range want {
			sameUser(t, "Preload(Users)", o.Users[i], want[i])
		}
		var us []gormUser
		noErr(t, "Preload(Contacts)", db.Preload("Contacts", func(db *gorm.DB) *gorm.DB { return db.Order("contacts.id") }).
			Where("id IN ?", []int64{u2.ID, u3.ID}).Order("id").Find(&us).Error)
		if len(us) != 2 || len(us[0].Contacts) != 2 || len(us[1].Contacts) != 2 {
			t.Fatalf("Preload(Contacts): %+v", us)
		}
		if c := us[1].Contacts[0]; c.Email != lookup(u2.Email) || c.Note == nil || *c.Note != "note-a-"+r.tag+" Zoë" {
			t.Errorf("Preload(Contacts): first contact %q %s", c.Email, fmtPtr(c.Note))
		}
	})
	r.step(t, "Joins", func(t *testing.T, db *gorm.DB) {
		var u gormUser
		noErr(t, "Joins(Org)", db.Joins("Org").Where("users.email = ?", lookup(u2.Email)).First(&u).Error)
		sameUser(t, "Joins(Org)", u, u2)
		if u.Org == nil || u.Org.ID != r.org || u.Org.Name != fmt.Sprintf("org %d", r.org) {
			t.Errorf("Joins(Org): org %+v", u.Org)
		}
		var cs []gormContact
		noErr(t, "Joins(Org) on contacts", db.Joins("Org").Where("contacts.org_id = ?", r.org).Order("contacts.id").Find(&cs).Error)
		if len(cs) != 2 || cs[0].Org == nil || cs[0].Org.ID != r.org || cs[1].Note == nil || *cs[1].Note != "note-b-"+r.tag {
			t.Errorf("Joins(Org) on contacts: %+v", cs)
		}
		// A join on the shared blind index (users.email = contacts.email).
		var rows []struct {
			Name string
			Note string
		}
		noErr(t, "Joins on email", db.Table("users").Select("users.name, contacts.note").
			Joins("JOIN contacts ON contacts.email = users.email").Where("users.org_id = ?", r.org).Order("users.id").Scan(&rows).Error)
		if len(rows) != 1 || rows[0].Name != u2.Name || rows[0].Note != "note-a-"+r.tag+" Zoë" {
			t.Errorf("JOIN contacts ON contacts.email = users.email: %+v, want %s with its note", rows, u2.Name)
		}
	})

	// Transactions.
	r.step(t, "Transaction rolled back", func(t *testing.T, db *gorm.DB) {
		rolled := r.user(12, "Rolled")
		p := "ph-rolled-" + r.tag
		r.p.remember(p)
		errRollback := errors.New("roll back")
		err := db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Create(&rolled).Error; err != nil {
				return err
			}
			if err := tx.Model(&gormUser{ID: u2.ID}).Update("phone", p).Error; err != nil {
				return err
			}
			var got gormUser
			if err := tx.Where("email = ?", lookup(rolled.Email)).First(&got).Error; err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatalf("Transaction: %s, want the function's error", describePgErr(err))
		}
		var n int64
		noErr(t, "Count", db.Model(&gormUser{}).Where("email = ?", rolled.Email).Count(&n).Error)
		var got gormUser
		noErr(t, "First", db.First(&got, u2.ID).Error)
		if n != 0 {
			t.Errorf("the rolled-back row is there")
		}
		sameUser(t, "after a rollback", got, u2)
	})
	r.step(t, "Transaction committed", func(t *testing.T, db *gorm.DB) {
		c := r.user(13, "Committed")
		s := "ssn-committed-" + r.tag
		r.p.remember(s)
		err := db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Create(&c).Error; err != nil {
				return err
			}
			return tx.Model(&gormUser{ID: u4.ID}).Updates(map[string]interface{}{"ssn": s}).Error
		})
		noErr(t, "Transaction", err)
		r.want[c.ID] = c
		u4.SSN = sp(s)
		r.want[u4.ID] = u4
		var got gormUser
		noErr(t, "First by ssn", db.Where("ssn = ?", s).First(&got).Error)
		sameUser(t, "after a commit", got, u4)
	})
	r.step(t, "SavePoint RollbackTo", func(t *testing.T, db *gorm.DB) {
		a, b := r.user(14, "SpKept"), r.user(15, "SpDropped")
		tx := db.Begin()
		noErr(t, "Begin", tx.Error)
		defer tx.Rollback()
		noErr(t, "Create a", tx.Create(&a).Error)
		noErr(t, "SavePoint", tx.SavePoint("sp1").Error)
		noErr(t, "Create b", tx.Create(&b).Error)
		var x []gormUser
		// Refused inside the savepoint: the transaction is aborted until
		// RollbackTo.
		wantRefused(t, tx.Where("org_id = ?", r.org).Order("email").Find(&x).Error, "0A000", "users", "email")
		noErr(t, "RollbackTo", tx.RollbackTo("sp1").Error)
		var got gormUser
		noErr(t, "First a in the transaction", tx.Where("email = ?", lookup(a.Email)).First(&got).Error)
		noErr(t, "Commit", tx.Commit().Error)
		r.want[a.ID] = a
		sameUser(t, "kept before the savepoint", got, a)
		var n int64
		noErr(t, "Count b", db.Model(&gormUser{}).Where("email = ?", b.Email).Count(&n).Error)
		if n != 0 {
			t.Errorf("the row created after the savepoint survived RollbackTo")
		}
	})

	// Raw SQL through GORM.
	r.step(t, "Raw Scan", func(t *testing.T, db *gorm.DB) {
		var got gormUser
		noErr(t, "Raw", db.Raw("SELECT * FROM users WHERE email = ? AND org_id = ?", lookup(u3.Email), r.org).Scan(&got).Error)
		sameUser(t, "Raw(SELECT *).Scan", got, u3)
		var row struct {
			Email    string
			APIToken int64
		}
		noErr(t, "Raw", db.Raw("SELECT email, api_token FROM users WHERE email = @e", sql.Named("e", lookup(u4.Email))).Scan(&row).Error)
		if row.Email != u4.Email || row.APIToken != u4.APIToken {
			t.Errorf("Raw(named): %+v, want %s %d", row, u4.Email, u4.APIToken)
		}
	})
	r.step(t, "Exec UPDATE", func(t *testing.T, db *gorm.DB) {
		p := "ph-exec-" + r.tag + "-555-0142"
		r.p.remember(p)
		res := db.Exec("UPDATE users SET phone = ? WHERE email = ?", p, lookup(u4.Email))
		noErr(t, "Exec(UPDATE)", res.Error)
		if res.RowsAffected != 1 {
			t.Errorf("Exec(UPDATE): %d rows", res.RowsAffected)
		}
		u4.Phone = sp(p)
		r.want[u4.ID] = u4
		var got gormUser
		noErr(t, "First", db.First(&got, u4.ID).Error)
		sameUser(t, "after Exec(UPDATE)", got, u4)
	})

	// More of GORM's query builder.
	r.step(t, "Not Or map conditions", func(t *testing.T, db *gorm.DB) {
		var got []gormUser
		noErr(t, "Or", db.Where("email = ?", lookup(u2.Email)).Or("ssn = ?", *u3.SSN).Order("id").Find(&got).Error)
		if len(got) != 2 || got[0].ID != u2.ID || got[1].ID != u3.ID {
			t.Errorf("Where(email).Or(ssn): %v, want [%s %s]", gormNames(got), u2.Name, u3.Name)
		}
		noErr(t, "Not", db.Where("org_id = ?", r.org).Not(&gormUser{Email: lookup(u2.Email)}).Order("id").Find(&got).Error)
		if len(got) != len(r.want)-1 || slices.ContainsFunc(got, func(u gormUser) bool { return u.ID == u2.ID }) {
			t.Errorf("Not(&User{Email}): %v, want all but %s", gormNames(got), u2.Name)
		}
		var one gormUser
		noErr(t, "Where(map)", db.Where(map[string]interface{}{"email": lookup(u4.Email), "org_id": r.org}).First(&one).Error)
		sameUser(t, "Where(map)", one, u4)
		noErr(t, "Find by primary keys", db.Order("id").Find(&got, []int64{u2.ID, u4.ID}).Error)
		if len(got) != 2 || got[0].Email != u2.Email || got[1].Email != u4.Email {
			t.Errorf("Find(ids): %v", gormNames(got))
		}
		var sub []gormUser
		noErr(t, "Where email IN subquery", db.Where("email IN (?)", db.Table("contacts").Select("email").Where("org_id = ?", r.org)).Find(&sub).Error)
		if len(sub) != 1 || sub[0].ID != u2.ID {
			t.Errorf("Where(email IN (SELECT email FROM contacts)): %v, want [%s]", gormNames(sub), u2.Name)
		}
	})
	r.step(t, "Find into maps", func(t *testing.T, db *gorm.DB) {
		var rows []map[string]interface{}
		// Table, not Model: the values come as the driver scans them, by
		// the types pgveil's RowDescription gives.
		noErr(t, "Find(&[]map)", db.Table("users").Where("id = ?", u4.ID).Find(&rows).Error)
		if len(rows) != 1 {
			t.Fatalf("Find(&[]map): %d rows", len(rows))
		}
		m := rows[0]
		bd, _ := m["birth_date"].(time.Time)
		if m["email"] != u4.Email || m["phone"] != *u4.Phone || m["api_token"] != u4.APIToken || !bd.Equal(*u4.BirthDate) {
			t.Errorf("Find(&[]map): email %#v phone %#v api_token %#v birth_date %#v, want %q %q %d %s",
				m["email"], m["phone"], m["api_token"], m["birth_date"], u4.Email, *u4.Phone, u4.APIToken, u4.BirthDate.Format("2006-01-02"))
		}
	})
	r.step(t, "FindInBatches", func(t *testing.T, db *gorm.DB) {
		var seen []string
		var batch []gormUser
		res := db.Where("org_id = ?", r.org).FindInBatches(&batch, 2, func(tx *gorm.DB, n int) error {
			for _, u := range batch {
				seen = append(seen, u.Email)
			}
			return nil
		})
		noErr(t, "FindInBatches", res.Error)
		var want []string
		for _, u := range r.wantSorted() {
			want = append(want, u.Email)
		}
		if !slices.Equal(seen, want) {
			t.Errorf("FindInBatches: %q, want %q", seen, want)
		}
	})
	r.step(t, "Association Find", func(t *testing.T, db *gorm.DB) {
		var cs []gormContact
		u := u2
		noErr(t, "Association(Contacts).Find", db.Model(&u).Association("Contacts").Find(&cs))
		if len(cs) != 2 {
			t.Errorf("Association(Contacts).Find: %d contacts, want 2", len(cs))
		}
		if n := db.Model(&u).Association("Contacts").Count(); n != 2 {
			t.Errorf("Association(Contacts).Count: %d, want 2", n)
		}
	})
	r.step(t, "Returning", func(t *testing.T, db *gorm.DB) {
		p := "ph-returning-" + r.tag
		r.p.remember(p)
		var got []gormUser
		res := db.Model(&got).Clauses(clause.Returning{}).Where("id = ?", u3.ID).Update("phone", p)
		noErr(t, "Update RETURNING *", res.Error)
		u3.Phone = sp(p)
		r.want[u3.ID] = u3
		if len(got) != 1 {
			t.Fatalf("UPDATE … RETURNING *: %d rows", len(got))
		}
		sameUser(t, "UPDATE … RETURNING *", got[0], u3)
		nu := r.user(16, "Returned")
		noErr(t, "Create RETURNING *", db.Clauses(clause.Returning{}).Create(&nu).Error)
		r.want[nu.ID] = nu
		var back gormUser
		noErr(t, "First", db.First(&back, nu.ID).Error)
		sameUser(t, "Create RETURNING *", back, nu)
		var deleted []gormUser
		noErr(t, "Delete RETURNING *", db.Clauses(clause.Returning{}).Where("email = ?", lookup(nu.Email)).Delete(&deleted).Error)
		delete(r.want, nu.ID)
		if len(deleted) != 1 {
			t.Fatalf("DELETE … RETURNING *: %d rows", len(deleted))
		}
		sameUser(t, "DELETE … RETURNING *", deleted[0], nu)
	})
	r.step(t, "Updates by email", func(t *testing.T, db *gorm.DB) {
		s := "ssn-by-email-" + r.tag
		r.p.remember(s)
		res := db.Model(&gormUser{}).Where("email = ?", lookup(u2.Email)).Updates(map[string]interface{}{"ssn": s, "name": "g2b " + r.tag})
		noErr(t, "Where(email).Updates", res.Error)
		if res.RowsAffected != 1 {
			t.Errorf("Where(email).Updates: %d rows", res.RowsAffected)
		}
		u2.SSN, u2.Name = sp(s), "g2b "+r.tag
		r.want[u2.ID] = u2
		var got gormUser
		noErr(t, "First", db.First(&got, u2.ID).Error)
		sameUser(t, "after Where(email).Updates", got, u2)
		res = db.Model(&gormUser{}).Where("email = ?", "absent."+r.tag+"@example.org").Update("phone", "ph-none-"+r.tag)
		r.p.remember("ph-none-" + r.tag)
		noErr(t, "Update of no row", res.Error)
		if res.RowsAffected != 0 {
			t.Errorf("Update of no row: %d rows", res.RowsAffected)
		}
	})
	r.step(t, "Upsert batch UpdateAll", func(t *testing.T, db *gorm.DB) {
		a := r.user(17, "BatchUp")
		a.Email = lookup(u4.Email) // conflicts with u4
		b := r.user(18, "BatchNew")
		us := []gormUser{a, b}
		res := db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "email"}}, UpdateAll: true}).Create(&us)
		noErr(t, "multi-row upsert", res.Error)
		if us[0].ID != u4.ID || us[1].ID == 0 {
			t.Errorf("multi-row upsert: ids %d %d, want %d and a new one", us[0].ID, us[1].ID, u4.ID)
		}
		a.ID, b.ID = u4.ID, us[1].ID
		u4 = a
		r.want[a.ID], r.want[b.ID] = a, b
		for _, u := range []gormUser{a, b} {
			var got gormUser
			noErr(t, "First", db.First(&got, u.ID).Error)
			sameUser(t, "after the multi-row upsert", got, u)
		}
	})
	r.step(t, "Save moves to another tenant", func(t *testing.T, db *gorm.DB) {
		m := r.user(19, "Mover")
		noErr(t, "Create", db.Create(&m).Error)
		// Update("org_id") alone would keep the values sealed under the
		// old tenant: refused (docs/SQL.md, "Tenant moves").
		err := db.Model(&gormUser{ID: m.ID}).Update("org_id", r.org+10).Error
		wantRefused(t, err, "0A000", "users", "org_id")
		// Save writes every column, so the values are sealed anew.
		m.OrgID = r.org + 10
		noErr(t, "Save with a new org_id", db.Save(&m).Error)
		var got gormUser
		noErr(t, "First", db.First(&got, m.ID).Error)
		sameUser(t, "after the move", got, m)
		noErr(t, "Delete", db.Delete(&m).Error)
	})

	r.step(t, "Duplicate email", func(t *testing.T, db *gorm.DB) {
		d := r.user(20, "Dup")
		d.Email = strings.ToLower(u4.Email) // the UNIQUE blind index
		err := db.Create(&d).Error
		if sqlState(err) != "23505" || pgErr(err).ConstraintName != "users_email_bidx_key" {
			t.Errorf("Create with a duplicate email: %s, want 23505 on users_email_bidx_key", describePgErr(err))
		}
		if !errors.Is(postgres.Dialector{}.Translate(err), gorm.ErrDuplicatedKey) {
			t.Errorf("the dialect does not translate it to gorm.ErrDuplicatedKey: %v", err)
		}
	})
	r.step(t, "Locking Row Select Create", func(t *testing.T, db *gorm.DB) {
		err := db.Transaction(func(tx *gorm.DB) error {
			var got gormUser
			if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("email = ?", lookup(u3.Email)).First(&got).Error; err != nil {
				return err
			}
			sameUser(t, "SELECT … FOR UPDATE", got, u3)
			return nil
		})
		noErr(t, "FOR UPDATE", err)
		var email string
		var tok int64
		noErr(t, "Raw.Row", db.Raw("SELECT email, api_token FROM users WHERE id = ?", u3.ID).Row().Scan(&email, &tok))
		if email != u3.Email || tok != u3.APIToken {
			t.Errorf("Raw.Row: %q %d, want %q %d", email, tok, u3.Email, u3.APIToken)
		}
		part := r.user(21, "Partial")
		noErr(t, "Select(cols).Create", db.Select("org_id", "name", "email", "api_token").Create(&part).Error)
		part.Phone, part.SSN, part.BirthDate = nil, nil, nil
		r.want[part.ID] = part
		var got gormUser
		noErr(t, "First", db.First(&got, part.ID).Error)
		sameUser(t, "Select(cols).Create", got, part)
	})
	r.step(t, "Save of a new record with its id", func(t *testing.T, db *gorm.DB) {
		// Save with a primary key no row has: GORM's UPDATE matches no
		// row, then it inserts with ON CONFLICT ("id") DO UPDATE.
		nu := r.user(22, "SavedNew")
		nu.ID = 900000000 + r.org
		res := db.Save(&nu)
		noErr(t, "Save(new with id)", res.Error)
		r.want[nu.ID] = nu
		var got gormUser
		noErr(t, "First", db.First(&got, nu.ID).Error)
		sameUser(t, "Save(new with id)", got, nu)
	})
	r.step(t, "Dates in other zones", func(t *testing.T, db *gorm.DB) {
		// A date built in the application's zone: the date is its own
		// year, month and day, as PostgreSQL reads '1971-03-04 00:00:00+02'.
		east, west := r.user(23, "East"), r.user(24, "West")
		east.BirthDate = &[]time.Time{time.Date(1971, 3, 4, 0, 0, 0, 0, time.FixedZone("EET", 2*3600))}[0]
		west.BirthDate = &[]time.Time{time.Date(1972, 5, 6, 23, 30, 0, 0, time.FixedZone("EST", -5*3600))}[0]
		r.p.remember("1971-03-04", "1972-05-06")
		us := []gormUser{east, west}
		noErr(t, "Create", db.Create(&us).Error)
		for i := range us {
			// What the same GORM configuration stores in a date directly
			// (pgx's simple protocol sends a time.Time in UTC).
			var d time.Time
			noErr(t, "the date directly", r.direct.Raw("SELECT CAST(? AS date)", *us[i].BirthDate).Scan(&d).Error)
			want := d.Format("2006-01-02")
			var got gormUser
			noErr(t, "First", db.First(&got, us[i].ID).Error)
			if got.BirthDate == nil || got.BirthDate.Format("2006-01-02") != want {
				t.Errorf("%s: birth_date %v read back, want %s as directly (written as %s)", us[i].Name, got.BirthDate, want, us[i].BirthDate)
			}
			u := us[i]
			u.BirthDate = &d
			r.p.remember(want)
			r.want[u.ID] = u
		}
	})
	r.step(t, "Update by tenant", func(t *testing.T, db *gorm.DB) {
		// A bulk update that names the tenant in its WHERE.
		tok := -(8675309000000000 + r.org*1000 + 88)
		r.p.remember(strconv.FormatInt(tok, 10))
		res := db.Model(&gormUser{}).Where("org_id = ? AND name LIKE ?", r.org, "g% "+r.tag).Update("api_token", tok)
		noErr(t, "Where(org_id).Update", res.Error)
		n := 0
		for id, u := range r.want {
			if strings.HasPrefix(u.Name, "g") && strings.HasSuffix(u.Name, " "+r.tag) {
				u.APIToken = tok
				r.want[id] = u
				n++
			}
		}
		if res.RowsAffected != int64(n) {
			t.Errorf("Where(org_id).Update: %d rows, want %d", res.RowsAffected, n)
		}
		var got []gormUser
		noErr(t, "Find by token?", db.Where("org_id = ?", r.org).Order("id").Find(&got).Error)
		want := r.wantSorted()
		if len(got) != len(want) {
			t.Fatalf("%v, want %v", gormNames(got), gormNames(want))
		}
		for i := range got {
			sameUser(t, "after the bulk update", got[i], want[i])
		}
		// Over every tenant (GORM's AllowGlobalUpdate): refused, nothing
		// changes. Another tenant has a row first.
		other := r.user(25, "OtherTenant")
		other.OrgID = r.org + 10
		noErr(t, "Create in another tenant", db.Create(&other).Error)
		defer func() { noErr(t, "Delete", db.Delete(&other).Error) }()
		err := db.Session(&gorm.Session{AllowGlobalUpdate: true}).Model(&gormUser{}).Update("phone", "ph-global-"+r.tag).Error
		r.p.remember("ph-global-" + r.tag)
		if sqlState(err) != "0A000" || !strings.Contains(pgErr(err).Message, "more than one tenant") {
			t.Errorf("UPDATE of every tenant's rows: %s, want 0A000 (more than one tenant)", describePgErr(err))
		}
	})

	// What the database cannot do on ciphertext: refused, naming the
	// table and column (docs/SQL.md, "Refused").
	r.step(t, "Refused", func(t *testing.T, db *gorm.DB) {
		like, ph := "refused-like-"+r.tag, "refused-phone-"+r.tag
		r.p.remember(like, ph)
		var x []gormUser
		wantRefused(t, db.Order("email").Find(&x, "org_id = ?", r.org).Error, "0A000", "users", "email")
		wantRefused(t, db.Where("email LIKE ?", like+"%").Find(&x).Error, "0A000", "users", "email")
		wantRefused(t, db.Where("phone = ?", ph).Find(&x).Error, "0A000", "users", "phone")
		wantRefused(t, db.Where("birth_date = ?", gormDate(1953, 4, 4)).Find(&x).Error, "0A000", "users", "birth_date")
		var emails []string
		wantRefused(t, db.Model(&gormUser{}).Distinct("email").Pluck("email", &emails).Error, "0A000", "users", "email")
		wantRefused(t, db.Model(&gormUser{}).Select("email, count(*)").Group("email").Find(&[]map[string]interface{}{}).Error, "0A000", "users", "email")
		var n int64
		noErr(t, "the connection still works", db.Model(&gormUser{}).Where("org_id = ?", r.org).Count(&n).Error)
		if n != int64(len(r.want)) {
			t.Errorf("%d users, want %d", n, len(r.want))
		}
	})
}

// cancel runs a slow query through GORM and cancels its context: pgx
// sends a CancelRequest (through pgveil) and the server stops it.
func (r *gormRun) cancel(t *testing.T, ctx context.Context, url string, simple, prepare bool) {
	t.Run("context cancel", func(t *testing.T) {
		cfg, err := pgx.ParseConfig(url)
		noErr(t, "ParseConfig", err)
		cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
			return &pgconn.CancelRequestContextWatcherHandler{Conn: c, CancelRequestDelay: 0, DeadlineDelay: 10 * time.Second}
		}
		if simple {
			cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		}
		sqlDB := stdlib.OpenDB(*cfg)
		defer sqlDB.Close()
		sqlDB.SetMaxOpenConns(1)
		db, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{PrepareStmt: prepare, Logger: r.log})
		noErr(t, "gorm.Open", err)
		app := cfg.RuntimeParams["application_name"]
		su := superConn(t, ctx)
		qctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			var got []gormUser
			done <- db.WithContext(qctx).Where("org_id = ? AND pg_sleep(60) IS NOT NULL", r.org).Find(&got).Error
		}()
		pid := waitActive(t, ctx, su, app, "pg_sleep(60)")
		start := time.Now()
		cancel()
		err = <-done
		if err == nil || (sqlState(err) != "57014" && !errors.Is(err, context.Canceled)) {
			t.Errorf("cancelled query: %s, want 57014 or context.Canceled", describePgErr(err))
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Errorf("the cancelled query returned after %v", d)
		}
		waitFor(t, 15*time.Second, "the backend to stop running pg_sleep", func() (bool, error) {
			var active bool
			err := su.QueryRow(ctx, `SELECT coalesce(bool_or(state = 'active'), false) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&active)
			return err == nil && !active, err
		})
		var n int64
		noErr(t, "the same GORM DB after the cancel", db.Model(&gormUser{}).Where("org_id = ?", r.org).Count(&n).Error)
		if n != int64(len(r.want)) {
			t.Errorf("%d users after the cancel, want %d", n, len(r.want))
		}
	})
}

// verify reads the org back through pgveil with pgx, another driver.
func (r *gormRun) verify(t *testing.T, ctx context.Context) {
	t.Run("read back with pgx", func(t *testing.T) {
		conn := connectPgx(t, ctx, r.p.url())
		var want [][]*string
		for _, u := range r.wantSorted() {
			want = append(want, userRow(u))
		}
		compareRows(t, fmt.Sprintf("users of org %d read back through pgveil with pgx", r.org), selectUsers(t, ctx, conn, r.org), want)
	})
}

// automigrate runs AutoMigrate through pgveil as the tables' owner: on
// the encrypted users table (models as declared, so nothing to change;
// and a model whose birth_date is a timestamp, which GORM wants to
// ALTER: refused), then on a brand-new plain table.
func (r *gormRun) automigrate(t *testing.T, ctx context.Context, runs []*gormRun) {
	physical := func(t *testing.T) map[string]string {
		t.Helper()
		rows, err := superConn(t, ctx).Query(ctx, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
			WHERE attrelid = 'public.users'::regclass AND attnum > 0 AND NOT attisdropped`)
		noErr(t, "pg_attribute", err)
		out := map[string]string{}
		for rows.Next() {
			var n, ty string
			noErr(t, "scan", rows.Scan(&n, &ty))
			out[n] = ty
		}
		return out
	}
	before := physical(t)
	for _, c := range []string{"email", "phone", "ssn", "birth_date", "api_token", "email_bidx", "ssn_bidx"} {
		if before[c] != "bytea" {
			t.Fatalf("users.%s is %q before AutoMigrate, want bytea", c, before[c])
		}
	}
	ddl := func(stmts []string) []string {
		var out []string
		for _, s := range stmts {
			u := strings.ToUpper(strings.TrimSpace(s))
			for _, w := range []string{"ALTER", "CREATE", "DROP", "COMMENT"} {
				if strings.HasPrefix(u, w) {
					out = append(out, s)
				}
			}
		}
		return out
	}
	readable := func(t *testing.T) {
		t.Helper()
		for _, o := range runs {
			conn := connectPgx(t, ctx, r.p.url())
			var want [][]*string
			for _, u := range o.wantSorted() {
				want = append(want, userRow(u))
			}
			compareRows(t, fmt.Sprintf("org %d read through pgveil after AutoMigrate", o.org), selectUsers(t, ctx, conn, o.org), want)
		}
	}

	r.step(t, "AutoMigrate users as declared", func(t *testing.T, db *gorm.DB) {
		n := r.log.mark()
		err := db.AutoMigrate(&gormUser{})
		sent := ddl(r.log.since(n))
		t.Logf("AutoMigrate(&User{}) sent %d DDL statement(s):\n  %s", len(sent), strings.Join(sent, "\n  "))
		noErr(t, "AutoMigrate(&User{}) on the encrypted table", err)
		// Through pgveil the catalog shows the logical types, so GORM
		// changes no column; it only adds the foreign key of Org's
		// has-many (as it would on the plaintext table).
		if len(sent) != 1 || !strings.HasPrefix(sent[0], `ALTER TABLE "users" ADD CONSTRAINT "fk_orgs_users" FOREIGN KEY ("org_id") REFERENCES "orgs"("id")`) {
			t.Errorf("AutoMigrate(&User{}) sent %q, want only the fk_orgs_users foreign key", sent)
		}
		for _, s := range sent {
			for _, c := range []string{"email", "phone", "ssn", "birth_date", "api_token"} {
				if strings.Contains(s, `"`+c+`"`) {
					t.Errorf("AutoMigrate sent DDL on encrypted column %s: %s", c, s)
				}
			}
		}
		if after := physical(t); !mapsEqual(after, before) {
			t.Errorf("users' physical columns changed: %v, were %v", after, before)
		}
		readable(t)
		// Through pgveil GORM's reflection sees the logical types.
		cts, err := db.Migrator().ColumnTypes(&gormUser{})
		noErr(t, "ColumnTypes", err)
		got := map[string]string{}
		for _, ct := range cts {
			got[ct.Name()] = strings.ToLower(ct.DatabaseTypeName())
		}
		for c, w := range map[string]string{"email": "text", "phone": "text", "ssn": "text", "birth_date": "date", "api_token": "int8", "email_bidx": "bytea"} {
			if got[c] != w {
				t.Errorf("ColumnTypes through pgveil: %s is %q, want %q", c, got[c], w)
			}
		}
	})
	r.step(t, "AutoMigrate users with a timestamp birth_date", func(t *testing.T, db *gorm.DB) {
		n := r.log.mark()
		err := db.AutoMigrate(&gormUserTimestamp{})
		t.Logf("AutoMigrate(&UserTimestamp{}) sent:\n  %s", strings.Join(ddl(r.log.since(n)), "\n  "))
		// GORM wants ALTER TABLE "users" ALTER COLUMN "birth_date" TYPE
		// timestamptz: an encrypted column keeps its type (docs/SQL.md,
		// "ALTER COLUMN … TYPE of such a column": 0A000).
		wantRefused(t, err, "0A000", "users", "birth_date")
		if sent := ddl(r.log.since(n)); len(sent) != 1 || !strings.HasPrefix(sent[0], `ALTER TABLE "users" ALTER COLUMN "birth_date" TYPE timestamptz`) {
			t.Errorf("AutoMigrate(&UserTimestamp{}) sent %q, want one ALTER COLUMN birth_date TYPE timestamptz", sent)
		}
		if after := physical(t); !mapsEqual(after, before) {
			t.Errorf("users' physical columns changed: %v, were %v", after, before)
		}
		readable(t)
	})
	r.step(t, "AutoMigrate a new plain table", func(t *testing.T, db *gorm.DB) {
		noErr(t, "AutoMigrate(&Widget{})", db.AutoMigrate(&gormWidget{}))
		noErr(t, "AutoMigrate(&Widget{}) again", db.AutoMigrate(&gormWidget{}))
		ws := []gormWidget{{Label: "bolt", Qty: 3}, {Label: "nut", Qty: 5}}
		noErr(t, "Create widgets", db.Create(&ws).Error)
		var got []gormWidget
		noErr(t, "Find widgets", db.Order("id").Find(&got).Error)
		if len(got) != 2 || got[0].Label != "bolt" || got[1].Qty != 5 {
			t.Errorf("widgets: %+v", got)
		}
		noErr(t, "DropTable", db.Migrator().DropTable(&gormWidget{}))
		if db.Migrator().HasTable(&gormWidget{}) {
			t.Errorf("gorm_widgets still there after DropTable")
		}
	})
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
