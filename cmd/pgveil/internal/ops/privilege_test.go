package ops

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A service role without privileges on the pgveil schema (a DBA created
// it) used to get a bare "permission denied" reported as a connection
// problem; check names the role and prints the statements that fix it,
// once in the script however many reads failed.
func TestCheckPrivilegeFinding(t *testing.T) {
	pool, err := pgxpool.New(t.Context(), "postgres://svc@127.0.0.1:1/app")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	e := &Env{Pool: pool}
	denied := fmt.Errorf("reading: %w", &pgconn.PgError{Severity: "ERROR", Code: "42501", Message: "permission denied for schema pgveil"})
	r := &Report{}
	r.add(e.readFailed("reading pgveil.tables", denied))
	r.add(e.readFailed("looking for the pgveil schema", denied))
	f := r.Findings[0]
	if f.Code != "privilege" || len(f.Fix) == 0 || f.Fix[0] != "ALTER SCHEMA pgveil OWNER TO svc;" {
		t.Errorf("42501: code %q, fix %q", f.Code, f.Fix)
	}
	var b bytes.Buffer
	r.WriteText(&b)
	if n := strings.Count(b.String(), "ALTER SCHEMA pgveil OWNER TO svc;"); n != 3 { // two findings, one script line
		t.Errorf("the fix is printed %d times, want 3 (once per finding, once in the script):\n%s", n, b.String())
	}
	if f := e.readFailed("reading pgveil.keys", fmt.Errorf("dial: connection refused")); f.Code != "connect" || len(f.Fix) != 0 {
		t.Errorf("other error: code %q, fix %q", f.Code, f.Fix)
	}
}
