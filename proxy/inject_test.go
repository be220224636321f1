package proxy

import (
	"bufio"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

// TestInjectedErrorsAgainstPostgres sends the messages pgveil injects for a
// refusal to a real server and checks the client-visible result: exactly one
// ErrorResponse with pgveil's SQLSTATE, message and hint, no PL/pgSQL
// context, the transaction aborted like a real error, and the batch skipped
// until Sync.
func TestInjectedErrorsAgainstPostgres(t *testing.T) {
	ctx := context.Background()
	conn, err := pgconn.Connect(ctx, cluster.URL("scram_user", "app", "sslmode=disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	refusal := &pgError{Severity: "ERROR", Code: "0A000",
		Message: `pgveil cannot compare the encrypted column public.users.email with "<"`,
		Hint:    "equality (=, <>, IN) is the only comparison on an encrypted column; $pgv0$ tags are quoted safely",
		Schema:  "public", Table: "users", Column: "email"}

	raw := conn.Conn()
	r := bufio.NewReader(raw)
	for _, inTx := range []bool{false, true} {
		s := &session{srv: &Server{metrics: testMetrics}, log: zap.NewNop(), t: newTracker()}
		s.sw = bufio.NewWriter(raw)
		if inTx {
			writeMsg(s.sw, 'Q', []byte("BEGIN\x00"))
			s.t.push(pending{kind: pendQuery})
		}
		s.injectExtendedError(refusal)
		// The client's own Bind and Execute that followed the refused Parse.
		s.sw.Write(appendBind(nil, &bindMsg{}))
		s.t.push(pending{kind: pendBind})
		s.sw.Write(appendExecute(nil, "", 0))
		s.t.push(pending{kind: pendExecute})
		writeMsg(s.sw, 'S', nil)
		s.t.push(pending{kind: pendSync})
		s.sw.Flush()

		var forwarded []string
		for {
			typ, body := readRawMsg(t, r)
			ev := s.t.onBackend(typ, body)
			if ev.cur.suppress || (ev.cur.injected && typ != 'E') {
				continue
			}
			if typ == 'E' && ev.cur.injected {
				body = cleanInjectedError(body, nil)
				for _, f := range []byte{'W', 'F', 'L', 'R'} {
					if errorField(body, f) != "" {
						t.Fatalf("field %c left in injected error", f)
					}
				}
				if errorField(body, 'C') != "0A000" || errorField(body, 'M') != refusal.Message || errorField(body, 'H') != refusal.Hint {
					t.Fatalf("error fields: C=%s M=%s H=%s", errorField(body, 'C'), errorField(body, 'M'), errorField(body, 'H'))
				}
				if errorField(body, 's') != "public" || errorField(body, 't') != "users" || errorField(body, 'c') != "email" {
					t.Fatalf("error fields: s=%s t=%s c=%s", errorField(body, 's'), errorField(body, 't'), errorField(body, 'c'))
				}
			}
			forwarded = append(forwarded, string(typ))
			if typ == 'Z' && s.t.len() == 0 {
				if want := map[bool]byte{false: 'I', true: 'E'}[inTx]; body[0] != want {
					t.Fatalf("in transaction %v: status %c, want %c", inTx, body[0], want)
				}
				break
			}
		}
		want := "E Z"
		if inTx {
			want = "C Z E Z"
		}
		if got := strings.Join(forwarded, " "); got != want {
			t.Fatalf("in transaction %v: client saw %q, want %q", inTx, got, want)
		}
		if s.t.desyncCount() != 0 {
			t.Fatal("desync")
		}
	}
	// Leave the aborted transaction.
	if _, err := conn.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
		t.Fatal(err)
	}
}

func TestRaiseSQLQuoting(t *testing.T) {
	e := &pgError{Code: "0A000", Message: "it's $pgv0$ and $pgv1$ and \\ and '", Hint: "$$"}
	sql := raiseSQL(e)
	if !strings.HasPrefix(sql, "DO $pgv") || strings.Count(sql, "$pgv2$") < 2 {
		t.Fatalf("quoting: %s", sql)
	}
	ctx := context.Background()
	conn, err := pgconn.Connect(ctx, cluster.URL("scram_user", "app", "sslmode=disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql).ReadAll()
	pe, ok := err.(*pgconn.PgError)
	if !ok || pe.Code != "0A000" || pe.Message != e.Message || pe.Hint != e.Hint {
		t.Fatalf("got %#v", err)
	}
	if got := raiseSQL(&pgError{Code: "bad", Message: "m"}); !strings.Contains(got, "'XX000'") {
		t.Fatal("invalid SQLSTATE must become XX000")
	}
}
