package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestEncPsql runs the scenario as psql scripts through pgveil: literal
// INSERTs, UPDATEs and lookups over the simple protocol under
// ON_ERROR_STOP, two statements in one Query (\;), and the COPY phase with
// COPY FROM STDIN (inline data), \copy from a CSV file, and COPY/\copy
// TO STDOUT. psql prints each step's rows; the test compares the whole
// output.
func TestEncPsql(t *testing.T) {
	relayLeakCheck(t)
	p := startEncProxy(t, encOrgs(71, 1)...)
	ctx := testCtx(t, time.Minute)
	s := newEncSpec(p, "psql", 71)
	url := p.url("application_name=enc_psql")
	dir := t.TempDir()
	// -q: no command tags; -A -t: unaligned rows only; '|' between fields.
	args := []string{"-q", "-A", "-t", "-F", "|", "-P", "null=<NULL>", "-v", "ON_ERROR_STOP=1", "-f"}

	t.Run("scenario", func(t *testing.T) {
		script, want := psqlScenario(s)
		path := filepath.Join(dir, "scenario.sql")
		if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
		res := runPsql(t, ctx, url, nil, nil, append(args, path)...)
		if res.Code != 0 {
			t.Fatalf("psql exited %d:\n%s", res.Code, tail(res.Stderr, 20))
		}
		compareOutput(t, "psql scenario", res.Stdout, want)
		verifyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})

	t.Run("copy", func(t *testing.T) {
		csvPath := filepath.Join(dir, "rows.csv")
		if err := os.WriteFile(csvPath, []byte(s.CopyInCSV), 0o600); err != nil {
			t.Fatal(err)
		}
		cols := "org_id, name, email, phone, ssn, birth_date, api_token"
		script := "\\set ON_ERROR_STOP 1\n" +
			s.CopyInTextSQL + ";\n" + s.CopyInText + "\\.\n" +
			"\\copy users (" + cols + ") from '" + csvPath + "' with (format csv)\n" +
			"\\echo '-- copy out text'\n" + s.CopyOutTextSQL + ";\n" +
			"\\echo '-- copy out csv'\n" + "\\copy " + strings.TrimPrefix(s.CopyOutCSVSQL, "COPY ") + "\n"
		want := "-- copy out text\n" + s.CopyOutText + "-- copy out csv\n" + s.CopyOutCSV
		path := filepath.Join(dir, "copy.sql")
		if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
		res := runPsql(t, ctx, url, nil, nil, append(args, path)...)
		if res.Code != 0 {
			t.Errorf("psql COPY script exited %d:\n%s", res.Code, tail(res.Stderr, 20))
		} else {
			compareOutput(t, "psql COPY", res.Stdout, want)
		}
		verifyCopyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})

	// ON_ERROR_STOP stops at a refusal: psql exits 3, prints pgveil's
	// error, and runs nothing after it.
	t.Run("on_error_stop", func(t *testing.T) {
		const after = "psql-after-refusal-7771@example.org"
		p.remember(after)
		script := "SELECT name FROM users ORDER BY email;\n" +
			fmt.Sprintf("INSERT INTO users (org_id, name, email) VALUES (%d, 'after', '%s');\n", s.Org, after)
		path := filepath.Join(dir, "stop.sql")
		if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
		res := runPsql(t, ctx, url, nil, nil, append(args, path)...)
		if res.Code != 3 || !strings.Contains(res.Stderr, "pgveil") || !strings.Contains(res.Stderr, "ORDER BY") {
			t.Errorf("refusal under ON_ERROR_STOP: exit %d, stderr:\n%s", res.Code, res.Stderr)
		}
		var n int
		if err := superConn(t, ctx).QueryRow(ctx, "SELECT count(*) FROM users WHERE name = 'after'").Scan(&n); err != nil || n != 0 {
			t.Errorf("the statement after the refusal ran (%d rows, %v)", n, err)
		}
	})

	// psql draws the server's error position as a caret under the
	// statement; pgveil rewrote these statements (a tenant column added to
	// the output, the blind index and a ciphertext in the WHERE), and the
	// caret must still stand under the client's own token.
	t.Run("error_caret", func(t *testing.T) {
		for _, sql := range []string{
			"SELECT email FROM users WHERE nosuch = 1",
			"SELECT 1 FROM users WHERE email = 'x@y' AND nosuch = 1",
		} {
			res := runPsql(t, ctx, url, nil, nil, "-c", sql)
			lines := strings.Split(res.Stderr, "\n")
			caret := -1
			for i, l := range lines {
				if strings.HasPrefix(l, "LINE 1: ") && i+1 < len(lines) {
					if c := strings.IndexByte(lines[i+1], '^'); c >= 0 && strings.HasPrefix(l[c:], "nosuch") {
						caret = c
					}
				}
			}
			if res.Code == 0 || !strings.Contains(res.Stderr, `column "nosuch" does not exist`) || caret < 0 {
				t.Errorf("%s: exit %d, want the caret under nosuch; stderr:\n%s", sql, res.Code, res.Stderr)
			}
		}
	})
}

// compareOutput compares a program's output line by line.
func compareOutput(t *testing.T, what, got, want string) {
	t.Helper()
	if got == want {
		return
	}
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Errorf("%s: output differs at line %d\n got: %s\nwant: %s", what, i+1, short(gl), short(wl))
			return
		}
	}
}

// sqlLit is a SQL literal for a nullable string.
func sqlLit(v *string) string {
	if v == nil {
		return "NULL"
	}
	return "'" + strings.ReplaceAll(*v, "'", "''") + "'"
}

// sqlNum is a bare numeric literal (or NULL) for a token.
func sqlNum(v *string) string {
	if v == nil {
		return "NULL"
	}
	return *v
}

func userValues(org int64, u encUser) string {
	return fmt.Sprintf("(%d, %s, %s, %s, %s, %s, %s)", org, sqlLit(&u.Name), sqlLit(u.Email), sqlLit(u.Phone), sqlLit(u.SSN), sqlLit(u.Birth), sqlNum(u.Token))
}

// psqlRows renders rows as psql -A -t -F '|' -P null=<NULL> prints them.
func psqlRows(rows ...[]*string) string {
	var b strings.Builder
	for _, r := range rows {
		for i, v := range r {
			if i > 0 {
				b.WriteByte('|')
			}
			if v == nil {
				b.WriteString("<NULL>")
			} else {
				b.WriteString(*v)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// psqlScenario is the scenario as a psql script of literal statements,
// and the output it must print.
func psqlScenario(s *encSpec) (script, want string) {
	var sc, out strings.Builder
	step := func(name, sql string, rows ...[]*string) {
		fmt.Fprintf(&sc, "\\echo '-- %s'\n%s\n", name, sql)
		out.WriteString("-- " + name + "\n" + psqlRows(rows...))
	}
	u := s.Users
	org := strconv.FormatInt(s.Org, 10)
	ins := "INSERT INTO users (org_id, " + userCols + ") VALUES "
	step("insert one", ins+userValues(s.Org, u[0])+" RETURNING email, phone, birth_date, api_token;",
		[]*string{u[0].Email, u[0].Phone, u[0].Birth, u[0].Token})
	var many []string
	for _, usr := range u[1:] {
		many = append(many, userValues(s.Org, usr))
	}
	step("insert many", ins+strings.Join(many, ",\n  ")+";")
	step("find by email", "SELECT "+userCols+" FROM users WHERE email = "+sqlLit(&s.LookupEmail)+";", u[0].row())
	var all [][]*string
	for _, usr := range u {
		all = append(all, usr.row())
	}
	step("read all", "SELECT "+userCols+" FROM users WHERE org_id = "+org+" ORDER BY id;", all...)
	step("IN", fmt.Sprintf("SELECT email FROM users WHERE email IN (%s, %s, %s) ORDER BY id;", sqlLit(&s.InEmails[0]), sqlLit(&s.InEmails[1]), sqlLit(&s.InEmails[2])),
		[]*string{&s.InExpect[0]}, []*string{&s.InExpect[1]})
	step("ANY(ARRAY[…])", fmt.Sprintf("SELECT email FROM users WHERE email = ANY(ARRAY[%s, %s, %s]) ORDER BY id;", sqlLit(&s.AnyEmails[0]), sqlLit(&s.AnyEmails[1]), sqlLit(&s.AnyEmails[2])),
		[]*string{&s.AnyExpect[0]}, []*string{&s.AnyExpect[1]})
	step("1 MiB ssn", "SELECT name FROM users WHERE ssn = "+sqlLit(&s.BigSSN)+";", []*string{&s.BigName})
	step("NULL lookups", "SELECT name FROM users WHERE org_id = "+org+" AND phone IS NULL \\; SELECT name FROM users WHERE org_id = "+org+" AND email IS NULL;",
		[]*string{&s.NullPhone[0]}, []*string{&s.NullEmail[0]})
	step("UPDATE RETURNING", fmt.Sprintf("UPDATE users SET email = %s, phone = %s WHERE org_id = %s AND name = %s RETURNING email, phone;",
		sqlLit(&s.NewEmail), sqlLit(&s.NewPhone), org, sqlLit(&s.UpdateName)), []*string{&s.NewEmail, &s.NewPhone})
	step("old gone, new found", "SELECT name FROM users WHERE email = "+sqlLit(&s.OldEmail)+" \\; SELECT name FROM users WHERE email = "+sqlLit(&s.NewLookup)+";",
		[]*string{&s.UpdateName})
	up := s.Upsert
	upsert := "INSERT INTO users (org_id, name, email, phone) VALUES (" + org + ", " + sqlLit(&up.Name) + ", "
	step("ON CONFLICT DO NOTHING (new)", upsert+sqlLit(up.Email)+", "+sqlLit(up.Phone)+") ON CONFLICT (email) DO NOTHING RETURNING email;", []*string{up.Email})
	step("ON CONFLICT DO NOTHING (conflict)", upsert+sqlLit(&s.UpsertVariant)+", "+sqlLit(&s.UpsertPhone2)+") ON CONFLICT (email) DO NOTHING RETURNING email;")
	step("ON CONFLICT DO UPDATE", upsert+sqlLit(&s.UpsertVariant)+", "+sqlLit(&s.UpsertPhone2)+") ON CONFLICT (email) DO UPDATE SET phone = EXCLUDED.phone RETURNING email, phone;",
		[]*string{up.Email, &s.UpsertPhone2})
	d := s.Doomed
	step("insert doomed", ins+userValues(s.Org, d)+";")
	step("DELETE RETURNING", "DELETE FROM users WHERE email = "+sqlLit(&s.DoomedLookup)+" RETURNING name, email, ssn, birth_date, api_token;",
		[]*string{&d.Name, d.Email, d.SSN, d.Birth, d.Token})
	var cs []string
	for _, c := range s.Contacts {
		cs = append(cs, fmt.Sprintf("(%s, %s, %s)", org, sqlLit(c.Email), sqlLit(c.Note)))
	}
	step("insert contacts", "INSERT INTO contacts (org_id, email, note) VALUES "+strings.Join(cs, ", ")+";")
	step("JOIN", "SELECT u.name, u.email, c.email, c.note FROM users u JOIN contacts c ON u.email = c.email WHERE u.org_id = "+org+" AND c.org_id = "+org+" ORDER BY u.id, c.id;",
		s.JoinExpect...)
	var final [][]*string
	for _, usr := range s.Final {
		final = append(final, usr.row())
	}
	step("final", "SELECT "+userCols+" FROM users WHERE org_id = "+org+" ORDER BY id;", final...)
	return sc.String(), out.String()
}
