package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A tenant shredded while `pgveil rotate` or `pgveil migrate --decrypt`
// runs stays shredded: the command had opened (and cached the key of) one
// of the tenant's values before the shred, and meets another only after
// the shred has committed; it must not write that value back, neither
// re-sealed under a new key version nor as plaintext. A row lock held by
// the test stops the command at that row (the first pass skips it, the
// second waits for it) until the shred has committed.

// rvKeyID is the key id of a text envelope in column c, as a number.
func rvKeyID(c string) string {
	return "('x' || encode(substr(decode(translate(substr(" + c + ", 6, 8), '-_', '+/'), 'base64'), 2, 4), 'hex'))::bit(32)::bigint"
}

// shredIntact checks what is left of tenant 2 of rv after a shred: no key
// of the tenant that is not a tombstone (nothing re-sealed under a version
// made after the shred), no value of the tenant under a key that opens,
// and nothing of it readable through pgveil.
func shredIntact(t *testing.T, ctx context.Context, su, app *pgx.Conn) {
	t.Helper()
	var live int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM pgveil.keys WHERE purpose = 'enc' AND tenant = '2' AND state <> 'shredded'`).Scan(&live); err != nil {
		t.Fatal(err)
	}
	var open int
	for _, c := range []string{"email", "note"} {
		var n int
		err := su.QueryRow(ctx, `SELECT count(*) FROM rv WHERE org = 2 AND `+c+` LIKE 'pgv1:%' AND NOT EXISTS (
			SELECT 1 FROM pgveil.keys k WHERE k.key_id = `+rvKeyID(c)+` AND k.state = 'shredded')`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		open += n
	}
	if live > 0 || open > 0 {
		t.Errorf("after the shred, tenant 2 has %d key version(s) that are not tombstones and %d value(s) under keys that open", live, open)
	}
	if app != nil {
		if n := rvReadable(t, ctx, app)[2]; n > 0 {
			t.Errorf("after the shred, %d row(s) of tenant 2 read back in clear through pgveil", n)
		}
	}
}

func TestOpsShredDuringRotate(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	e := newOpsEnv(t, "ops_shred_rotate", rvPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	before := rvReadable(t, ctx, app)

	// Row 4 is tenant 2's second row (org = 1 + id % 3); row 1 is its first.
	release := lockRow(t, ctx, e, "rv", "id = 4")
	rot, rotOut, rotErr := e.start("rotate", "-c", cfg, "--batch", "1", "--workers", "1", "--grace", "1ms")
	waitLockWait(t, ctx, su, "pgveil rotate")
	var row1 string
	if err := su.QueryRow(ctx, `SELECT state FROM pgveil.keys WHERE key_id = (SELECT `+rvKeyID("email")+` FROM rv WHERE id = 1)`).Scan(&row1); err != nil || row1 != "active" {
		t.Fatalf("precondition: row 1 not re-sealed under the new active version before the shred (%q, %v)", row1, err)
	}

	// The shred destroys the keys, then waits for row 4 to clear its blind index.
	sh, shOut, shErr := e.start("shred", "-c", cfg, "--table", "public.rv", "--tenant", "2", "--yes")
	waitFor(t, time.Minute, "the shred to commit", func() (bool, error) {
		var n int
		err := su.QueryRow(ctx, `SELECT count(*) FROM pgveil.keys WHERE purpose = 'enc' AND tenant = '2' AND state <> 'shredded'`).Scan(&n)
		return n == 0, err
	})
	release()
	if err := rot.Wait(); err != nil {
		t.Errorf("rotate: %v\n%s\n%s", err, rotOut.String(), tail(rotErr.String(), 20))
	}
	if err := sh.Wait(); err != nil {
		t.Errorf("shred: %v\n%s\n%s", err, shOut.String(), tail(shErr.String(), 20))
	}
	if !strings.Contains(rotOut.String(), "left as they are") {
		t.Errorf("rotate does not report the shredded values it left:\n%s", rotOut.String())
	}
	shredIntact(t, ctx, su, e.appConn(ctx, p))
	if got := rvReadable(t, ctx, e.appConn(ctx, p)); got[1] != before[1] || got[3] != before[3] {
		t.Errorf("other tenants read %v after the rotation, want %v", got, before)
	}
	t.Logf("rotate:\n%s", rotOut.String())
}

func TestOpsShredDuringDecrypt(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	e := newOpsEnv(t, "ops_shred_decrypt", rvPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")

	// `pgveil shred` has checked the table (complete) and is about to
	// destroy the keys when `pgveil migrate --decrypt` starts: a table
	// lock held by the test keeps it there.
	hold, err := e.conn(ctx).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback(context.Background())
	if _, err := hold.Exec(ctx, `LOCK TABLE pgveil.keys IN ROW EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	sh, shOut, shErr := e.start("shred", "-c", cfg, "--table", "public.rv", "--tenant", "2", "--yes")
	waitLockWait(t, ctx, su, "pgveil shred")

	release := lockRow(t, ctx, e, "rv", "id = 4")
	dec, decOut, decErr := e.start("migrate", "-c", cfg, "--decrypt", "--apply", "--batch", "1", "--workers", "1")
	waitLockWait(t, ctx, su, "pgveil migrate")
	var row1 string
	if err := su.QueryRow(ctx, `SELECT email FROM rv WHERE id = 1`).Scan(&row1); err != nil || row1 != "u1@x.org" {
		t.Fatalf("precondition: row 1 of tenant 2 not decrypted before the shred (%q, %v)", row1, err)
	}

	if err := hold.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the shred to commit", func() (bool, error) {
		var n int
		err := su.QueryRow(ctx, `SELECT count(*) FROM pgveil.keys WHERE purpose = 'enc' AND tenant = '2' AND state <> 'shredded'`).Scan(&n)
		return n == 0, err
	})
	release()
	if err := dec.Wait(); err != nil {
		t.Errorf("migrate --decrypt: %v\n%s\n%s", err, decOut.String(), tail(decErr.String(), 20))
	}
	sh.Wait()
	t.Logf("shred: exit %d\n%s%s", sh.ProcessState.ExitCode(), shOut.String(), tail(shErr.String(), 6))
	// Row 1 was decrypted before the keys were destroyed: plaintext no
	// key erases. The shred says so, and fails.
	if code := sh.ProcessState.ExitCode(); code != 1 || !strings.Contains(shErr.String(), "hold values without an envelope") ||
		!strings.Contains(shOut.String(), "data key(s) destroyed") {
		t.Errorf("shred with the tenant's plaintext left by a concurrent decrypt: exit %d, want 1 naming the plaintext rows (and the keys destroyed)\n%s%s", code, shOut.String(), tail(shErr.String(), 6))
	}
	var email, note *string
	if err := su.QueryRow(ctx, `SELECT email, note FROM rv WHERE id = 4`).Scan(&email, &note); err != nil {
		t.Fatal(err)
	}
	if email != nil || note != nil {
		t.Errorf("row 4 of tenant 2, met by migrate --decrypt after the shred, holds %s / %s, want NULL", fmtPtr(email), fmtPtr(note))
	}
	var rest int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM rv WHERE org <> 2 AND (email NOT LIKE 'u%@x.org' OR note NOT LIKE 'note %')`).Scan(&rest); err != nil || rest != 0 {
		t.Errorf("%d row(s) of other tenants not decrypted (%v)\n%s", rest, err, decOut.String())
	}
}
