package rewrite

import (
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"testing/quick"
)

// secretStmt is a random statement on configured tables in which every
// literal written to or compared with an encrypted column contains the
// word SECRET, and no other literal does. Whatever the planner does with
// it, SECRET must never reach the server: the statement is refused, or
// every such literal became a slot.
type secretStmt string

var secretEncCols = []string{"email", "ssn", "phone", "birth_date", "u.email", "users.ssn", `"users"."email"`}

func (secretStmt) Generate(r *rand.Rand, _ int) reflect.Value {
	n := 0
	secret := func() string {
		n++
		forms := []string{"'SECRET%d'", "E'SECRET%d\\n'", "$$SECRET%d$$", "'SECRET%d'::text", "CAST('SECRET%d' AS varchar)", "U&'SECRET%d'", "'SECRET' \n '%d'"}
		return fmt.Sprintf(forms[r.Intn(len(forms))], n)
	}
	plain := func() string {
		return []string{"'plain'", "42", "$1", "$2::bigint", "NULL", "now()"}[r.Intn(6)]
	}
	col := func() string { return secretEncCols[r.Intn(len(secretEncCols))] }
	var pred func(depth int) string
	pred = func(depth int) string {
		if depth > 2 {
			return fmt.Sprintf("%s = %s", col(), secret())
		}
		switch r.Intn(14) {
		case 0:
			return fmt.Sprintf("%s = %s", col(), secret())
		case 1:
			return fmt.Sprintf("%s <> %s", secret(), col())
		case 2:
			return fmt.Sprintf("%s IN (%s, %s)", col(), secret(), secret())
		case 3:
			return fmt.Sprintf("%s = ANY(ARRAY[%s, %s])", col(), secret(), secret())
		case 4:
			return fmt.Sprintf("%s LIKE %s", col(), secret())
		case 5:
			return fmt.Sprintf("lower(%s) = %s", col(), secret())
		case 6:
			return fmt.Sprintf("(%s AND %s)", pred(depth+1), pred(depth+1))
		case 7:
			return fmt.Sprintf("NOT (%s OR name = %s)", pred(depth+1), plain())
		case 8:
			return fmt.Sprintf("CASE WHEN %s THEN true ELSE %s END", pred(depth+1), pred(depth+1))
		case 9:
			return fmt.Sprintf("EXISTS (SELECT 1 FROM contacts c WHERE c.email = %s AND c.user_id = u.id)", secret())
		case 10:
			return fmt.Sprintf("u.id IN (SELECT user_id FROM contacts WHERE email = %s)", secret())
		case 11:
			return fmt.Sprintf("%s IS DISTINCT FROM %s", col(), secret())
		case 12:
			return fmt.Sprintf("%s BETWEEN %s AND %s", col(), secret(), secret())
		default:
			return fmt.Sprintf("coalesce(%s, %s) = %s", col(), secret(), secret())
		}
	}
	var s string
	from := []string{"users u", "users u", "users", "public.users AS u", "users u JOIN contacts c2 ON c2.user_id = u.id"}[r.Intn(5)]
	switch r.Intn(20) {
	case 0, 1:
		s = fmt.Sprintf("SELECT u.id, u.email FROM %s WHERE %s", from, pred(0))
	case 2:
		s = fmt.Sprintf("INSERT INTO users (email, org_id, phone) VALUES (%s, %s, %s), (%s, 7, NULL) ON CONFLICT (email) DO UPDATE SET phone = %s",
			secret(), plain(), secret(), secret(), secret())
	case 3:
		s = fmt.Sprintf("UPDATE users u SET email = %s, name = %s WHERE u.org_id = 3 AND %s", secret(), plain(), pred(0))
	case 4:
		s = fmt.Sprintf("DELETE FROM users u WHERE %s RETURNING u.email", pred(0))
	case 5:
		s = fmt.Sprintf("WITH x AS (SELECT u.id FROM %s WHERE %s) SELECT * FROM x", from, pred(0))
	case 6:
		s = fmt.Sprintf("EXPLAIN SELECT u.id FROM users u WHERE %s", pred(0))
	case 7:
		s = fmt.Sprintf("COPY (SELECT u.id FROM users u WHERE %s) TO STDOUT", pred(0))
	case 8:
		s = fmt.Sprintf("SELECT u.org_id FROM %s GROUP BY u.org_id HAVING bool_or(%s)", from, pred(0))
	case 9:
		s = fmt.Sprintf("SELECT u.id FROM users u, LATERAL (SELECT 1 FROM contacts c WHERE c.email = %s OR c.email = u.email) x", secret())
	case 10:
		s = fmt.Sprintf("SELECT (SELECT count(*) FROM contacts c WHERE c.email = %s) FROM users u WHERE %s", secret(), pred(0))
	case 11:
		s = fmt.Sprintf("SELECT u.id FROM users u WHERE %s UNION ALL SELECT u.id FROM users u WHERE %s", pred(0), pred(0))
	case 12:
		s = fmt.Sprintf("INSERT INTO users (email, org_id, birth_date) SELECT %s, 1, %s", secret(), secret())
	case 13:
		s = fmt.Sprintf("UPDATE users u SET email = CASE WHEN %s THEN %s END WHERE u.org_id = 1", pred(0), secret())
	case 14:
		s = fmt.Sprintf("INSERT INTO users (email, org_id) VALUES (%s, $1) ON CONFLICT (email) DO UPDATE SET email = %s WHERE users.email = %s", secret(), secret(), secret())
	case 15:
		s = fmt.Sprintf("WITH n AS (INSERT INTO contacts (email) VALUES (%s) RETURNING id) SELECT * FROM n, users u WHERE %s", secret(), pred(0))
	case 16:
		s = fmt.Sprintf("SELECT u.id FROM %s ORDER BY (%s), u.id", from, pred(0))
	case 17:
		s = fmt.Sprintf("CREATE VIEW v AS SELECT u.id FROM %s WHERE %s", from, pred(0))
	case 18:
		s = fmt.Sprintf("BEGIN; DECLARE c CURSOR FOR SELECT u.id FROM %s WHERE %s; COMMIT", from, pred(0))
	default:
		s = fmt.Sprintf("PREPARE q AS SELECT u.id FROM %s WHERE %s", from, pred(0))
	}
	return reflect.ValueOf(secretStmt(s))
}

// secretRuns is raised by hand for long runs (go test -run Secrets with a
// larger value); 3000 keeps the package's tests fast.
var secretRuns = 3000

func TestSecretsNeverReachTheServer(t *testing.T) {
	p := newTestPlanner(t)
	planned, refused := 0, 0
	check := func(s secretStmt) bool {
		sql := string(s)
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Code == CodeInternalError {
				t.Logf("%s: %v", sql, err)
				return false
			}
			refused++
			return true
		}
		planned++
		out, err := plan.Render(sql, func(*Stmt, *Slot) (string, error) { return ByteaLiteral([]byte{1}), nil })
		if err != nil {
			t.Logf("%s: %v", sql, err)
			return false
		}
		if strings.Contains(out, "SECRET") {
			t.Logf("plaintext reaches the server:\n in: %s\nout: %s", sql, out)
			return false
		}
		return true
	}
	if err := quick.Check(check, &quick.Config{MaxCount: secretRuns}); err != nil {
		t.Fatal(err)
	}
	if planned == 0 || refused == 0 {
		t.Fatalf("generator too narrow: %d planned, %d refused", planned, refused)
	}
	t.Logf("%d planned, %d refused", planned, refused)
}
