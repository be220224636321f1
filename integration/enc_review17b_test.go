package integration

// Review 17b: pipelines that mix tenant key fetches (cold per-tenant data
// keys), tenant lookups (UPDATE without the tenant) and errors, on both
// engines (goroutine relay: PGVEIL_TEST_EVENT_LOOPS=0; event loop: 1).
// Every response sequence is compared message for message with what
// PostgreSQL 15 answers directly for the same messages on a plaintext
// mirror (schema r17plain: orgs and users with the logical types and the
// same constraint names).
//
// Findings:
//
//   1. HIGH TestReview17bColdSecond ("literal lookups"),
//      TestReview17bPgxPipelineAfterError, proxy
//      TestReview17bLookupAfterQueuedSync: after an error in one pipeline
//      (the server skipping up to its Sync), an UPDATE whose tenant pgveil
//      looks up in the NEXT pipeline, sent before the first one's
//      ReadyForQuery came back (pgx pipeline mode, any client pipelining
//      across Syncs), was taken for skipped too: tracker.pushUnlessSkipping
//      looked at "the server skips" and not at the Sync queued ahead of
//      the lookup. pgveil dropped the client's Parse/Bind/Execute of the
//      UPDATE (not executed, no error) and answered only the Sync: the
//      client lost step (pgx: the connection closed). Fix: a lookup
//      behind a queued Sync is sent (tracker.syncQueuedLocked).
//
//   2. LOW (documented in docs/SQL.md, not changed): a simple-Query UPDATE
//      whose tenant is looked up, pipelined behind messages the server has
//      yet to answer, is refused (0A000) rather than held back until the
//      server is at rest (TestReview17bSimpleAndCopy).
//   3. LOW (documented, not fixed): on the goroutine relay a client that
//      hangs up while its lookup is outstanding is noticed only when the
//      lookup answers (the client side waits in awaitLookup without
//      reading the client): its backend runs the lookup to the end. The
//      event loop notices at once; a CancelRequest works on both
//      (TestReview17bTamperShredCancel).
//   4. LOW TestReview17bUnnamedNameInErrors, proxy TestClientName: an
//      error naming the client's unnamed statement that pgveil prepared
//      under its own name showed that name ("bind message supplies 1
//      parameters, but prepared statement "pgveil_…_2" requires 0";
//      PostgreSQL: prepared statement ""): clientName mapped only "does
//      not exist" for the unnamed statement. Fix: the quoted upstream
//      name becomes "" in the server's other messages too. (Noticed, not
//      changed: `COPY (SELECT … WHERE org_id = $1) TO STDOUT` gets 42P18
//      at Parse through pgveil, 08P01 at Bind from PostgreSQL; both
//      refuse a COPY with parameters.)
//   5. LOW (noticed): a data key is created for any tenant value pgveil
//      seals under, also one the statement then fails on (an unknown org:
//      the FK refuses the row, the key row in pgveil.keys stays).
//   6. LOW (documented in docs/SQL.md, not changed;
//      TestReview17bLookupNotices): the lookup evaluates the client's
//      WHERE once more, so a function it calls runs twice and its NOTICEs
//      reach the client twice (the lookup's before the UPDATE's
//      BindComplete).
//
// Held (compared with PostgreSQL message for message, both engines):
// pipelines of many cold tenants with a division by zero, a duplicate key,
// an unknown tenant (FK), a refusal by pgveil, a failing lookup, a bad
// tenant value in the middle (rest skipped, implicit transaction rolled
// back, next pipeline fine); named and unnamed statements reused across
// tenants, Describe of statements and portals, max-rows Execute and
// PortalSuspended, portals across Syncs in a block, Close between, Flush
// without Sync; lookups of rows of many tenants, with errors, on a cold
// pgveil, with blind-index WHEREs, literal lookups at Parse, RETURNING
// with max rows, interleaved portals; DEALLOCATE ALL / DISCARD ALL
// between lookups; aborted blocks (25P02); moves refused or sealed under
// the new tenant (also when WHERE names the old one); tenant from a
// subquery and INSERT … SELECT refused; COPY FROM/TO with many tenants, a
// bad or unknown tenant, skipped after an error, ahead of lookups; a value
// of another tenant's row (PV001 after the rows before it, other sessions
// fine); a shredded tenant read as NULL among live ones and written anew;
// cancel and disconnect during a lookup; a key load blocked on the key
// store holding no other session; a failing key store (the cold read ends
// its session with PV004 after the rows before it, others go on, the same
// pipeline works once the store is back); concurrent sessions racing
// first keys; tenant spellings PostgreSQL reads alike (leading zeros,
// sign, blanks, numeric, binary int4/int8, literals) sealing under one
// tenant; the search_path question, a lookup and a cold key for one
// message; DELETE … RETURNING with max rows. No data race with a -race
// binary (PGVEIL_BIN).

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgveil/pgveil/integration/harness"
)

const r17Mirror = `
DROP SCHEMA IF EXISTS r17plain CASCADE;
CREATE SCHEMA r17plain;
CREATE TABLE r17plain.orgs (id int8 PRIMARY KEY, name text NOT NULL);
CREATE TABLE r17plain.users (
  id bigserial PRIMARY KEY,
  org_id int8 NOT NULL REFERENCES r17plain.orgs,
  name text,
  email text,
  email_bidx bytea UNIQUE,
  phone text,
  ssn text,
  ssn_bidx bytea,
  birth_date date,
  api_token int8,
  created_at timestamptz DEFAULT now()
);
GRANT USAGE ON SCHEMA r17plain TO scram_user;
GRANT ALL ON ALL TABLES IN SCHEMA r17plain TO scram_user;
GRANT ALL ON ALL SEQUENCES IN SCHEMA r17plain TO scram_user;
`

type r17Env struct {
	t      *testing.T
	ctx    context.Context
	p      *encProxy
	px, pd *pgconn.PgConn
	orgs   []int64
}

// r17Engines runs f on the goroutine relay and on an event loop, each
// with a pgveil of its own (cold key cache) and tenants of its own
// (base, base+1, … : data keys created on first use).
func r17Engines(t *testing.T, base int64, f func(t *testing.T, e *r17Env)) {
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			e := newR17Env(t, base+int64(i)*100)
			f(t, e)
			loop, gor := logCount(e.p.Proxy, "relaying on an event loop"), logCount(e.p.Proxy, "relaying on goroutines")
			if (eng.loops == "0") != (loop == 0) || (eng.loops == "0" && gor == 0) {
				t.Errorf("%s: %d sessions relayed on an event loop, %d on goroutines", eng.name, loop, gor)
			}
		})
	}
}

func newR17Env(t *testing.T, base int64) *r17Env {
	t.Helper()
	var orgs []int64
	for i := int64(0); i < 10; i++ {
		orgs = append(orgs, base+i)
	}
	ctx := testCtx(t, 4*time.Minute)
	p := startEncProxyPolicy(t, "  level: debug\n  format: json\n", encPolicy, orgs...)
	su := superConn(t, ctx)
	if _, err := su.Exec(ctx, r17Mirror); err != nil {
		t.Fatal(err)
	}
	for _, o := range orgs {
		if _, err := su.Exec(ctx, `INSERT INTO r17plain.orgs VALUES ($1, $2)`, o, fmt.Sprintf("org %d", o)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := su.Exec(ctx, `ALTER TABLE public.users OWNER TO scram_user`); err != nil {
		t.Fatal(err)
	}
	e := &r17Env{t: t, ctx: ctx, p: p, orgs: orgs}
	e.px = connectPgx(t, ctx, p.url("application_name=r17px")).PgConn()
	e.pd = connectPgx(t, ctx, directURL(harness.SCRAMUser, "sslmode=disable", "search_path=r17plain")).PgConn()
	return e
}

const r17Ins = `INSERT INTO users (id, org_id, name, email, phone) VALUES ($1, $2, $3, $4, $5)`

// ins is Parse (unnamed), Bind, Execute of an INSERT of user id of org.
func (e *r17Env) ins(id, org int64, tag string) []pgproto3.FrontendMessage {
	return append([]pgproto3.FrontendMessage{&pgproto3.Parse{Query: r17Ins}}, e.insBind("", id, org, tag)...)
}

// insBind is Bind and Execute of statement stmt (an r17Ins).
func (e *r17Env) insBind(stmt string, id, org int64, tag string) []pgproto3.FrontendMessage {
	email := fmt.Sprintf("r17-%s-%d@example.org", tag, id)
	phone := fmt.Sprintf("ph-r17-%s-%d", tag, id)
	e.p.remember(email, phone)
	return []pgproto3.FrontendMessage{
		&pgproto3.Bind{PreparedStatement: stmt, Parameters: [][]byte{
			[]byte(fmt.Sprint(id)), []byte(fmt.Sprint(org)), []byte(tag), []byte(email), []byte(phone)}},
		&pgproto3.Execute{},
	}
}

// ext is Parse (unnamed), Bind, Execute of sql with text parameters.
func ext(sql string, params ...any) []pgproto3.FrontendMessage {
	var ps [][]byte
	for _, p := range params {
		if p == nil {
			ps = append(ps, nil)
			continue
		}
		ps = append(ps, []byte(fmt.Sprint(p)))
	}
	return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{Parameters: ps}, &pgproto3.Execute{}}
}

func cat(parts ...[]pgproto3.FrontendMessage) []pgproto3.FrontendMessage {
	var out []pgproto3.FrontendMessage
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var (
	sync1  = []pgproto3.FrontendMessage{&pgproto3.Sync{}}
	flush1 = []pgproto3.FrontendMessage{&pgproto3.Flush{}}
)

func query(sql string) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}
}

// same runs msgs through pgveil and directly, and reports a difference
// (norm, when not nil, rewrites both traces first).
func (e *r17Env) same(what string, norm func([]string) []string, msgs ...pgproto3.FrontendMessage) []string {
	e.t.Helper()
	got := r17Trace(e.ctx, e.px, msgs...)
	want := r17Trace(e.ctx, e.pd, msgs...)
	if norm != nil {
		got, want = norm(got), norm(want)
	}
	if os.Getenv("R17_DEBUG") != "" {
		e.t.Logf("%s: %s", what, prShort(got))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		e.t.Errorf("%s:\n pgveil:     %s\n PostgreSQL: %s", what, prShort(r17Diff(got, want)), prShort(r17Diff(want, got)))
	}
	return got
}

// r17Diff is a from its first difference with b (long traces).
func r17Diff(a, b []string) []string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	if i < 3 {
		return a
	}
	return append([]string{fmt.Sprintf("…%d same…", i)}, a[i:]...)
}

// check compares the whole table.
func (e *r17Env) check(what string) {
	e.t.Helper()
	e.same(what+": table", nil, query(`SELECT id, org_id, name, email, phone FROM users ORDER BY id`)...)
}

// r17Trace is prTrace with a deadline: a response pgveil holds back
// fails the test instead of hanging it. A Flush-terminated batch (no Sync
// or Query) is read up to its last CommandComplete, ErrorResponse,
// PortalSuspended or ParseComplete-only answer: the caller then passes
// the count of such ends to wait for in the Flush entry.
func r17Trace(ctx context.Context, c *pgconn.PgConn, msgs ...pgproto3.FrontendMessage) []string {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	fe := c.Frontend()
	want, ends := 0, 0
	for _, m := range msgs {
		fe.Send(m)
		switch m.(type) {
		case *pgproto3.Sync, *pgproto3.Query:
			want++
		case *pgproto3.Execute:
			ends++
		}
	}
	if err := fe.Flush(); err != nil {
		return []string{"flush: " + err.Error()}
	}
	var trace []string
	var formats []int16
	synced := want > 0
	for (synced && want > 0) || (!synced && ends > 0) {
		msg, err := c.ReceiveMessage(ctx)
		if err != nil {
			return append(trace, "receive: "+err.Error())
		}
		trace = append(trace, prRender(msg, &formats))
		switch msg.(type) {
		case *pgproto3.ReadyForQuery:
			want--
		case *pgproto3.CommandComplete, *pgproto3.PortalSuspended, *pgproto3.EmptyQueryResponse:
			ends--
		case *pgproto3.ErrorResponse:
			if !synced {
				ends = 0 // the rest is skipped until Sync
			}
		}
	}
	return trace
}

var r17ErrText = regexp.MustCompile(`^ErrorResponse (\S+) .*$`)

// errCodeOnly keeps only the fact of an error (where it is): for pgveil's
// refusals against an error PostgreSQL raises at the same message.
func errCodeOnly(tr []string) []string {
	out := make([]string, len(tr))
	for i, l := range tr {
		out[i] = r17ErrText.ReplaceAllString(l, "ErrorResponse")
	}
	return out
}

// TestReview17bPipelines: extended-protocol pipelines over many cold
// tenants, with errors of every kind in the middle.
func TestReview17bPipelines(t *testing.T) {
	r17Engines(t, 17100, func(t *testing.T, e *r17Env) {
		o := e.orgs
		// Six cold tenants before one Sync.
		var msgs []pgproto3.FrontendMessage
		for i := 0; i < 6; i++ {
			msgs = append(msgs, e.ins(int64(1+i), o[i], "cold")...)
		}
		e.same("six cold tenants", nil, append(msgs, sync1...)...)
		e.check("six cold tenants")

		// An error in the middle: the rest skipped, the earlier rows of
		// the implicit transaction rolled back; the next pipeline works.
		errs := []struct {
			name     string
			px, pd   []pgproto3.FrontendMessage
			normOnly bool
		}{
			{"division by zero", ext(`SELECT 1/0`), ext(`SELECT 1/0`), false},
			{"duplicate key", e.ins(1, o[7], "dup"), e.ins(1, o[7], "dup"), false},
			{"unknown tenant", e.ins(90, 99999999, "unknown"), e.ins(90, 99999999, "unknown"), false},
			{"refused by pgveil", ext(`SELECT id FROM users WHERE phone = $1`, "x"), ext(`SELECT id FROM r17_no_such_table WHERE phone = $1`, "x"), true},
			{"tenant lookup error", ext(`UPDATE users SET email = $1 WHERE id = 1/$2::int`, "r17-lookup-err@example.org", 0),
				ext(`UPDATE users SET email = $1 WHERE id = 1/$2::int`, "r17-lookup-err@example.org", 0), false},
			{"tenant from a bad cast", ext(r17Ins, 91, "notanumber", "x", "r17-badcast@example.org", nil), ext(r17Ins, 91, "notanumber", "x", "r17-badcast@example.org", nil), true},
		}
		for k, er := range errs {
			id := int64(10 + 10*k)
			before := cat(e.ins(id, o[8-k%3], "pre"), e.ins(id+1, o[9-k%3], "pre"))
			after := cat(e.ins(id+2, o[k%6], "post"), ext(`UPDATE users SET email = $1 WHERE id = $2`, fmt.Sprintf("r17-upd-%d@example.org", k), 1+k%6), e.ins(id+3, o[(k+1)%6], "post"))
			e.p.remember(fmt.Sprintf("r17-upd-%d@example.org", k))
			var norm func([]string) []string
			if er.normOnly {
				norm = errCodeOnly
			}
			got := r17Trace(e.ctx, e.px, cat(before, er.px, after, sync1)...)
			want := r17Trace(e.ctx, e.pd, cat(before, er.pd, after, sync1)...)
			if norm != nil {
				got, want = norm(got), norm(want)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s in the middle:\n pgveil:     %s\n PostgreSQL: %s", er.name, prShort(got), prShort(want))
			}
			e.same(er.name+": next pipeline", nil, cat(e.ins(id+4, o[(k+2)%6], "next"), sync1)...)
			e.check(er.name)
		}
	})
}

// TestReview17bPortals: named statements reused with other tenants,
// Describe of statements and portals, Execute with max rows on
// tenant-bound SELECTs, Close between, Flush without Sync, and tenant
// lookups of rows of several tenants in one pipeline.
func TestReview17bPortals(t *testing.T) {
	r17Engines(t, 17300, func(t *testing.T, e *r17Env) {
		o := e.orgs
		var seed []pgproto3.FrontendMessage
		for i := 0; i < 8; i++ {
			seed = append(seed, e.ins(int64(1+i), o[i%4], "seed")...)
		}
		e.same("seed", nil, append(seed, sync1...)...)

		sel := `SELECT id, org_id, email, phone FROM users WHERE org_id = $1 ORDER BY id`
		e.same("named statements across tenants", nil, cat(
			[]pgproto3.FrontendMessage{&pgproto3.Parse{Name: "r17ins", Query: r17Ins}, &pgproto3.Describe{ObjectType: 'S', Name: "r17ins"}},
			e.insBind("r17ins", 20, o[5], "named"),
			e.insBind("r17ins", 21, o[6], "named"),
			[]pgproto3.FrontendMessage{&pgproto3.Close{ObjectType: 'S', Name: "r17ins"},
				&pgproto3.Parse{Name: "r17sel", Query: sel},
				&pgproto3.Describe{ObjectType: 'S', Name: "r17sel"},
				&pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "r17sel", Parameters: [][]byte{[]byte(fmt.Sprint(o[0]))}},
				&pgproto3.Describe{ObjectType: 'P', Name: "p1"},
				&pgproto3.Execute{Portal: "p1", MaxRows: 1},
				&pgproto3.Bind{DestinationPortal: "p2", PreparedStatement: "r17sel", Parameters: [][]byte{[]byte(fmt.Sprint(o[5]))}, ResultFormatCodes: []int16{1, 1, 0, 0}},
				&pgproto3.Execute{Portal: "p2", MaxRows: 1},
				&pgproto3.Execute{Portal: "p1", MaxRows: 1},
				&pgproto3.Close{ObjectType: 'P', Name: "p1"},
				&pgproto3.Execute{Portal: "p2"},
				&pgproto3.Bind{DestinationPortal: "p3", PreparedStatement: "r17sel", Parameters: [][]byte{[]byte(fmt.Sprint(o[6]))}},
				&pgproto3.Execute{Portal: "p3", MaxRows: 5},
			},
			sync1)...)
		e.same("in a transaction block: portals across a Sync", nil, cat(query("BEGIN"),
			[]pgproto3.FrontendMessage{
				&pgproto3.Bind{DestinationPortal: "q1", PreparedStatement: "r17sel", Parameters: [][]byte{[]byte(fmt.Sprint(o[1]))}},
				&pgproto3.Execute{Portal: "q1", MaxRows: 1}, &pgproto3.Sync{},
				&pgproto3.Bind{DestinationPortal: "q2", PreparedStatement: "r17sel", Parameters: [][]byte{[]byte(fmt.Sprint(o[2]))}},
				&pgproto3.Execute{Portal: "q2", MaxRows: 1},
				&pgproto3.Execute{Portal: "q1", MaxRows: 1}, &pgproto3.Sync{},
				&pgproto3.Execute{Portal: "q1"}, &pgproto3.Execute{Portal: "q2"}, &pgproto3.Sync{},
			}, query("COMMIT"))...)

		// Unnamed statement reused across tenants: Parse once, Bind many.
		e.same("unnamed statement reused", nil, cat(
			[]pgproto3.FrontendMessage{&pgproto3.Parse{Query: sel}},
			[]pgproto3.FrontendMessage{&pgproto3.Bind{Parameters: [][]byte{[]byte(fmt.Sprint(o[0]))}}, &pgproto3.Execute{}},
			[]pgproto3.FrontendMessage{&pgproto3.Bind{Parameters: [][]byte{[]byte(fmt.Sprint(o[1]))}}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{MaxRows: 1}},
			[]pgproto3.FrontendMessage{&pgproto3.Bind{Parameters: [][]byte{[]byte(fmt.Sprint(o[3]))}}, &pgproto3.Execute{}},
			sync1)...)

		// Flush without Sync: each answer comes before the next is sent.
		e.same("flush 1", nil, cat(e.ins(30, o[7], "flush"), flush1)...)
		e.same("flush 2", nil, cat(ext(sel, o[7]), flush1)...)
		e.same("flush 3 (lookup)", nil, cat(ext(`UPDATE users SET email = $1 WHERE id = $2`, "r17-flush-upd@example.org", 30), flush1)...)
		e.p.remember("r17-flush-upd@example.org")
		e.same("flush 4 (error)", nil, cat(ext(`SELECT 1/0`), flush1)...)
		e.same("flush 5 (skipped)", nil, cat(e.ins(31, o[8], "flush"), ext(`UPDATE users SET email = $1 WHERE id = $2`, "r17-flush-upd2@example.org", 1), sync1)...)
		e.same("flush 6", nil, cat(ext(`UPDATE users SET email = $1 WHERE id = $2`, "r17-flush-upd3@example.org", 2), flush1)...)
		e.same("flush 6 sync", nil, sync1...)
		e.p.remember("r17-flush-upd2@example.org", "r17-flush-upd3@example.org")

		// Tenant lookups of rows of many tenants in one pipeline, named
		// statement reused, with an error in the middle.
		upd := `UPDATE users SET email = $1, phone = $2 WHERE id = $3`
		var lk []pgproto3.FrontendMessage
		lk = append(lk, &pgproto3.Parse{Name: "r17upd", Query: upd})
		for i := 1; i <= 8; i++ {
			em, ph := fmt.Sprintf("r17-lk-%d@example.org", i), fmt.Sprintf("ph-r17-lk-%d", i)
			e.p.remember(em, ph)
			lk = append(lk, &pgproto3.Bind{PreparedStatement: "r17upd", Parameters: [][]byte{[]byte(em), []byte(ph), []byte(fmt.Sprint(i))}}, &pgproto3.Execute{})
		}
		e.same("lookups of eight rows", nil, cat(lk, sync1)...)
		e.check("lookups")
		lk = lk[:1]
		for i := 1; i <= 8; i++ {
			em := fmt.Sprintf("r17-lk2-%d@example.org", i)
			e.p.remember(em)
			if i == 4 {
				lk = append(lk, ext(`SELECT 1/0`)...)
			}
			lk = append(lk, &pgproto3.Bind{PreparedStatement: "r17upd", Parameters: [][]byte{[]byte(em), nil, []byte(fmt.Sprint(i))}}, &pgproto3.Execute{})
		}
		lk[0] = &pgproto3.Describe{ObjectType: 'S', Name: "r17upd"}
		e.same("lookups with an error in the middle", nil, cat(lk, sync1)...)
		e.check("lookups with an error")

		// An aborted transaction block with lookups and cold keys ahead.
		e.same("aborted block", nil, cat(query("BEGIN"), e.ins(40, o[9], "abort"), ext(`SELECT 1/0`),
			ext(upd, "r17-ab@example.org", "ph-r17-ab", 1), e.ins(41, o[9], "abort"), sync1,
			ext(upd, "r17-ab@example.org", "ph-r17-ab", 1), sync1, query("ROLLBACK"))...)
		e.p.remember("r17-ab@example.org", "ph-r17-ab")
		e.check("aborted block")
	})
}

// startSecond starts another pgveil on the same database (the schema
// kept): its key cache is cold for every tenant the first one wrote. Its
// log is checked against the plaintexts remembered on the first.
func (e *r17Env) startSecond(t *testing.T) *encProxy {
	t.Helper()
	return startEncProxyOn(t, "  level: debug\n  format: json\n", encPolicy, e.p.secrets)
}

// TestReview17bColdSecond: a pgveil whose cache holds no tenant key runs
// pipelines of reads (max rows), tenant lookups (the key of the tenant
// found is cold) and errors over rows another pgveil wrote.
func TestReview17bColdSecond(t *testing.T) {
	r17Engines(t, 17500, func(t *testing.T, e *r17Env) {
		o := e.orgs
		var seed []pgproto3.FrontendMessage
		for i := 0; i < 10; i++ {
			seed = append(seed, e.ins(int64(1+i), o[i], "seed")...)
		}
		e.same("seed", nil, append(seed, sync1...)...)
		p2 := e.startSecond(t)
		e.px = connectPgx(t, e.ctx, p2.url()).PgConn()

		sel := `SELECT id, org_id, email, phone FROM users WHERE org_id = $1 ORDER BY id`
		e.same("cold reads with max rows", nil, cat(
			[]pgproto3.FrontendMessage{&pgproto3.Parse{Name: "s", Query: sel},
				&pgproto3.Bind{DestinationPortal: "a", PreparedStatement: "s", Parameters: [][]byte{[]byte(fmt.Sprint(o[0]))}},
				&pgproto3.Bind{DestinationPortal: "b", PreparedStatement: "s", Parameters: [][]byte{[]byte(fmt.Sprint(o[1]))}},
				&pgproto3.Execute{Portal: "b", MaxRows: 1},
				&pgproto3.Execute{Portal: "a", MaxRows: 1},
				&pgproto3.Execute{Portal: "a"},
				&pgproto3.Execute{Portal: "b"},
			},
			ext(`SELECT 1/(count(*)-count(*)) FROM pg_sleep(0.2)`),
			ext(sel, o[2]),
			sync1)...)
		upd := `UPDATE users SET email = $1 WHERE id = $2`
		var lk []pgproto3.FrontendMessage
		for i := 3; i <= 10; i++ {
			em := fmt.Sprintf("r17-cold-%d@example.org", i)
			e.p.remember(em)
			if i == 7 {
				lk = append(lk, ext(`SELECT 1/(count(*)-count(*)) FROM pg_sleep(0.2)`)...)
			}
			lk = append(lk, ext(upd, em, i)...)
		}
		e.same("cold lookups with a slow error", nil, cat(lk, sync1)...)
		e.same("cold lookups again", nil, cat(lk[:len(lk)-6], ext(sel, o[8]), ext(sel, o[9]), sync1)...)
		e.check("cold")
		// Literal lookups (unnamed, no parameters: looked up at Parse).
		e.p.remember("r17-lit-a@example.org", "r17-lit-b@example.org")
		e.same("literal lookups", nil, cat(
			ext(`UPDATE users SET email = 'r17-lit-a@example.org' WHERE id = 9`),
			ext(`SELECT 1/(count(*)-count(*)) FROM pg_sleep(0.1)`),
			ext(`UPDATE users SET email = 'r17-lit-b@example.org' WHERE id = 10`),
			sync1,
			ext(`UPDATE users SET email = 'r17-lit-b@example.org' WHERE id = 10`),
			sync1)...)
		e.check("literal lookups")
	})
}

// pgxPipeline runs, in pgx's pipeline mode, a failing statement and a
// Sync, then each of stmts with its own Sync, all sent before any answer
// is read, and renders what each step returned.
func pgxPipeline(ctx context.Context, c *pgconn.PgConn, stmts [][]any) string {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	p := c.StartPipeline(ctx)
	p.SendQueryParams(`SELECT 1/0`, nil, nil, nil, nil)
	// A lookup the server skips: pgveil waits for the error before it
	// goes on, so the next pipeline comes while the server skips.
	p.SendQueryParams(`UPDATE users SET email = $1 WHERE id = $2`, [][]byte{[]byte("r17-pgxp-0@example.org"), []byte("1")}, nil, nil, nil)
	p.SendPipelineSync()
	for _, st := range stmts {
		var ps [][]byte
		for _, a := range st[1:] {
			ps = append(ps, []byte(fmt.Sprint(a)))
		}
		p.SendQueryParams(st[0].(string), ps, nil, nil, nil)
		p.SendPipelineSync()
	}
	if err := p.Flush(); err != nil {
		return "flush: " + err.Error()
	}
	var out []string
	for {
		r, err := p.GetResults()
		if err != nil {
			out = append(out, "error "+sqlState(err))
			continue
		}
		switch r := r.(type) {
		case *pgconn.ResultReader:
			res := r.Read()
			if res.Err != nil {
				out = append(out, "error "+sqlState(res.Err))
			} else {
				out = append(out, res.CommandTag.String())
			}
		case *pgconn.PipelineSync:
			out = append(out, "sync")
		case nil:
			if err := p.Close(); err != nil {
				out = append(out, "close: "+err.Error())
			}
			return strings.Join(out, ", ")
		}
		if len(out) > 50 {
			p.Close()
			return strings.Join(out, ", ")
		}
	}
}

// TestReview17bPgxPipelineAfterError is Finding 1 as pgx's pipeline mode
// shows it: an UPDATE whose tenant pgveil looks up, pipelined behind a
// failed pipeline's Sync, was dropped (its Bind, Execute unanswered).
func TestReview17bPgxPipelineAfterError(t *testing.T) {
	r17Engines(t, 17700, func(t *testing.T, e *r17Env) {
		o := e.orgs
		e.same("seed", nil, cat(e.ins(1, o[0], "seed"), e.ins(2, o[1], "seed"), sync1)...)
		e.p.remember("r17-pgxp-0@example.org", "r17-pgxp-1@example.org", "r17-pgxp-2@example.org")
		stmts := [][]any{
			{`UPDATE users SET email = $1 WHERE id = $2`, "r17-pgxp-1@example.org", 1},
			{`SELECT id FROM users WHERE org_id = $1`, o[1]},
			{`UPDATE users SET email = $1 WHERE id = $2`, "r17-pgxp-2@example.org", 2},
		}
		got, want := pgxPipeline(e.ctx, e.px, stmts), pgxPipeline(e.ctx, e.pd, stmts)
		if got != want {
			t.Errorf("pipeline after a failed one:\n pgveil:     %s\n PostgreSQL: %s", got, want)
		}
		e.check("after")
	})
}

// TestReview17bSimpleAndCopy: simple-protocol strings of several
// statements over cold tenants with an error in the middle, COPY FROM of
// rows of many tenants (text and binary, alone and pipelined with
// lookups), and the tenant given by a literal, a parameter, a subquery.
func TestReview17bSimpleAndCopy(t *testing.T) {
	r17Engines(t, 17900, func(t *testing.T, e *r17Env) {
		o := e.orgs
		lit := func(id, org int64, tag string) string {
			em, ph := fmt.Sprintf("r17-%s-%d@example.org", tag, id), fmt.Sprintf("ph-r17-%s-%d", tag, id)
			e.p.remember(em, ph)
			return fmt.Sprintf("INSERT INTO users (id, org_id, name, email, phone) VALUES (%d, %d, '%s', '%s', '%s')", id, org, tag, em, ph)
		}
		e.same("simple string, four tenants", nil, query(strings.Join([]string{lit(1, o[0], "s"), lit(2, o[1], "s"), lit(3, o[2], "s"), lit(4, o[3], "s")}, "; "))...)
		e.same("simple string, error in the middle", nil, query(strings.Join([]string{lit(5, o[4], "s"), lit(6, o[5], "s"), "SELECT 1/0", lit(7, o[6], "s")}, "; "))...)
		e.same("simple string, a duplicate in the middle", nil, query(strings.Join([]string{lit(8, o[4], "s"), lit(1, o[7], "dup"), lit(9, o[6], "s")}, "; "))...)
		e.same("simple string, transaction", nil, query(strings.Join([]string{"BEGIN", lit(10, o[8], "s"), "SELECT 1/0", lit(11, o[9], "s"), "COMMIT"}, "; "))...)
		e.same("simple string, after", nil, query("ROLLBACK")...)
		e.check("simple")
		e.p.remember("r17-simple-upd@example.org")
		e.same("simple UPDATE looked up", nil, query(`UPDATE users SET email = 'r17-simple-upd@example.org' WHERE id = 2`)...)
		e.same("simple UPDATE looked up, aborted block", nil, query(`BEGIN; SELECT 1/0`)...)
		e.same("simple UPDATE looked up, aborted block 2", nil, query(`UPDATE users SET email = 'r17-simple-upd@example.org' WHERE id = 3`)...)
		e.same("simple UPDATE looked up, aborted block 3", nil, query(`ROLLBACK`)...)
		// LOW, documented (docs/SQL.md): a simple Query whose tenant is
		// looked up, pipelined behind messages the server has yet to
		// answer, is refused (0A000) rather than held back.
		if tr := strings.Join(r17Trace(e.ctx, e.px, cat(ext(`SELECT 1/0`), sync1, query(`UPDATE users SET email = 'r17-simple-upd@example.org' WHERE id = 3`))...), " | "); !strings.Contains(tr, "22012") || !strings.Contains(tr, "ErrorResponse 0A000") {
			t.Errorf("simple UPDATE pipelined behind an error: %s", tr)
		}
		e.check("simple lookups")

		// COPY FROM with rows of many tenants, text then binary (pgx).
		var text strings.Builder
		for i := int64(0); i < 10; i++ {
			em, ph := fmt.Sprintf("r17-copy-%d@example.org", i), fmt.Sprintf("ph-r17-copy-%d", i)
			e.p.remember(em, ph)
			fmt.Fprintf(&text, "%d\t%d\tcopy\t%s\t%s\n", 100+i, o[i], em, ph)
		}
		for _, c := range []*pgconn.PgConn{e.px, e.pd} {
			ct, err := c.CopyFrom(e.ctx, strings.NewReader(text.String()), `COPY users (id, org_id, name, email, phone) FROM STDIN`)
			if err != nil || ct.RowsAffected() != 10 {
				t.Fatalf("COPY: %v %v", ct, err)
			}
		}
		var bad strings.Builder
		for i := int64(0); i < 5; i++ {
			em := fmt.Sprintf("r17-copybad-%d@example.org", i)
			e.p.remember(em)
			org := o[i]
			if i == 3 {
				org = 99999999 // unknown tenant: the FK fails, the COPY is rolled back
			}
			fmt.Fprintf(&bad, "%d\t%d\tcopy\t%s\t\\N\n", 200+i, org, em)
		}
		var errs [2]string
		for k, c := range []*pgconn.PgConn{e.px, e.pd} {
			_, err := c.CopyFrom(e.ctx, strings.NewReader(bad.String()), `COPY users (id, org_id, name, email, phone) FROM STDIN`)
			errs[k] = sqlState(err)
		}
		if errs[0] != errs[1] {
			t.Errorf("COPY with an unknown tenant: pgveil %q, PostgreSQL %q", errs[0], errs[1])
		}
		e.check("copy")
		// A COPY ahead of lookups in one pipeline: the loop hands the
		// session to goroutines for the COPY; the lookups run after it.
		e.p.remember("r17-cp-upd-1@example.org", "r17-cp-upd-2@example.org")
		for k, c := range []*pgconn.PgConn{e.px, e.pd} {
			fe := c.Frontend()
			fe.Send(&pgproto3.Parse{Query: `COPY users (id, org_id, name) FROM STDIN`})
			fe.Send(&pgproto3.Bind{})
			fe.Send(&pgproto3.Execute{})
			fe.Send(&pgproto3.CopyData{Data: []byte(fmt.Sprintf("300\t%d\tcp\n301\t%d\tcp\n", o[1], o[2]))})
			fe.Send(&pgproto3.CopyDone{})
			for _, m := range cat(ext(`UPDATE users SET email = $1 WHERE id = $2`, "r17-cp-upd-1@example.org", 300), ext(`UPDATE users SET email = $1 WHERE id = $2`, "r17-cp-upd-2@example.org", 301)) {
				fe.Send(m)
			}
			tr := r17Trace(e.ctx, c, &pgproto3.Sync{})
			if k == 0 {
				errs[0] = strings.Join(tr, " | ")
			} else if got := strings.Join(tr, " | "); got != errs[0] {
				t.Errorf("COPY then lookups in one pipeline:\n pgveil:     %s\n PostgreSQL: %s", errs[0], got)
			}
		}
		e.check("copy and lookups")

		// The tenant from a subquery, a parameter, a literal; INSERT …
		// SELECT across tenants. Refused or correct, never another
		// tenant's ciphertext kept.
		e.p.remember("r17-sub-1@example.org", "r17-is-x@example.org")
		_, err := e.px.ExecParams(e.ctx, `INSERT INTO users (id, org_id, name, email) VALUES (400, (SELECT id FROM orgs WHERE name = $1), 'sub', $2)`,
			[][]byte{[]byte(fmt.Sprintf("org %d", o[3])), []byte("r17-sub-1@example.org")}, nil, nil, nil).Close()
		if err != nil && sqlState(err) != "0A000" {
			t.Errorf("tenant from a subquery: %v, want refused (0A000) or done", err)
		}
		if err == nil {
			e.pd.ExecParams(e.ctx, `INSERT INTO users (id, org_id, name, email) VALUES (400, (SELECT id FROM orgs WHERE name = $1), 'sub', $2)`,
				[][]byte{[]byte(fmt.Sprintf("org %d", o[3])), []byte("r17-sub-1@example.org")}, nil, nil, nil).Close()
		}
		_, err = e.px.ExecParams(e.ctx, `INSERT INTO users (id, org_id, name, email, phone) SELECT id + 1000, $1, name, email, phone FROM users WHERE id = $2`,
			[][]byte{[]byte(fmt.Sprint(o[9])), []byte("1")}, nil, nil, nil).Close()
		if err != nil && sqlState(err) != "0A000" {
			t.Errorf("INSERT … SELECT to another tenant: %v, want refused (0A000) or done", err)
		}
		if err == nil {
			e.pd.ExecParams(e.ctx, `INSERT INTO users (id, org_id, name, email, phone) SELECT id + 1000, $1, name, email, phone FROM users WHERE id = $2`,
				[][]byte{[]byte(fmt.Sprint(o[9])), []byte("1")}, nil, nil, nil).Close()
		}
		e.check("subquery and INSERT … SELECT")
	})
}

// TestReview17bMoves: UPDATEs that move rows to another tenant (cold
// keys), in pipelines with errors: refused when they would keep values
// sealed under the old tenant, sealed under the new one when they write
// every encrypted value; never a value left that no longer opens.
func TestReview17bMoves(t *testing.T) {
	r17Engines(t, 18100, func(t *testing.T, e *r17Env) {
		o := e.orgs
		var seed []pgproto3.FrontendMessage
		for i := 0; i < 6; i++ {
			seed = append(seed, e.ins(int64(1+i), o[i], "seed")...)
		}
		e.same("seed", nil, append(seed, sync1...)...)
		// A move keeping phone and email: refused by pgveil; PostgreSQL
		// fails a Bind at the same place for the comparison.
		move := `UPDATE users SET org_id = $1 WHERE id = $2`
		got := errCodeOnly(r17Trace(e.ctx, e.px, cat(e.ins(10, o[6], "mv"), ext(move, o[7], 1), e.ins(11, o[6], "mv"), sync1)...))
		want := errCodeOnly(r17Trace(e.ctx, e.pd, cat(e.ins(10, o[6], "mv"), ext(`SELECT $1::int8 + $2::int8`, "x", 1), e.ins(11, o[6], "mv"), sync1)...))
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("a refused move in a pipeline:\n pgveil:     %s\n PostgreSQL: %s", prShort(got), prShort(want))
		}
		e.check("refused move")
		// Moves that write every encrypted value: to cold tenants, one to
		// an unknown tenant (FK) in the middle, named statement reused.
		mv := `UPDATE users SET org_id = $1, email = $2, phone = $3 WHERE id = $4`
		var ms []pgproto3.FrontendMessage
		ms = append(ms, &pgproto3.Parse{Name: "mv", Query: mv})
		for i, to := range []int64{o[8], o[9], o[8], 99999999, o[9]} {
			em, ph := fmt.Sprintf("r17-mv-%d@example.org", i), fmt.Sprintf("ph-r17-mv-%d", i)
			e.p.remember(em, ph)
			ms = append(ms, &pgproto3.Bind{PreparedStatement: "mv", Parameters: [][]byte{[]byte(fmt.Sprint(to)), []byte(em), []byte(ph), []byte(fmt.Sprint(2 + i))}}, &pgproto3.Execute{})
		}
		e.same("moves with an unknown tenant in the middle", nil, cat(ms, sync1)...)
		e.same("moves again", nil, cat(ms[:7], sync1)...)
		e.check("moves")
		// The tenant looked up and the row moved in one statement
		// without naming the old one; then a read on a cold pgveil.
		p2 := e.startSecond(t)
		e.px = connectPgx(t, e.ctx, p2.url()).PgConn()
		if err := e.pd.Exec(e.ctx, "DEALLOCATE mv").Close(); err != nil {
			t.Fatal(err)
		}
		e.check("moves, read cold")
		e.same("moves on a cold pgveil", nil, cat(ms[:5], ext(`SELECT 1/0`), ms[5:], sync1, ms[:5], sync1)...)
		e.check("moves on a cold pgveil")
	})
}

// TestReview17bTamperShredCancel: in pipelines over several tenants, a
// value moved from another tenant's row (PV001: the session ends, after
// the rows before it, never with the other tenant's plaintext), a
// shredded tenant (NULL) read by a cold pgveil among live ones, and a
// client that goes away or cancels while a tenant lookup is outstanding
// (its backend ends, other sessions go on).
func TestReview17bTamperShredCancel(t *testing.T) {
	r17Engines(t, 18300, func(t *testing.T, e *r17Env) {
		o := e.orgs
		var seed []pgproto3.FrontendMessage
		for i := 0; i < 6; i++ {
			seed = append(seed, e.ins(int64(1+i), o[i], "seed")...)
		}
		e.same("seed", nil, append(seed, sync1...)...)
		su := superConn(t, e.ctx)
		// Row 1's email replaced by row 2's envelope (another tenant).
		if _, err := su.Exec(e.ctx, `UPDATE public.users SET email = (SELECT email FROM public.users WHERE id = 2) WHERE id = 1`); err != nil {
			t.Fatal(err)
		}
		victim := connectPgx(t, e.ctx, e.p.url()).PgConn()
		other := connectPgx(t, e.ctx, e.p.url()).PgConn()
		sel := `SELECT id, email FROM users WHERE id = $1`
		tr := strings.Join(r17Trace(e.ctx, victim, cat(ext(sel, 3), ext(sel, 1), ext(sel, 2), sync1)...), " | ")
		if !strings.Contains(tr, `DataRow("3","r17-seed-3@example.org")`) || !strings.Contains(tr, "PV001") || strings.Contains(tr, "r17-seed-2@") {
			t.Errorf("a value of another tenant in a pipeline: %s", tr)
		}
		e.same("another session after the PV001", nil, cat(ext(sel, 4), ext(`UPDATE users SET email = $1 WHERE id = $2`, "r17-after-pv@example.org", 5), sync1)...)
		e.p.remember("r17-after-pv@example.org")
		if tr := strings.Join(r17Trace(e.ctx, other, cat(ext(sel, 6), sync1)...), " | "); !strings.Contains(tr, `DataRow("6","r17-seed-6@example.org")`) {
			t.Errorf("an idle session after another's PV001: %s", tr)
		}
		if _, err := su.Exec(e.ctx, `DELETE FROM public.users WHERE id = 1; DELETE FROM r17plain.users WHERE id = 1`); err != nil {
			t.Fatal(err)
		}

		// Tenant o[3] shredded (its keys tombstoned), read by a cold pgveil.
		if _, err := su.Exec(e.ctx, `UPDATE pgveil.keys SET state = 'shredded', wrapped_key = NULL, shredded_at = now() WHERE has_tenant AND tenant = $1`, fmt.Sprint(o[3])); err != nil {
			t.Fatal(err)
		}
		p2 := e.startSecond(t)
		c2 := connectPgx(t, e.ctx, p2.url()).PgConn()
		byOrg := `SELECT id, email, phone FROM users WHERE org_id = $1 ORDER BY id`
		tr = strings.Join(r17Trace(e.ctx, c2, cat(ext(byOrg, o[2]), ext(byOrg, o[3]), ext(byOrg, o[4]), sync1)...), " | ")
		if !strings.Contains(tr, `DataRow("3","r17-seed-3@example.org","ph-r17-seed-3") | CommandComplete SELECT 1 | ParseComplete | BindComplete | DataRow("4",NULL,NULL) | CommandComplete SELECT 1 | ParseComplete | BindComplete | DataRow("5","r17-after-pv@example.org","ph-r17-seed-5")`) {
			t.Errorf("a shredded tenant between two live ones: %s", tr)
		}
		// A write for the shredded tenant starts a new key; lookups too.
		e.p.remember("r17-reborn@example.org", "r17-reborn2@example.org")
		tr = strings.Join(r17Trace(e.ctx, c2, cat(ext(`UPDATE users SET email = $1 WHERE id = $2`, "r17-reborn@example.org", 4), ext(byOrg, o[3]), sync1)...), " | ")
		if !strings.Contains(tr, `CommandComplete UPDATE 1`) || !strings.Contains(tr, `DataRow("4","r17-reborn@example.org",NULL)`) {
			t.Errorf("a write for a shredded tenant: %s", tr)
		}

		// A client that goes away while its lookup is outstanding (the
		// lookup's WHERE sleeps), and one that cancels it. LOW, not fixed:
		// on the goroutine relay the client side waits for the lookup's
		// answer without watching the client, so a client that hangs up
		// meanwhile is noticed when the lookup ends (its backend runs the
		// lookup to the end; PostgreSQL with client_connection_check_interval
		// would stop it at once). Bounded by the lookup, no leak.
		for _, how := range []string{"close", "cancel"} {
			app := "r17-gone-" + how
			c, err := pgconn.Connect(e.ctx, e.p.url("application_name="+app))
			if err != nil {
				t.Fatal(err)
			}
			fe := c.Frontend()
			for _, m := range cat(ext(`UPDATE users SET email = $1 WHERE id = $2 AND pg_sleep(2) IS NOT NULL`, "r17-gone@example.org", 2), sync1) {
				fe.Send(m)
			}
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
			waitActive(t, e.ctx, su, app, "pg_sleep(2)")
			if how == "close" {
				c.Close(e.ctx)
				waitBackendGone(t, e.ctx, su, app)
				continue
			}
			if err := c.CancelRequest(e.ctx); err != nil {
				t.Fatal(err)
			}
			tr := strings.Join(r17Read(e.ctx, c, 1), " | ")
			if !strings.Contains(tr, "57014") {
				t.Errorf("a cancelled lookup: %s", tr)
			}
			tr = strings.Join(r17Trace(e.ctx, c, cat(ext(sel, 2), sync1)...), " | ")
			if !strings.Contains(tr, `DataRow("2","r17-seed-2@example.org")`) {
				t.Errorf("a read after a cancelled lookup: %s", tr)
			}
			c.Close(e.ctx)
		}
		e.p.remember("r17-gone@example.org")
		e.same("other session after the departures", nil, cat(ext(sel, 2), ext(`UPDATE users SET email = $1 WHERE id = $2`, "r17-after-gone@example.org", 6), sync1)...)
		e.p.remember("r17-after-gone@example.org")
	})
}

// r17Read reads until n ReadyForQuery (answers already asked for).
func r17Read(ctx context.Context, c *pgconn.PgConn, n int) []string {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var trace []string
	var formats []int16
	for n > 0 {
		msg, err := c.ReceiveMessage(ctx)
		if err != nil {
			return append(trace, "receive: "+err.Error())
		}
		trace = append(trace, prRender(msg, &formats))
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			n--
		}
	}
	return trace
}

// TestReview17bLookupStatements: the statements pgveil prepares for its
// lookups (kept per session) against what the client does to prepared
// statements and portals: DEALLOCATE ALL and DISCARD ALL between lookups
// (a pooler's reset), RETURNING with max rows on a looked-up UPDATE, a
// Describe of its portal, its portal executed later in the pipeline.
func TestReview17bLookupStatements(t *testing.T) {
	r17Engines(t, 18500, func(t *testing.T, e *r17Env) {
		o := e.orgs
		var seed []pgproto3.FrontendMessage
		for i := 0; i < 6; i++ {
			seed = append(seed, e.ins(int64(1+i), o[i%2], "seed")...)
		}
		e.same("seed", nil, append(seed, sync1...)...)
		upd := `UPDATE users SET email = $1 WHERE id = $2`
		for i, reset := range []string{"DEALLOCATE ALL", "DISCARD ALL", "DISCARD ALL", "DEALLOCATE ALL"} {
			em := fmt.Sprintf("r17-reset-%d@example.org", i)
			e.p.remember(em)
			e.same("lookup before "+reset, nil, cat(ext(upd, em, 1), sync1)...)
			e.same(reset, nil, query(reset)...)
			e.same("lookup after "+reset, nil, cat(ext(upd, em+"x", 1), ext(upd, em+"y", 2), sync1)...)
			e.same("lookup in a transaction after "+reset, nil, cat(query("BEGIN"), ext(upd, em+"z", 3), sync1, query("COMMIT"), query(reset), ext(upd, em+"w", 3), sync1)...)
			e.p.remember(em+"x", em+"y", em+"z", em+"w")
		}
		e.check("resets")
		e.p.remember("ph-r17-ret-1", "ph-r17-ret-2")
		e.same("RETURNING with max rows, portal described and executed later", nil, cat(
			[]pgproto3.FrontendMessage{
				&pgproto3.Parse{Name: "ret", Query: `UPDATE users SET phone = $1 WHERE id IN ($2, $3) RETURNING id, phone, email`},
				&pgproto3.Bind{DestinationPortal: "r1", PreparedStatement: "ret", Parameters: [][]byte{[]byte("ph-r17-ret-1"), []byte("1"), []byte("3")}},
				&pgproto3.Describe{ObjectType: 'P', Name: "r1"},
				&pgproto3.Bind{DestinationPortal: "r2", PreparedStatement: "ret", Parameters: [][]byte{[]byte("ph-r17-ret-2"), []byte("4"), []byte("6")}},
				&pgproto3.Execute{Portal: "r2", MaxRows: 1},
				&pgproto3.Execute{Portal: "r1", MaxRows: 1},
				&pgproto3.Execute{Portal: "r1"},
				&pgproto3.Execute{Portal: "r2"},
				&pgproto3.Close{ObjectType: 'P', Name: "r1"},
				&pgproto3.Sync{},
			})...)
		got := errCodeOnly(r17Trace(e.ctx, e.px, cat(ext(`UPDATE users SET phone = $1 WHERE id IN ($2, $3)`, "ph-r17-two", 1, 2), ext(`SELECT 1`), sync1, ext(`SELECT 2`), sync1)...))
		want := errCodeOnly(r17Trace(e.ctx, e.pd, cat(ext(`SELECT $1::int8, $2::int8, $3::int8`, "x", 1, 2), ext(`SELECT 1`), sync1, ext(`SELECT 2`), sync1)...))
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("several tenants refused:\n pgveil:     %s\n PostgreSQL: %s", prShort(got), prShort(want))
		}
		e.check("returning")
	})
}

// TestReview17bColdIndexLookups: lookups whose WHERE compares a
// blind-indexed column (the lookup itself needs the index key) on a
// pgveil whose cache is cold, pipelined with errors and reads, the
// unnamed statement parsed once and bound for rows of several tenants.
func TestReview17bColdIndexLookups(t *testing.T) {
	r17Engines(t, 18700, func(t *testing.T, e *r17Env) {
		o := e.orgs
		var seed []pgproto3.FrontendMessage
		for i := 0; i < 6; i++ {
			seed = append(seed, e.ins(int64(1+i), o[i], "seed")...)
		}
		e.same("seed", nil, append(seed, sync1...)...)
		p2 := e.startSecond(t)
		e.px = connectPgx(t, e.ctx, p2.url()).PgConn()
		upd := `UPDATE users SET phone = $1 WHERE email = $2`
		msgs := []pgproto3.FrontendMessage{&pgproto3.Parse{Query: upd}}
		for i := 1; i <= 6; i++ {
			ph := fmt.Sprintf("ph-r17-idx-%d", i)
			e.p.remember(ph)
			if i == 4 {
				msgs = append(msgs, &pgproto3.Bind{Parameters: [][]byte{[]byte(ph), []byte("R17-SEED-4@EXAMPLE.ORG ")}}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{})
				continue
			}
			msgs = append(msgs, &pgproto3.Bind{Parameters: [][]byte{[]byte(ph), []byte(fmt.Sprintf("r17-seed-%d@example.org", i))}}, &pgproto3.Execute{})
		}
		// PostgreSQL compares the plaintext as it is: the normalized match
		// (lowercase, trim) of row 4 is pgveil's; the mirror gets the row's
		// own email for it.
		got := r17Trace(e.ctx, e.px, cat(msgs, sync1)...)
		msgs[7] = &pgproto3.Bind{Parameters: [][]byte{[]byte("ph-r17-idx-4"), []byte("r17-seed-4@example.org")}}
		want := r17Trace(e.ctx, e.pd, cat(msgs, sync1)...)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("index lookups on a cold pgveil:\n pgveil:     %s\n PostgreSQL: %s", prShort(got), prShort(want))
		}
		e.check("index lookups")
		p3 := e.startSecond(t)
		e.px = connectPgx(t, e.ctx, p3.url()).PgConn()
		e.same("index lookups with errors on a cold pgveil", nil, cat(
			ext(upd, "ph-r17-idx2-1", "r17-seed-1@example.org"),
			ext(`SELECT id, phone FROM users WHERE email = $1`, "r17-seed-2@example.org"),
			ext(`SELECT 1/(count(*)-count(*)) FROM pg_sleep(0.1)`),
			ext(upd, "ph-r17-idx2-3", "r17-seed-3@example.org"),
			sync1,
			ext(upd, "ph-r17-idx2-5", "r17-seed-5@example.org"),
			ext(`SELECT id, phone FROM users WHERE email = $1`, "r17-seed-6@example.org"),
			sync1)...)
		e.p.remember("ph-r17-idx2-1", "ph-r17-idx2-3", "ph-r17-idx2-5")
		e.check("index lookups with errors")
	})
}

// TestReview17bKeyStoreBlocked: while one session's pipeline waits for a
// tenant key the key store cannot give yet (pgveil.keys locked), other
// sessions of the same pgveil go on with cached keys and lookups; the
// waiting pipeline then completes in order.
func TestReview17bKeyStoreBlocked(t *testing.T) {
	r17Engines(t, 18900, func(t *testing.T, e *r17Env) {
		o := e.orgs
		e.same("seed", nil, cat(e.ins(1, o[0], "seed"), e.ins(2, o[1], "seed"), sync1)...)
		su := superConn(t, e.ctx)
		tx, err := su.Begin(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(e.ctx, `LOCK TABLE pgveil.keys IN ACCESS EXCLUSIVE MODE`); err != nil {
			t.Fatal(err)
		}
		waiter, err := pgconn.Connect(e.ctx, e.p.url("application_name=r17-waiter"))
		if err != nil {
			t.Fatal(err)
		}
		defer waiter.Close(e.ctx)
		fe := waiter.Frontend()
		wmsgs := cat(e.ins(3, o[0], "w"), e.ins(4, o[5], "w"), ext(`SELECT id, email FROM users WHERE org_id = $1 ORDER BY id`, o[0]), sync1)
		for _, m := range wmsgs {
			fe.Send(m)
		}
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		// The key store is asked for o[5]'s key: wait until it blocks.
		waitFor(t, 20*time.Second, "pgveil's key load to wait for the lock", func() (bool, error) {
			var n int
			err := su.QueryRow(e.ctx, `SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'keys' AND NOT l.granted`).Scan(&n)
			return err == nil && n > 0, err
		})
		other := connectPgx(t, e.ctx, e.p.url()).PgConn()
		e.p.remember("r17-other@example.org")
		tr := strings.Join(r17Trace(e.ctx, other, cat(ext(`SELECT id, email FROM users WHERE org_id = $1`, o[1]), ext(`UPDATE users SET email = $1 WHERE id = $2`, "r17-other@example.org", 2), e.ins(5, o[0], "other"), sync1)...), " | ")
		if !strings.Contains(tr, `DataRow("2","r17-seed-2@example.org")`) || !strings.Contains(tr, "UPDATE 1") || !strings.Contains(tr, "INSERT 0 1 | ReadyForQuery I") {
			t.Errorf("another session while a key load waits: %s", tr)
		}
		if err := tx.Rollback(e.ctx); err != nil {
			t.Fatal(err)
		}
		got := strings.Join(r17Read(e.ctx, waiter, 1), " | ")
		if want := `ParseComplete | BindComplete | CommandComplete INSERT 0 1 | ParseComplete | BindComplete | CommandComplete INSERT 0 1 | ParseComplete | BindComplete | DataRow("1","r17-seed-1@example.org") | DataRow("3","r17-w-3@example.org") | DataRow("5","r17-other-5@example.org") | CommandComplete SELECT 3 | ReadyForQuery I`; got != want {
			t.Errorf("the waiting pipeline:\n got  %s\n want %s", got, want)
		}
	})
}

// TestReview17bMoveNamingOldTenant: an UPDATE that names the rows' old
// tenant in its WHERE and sets a new one: the values it writes must be
// sealed under the new tenant (the row's after the UPDATE), in every
// protocol, or the UPDATE refused.
func TestReview17bMoveNamingOldTenant(t *testing.T) {
	r17Engines(t, 19100, func(t *testing.T, e *r17Env) {
		o := e.orgs
		var seed []pgproto3.FrontendMessage
		for i := 0; i < 8; i++ {
			seed = append(seed, e.ins(int64(1+i), o[0], "seed")...)
		}
		e.same("seed", nil, append(seed, sync1...)...)
		cases := []struct {
			name string
			msgs func(id int64, em, ph string) []pgproto3.FrontendMessage
		}{
			{"SET org_id = $1 … WHERE org_id = $4", func(id int64, em, ph string) []pgproto3.FrontendMessage {
				return ext(`UPDATE users SET org_id = $1, email = $2, phone = $3 WHERE org_id = $4 AND id = $5`, o[1], em, ph, o[0], id)
			}},
			{"SET … org_id = $1 last, WHERE id AND org_id", func(id int64, em, ph string) []pgproto3.FrontendMessage {
				return ext(`UPDATE users SET email = $2, phone = $3, org_id = $1 WHERE id = $5 AND org_id = $4`, o[2], em, ph, o[0], id)
			}},
			{"literals", func(id int64, em, ph string) []pgproto3.FrontendMessage {
				return ext(fmt.Sprintf(`UPDATE users SET org_id = %d, email = '%s', phone = '%s' WHERE org_id = %d AND id = %d`, o[3], em, ph, o[0], id))
			}},
			{"simple literals", func(id int64, em, ph string) []pgproto3.FrontendMessage {
				return query(fmt.Sprintf(`UPDATE users SET org_id = %d, email = '%s', phone = '%s' WHERE org_id = %d AND id = %d`, o[4], em, ph, o[0], id))
			}},
			{"WHERE org_id IN", func(id int64, em, ph string) []pgproto3.FrontendMessage {
				return ext(`UPDATE users SET org_id = $1, email = $2, phone = $3 WHERE org_id IN ($4) AND id = $5`, o[5], em, ph, o[0], id)
			}},
			{"only email written, WHERE org_id", func(id int64, em, ph string) []pgproto3.FrontendMessage {
				return ext(`UPDATE users SET org_id = $1, email = $2 WHERE org_id = $3 AND id = $4`, o[6], em, o[0], id)
			}},
		}
		for i, c := range cases {
			id := int64(1 + i)
			em, ph := fmt.Sprintf("r17-mvold-%d@example.org", i), fmt.Sprintf("ph-r17-mvold-%d", i)
			e.p.remember(em, ph)
			m := c.msgs(id, em, ph)
			if _, ok := m[0].(*pgproto3.Query); !ok {
				m = cat(m, sync1)
			}
			got := strings.Join(r17Trace(e.ctx, e.px, m...), " | ")
			t.Logf("%s: %s", c.name, got)
			if strings.Contains(got, "0A000") {
				continue // refused
			}
			want := strings.Join(r17Trace(e.ctx, e.pd, m...), " | ")
			if got != want {
				t.Errorf("%s:\n pgveil:     %s\n PostgreSQL: %s", c.name, got, want)
			}
			rd := connectPgx(t, e.ctx, e.p.url()).PgConn()
			tr := strings.Join(r17Trace(e.ctx, rd, cat(ext(`SELECT org_id, email, phone FROM users WHERE id = $1`, id), sync1)...), " | ")
			rd.Close(e.ctx)
			w := strings.Join(r17Trace(e.ctx, e.pd, cat(ext(`SELECT org_id, email, phone FROM users WHERE id = $1`, id), sync1)...), " | ")
			if tr != w {
				t.Errorf("%s: the row reads back\n pgveil:     %s\n PostgreSQL: %s", c.name, tr, w)
			}
		}
	})
}

// TestReview17bCopyInPipelines: COPY FROM of many tenants inside
// pipelines: skipped after an earlier error (its data sent blind), with a
// bad tenant in the data, after a lookup; the next pipeline works.
func TestReview17bCopyInPipelines(t *testing.T) {
	r17Engines(t, 19300, func(t *testing.T, e *r17Env) {
		o := e.orgs
		e.same("seed", nil, cat(e.ins(1, o[0], "seed"), e.ins(2, o[1], "seed"), sync1)...)
		cp := `COPY users (id, org_id, name, email) FROM STDIN`
		rows := func(base int64, tenants ...string) []pgproto3.FrontendMessage {
			var b strings.Builder
			for i, t := range tenants {
				em := fmt.Sprintf("r17-cpp-%d@example.org", base+int64(i))
				e.p.remember(em)
				fmt.Fprintf(&b, "%d\t%s\tcpp\t%s\n", base+int64(i), t, em)
			}
			return []pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte(b.String())}, &pgproto3.CopyDone{}}
		}
		ts := func(idx ...int) (out []string) {
			for _, i := range idx {
				out = append(out, fmt.Sprint(o[i]))
			}
			return out
		}
		e.same("COPY skipped after an error, data sent blind", nil, cat(ext(`SELECT 1/0`), ext(cp), rows(10, ts(2, 3, 4)...), sync1, e.ins(3, o[5], "after"), sync1)...)
		e.same("COPY after a lookup", nil, cat(ext(`UPDATE users SET email = $1 WHERE id = $2`, "r17-cpp-upd@example.org", 1), ext(cp), rows(20, ts(6, 7, 8)...), sync1)...)
		e.p.remember("r17-cpp-upd@example.org")
		got := errCodeOnly(r17Trace(e.ctx, e.px, cat(ext(cp), rows(30, append(ts(1, 2), "notanumber", fmt.Sprint(o[3]))...), sync1, e.ins(4, o[9], "after"), sync1)...))
		want := errCodeOnly(r17Trace(e.ctx, e.pd, cat(ext(cp), rows(30, append(ts(1, 2), "notanumber", fmt.Sprint(o[3]))...), sync1, e.ins(4, o[9], "after"), sync1)...))
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("COPY with a bad tenant:\n pgveil:     %s\n PostgreSQL: %s", prShort(got), prShort(want))
		}
		e.same("COPY with an unknown tenant", nil, cat(ext(cp), rows(40, append(ts(1, 2), "99999999")...), sync1)...)
		e.same("simple COPY with many tenants", nil, cat(query(cp), rows(50, ts(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)...))...)
		e.check("copies")
	})
}

// TestReview17bConcurrentSessions: several sessions of one pgveil at once,
// each pipelining inserts for the same cold tenants (first use of each
// key raced), tenant lookups of its own rows and errors: each gets
// exactly PostgreSQL's answers for its own pipeline.
func TestReview17bConcurrentSessions(t *testing.T) {
	r17Engines(t, 19500, func(t *testing.T, e *r17Env) {
		o := e.orgs
		const sessions, rounds = 6, 4
		pipeline := func(s, r int) []pgproto3.FrontendMessage {
			base := int64(1000*(s+1) + 10*r)
			var m []pgproto3.FrontendMessage
			for k := 0; k < 3; k++ {
				m = append(m, e.ins(base+int64(k), o[(r*3+k)%10], fmt.Sprintf("c%d", s))...)
			}
			em := fmt.Sprintf("r17-conc-%d-%d@example.org", s, r)
			e.p.remember(em)
			m = append(m, ext(`UPDATE users SET email = $1 WHERE id = $2`, em, base+1)...)
			if r%2 == 1 {
				m = append(m, ext(`SELECT 1/0`)...)
			}
			m = append(m, ext(`SELECT id, email, phone FROM users WHERE id IN ($1, $2, $3) ORDER BY id`, base, base+1, base+2)...)
			return append(m, sync1...)
		}
		want := make([][]string, sessions)
		for s := 0; s < sessions; s++ {
			for r := 0; r < rounds; r++ {
				want[s] = append(want[s], strings.Join(r17Trace(e.ctx, e.pd, pipeline(s, r)...), " | "))
			}
		}
		conns := make([]*pgconn.PgConn, sessions)
		for s := range conns {
			conns[s] = connectPgx(t, e.ctx, e.p.url()).PgConn()
		}
		got := make([][]string, sessions)
		done := make(chan int)
		for s := 0; s < sessions; s++ {
			go func(s int) {
				for r := 0; r < rounds; r++ {
					got[s] = append(got[s], strings.Join(r17Trace(e.ctx, conns[s], pipeline(s, r)...), " | "))
				}
				done <- s
			}(s)
		}
		for range conns {
			<-done
		}
		for s := 0; s < sessions; s++ {
			for r := 0; r < rounds; r++ {
				if got[s][r] != want[s][r] {
					t.Errorf("session %d round %d:\n pgveil:     %s\n PostgreSQL: %s", s, r, got[s][r], want[s][r])
				}
			}
		}
		e.check("concurrent")
	})
}

// TestReview17bInterleavedPortals: portals of looked-up UPDATEs bound
// for rows of different tenants, executed interleaved and across Syncs
// of a transaction block, with a failing Bind between them.
func TestReview17bInterleavedPortals(t *testing.T) {
	r17Engines(t, 19700, func(t *testing.T, e *r17Env) {
		o := e.orgs
		e.same("seed", nil, cat(e.ins(1, o[0], "seed"), e.ins(2, o[1], "seed"), e.ins(3, o[2], "seed"), sync1)...)
		for i := 1; i <= 3; i++ {
			e.p.remember(fmt.Sprintf("r17-il-%d@example.org", i))
		}
		b := func(portal string, id int) *pgproto3.Bind {
			return &pgproto3.Bind{DestinationPortal: portal, PreparedStatement: "u", Parameters: [][]byte{[]byte(fmt.Sprintf("r17-il-%d@example.org", id)), []byte(fmt.Sprint(id))}}
		}
		e.same("interleaved portals", nil, cat(query("BEGIN"), []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "u", Query: `UPDATE users SET email = $1 WHERE id = $2 RETURNING org_id, email`},
			b("a", 1), b("b", 2),
			&pgproto3.Execute{Portal: "b"}, &pgproto3.Sync{},
			b("c", 3),
			&pgproto3.Bind{DestinationPortal: "d", PreparedStatement: "u", Parameters: [][]byte{[]byte("x")}}, // wrong count: error
			&pgproto3.Execute{Portal: "c"}, &pgproto3.Sync{},
			&pgproto3.Execute{Portal: "a"}, &pgproto3.Sync{},
		}, query("COMMIT"))...)
		e.check("interleaved")
	})
}

// TestReview17bCopyOutThenLookups: COPY … TO STDOUT of tenants' rows
// (decrypted) ahead of tenant lookups and cold inserts in one pipeline.
func TestReview17bCopyOutThenLookups(t *testing.T) {
	r17Engines(t, 19900, func(t *testing.T, e *r17Env) {
		o := e.orgs
		e.same("seed", nil, cat(e.ins(1, o[0], "seed"), e.ins(2, o[1], "seed"), e.ins(3, o[2], "seed"), sync1)...)
		p2 := e.startSecond(t)
		e.px = connectPgx(t, e.ctx, p2.url()).PgConn()
		e.p.remember("r17-co-1@example.org", "r17-co-2@example.org")
		e.same("COPY TO then lookups", nil, cat(
			ext(fmt.Sprintf(`COPY (SELECT id, org_id, email, phone FROM users WHERE org_id = %d OR id = 3 ORDER BY id) TO STDOUT`, o[0])),
			ext(`UPDATE users SET email = $1 WHERE id = $2`, "r17-co-1@example.org", 2),
			ext(`COPY users (id, email) TO STDOUT`),
			e.ins(4, o[3], "co"),
			ext(`UPDATE users SET email = $1 WHERE id = $2`, "r17-co-2@example.org", 1),
			sync1,
			query(`COPY (SELECT id, email FROM users ORDER BY id) TO STDOUT; SELECT 1`))...)
		e.check("copy out")
	})
}

// TestReview17bTenantSpellings: the tenant written as PostgreSQL would
// read it but not in canonical form (leading zeros, a sign, blanks, a
// numeric, binary int4 or int8, a literal string), in one pipeline with
// multi-row VALUES of several tenants: every row reads back, sealed under
// the tenant it belongs to.
func TestReview17bTenantSpellings(t *testing.T) {
	r17Engines(t, 20100, func(t *testing.T, e *r17Env) {
		o := e.orgs
		be := func(v int64, n int) []byte {
			b := make([]byte, n)
			for i := n - 1; i >= 0; i-- {
				b[i] = byte(v)
				v >>= 8
			}
			return b
		}
		ins := func(id int64, tenant []byte, format int16, oid uint32) []pgproto3.FrontendMessage {
			em := fmt.Sprintf("r17-sp-%d@example.org", id)
			e.p.remember(em)
			var oids []uint32
			if oid != 0 {
				oids = []uint32{0, oid, 0}
			}
			return []pgproto3.FrontendMessage{
				&pgproto3.Parse{Query: `INSERT INTO users (id, org_id, email) VALUES ($1, $2, $3)`, ParameterOIDs: oids},
				&pgproto3.Bind{ParameterFormatCodes: []int16{0, format, 0}, Parameters: [][]byte{[]byte(fmt.Sprint(id)), tenant, []byte(em)}},
				&pgproto3.Execute{},
			}
		}
		var m []pgproto3.FrontendMessage
		m = append(m, ins(1, []byte("0"+fmt.Sprint(o[0])), 0, 0)...)
		m = append(m, ins(2, []byte(" +"+fmt.Sprint(o[1])+" "), 0, 0)...)
		m = append(m, ins(3, []byte(fmt.Sprint(o[2])+".0"), 0, 1700)...) // numeric
		m = append(m, ins(4, be(o[3], 4), 1, 23)...)                     // int4 binary
		m = append(m, ins(5, be(o[4], 8), 1, 20)...)                     // int8 binary
		m = append(m, ins(6, []byte(fmt.Sprint(o[5])), 0, 25)...)        // declared text
		m = append(m, ins(7, []byte(fmt.Sprint(o[6])+".4"), 0, 1700)...) // numeric that rounds
		e.p.remember("r17-sp-lit-8@example.org", "r17-sp-lit-9@example.org", "r17-sp-mr-10@example.org", "r17-sp-mr-11@example.org")
		m = append(m, ext(fmt.Sprintf(`INSERT INTO users (id, org_id, email) VALUES (8, '0%d', 'r17-sp-lit-8@example.org'), (9, %d, 'r17-sp-lit-9@example.org')`, o[7], o[8]))...)
		m = append(m, ext(`INSERT INTO users (id, org_id, email) VALUES ($1, $2, $3), ($4, $5, $6)`, 10, o[9], "r17-sp-mr-10@example.org", 11, "0"+fmt.Sprint(o[0]), "r17-sp-mr-11@example.org")...)
		for k := 0; k+3 <= len(m); k += 3 {
			got := strings.Join(r17Trace(e.ctx, e.px, cat(m[k:k+3], sync1)...), " | ")
			want := strings.Join(r17Trace(e.ctx, e.pd, cat(m[k:k+3], sync1)...), " | ")
			if got != want && !strings.Contains(got, "ErrorResponse") {
				t.Errorf("insert %d:\n pgveil:     %s\n PostgreSQL: %s", k/3, got, want)
			} else if got != want && k/3 != 6 {
				// Only the numeric PostgreSQL rounds is refused (docs/SQL.md).
				t.Errorf("insert %d refused: %s (PostgreSQL: %s)", k/3, got, want)
			}
		}
		// Every row pgveil took reads back as PostgreSQL's does.
		rd := connectPgx(t, e.ctx, e.p.url()).PgConn()
		got := r17Trace(e.ctx, rd, query(`SELECT id, org_id, email FROM users ORDER BY id`)...)
		want := r17Trace(e.ctx, e.pd, query(`SELECT id, org_id, email FROM users ORDER BY id`)...)
		gs := strings.Join(got, "\n")
		for _, l := range want {
			if strings.HasPrefix(l, "DataRow") && !strings.Contains(gs, l) {
				id := strings.SplitN(l, ",", 2)[0]
				if strings.Contains(gs, id+",") {
					t.Errorf("row reads back differently: PostgreSQL %s; pgveil %s", l, prShort(got))
				}
			}
		}
		if strings.Contains(gs, "PV00") || strings.Contains(gs, "receive:") {
			t.Errorf("reading back: %s", prShort(got))
		}
	})
}

// TestReview17bKeyStoreFails: key loads that fail (the key store's table
// gone for a moment) in the middle of pipelines on a cold pgveil: the
// message that needs the key fails, the rest is skipped up to Sync, the
// session and the others go on, and once the store is back the same
// pipeline works.
func TestReview17bKeyStoreFails(t *testing.T) {
	r17Engines(t, 20300, func(t *testing.T, e *r17Env) {
		o := e.orgs
		e.same("seed", nil, cat(e.ins(1, o[0], "seed"), e.ins(2, o[1], "seed"), e.ins(3, o[2], "seed"), sync1)...)
		p2 := e.startSecond(t)
		c := connectPgx(t, e.ctx, p2.url()).PgConn()
		// The key watch drops every cached key when it starts listening:
		// warm only after both pgveils listen.
		su := superConn(t, e.ctx)
		waitFor(t, 20*time.Second, "both pgveils to listen for key changes", func() (bool, error) {
			var n int
			err := su.QueryRow(e.ctx, `SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'listen%pgveil_keys%'`).Scan(&n)
			return err == nil && n >= 2, err
		})
		// Warm o[0] on this pgveil.
		if tr := strings.Join(r17Trace(e.ctx, c, cat(ext(`SELECT id, email FROM users WHERE org_id = $1`, o[0]), sync1)...), " | "); !strings.Contains(tr, "r17-seed-1@") {
			t.Fatalf("warming: %s", tr)
		}
		if _, err := su.Exec(e.ctx, `ALTER TABLE pgveil.keys RENAME TO keys_r17`); err != nil {
			t.Fatal(err)
		}
		restored := false
		restore := func() {
			if !restored {
				restored = true
				if _, err := su.Exec(context.Background(), `ALTER TABLE pgveil.keys_r17 RENAME TO keys`); err != nil {
					t.Fatal(err)
				}
			}
		}
		defer restore()
		sel := `SELECT id, email FROM users WHERE org_id = $1`
		e.p.remember("r17-ksf@example.org")
		pipe := cat(ext(sel, o[0]), ext(sel, o[1]), ext(`UPDATE users SET email = $1 WHERE id = $2`, "r17-ksf@example.org", 3), ext(sel, o[0]), sync1, ext(sel, o[0]), sync1)
		tr := r17Trace(e.ctx, c, pipe...)
		s := strings.Join(tr, " | ")
		// The cold read cannot open its value: the session ends with
		// FATAL PV004 (docs/OPERATING.md), after the rows before it.
		if !strings.HasPrefix(s, `ParseComplete | BindComplete | DataRow("1","r17-seed-1@example.org") | CommandComplete SELECT 1 | ParseComplete | BindComplete | receive:`) || !strings.Contains(s, "PV004") {
			t.Errorf("pipeline while the key store fails: %s", s)
		}
		other := connectPgx(t, e.ctx, p2.url()).PgConn()
		if tr := strings.Join(r17Trace(e.ctx, other, cat(ext(sel, o[0]), sync1)...), " | "); !strings.Contains(tr, "r17-seed-1@") {
			t.Errorf("another session while the key store fails: %s", tr)
		}
		restore()
		c = connectPgx(t, e.ctx, p2.url()).PgConn()
		got := strings.Join(r17Trace(e.ctx, c, pipe...), " | ")
		want := strings.Join(r17Trace(e.ctx, e.pd, pipe...), " | ")
		if got != want {
			t.Errorf("the same pipeline once the store is back:\n pgveil:     %s\n PostgreSQL: %s", got, want)
		}
	})
}

// TestReview17bPathLookupKey: one message that waits for the search_path
// question, then a tenant lookup, then a cold key (a cold pgveil after
// SET search_path), in pipelines with errors.
func TestReview17bPathLookupKey(t *testing.T) {
	r17Engines(t, 20500, func(t *testing.T, e *r17Env) {
		o := e.orgs
		e.same("seed", nil, cat(e.ins(1, o[0], "seed"), e.ins(2, o[1], "seed"), e.ins(3, o[2], "seed"), sync1)...)
		upd := `UPDATE users SET email = $1 WHERE id = $2`
		for round := 0; round < 2; round++ {
			p2 := e.startSecond(t)
			e.px = connectPgx(t, e.ctx, p2.url()).PgConn()
			r17Trace(e.ctx, e.px, query("SET search_path = public")...)
			r17Trace(e.ctx, e.pd, query("SET search_path = r17plain")...)
			var m []pgproto3.FrontendMessage
			for i := 1; i <= 3; i++ {
				em := fmt.Sprintf("r17-plk-%d-%d@example.org", round, i)
				e.p.remember(em)
				m = append(m, ext(upd, em, i)...)
				if i == 2 && round == 1 {
					m = append(m, ext(`SELECT 1/0`)...)
				}
			}
			e.same(fmt.Sprintf("path, lookup, key: round %d", round), nil, cat(m, sync1, ext(`SELECT id, email FROM users ORDER BY id`), sync1)...)
		}
		e.check("path lookup key")
	})
}

// TestReview17bUnnamedNameInErrors is Finding 4: an error about the
// client's unnamed statement (prepared upstream under pgveil's name)
// names it as PostgreSQL does, "" (a COPY with $1, which pgveil counts
// as a parameter and the server does not).
func TestReview17bUnnamedNameInErrors(t *testing.T) {
	r17Engines(t, 20700, func(t *testing.T, e *r17Env) {
		e.same("seed", nil, cat(e.ins(1, e.orgs[0], "seed"), sync1)...)
		e.same("wrong parameter count for the unnamed statement", nil, cat(
			[]pgproto3.FrontendMessage{&pgproto3.Parse{Query: `COPY (SELECT id, org_id, email, phone FROM users WHERE org_id = $1 OR id = 3 ORDER BY id) TO STDOUT`},
				&pgproto3.Bind{Parameters: [][]byte{[]byte("1")}}, &pgproto3.Execute{}},
			sync1,
			ext(`SELECT id, email FROM users WHERE org_id = $1`, e.orgs[0]), sync1)...)
	})
}

// TestReview17bLookupNotices: a lookup whose WHERE raises a NOTICE (a
// function of the client's WHERE), and DELETE … RETURNING with max rows
// across tenants, in pipelines.
func TestReview17bLookupNotices(t *testing.T) {
	r17Engines(t, 20900, func(t *testing.T, e *r17Env) {
		o := e.orgs
		e.same("seed", nil, cat(e.ins(1, o[0], "seed"), e.ins(2, o[1], "seed"), e.ins(3, o[1], "seed"), e.ins(4, o[2], "seed"), sync1)...)
		su := superConn(t, e.ctx)
		if _, err := su.Exec(e.ctx, `CREATE OR REPLACE FUNCTION public.r17_note(i int8) RETURNS bool LANGUAGE plpgsql AS $$BEGIN RAISE NOTICE 'r17 note %', i; RETURN true; END$$;
			CREATE OR REPLACE FUNCTION r17plain.r17_note(i int8) RETURNS bool LANGUAGE plpgsql AS $$BEGIN RAISE NOTICE 'r17 note %', i; RETURN true; END$$`); err != nil {
			t.Fatal(err)
		}
		e.p.remember("r17-note@example.org")
		got := r17Trace(e.ctx, e.px, cat(ext(`UPDATE users SET email = $1 WHERE id = $2 AND r17_note(id)`, "r17-note@example.org", 1), sync1)...)
		want := r17Trace(e.ctx, e.pd, cat(ext(`UPDATE users SET email = $1 WHERE id = $2 AND r17_note(id)`, "r17-note@example.org", 1), sync1)...)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			// Finding 6 (LOW, documented): the lookup's notices come too.
			t.Logf("a lookup's WHERE runs twice, its notices too:\n pgveil:     %s\n PostgreSQL: %s", prShort(got), prShort(want))
		}
		e.same("DELETE RETURNING with max rows", nil, cat([]pgproto3.FrontendMessage{
			&pgproto3.Parse{Query: `DELETE FROM users WHERE org_id = $1 RETURNING id, email, phone`},
			&pgproto3.Bind{DestinationPortal: "d1", Parameters: [][]byte{[]byte(fmt.Sprint(o[1]))}},
			&pgproto3.Execute{Portal: "d1", MaxRows: 1},
			&pgproto3.Execute{Portal: "d1", MaxRows: 1},
			&pgproto3.Execute{Portal: "d1"},
		}, ext(`SELECT 1/0`), ext(`DELETE FROM users WHERE id = $1 RETURNING email`, 4), sync1,
			ext(`DELETE FROM users WHERE id = $1 RETURNING email`, 4), sync1)...)
		e.check("deletes")
	})
}
