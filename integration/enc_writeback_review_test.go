package integration

import (
	"bytes"
	"context"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/integration/harness"
)

// Review of d06b9e2 (a blind-index column written beside its encrypted
// column gets pgveil's index; the client's parameter is Ignore, sent as
// NULL). The server logs every statement of the test role with its
// parameters (log_statement = all, set on the role for the test), so
// what reached PostgreSQL can be read back from its log.

// logStatementsOf has the server log every statement of scram_user's
// sessions opened from now on, with their parameters, until t ends.
func logStatementsOf(t *testing.T, ctx context.Context) {
	t.Helper()
	su := superConn(t, ctx)
	role := pgx.Identifier{harness.SCRAMUser}.Sanitize()
	if _, err := su.Exec(ctx, "ALTER ROLE "+role+" SET log_statement = 'all'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := cluster.Connect(ctx, harness.SuperUser, harness.Database)
		if err != nil {
			t.Errorf("resetting log_statement: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "ALTER ROLE "+role+" RESET log_statement"); err != nil {
			t.Errorf("resetting log_statement: %v", err)
		}
	})
}

// logSince is the server's log after mark, synced.
func logSince(t *testing.T, ctx context.Context, mark int) string {
	t.Helper()
	log, err := cluster.SyncLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mark > len(log) {
		mark = 0
	}
	return log[mark:]
}

// execDeclared runs sql once with the extended protocol, the parameter
// types declared at Parse (as pgjdbc, npgsql and libpq callers passing
// paramTypes do), values in text format.
func execDeclared(ctx context.Context, conn *pgx.Conn, sql string, oids []uint32, vals ...string) ([][][]byte, error) {
	args := make([][]byte, len(vals))
	for i, v := range vals {
		args[i] = []byte(v)
	}
	res := conn.PgConn().ExecParams(ctx, sql, args, oids, nil, nil).Read()
	return res.Rows, res.Err
}

// TestEncWritebackReviewSharedParamPlain (HIGH): a parameter bound both to
// an encrypted column (or compared with one) and to a blind-index column
// that pgveil writes itself stays Pass at its own number, unused by the
// rewritten text, and pgveil forwards the client's value as sent: the
// plaintext reaches PostgreSQL, which logs it ("parameters: $2 = '…'").
// Expected: no plaintext in the server's log (the parameter encrypted or
// dropped, or the statement refused).
//
//	INSERT INTO contacts (org_id, email, email_bidx) VALUES ($1, $2, $2)
//	UPDATE users SET email = $1, email_bidx = $2 WHERE email = $2 AND org_id = $3
//	INSERT INTO users (org_id, email, email_bidx, ssn) VALUES ($1, $2, $3, $3)
func TestEncWritebackReviewSharedParamPlain(t *testing.T) {
	const org = 171
	p := startEncProxy(t, encOrgs(org, 1)...)
	ctx := testCtx(t, 2*time.Minute)
	logStatementsOf(t, ctx)
	setup := connectPgx(t, ctx, p.url())
	conn := connectPgx(t, ctx, p.url())

	same := "Shared-Param-7781@example.org"
	victim := "Shared-Victim-7782@example.org"
	newer := "Shared-New-7783@example.org"
	ssn := "SSN-SHARED-7784"
	p.remember(same, victim, newer, ssn)
	if _, err := setup.Exec(ctx, `INSERT INTO users (org_id, name, email) VALUES ($1, 'sp', $2)`, int64(org), victim); err != nil {
		t.Fatal(err)
	}
	orgText := strconv.Itoa(org)

	mark := len(cluster.Log())
	_, err1 := execDeclared(ctx, conn, `INSERT INTO contacts (org_id, email, email_bidx) VALUES ($1, $2, $2)`, []uint32{20, 25}, orgText, same)
	_, err2 := execDeclared(ctx, conn, `UPDATE users SET email = $1, email_bidx = $2 WHERE email = $2 AND org_id = $3`, []uint32{25, 25, 20}, newer, victim, orgText)
	_, err3 := execDeclared(ctx, conn, `INSERT INTO users (org_id, name, email, email_bidx, ssn) VALUES ($1, 'sp2', $2, $3, $3)`, []uint32{20, 25, 25}, orgText, "sp2-7785@example.org", ssn)
	// pgx's default: types from the server (the unused $n has none).
	_, err4 := conn.Exec(ctx, `INSERT INTO contacts (org_id, email, email_bidx) VALUES ($1, $2, $2)`, int64(org), same)
	t.Logf("outcomes: %v / %v / %v / %v", err1, err2, err3, err4)

	log := strings.ToLower(logSince(t, ctx, mark))
	if !strings.Contains(log, "parameters: $1") {
		t.Fatal("the server logged no parameters: the check below proves nothing")
	}
	for _, s := range []string{same, victim, newer, ssn} {
		if i := strings.Index(log, strings.ToLower(s)); i >= 0 {
			line := log[max(0, strings.LastIndex(log[:i], "\n")+1):]
			if j := strings.Index(line, "\n"); j >= 0 {
				line = line[:j]
			}
			t.Errorf("PostgreSQL received the plaintext %q: %s", s, line)
		}
	}
	verifyAtRest(t, ctx, []string{same, victim, newer, ssn})
}

// TestEncWritebackReviewIgnoredArrivesNull (held): the client's bytes for
// a blind index written beside its column never reach the server (its log
// shows the parameter NULL, never the bytes) in every way a driver binds
// them (declared bytea, text or int4, text or binary format, a named
// statement described first, a pipeline), and what is stored is the index
// of the stored value: equal to the index of the same email written
// without one.
func TestEncWritebackReviewIgnoredArrivesNull(t *testing.T) {
	const org = 173
	p := startEncProxy(t, encOrgs(org, 1)...)
	ctx := testCtx(t, 2*time.Minute)
	logStatementsOf(t, ctx)
	setup := connectPgx(t, ctx, p.url())
	conn := connectPgx(t, ctx, p.url())
	su := superConn(t, ctx)
	const email = "Ignored-Null-7791@example.org"
	p.remember(email)
	marker := []byte("BOGUS-INDEX-7792-bytes-no-match!")
	markerHex := hex.EncodeToString(marker)

	var refID int64
	if err := setup.QueryRow(ctx, `INSERT INTO contacts (org_id, email, note) VALUES ($1, $2, 'ref') RETURNING id`, int64(org), email).Scan(&refID); err != nil {
		t.Fatal(err)
	}
	bidxOf := func(id int64) []byte {
		var b []byte
		if err := su.QueryRow(ctx, `SELECT email_bidx FROM contacts WHERE id = $1`, id).Scan(&b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	want := bidxOf(refID)
	if len(want) != 32 {
		t.Fatalf("reference index %x", want)
	}

	mark := len(cluster.Log())
	var ids []int64
	add := func(name string, rows [][][]byte, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if len(rows) != 1 {
			t.Errorf("%s: %d rows", name, len(rows))
			return
		}
		id, err := strconv.ParseInt(string(rows[0][0]), 10, 64)
		if err != nil {
			t.Errorf("%s: id %q", name, rows[0][0])
			return
		}
		ids = append(ids, id)
	}
	ins := `INSERT INTO contacts (org_id, email, email_bidx) VALUES ($1, $2, $3) RETURNING id`
	orgText := strconv.Itoa(org)
	for _, d := range []struct {
		name string
		oid  uint32
		val  string
	}{{"bytea", 17, `\x` + markerHex}, {"text", 25, string(marker)}, {"int4", 23, "7793"}, {"undeclared", 0, `\x` + markerHex}} {
		rows, err := execDeclared(ctx, conn, ins, []uint32{20, 25, d.oid}, orgText, email, d.val)
		add("declared "+d.name, rows, err)
	}
	// binary format for the ignored parameter
	res := conn.PgConn().ExecParams(ctx, ins, [][]byte{[]byte(orgText), []byte(email), marker}, []uint32{20, 25, 17}, []int16{0, 0, 1}, nil).Read()
	add("binary", res.Rows, res.Err)

	// A named statement: ParameterDescription, then two Binds.
	sd, err := conn.PgConn().Prepare(ctx, "wb_named", `UPDATE contacts SET email_bidx = $1, email = $2 WHERE id = $3 AND org_id = $4`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sd.ParamOIDs) != 4 || sd.ParamOIDs[0] != 17 {
		t.Errorf("ParameterDescription of the named statement: %v, want bytea first", sd.ParamOIDs)
	}
	for _, id := range ids[:2] {
		r := conn.PgConn().ExecPrepared(ctx, "wb_named", [][]byte{[]byte(`\x` + markerHex), []byte(email), []byte(strconv.FormatInt(id, 10)), []byte(orgText)}, nil, nil).Read()
		if r.Err != nil || r.CommandTag.RowsAffected() != 1 {
			t.Errorf("named UPDATE of %d: %v %v", id, r.Err, r.CommandTag)
		}
	}

	// A pipeline in every pgx mode.
	for _, m := range execModes {
		c := connectMode(t, ctx, p.url(), m.mode)
		b := &pgx.Batch{}
		for i := 0; i < 3; i++ {
			b.Queue(ins, int64(org), email, marker)
		}
		br := c.SendBatch(ctx, b)
		for i := 0; i < 3; i++ {
			var id int64
			if err := br.QueryRow().Scan(&id); err != nil {
				t.Errorf("%s batch %d: %v", m.name, i, err)
				continue
			}
			ids = append(ids, id)
		}
		if err := br.Close(); err != nil {
			t.Errorf("%s batch: %v", m.name, err)
		}
	}

	log := logSince(t, ctx, mark)
	if !strings.Contains(log, "parameters: $1") {
		t.Fatal("the server logged no parameters: the check below proves nothing")
	}
	if strings.Contains(strings.ToLower(log), strings.ToLower(markerHex)) || strings.Contains(log, string(marker)) || strings.Contains(log, "'7793'") {
		t.Errorf("the client's bytes of email_bidx reached the server:\n%s", tail(log, 40))
	}
	for _, id := range ids {
		if got := bidxOf(id); !bytes.Equal(got, want) {
			t.Errorf("row %d: email_bidx %x, want %x (the index of its email)", id, got, want)
		}
	}
	if len(ids) < 5+3*len(execModes) {
		t.Errorf("%d rows written", len(ids))
	}
	var n int
	if err := setup.QueryRow(ctx, `SELECT count(*) FROM contacts WHERE email = $1`, email).Scan(&n); err != nil || n != len(ids)+1 {
		t.Errorf("found by email: %d (%v), want %d", n, err, len(ids)+1)
	}
}

// TestEncWritebackReviewTenant (held): written-back indexes with a tenant
// lookup (UPDATE without org_id) and with a tenant move (SET org_id):
// the row is found by its new email and carries pgveil's index.
func TestEncWritebackReviewTenant(t *testing.T) {
	const org = 175
	p := startEncProxy(t, encOrgs(org, 1)...)
	ctx := testCtx(t, 2*time.Minute)
	conn := connectPgx(t, ctx, p.url())
	su := superConn(t, ctx)
	bogus := bytes.Repeat([]byte{0xAB}, 32)
	first, looked, moved := "Tenant-WB-7801@example.org", "Tenant-WB-7802@example.org", "Tenant-WB-7803@example.org"
	p.remember(first, looked, moved)
	var id int64
	if err := conn.QueryRow(ctx, `INSERT INTO users (org_id, name, email, phone) VALUES ($1, 'twb', $2, $3) RETURNING id`, int64(org), first, "555-7804").Scan(&id); err != nil {
		t.Fatal(err)
	}
	p.remember("555-7804")
	check := func(email string, wantOrg int64) {
		t.Helper()
		var gotID, gotOrg int64
		var phone string
		if err := conn.QueryRow(ctx, `SELECT id, org_id, phone FROM users WHERE email = $1`, email).Scan(&gotID, &gotOrg, &phone); err != nil {
			t.Errorf("finding %s: %v", email, err)
			return
		}
		if gotID != id || gotOrg != wantOrg || phone != "555-7804" {
			t.Errorf("found %d org %d phone %q, want %d org %d", gotID, gotOrg, phone, id, wantOrg)
		}
		var b []byte
		if err := su.QueryRow(ctx, `SELECT email_bidx FROM users WHERE id = $1`, id).Scan(&b); err != nil || bytes.Equal(b, bogus) || len(b) != 32 {
			t.Errorf("email_bidx at rest %x (%v)", b, err)
		}
	}
	if ct, err := conn.Exec(ctx, `UPDATE users SET email = $1, email_bidx = $2 WHERE id = $3`, looked, bogus, id); err != nil || ct.RowsAffected() != 1 {
		t.Fatalf("tenant lookup: %v %v", err, ct)
	}
	check(looked, org)
	if ct, err := conn.Exec(ctx, `UPDATE users SET email_bidx = $1, org_id = $2, email = $3, phone = $5 WHERE id = $4`, bogus, int64(org+1000), moved, id, "555-7804"); err != nil || ct.RowsAffected() != 1 {
		t.Fatalf("tenant move: %v %v", err, ct)
	}
	check(moved, org+1000)
	verifyAtRest(t, ctx, []string{first, looked, moved, "555-7804"})
}
