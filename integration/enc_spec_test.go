package integration

// The spec of one driver's run: the values every driver writes, the
// lookups it makes and what each returns, in a form programs in other
// languages read (JSON, or Java properties).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/pgveil/pgveil/integration/harness"
)

// encUser is one users row as the scenario writes it. Nullable columns are
// pointers; dates are YYYY-MM-DD and tokens decimal, so that every driver
// (JavaScript has no int64) reads the same spec.
type encUser struct {
	Name  string  `json:"name"`
	Email *string `json:"email"`
	Phone *string `json:"phone"`
	SSN   *string `json:"ssn"`
	Birth *string `json:"birth_date"`
	Token *string `json:"api_token"`
}

// row is the user as the scenario's SELECTs return it:
// name, email, phone, ssn, birth_date, api_token.
func (u encUser) row() []*string {
	name := u.Name
	return []*string{&name, u.Email, u.Phone, u.SSN, u.Birth, u.Token}
}

// encContact is one contacts row.
type encContact struct {
	Email *string `json:"email"`
	Note  *string `json:"note"`
}

// encSpec is one driver's run: its tenants and values, the lookups it
// makes and what each must return. Drivers outside Go read it as JSON (or
// as Java properties) and assert every step themselves; the Go side then
// checks what is stored, through pgveil and directly.
type encSpec struct {
	Tag     string `json:"tag"`
	Org     int64  `json:"org"`
	CopyOrg int64  `json:"copy_org"`

	Host     string `json:"host"`
	Port     int    `json:"port"`
	User     string `json:"user"`
	Password string `json:"password"`
	DBName   string `json:"dbname"`
	URL      string `json:"url"`

	// Users[0] is inserted alone (RETURNING), the rest in one go.
	Users []encUser `json:"users"`
	// LookupEmail is Users[0]'s email upper-cased and padded: it finds the
	// row through normalize [lowercase, trim].
	LookupEmail string   `json:"lookup_email"`
	InEmails    []string `json:"in_emails"`
	InExpect    []string `json:"in_expect"`
	AnyEmails   []string `json:"any_emails"`
	AnyExpect   []string `json:"any_expect"`
	// BigSSN finds the 1 MiB row by its (1 MiB) blind-indexed ssn.
	BigSSN     string   `json:"big_ssn"`
	BigName    string   `json:"big_name"`
	NullPhone  []string `json:"null_phone_names"`
	NullEmail  []string `json:"null_email_names"`
	UpdateName string   `json:"update_name"`
	OldEmail   string   `json:"old_email"`
	NewEmail   string   `json:"new_email"`
	NewLookup  string   `json:"new_lookup"`
	NewPhone   string   `json:"new_phone"`

	Upsert        encUser `json:"upsert"`
	UpsertVariant string  `json:"upsert_variant"`
	UpsertPhone2  string  `json:"upsert_phone2"`

	Doomed       encUser `json:"doomed"`
	DoomedLookup string  `json:"doomed_lookup"`

	Contacts   []encContact `json:"contacts"`
	JoinExpect [][]*string  `json:"join_expect"`

	// Final is the org's users after the scenario, by id.
	Final []encUser `json:"final"`

	// COPY phase: rows written with COPY FROM in text and CSV, read back
	// with COPY (SELECT …) TO STDOUT in both formats.
	CopyRowsText   []encUser `json:"copy_rows_text"`
	CopyRowsCSV    []encUser `json:"copy_rows_csv"`
	CopyInTextSQL  string    `json:"copy_in_text_sql"`
	CopyInText     string    `json:"copy_in_text"`
	CopyInCSVSQL   string    `json:"copy_in_csv_sql"`
	CopyInCSV      string    `json:"copy_in_csv"`
	CopyOutTextSQL string    `json:"copy_out_text_sql"`
	CopyOutText    string    `json:"copy_out_text"`
	CopyOutCSVSQL  string    `json:"copy_out_csv_sql"`
	CopyOutCSV     string    `json:"copy_out_csv"`
}

func sp(s string) *string { return &s }

// bigValue is a 1 MiB plaintext made of numbered chunks, so that any
// window of it is distinctive.
func bigValue(prefix string) string {
	var b strings.Builder
	for i := 0; b.Len() < 1<<20; i++ {
		fmt.Fprintf(&b, "%s-%06d;", prefix, i)
	}
	return b.String()[:1<<20]
}

// newEncSpec makes the values of one driver's run. tag is unique in the
// test (it goes into every value, so runs that share a table never
// collide); org and org+1000 must exist in orgs.
func newEncSpec(p *encProxy, tag string, org int64) *encSpec {
	tokenBase := 8675309000000000 + org*100
	tok := func(n int64) *string { return sp(strconv.FormatInt(n, 10)) }
	s := &encSpec{
		Tag: tag, Org: org, CopyOrg: org + 1000,
		Host: "127.0.0.1", User: harness.SCRAMUser, Password: harness.SCRAMPass, DBName: harness.Database,
	}
	if p != nil {
		host, port, _ := strings.Cut(p.Addr, ":")
		s.Host = host
		s.Port, _ = strconv.Atoi(port)
		s.URL = p.url()
	}
	u1 := encUser{Name: "u1 " + tag, Email: sp("Alice." + tag + "@Example.COM"), Phone: sp("ph-u1-" + tag + "-555-0101"),
		SSN: sp("ssn-u1-" + tag + "-078-05-1120"), Birth: sp("1987-06-05"), Token: tok(tokenBase + 1)}
	u2 := encUser{Name: "u2 " + tag, Email: sp("Zoë." + tag + "@Exämple.中文"), Phone: sp("Zoë 🚀 中文 " + tag),
		SSN: sp("ssn-ü2-" + tag + "-社会保障"), Birth: sp("2000-02-29"), Token: tok(-(tokenBase + 2))}
	u3 := encUser{Name: "u3 " + tag} // every encrypted column NULL
	u4 := encUser{Name: "u4 " + tag, Email: sp("empty." + tag + "@example.com"), Phone: sp(""), SSN: sp(""),
		Birth: sp("1970-01-01"), Token: tok(0)}
	u5 := encUser{Name: "u5 " + tag, Email: sp("big." + tag + "@example.com"), Phone: sp(bigValue("big-phone-" + tag)),
		SSN: sp(bigValue("big-ssn-" + tag)), Token: tok(9223372036854775807)}
	s.Users = []encUser{u1, u2, u3, u4, u5}
	s.LookupEmail = "  " + strings.ToUpper(*u1.Email) + " "
	s.InEmails = []string{strings.ToUpper(*u1.Email), strings.ToLower(*u2.Email), "absent." + tag + "@example.com"}
	s.InExpect = []string{*u1.Email, *u2.Email}
	s.AnyEmails = []string{strings.ToUpper(*u4.Email), *u5.Email, "absent2." + tag + "@example.com"}
	s.AnyExpect = []string{*u4.Email, *u5.Email}
	s.BigSSN, s.BigName = *u5.SSN, u5.Name
	s.NullPhone = []string{u3.Name}
	s.NullEmail = []string{u3.Name}
	s.UpdateName = u1.Name
	s.OldEmail = *u1.Email
	s.NewEmail = "Alice.Renamed." + tag + "@Example.COM"
	s.NewLookup = strings.ToUpper(s.NewEmail)
	s.NewPhone = "ph-u1b-" + tag + "-555-0199"
	s.Upsert = encUser{Name: "up " + tag, Email: sp("Upsert." + tag + "@Example.com"), Phone: sp("ph-up1-" + tag)}
	s.UpsertVariant = " " + strings.ToUpper(*s.Upsert.Email)
	s.UpsertPhone2 = "ph-up2-" + tag
	s.Doomed = encUser{Name: "u6 " + tag, Email: sp("Doomed." + tag + "@example.com"), Phone: sp("ph-u6-" + tag),
		SSN: sp("ssn-u6-" + tag), Birth: sp("1955-11-05"), Token: tok(tokenBase + 6)}
	s.DoomedLookup = "  DOOMED." + strings.ToUpper(tag) + "@EXAMPLE.COM  "

	c1 := encContact{Email: sp(strings.ToUpper(*u2.Email)), Note: sp("note ✓ c1 " + tag)}
	c2 := encContact{Email: sp(strings.ToLower(s.NewEmail)), Note: sp("")}
	c3 := encContact{Email: sp("nobody." + tag + "@example.com"), Note: nil}
	s.Contacts = []encContact{c1, c2, c3}
	s.JoinExpect = [][]*string{
		{sp(u1.Name), sp(s.NewEmail), c2.Email, c2.Note},
		{sp(u2.Name), u2.Email, c1.Email, c1.Note},
	}
	u1f := u1
	u1f.Email, u1f.Phone = sp(s.NewEmail), sp(s.NewPhone)
	up := s.Upsert
	up.Phone = sp(s.UpsertPhone2)
	s.Final = []encUser{u1f, u2, u3, u4, u5, up}

	s.CopyRowsText = []encUser{
		{Name: "cp1 " + tag, Email: sp("Copy.One." + tag + "@Example.com"), Phone: sp("tab\there back\\slash " + tag),
			SSN: sp("ssn-cp1-" + tag), Birth: sp("2001-02-03"), Token: tok(tokenBase + 11)},
		{Name: "cp2 " + tag, Email: sp("Copy.Ünï." + tag + "@example.com"), Phone: sp("Zoë 🚀 中文 copy " + tag)},
	}
	s.CopyRowsCSV = []encUser{
		{Name: "cp3 " + tag, Email: sp("Copy.Three." + tag + "@example.com"), Phone: sp("comma, \"quoted\" " + tag + "\nline two"),
			SSN: sp(""), Birth: sp("1999-12-31"), Token: tok(-(tokenBase + 13))},
		{Name: "cp4 " + tag, Phone: sp("\\N is not null " + tag)},
	}
	cols := "org_id, name, email, phone, ssn, birth_date, api_token"
	s.CopyInTextSQL = "COPY users (" + cols + ") FROM STDIN"
	s.CopyInCSVSQL = "COPY users (" + cols + ") FROM STDIN WITH (FORMAT csv)"
	for _, u := range s.CopyRowsText {
		s.CopyInText += copyTextLine(append([]*string{sp(strconv.FormatInt(s.CopyOrg, 10))}, u.row()...))
	}
	for _, u := range s.CopyRowsCSV {
		s.CopyInCSV += copyCSVLine(append([]*string{sp(strconv.FormatInt(s.CopyOrg, 10))}, u.row()...))
	}
	sel := fmt.Sprintf("SELECT name, email, phone, ssn, birth_date, api_token FROM users WHERE org_id = %d ORDER BY id", s.CopyOrg)
	s.CopyOutTextSQL = "COPY (" + sel + ") TO STDOUT"
	s.CopyOutCSVSQL = "COPY (" + sel + ") TO STDOUT WITH (FORMAT csv)"
	for _, u := range s.copyRows() {
		s.CopyOutText += copyTextLine(u.row())
		s.CopyOutCSV += copyCSVLine(u.row())
	}
	if p != nil {
		p.remember(s.plaintexts()...)
	}
	return s
}

// copyRows are the rows of CopyOrg after the COPY phase, by id.
func (s *encSpec) copyRows() []encUser { return append(slices.Clone(s.CopyRowsText), s.CopyRowsCSV...) }

// plaintexts are every value of an encrypted column the spec writes or
// looks up: none may be found at rest or in pgveil's log.
func (s *encSpec) plaintexts() []string {
	var out []string
	add := func(vs ...*string) {
		for _, v := range vs {
			if v != nil && *v != "" {
				out = append(out, *v)
			}
		}
	}
	users := append(slices.Clone(s.Users), s.Upsert, s.Doomed)
	users = append(users, s.copyRows()...)
	for _, u := range users {
		add(u.Email, u.Phone, u.SSN, u.Birth, u.Token)
	}
	for _, c := range s.Contacts {
		add(c.Email, c.Note)
	}
	for _, v := range append(append(append([]string{s.LookupEmail, s.NewEmail, s.NewPhone, s.UpsertVariant, s.UpsertPhone2, s.DoomedLookup}, s.InEmails...), s.AnyEmails...), s.NewLookup) {
		add(sp(strings.TrimSpace(v)))
	}
	return out
}

// writeJSON writes the spec for a driver program and returns the path.
func (s *encSpec) writeJSON(t *testing.T) string {
	t.Helper()
	return writeSpecJSON(t, s)
}

// writeSpecJSON writes a driver program's spec (an encSpec, or one that
// embeds it) as JSON and returns the path.
func writeSpecJSON(t *testing.T, spec any) string {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "spec.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeProperties writes the spec as a java.util.Properties file (all
// ASCII, \uXXXX escapes) for the JDBC program, which has no JSON parser:
// objects flatten to dotted keys, lists to .0, .1 … with .n the length,
// and NULL is an absent key.
func (s *encSpec) writeProperties(t *testing.T) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var tree any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case nil:
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				walk(joinKey(prefix, k), v[k])
			}
		case []any:
			out.WriteString(propEscape(joinKey(prefix, "n"), true) + "=" + strconv.Itoa(len(v)) + "\n")
			for i, e := range v {
				walk(joinKey(prefix, strconv.Itoa(i)), e)
			}
		case string:
			out.WriteString(propEscape(prefix, true) + "=" + propEscape(v, false) + "\n")
		case json.Number:
			out.WriteString(propEscape(prefix, true) + "=" + v.String() + "\n")
		case bool:
			out.WriteString(propEscape(prefix, true) + "=" + strconv.FormatBool(v) + "\n")
		}
	}
	walk("", tree)
	path := filepath.Join(t.TempDir(), "spec.properties")
	if err := os.WriteFile(path, []byte(out.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func joinKey(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// propEscape escapes s for a .properties file read as ISO-8859-1.
func propEscape(s string, key bool) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '=' || r == ':' || r == '#' || r == '!':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == ' ' && (key || i == 0):
			b.WriteString(`\ `)
		case r < 0x20 || r > 0x7e:
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(&b, `\u%04x`, u)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// copyTextLine is one row in COPY's text format.
func copyTextLine(fields []*string) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte('\t')
		}
		if f == nil {
			b.WriteString(`\N`)
			continue
		}
		for _, r := range *f {
			switch r {
			case '\\':
				b.WriteString(`\\`)
			case '\t':
				b.WriteString(`\t`)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('\n')
	return b.String()
}

// copyCSVLine is one row in COPY's CSV format as PostgreSQL writes it:
// NULL unquoted empty, an empty string "", quotes only where needed.
func copyCSVLine(fields []*string) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		if f == nil {
			continue
		}
		v := *f
		if v == "" || v == `\.` || strings.ContainsAny(v, ",\"\r\n") {
			b.WriteString(`"` + strings.ReplaceAll(v, `"`, `""`) + `"`)
			continue
		}
		b.WriteString(v)
	}
	b.WriteByte('\n')
	return b.String()
}
