package integration

// Review 13 (code and definitions stored in the database), end to end;
// planner side and the full explanation: rewrite/review13_test.go.
//   TestEncReview13FoundStoredPlaintext HIGH: each statement below passes
//     pgveil unchanged, PostgreSQL 15 accepts it, and the literal compared
//     with (or assigned to) an encrypted column is stored in the catalog as
//     bytea of its plaintext: a rule's WHERE subquery (pg_rewrite), a
//     policy on an unconfigured table with a subquery (pg_policy), a
//     trigger WHEN over (NEW).email (pg_trigger), a function body whose
//     names are E'…' escapes (pg_proc.prosrc, in plain text), a LANGUAGE
//     sql body comparing a whole row (pg_proc.prosrc), a DEFAULT on a view
//     over encrypted columns (pg_attrdef).

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const r13Leak = "r13-leak@example.org"

// r13Catalog is the text of every definition the server stores that the
// statements of the test could reach.
const r13Catalog = `SELECT concat_ws(' ',
  (SELECT string_agg(prosrc, ' ') FROM pg_proc WHERE pronamespace = 'public'::regnamespace),
  (SELECT string_agg(pg_get_ruledef(oid), ' ') FROM pg_rewrite WHERE rulename <> '_RETURN'),
  (SELECT string_agg(concat_ws(' ', pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid)), ' ') FROM pg_policy),
  (SELECT string_agg(pg_get_triggerdef(oid), ' ') FROM pg_trigger WHERE NOT tgisinternal),
  (SELECT string_agg(pg_get_expr(adbin, adrelid), ' ') FROM pg_attrdef),
  (SELECT string_agg(pg_get_indexdef(indexrelid), ' ') FROM pg_index WHERE indrelid >= 16384),
  (SELECT string_agg(pg_get_viewdef(oid), ' ') FROM pg_class WHERE relkind IN ('v', 'm') AND relnamespace = 'public'::regnamespace))`

func TestEncReview13FoundStoredPlaintext(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9130)
	p.remember(r13Leak)
	su := superConn(t, ctx)
	t.Cleanup(func() {
		if _, err := su.Exec(context.Background(), `DROP VIEW IF EXISTS r13_v; DROP TABLE IF EXISTS r13_t CASCADE; DROP FUNCTION IF EXISTS r13_f(), r13_g(), r13_h(int8), r13_k(), r13_trg() CASCADE`); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	// scram_user owns r13_t and r13_v and may create triggers on contacts,
	// so that the server would accept every statement below.
	if _, err := su.Exec(ctx, `GRANT TRIGGER ON contacts TO scram_user;
CREATE FUNCTION r13_trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE VIEW r13_v AS SELECT id, org_id, email, email_bidx FROM contacts;
ALTER VIEW r13_v OWNER TO scram_user`); err != nil {
		t.Fatal(err)
	}
	conn := connectPgx(t, ctx, p.url())
	// DDL through pgveil: the catalog read after it lists r13_v.
	if _, err := conn.Exec(ctx, `CREATE TABLE r13_t (id int8, name text)`, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	hexLeak := hex.EncodeToString([]byte(r13Leak))
	for _, sql := range []string{
		`CREATE RULE r13_r AS ON INSERT TO r13_t WHERE EXISTS (SELECT 1 FROM contacts WHERE email = '` + r13Leak + `') DO ALSO DELETE FROM r13_t WHERE false`,
		`CREATE POLICY r13_p ON r13_t USING (EXISTS (SELECT 1 FROM contacts c WHERE c.email = '` + r13Leak + `'))`,
		`CREATE TRIGGER r13_tg BEFORE INSERT ON contacts FOR EACH ROW WHEN ((NEW).email = '` + r13Leak + `') EXECUTE FUNCTION r13_trg()`,
		`CREATE FUNCTION r13_f() RETURNS void LANGUAGE sql AS E'UPDATE \143ontacts SET \145mail = ''` + r13Leak + `'' WHERE false'`,
		`CREATE FUNCTION r13_g() RETURNS bool LANGUAGE sql AS $$SELECT EXISTS (SELECT 1 FROM contacts c WHERE c = ROW(1, 1, '` + r13Leak + `', null, null)::contacts)$$`,
		`ALTER VIEW r13_v ALTER COLUMN email SET DEFAULT '` + r13Leak + `'`,
		// PL/pgSQL whole rows (plpgsql.go).
		`CREATE FUNCTION r13_h(i int8) RETURNS bool LANGUAGE plpgsql AS $$DECLARE r contacts; BEGIN SELECT * INTO r FROM contacts WHERE id = i; RETURN r::text LIKE '%` + r13Leak + `%'; END$$`,
		`CREATE FUNCTION r13_k() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN IF NEW::text LIKE '%` + r13Leak + `%' THEN RETURN NULL; END IF; RETURN NEW; END$$`,
	} {
		_, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "pgveil") {
			t.Errorf("%s\n got %v, want pgveil's refusal (0A000)", sql, err)
		}
		var stored string
		if err := su.QueryRow(ctx, r13Catalog).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		for _, needle := range []string{r13Leak, hexLeak} {
			if i := strings.Index(stored, needle); i >= 0 {
				t.Errorf("%s\n the catalog holds the plaintext compared with an encrypted column: …%s…", sql, stored[max(0, i-80):min(len(stored), i+len(needle)+20)])
			}
		}
		if _, err := su.Exec(ctx, `DROP RULE IF EXISTS r13_r ON r13_t; DROP POLICY IF EXISTS r13_p ON r13_t; DROP TRIGGER IF EXISTS r13_tg ON contacts;
DROP FUNCTION IF EXISTS r13_f(), r13_g(), r13_h(int8), r13_k(); ALTER VIEW r13_v ALTER COLUMN email DROP DEFAULT`); err != nil {
			t.Fatal(err)
		}
	}
}
