package integration

// The Python ORMs through pgveil: SQLAlchemy 1.4 (psycopg2 dialect) and
// Django 3.2, the versions Debian ships (python3-sqlalchemy,
// python3-django), each driving the suite's schema with models declared
// as the application had them before adopting pgveil (text, date and
// bigint fields over what are now bytea columns). The programs assert
// every step themselves, refusals included (docs/SQL.md: SQLSTATE 0A000
// and a message naming the table and the column); the Go side then reads
// the rows back through pgveil with pgx and scans the tables directly.

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ormValues are the values the ORM programs write and look up beyond the
// suite's encSpec (whose users, lookups, update, upsert, doomed row and
// contacts they reuse).
type ormValues struct {
	// SSNLookup finds SSNName (u2) through the ssn blind index.
	SSNLookup string `json:"ssn_lookup"`
	SSNName   string `json:"ssn_name"`
	// Org2Rows go into CopyOrg in one multi-row INSERT; a bulk UPDATE by
	// org_id then sets every phone of that org to BulkPhone.
	Org2Rows  []encUser `json:"org2_rows"`
	BulkPhone string    `json:"bulk_phone"`
	// Doomed2 is deleted by a bulk DELETE … WHERE email = Doomed2Lookup.
	Doomed2       encUser `json:"doomed2"`
	Doomed2Lookup string  `json:"doomed2_lookup"`
	// Rolled is written in a transaction that is rolled back, where u2's
	// phone (and in SQLAlchemy u4's) is also set to RolledPhone: nothing
	// of it survives.
	Rolled      encUser `json:"rolled"`
	RolledPhone string  `json:"rolled_phone"`
	// Values carried by statements pgveil refuses.
	LikePattern string `json:"like_pattern"`
	PhoneLookup string `json:"phone_lookup"`
	// UPDATEs that write encrypted columns without naming the tenant
	// (org_id): pgveil looks it up (SELECT DISTINCT org_id … WHERE <the
	// UPDATE's WHERE>), seals under that tenant's key and guards the
	// UPDATE with org_id = <tenant>. u1's email and NewPhone come that way
	// (SQLAlchemy's flush UPDATE … WHERE users.id on the mapper keyed by
	// id, Django's save(update_fields=['phone'])), after TenantPhone was
	// written with the tenant named (org_id in the mapper's primary key,
	// update_fields=['phone', 'org']). EmailPhone is u2's final phone,
	// set by an UPDATE … WHERE email = EmailLookup. TwoTenantPhone goes
	// to the rows of TwoTenantEmails, u2 (Org) and Org2Rows[0] (CopyOrg):
	// refused (more than one tenant), nothing changes. NoRowPhone goes to
	// NoRowEmail, which no row has: UPDATE 0.
	TenantPhone     string   `json:"tenant_phone"`
	EmailLookup     string   `json:"email_lookup"`
	EmailPhone      string   `json:"email_phone"`
	TwoTenantEmails []string `json:"two_tenant_emails"`
	TwoTenantPhone  string   `json:"two_tenant_phone"`
	NoRowEmail      string   `json:"no_row_email"`
	NoRowPhone      string   `json:"no_row_phone"`
	// TempPhone is set on u4 and set back (SQLAlchemy's synchronize_session).
	TempPhone string `json:"temp_phone"`
	// BulkPhones and BulkEmails are set on u2 and u4 by one bulk_update
	// (Django: SET phone = CASE WHEN id = … THEN … END, and email with its
	// blind index by the same CASE), found by BulkEmailLookups, then set
	// back by a second bulk_update.
	BulkPhones       []string `json:"bulk_phones"`
	BulkEmails       []string `json:"bulk_emails"`
	BulkEmailLookups []string `json:"bulk_email_lookups"`
	// Reflection (SQLAlchemy), into CopyOrg. ReflectRows are written
	// through the table as reflected, with no type given (pgveil's catalog
	// overlays report text, date and bigint): text with non-ASCII, a
	// quote and a backslash, an 8-digit int (negative: a positive one
	// could turn up by chance in the hex of the at-rest scan) and int8's
	// minimum. ReflectLookup (ReflectRows[0]'s email upper-cased and
	// padded) and ReflectIn find them through the email blind index.
	// ReflectRows[0]'s phone is then set to ReflectMidPhone (its tenant in
	// the WHERE), and it is updated by ReflectLookup alone (pgveil looks
	// the tenant up) to ReflectNewEmail, ReflectNewPhone, a NULL
	// birth_date and ReflectNewToken, found again by ReflectNewLookup;
	// the same UPDATE again matches no row (UPDATE 0). ReflectDoomed is
	// inserted with them and deleted by ReflectDoomedLookup.
	ReflectRows         []encUser `json:"reflect_rows"`
	ReflectLookup       string    `json:"reflect_lookup"`
	ReflectIn           []string  `json:"reflect_in"`
	ReflectInExpect     []string  `json:"reflect_in_expect"`
	ReflectMidPhone     string    `json:"reflect_mid_phone"`
	ReflectNewEmail     string    `json:"reflect_new_email"`
	ReflectNewLookup    string    `json:"reflect_new_lookup"`
	ReflectNewPhone     string    `json:"reflect_new_phone"`
	ReflectNewToken     string    `json:"reflect_new_token"`
	ReflectDoomed       encUser   `json:"reflect_doomed"`
	ReflectDoomedLookup string    `json:"reflect_doomed_lookup"`
	// ReflectBytes is the value the program tries to write and compare as
	// bytes ('\x…'::bytea) through the reflected table: refused.
	ReflectBytes string `json:"reflect_bytes"`
	// ReflectRow is written last, through a reflected table whose
	// encrypted columns are given their types explicitly (Column
	// overrides).
	ReflectRow encUser `json:"reflect_row"`
	// ReflectFinal is CopyOrg's users after the reflection phase, by id.
	ReflectFinal []encUser `json:"reflect_final"`
	// OrgName is the name of Org in orgs (startEncProxy: "org N").
	OrgName string `json:"org_name"`
}

// ormSpec is the suite's spec plus the ORM values, as one JSON object.
type ormSpec struct {
	*encSpec
	ORM ormValues `json:"orm"`
}

// newORMSpec makes the values of one ORM's run in org and org+1000 and
// remembers every plaintext for the log check.
func newORMSpec(p *encProxy, tag string, org int64) *ormSpec {
	s := newEncSpec(p, tag, org)
	base := 8675309000000000 + org*100
	tok := func(n int64) *string { return sp(strconv.FormatInt(n, 10)) }
	o := ormValues{
		SSNLookup: *s.Users[1].SSN,
		SSNName:   s.Users[1].Name,
		Org2Rows: []encUser{
			{Name: "o2a " + tag, Email: sp("Org2.A." + tag + "@Example.org"), Phone: sp("ph-o2a-" + tag + "-555-0121"),
				SSN: sp("ssn-o2a-" + tag), Birth: sp("1964-08-12"), Token: tok(base + 21)},
			{Name: "o2b " + tag, Email: sp("Org2.B." + tag + "@example.org"), Phone: sp("ph-o2b-" + tag + " ✓")},
		},
		BulkPhone: "ph-bulk-" + tag + "-555-0142",
		Doomed2: encUser{Name: "u7 " + tag, Email: sp("Doomed.Two." + tag + "@example.com"), Phone: sp("ph-u7-" + tag),
			SSN: sp("ssn-u7-" + tag), Birth: sp("1944-04-04"), Token: tok(base + 7)},
		Rolled: encUser{Name: "rb " + tag, Email: sp("Rolled.Back." + tag + "@example.com"), Phone: sp("ph-rb-" + tag),
			SSN: sp("ssn-rb-" + tag), Birth: sp("2011-11-11"), Token: tok(base + 8)},
		RolledPhone:    "ph-rolled-back-" + tag + "-555-0166",
		LikePattern:    "refused-like-" + tag,
		PhoneLookup:    "refused-phone-eq-" + tag,
		TenantPhone:    "ph-tenant-named-" + tag + "-555-0133",
		EmailPhone:     "ph-u2b-" + tag + " Zoë ✓ 555-0134",
		TwoTenantPhone: "refused-two-tenants-" + tag,
		NoRowEmail:     "absent.lookup." + tag + "@example.org",
		NoRowPhone:     "ph-no-row-" + tag + "-555-0135",
		TempPhone:      "ph-temp-" + tag + "-555-0177",
		BulkPhones:     []string{"ph-bulk-case-u2-" + tag + " Zoë", "ph-bulk-case-u4-" + tag + ` O'Brien \ ✓`},
		BulkEmails:     []string{"Bulk.Case.U2." + tag + "@Example.org", "bulk.case.u4." + tag + "@example.org"},
		ReflectRows: []encUser{
			{Name: "rr1 " + tag, Email: sp("Réflexion.Ünï." + tag + "@Exämple.org"),
				Phone: sp("ph-rr1 Zoë 🚀 back\\slash O'Brien " + tag), SSN: sp("ssn-rr1-" + tag + `-ü\d+ \x00 'q'`),
				Birth: sp("1969-07-20"), Token: sp("-31415926")},
			{Name: "rr2 " + tag, Email: sp("reflect.two." + tag + "@example.org"), SSN: sp("ssn-rr2-" + tag + " 社会保障"),
				Birth: sp("2038-01-19"), Token: sp("-9223372036854775808")},
		},
		ReflectMidPhone: "ph-rr1-mid-" + tag + " Zoë",
		ReflectNewEmail: "Réflexion.Renamed." + tag + "@Exämple.org",
		ReflectNewPhone: "ph-rr1b-" + tag + ` naïve \ O'Neil`,
		ReflectNewToken: strconv.FormatInt(base+31, 10),
		ReflectDoomed: encUser{Name: "rr3 " + tag, Email: sp("Reflect.Doomed." + tag + "@example.org"), Phone: sp("ph-rr3-" + tag),
			SSN: sp("ssn-rr3-" + tag), Birth: sp("1911-11-11"), Token: tok(base + 33)},
		ReflectBytes: "reflect-bytes-" + tag + "@example.org",
		ReflectRow: encUser{Name: "rf " + tag, Email: sp("Reflected." + tag + "@Example.org"), Phone: sp("ph-rf-" + tag + " Zoë"),
			SSN: sp("ssn-rf-" + tag), Birth: sp("1999-09-09"), Token: tok(base + 9)},
		OrgName: "org " + strconv.FormatInt(org, 10),
	}
	o.Doomed2Lookup = strings.ToUpper(*o.Doomed2.Email)
	o.BulkEmailLookups = []string{" " + strings.ToLower(o.BulkEmails[0]), strings.ToUpper(o.BulkEmails[1]) + " "}
	o.EmailLookup = " " + strings.ToUpper(*s.Users[1].Email)
	o.TwoTenantEmails = []string{strings.ToLower(*s.Users[1].Email), strings.ToUpper(*o.Org2Rows[0].Email)}
	s.Final[1].Phone = sp(o.EmailPhone)
	rr1, rr2 := o.ReflectRows[0], o.ReflectRows[1]
	o.ReflectLookup = "  " + strings.ToUpper(*rr1.Email) + " "
	o.ReflectIn = []string{strings.ToLower(*rr2.Email), strings.ToUpper(*rr1.Email), "absent.reflect." + tag + "@example.org"}
	o.ReflectInExpect = []string{*rr1.Email, *rr2.Email}
	o.ReflectNewLookup = " " + strings.ToUpper(o.ReflectNewEmail)
	o.ReflectDoomedLookup = strings.ToUpper(*o.ReflectDoomed.Email) + "  "
	rr1.Email, rr1.Phone, rr1.Birth, rr1.Token = sp(o.ReflectNewEmail), sp(o.ReflectNewPhone), nil, sp(o.ReflectNewToken)
	spec := &ormSpec{encSpec: s, ORM: o}
	spec.ORM.ReflectFinal = spec.org2Final(rr1, rr2, o.ReflectRow)
	if p != nil {
		p.remember(spec.ORM.plaintexts()...)
	}
	return spec
}

// plaintexts are the ORM values of encrypted columns (the encSpec's are
// remembered by newEncSpec).
func (o ormValues) plaintexts() []string {
	var out []string
	add := func(vs ...*string) {
		for _, v := range vs {
			if v != nil && *v != "" {
				out = append(out, *v)
			}
		}
	}
	users := append(append([]encUser{}, o.Org2Rows...), o.Doomed2, o.Rolled, o.ReflectDoomed, o.ReflectRow)
	for _, u := range append(users, o.ReflectRows...) {
		add(u.Email, u.Phone, u.SSN, u.Birth, u.Token)
	}
	add(&o.BulkPhone, &o.Doomed2Lookup, &o.RolledPhone, &o.LikePattern, &o.PhoneLookup, &o.TenantPhone, &o.EmailPhone,
		&o.TwoTenantPhone, &o.NoRowEmail, &o.NoRowPhone, &o.TempPhone, &o.ReflectBytes, &o.ReflectMidPhone,
		&o.ReflectNewEmail, &o.ReflectNewPhone, &o.ReflectNewToken)
	lookups := append([]string{o.ReflectLookup, o.ReflectNewLookup, o.ReflectDoomedLookup, o.EmailLookup}, o.ReflectIn...)
	for _, v := range append(append(append(lookups, o.TwoTenantEmails...), o.BulkPhones...), o.BulkEmails...) {
		add(sp(strings.TrimSpace(v)))
	}
	return out
}

// org2Final is CopyOrg's users after the ORM scenario: the multi-row
// insert with the bulk phone, and what more is given.
func (s *ormSpec) org2Final(more ...encUser) []encUser {
	var out []encUser
	for _, u := range s.ORM.Org2Rows {
		u.Phone = sp(s.ORM.BulkPhone)
		out = append(out, u)
	}
	return append(out, more...)
}

// writeJSON writes the spec for an ORM program: the encSpec's fields and
// "orm".
func (s *ormSpec) writeJSON(t *testing.T) string {
	t.Helper()
	return writeSpecJSON(t, s)
}

// logORMInfo logs the "info …" lines of an ORM program: what the ORM
// sent and what it did with a value, the facts an adopting team needs.
func logORMInfo(t *testing.T, out string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "info ") {
			t.Log(line)
		}
	}
}

// verifyORM reads both orgs back through pgveil with pgx (the scenario's
// users and contacts of Org, and org2 of CopyOrg) and scans every table
// directly for plaintext.
func verifyORM(t *testing.T, ctx context.Context, p *encProxy, s *ormSpec, org2 []encUser) {
	t.Helper()
	verifyThroughProxy(t, ctx, p, s.encSpec)
	conn := connectPgx(t, ctx, p.url())
	compareUsers(t, "users of org "+strconv.FormatInt(s.CopyOrg, 10)+" read back through pgveil", selectUsers(t, ctx, conn, s.CopyOrg), org2)
	verifyAtRest(t, ctx, append(s.plaintexts(), s.ORM.plaintexts()...))
}

// TestEncSQLAlchemy runs SQLAlchemy 1.4 (future=True, psycopg2 dialect)
// through pgveil: declarative models with String/Date/BigInteger for the
// encrypted columns, the ORM Session (INSERT … RETURNING id, executemany,
// select/where/in_/filter_by, session.get, flush UPDATEs, bulk update and
// delete, rollback, relationships and joins on the shared email index
// key), Core multi-row insert, ON CONFLICT, text(), refusals. The mapper's
// primary key is id, as the application declared it: its flush UPDATE …
// WHERE users.id = … and a bulk update by email do not name the tenant,
// and pgveil looks it up (an update over two tenants' rows is refused and
// changes nothing, one matching no row gives rowcount 0); a mapper with
// org_id in its primary key, the workaround before lookups, still works.
// Then the same table reflected from the database with no type given:
// through pgveil's catalog overlays the encrypted columns reflect as TEXT,
// DATE and BIGINT (their blind indexes as BYTEA), and Core on the
// reflected table (and an automap class) writes, reads, looks up, updates
// (with the tenant in the WHERE and without) and deletes exact values;
// last, a row through the table reflected with Column overrides.
func TestEncSQLAlchemy(t *testing.T) {
	relayLeakCheck(t)
	pythonDriver(t, "psycopg2")
	dir := pythonDriver(t, "sqlalchemy")
	const org = 161
	p := startEncProxy(t, encOrgs(org, 1)...)
	ctx := testCtx(t, 3*time.Minute)
	s := newORMSpec(p, "sqlalchemy", org)
	spec := s.writeJSON(t)
	t.Run("declarative", func(t *testing.T) {
		logORMInfo(t, runDriver(t, ctx, "SQLAlchemy", dir, debianPython, "sqlalchemy_scenario.py", spec, "scenario"))
		verifyORM(t, ctx, p, s, s.org2Final())
	})
	t.Run("reflection", func(t *testing.T) {
		logORMInfo(t, runDriver(t, ctx, "SQLAlchemy reflection", dir, debianPython, "sqlalchemy_scenario.py", spec, "reflect"))
		verifyORM(t, ctx, p, s, s.ORM.ReflectFinal)
	})
}

// TestEncDjango runs the Django 3.2 ORM standalone through pgveil:
// unmanaged models over the suite's tables with EmailField, CharField,
// DateField and BigIntegerField for the encrypted columns and foreign
// keys to orgs; create, bulk_create, get/filter/exists/count, save(),
// update_or_create, queryset update and delete, transaction.atomic,
// values_list, select_related, prefetch_related, subqueries on the shared
// email index key, bulk_update (SET … = CASE WHEN id = … THEN … END,
// sealed per result, the blind index by the same CASE), and the refusals
// an adopting team meets (bulk_update of the tenant column, an update over
// two tenants' rows); save(update_fields=['phone'])
// and filter(email=…).update(…) need not name the tenant (pgveil looks it
// up; no row matched updates 0 rows); its introspection
// (get_table_description, inspectdb) reports TextField, DateField and
// BigIntegerField for the encrypted columns.
func TestEncDjango(t *testing.T) {
	relayLeakCheck(t)
	pythonDriver(t, "psycopg2")
	dir := pythonDriver(t, "django")
	const org = 171
	p := startEncProxy(t, encOrgs(org, 1)...)
	ctx := testCtx(t, 3*time.Minute)
	s := newORMSpec(p, "django", org)
	logORMInfo(t, runDriver(t, ctx, "Django", dir, debianPython, "django_scenario.py", s.writeJSON(t)))
	verifyORM(t, ctx, p, s, s.org2Final())
}
