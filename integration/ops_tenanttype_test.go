package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/integration/harness"
)

// TestOpsTenantTypeRefused: a key_context column of a type whose stored
// form pgveil does not compute (time: '10:00' is stored 10:00:00; inet:
// '10.0.0.1/32' is stored 10.0.0.1; a domain over interval) would have a
// write's values sealed under the tenant as written, another one than the
// row stores, and the row would never open (LOW sweep 2, pending until
// then: PV001). pgveil serve refuses such a policy at start, naming table,
// column, type and remedy, and pgveil check reports key_context_type;
// enums and domains over text, whose values are stored as written, pass
// and work end to end.
func TestOpsTenantTypeRefused(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	bad := `tables:
  public.tt:
    key_context: org
    columns:
      secret: {type: text}
  public.ti:
    key_context: org
    columns:
      secret: {type: text}
  public.td:
    key_context: org
    columns:
      secret: {type: text}
`
	e := newOpsEnv(t, "ops_tenanttype", bad)
	c := e.conn(ctx)
	for _, s := range []string{
		`CREATE DOMAIN span AS interval`,
		`CREATE TYPE region AS ENUM ('eu', 'us')`,
		`CREATE DOMAIN org_name AS text`,
		`CREATE TABLE tt (id int PRIMARY KEY, org time NOT NULL, secret bytea)`,
		`CREATE TABLE ti (id int PRIMARY KEY, org inet NOT NULL, secret bytea)`,
		`CREATE TABLE td (id int PRIMARY KEY, org span NOT NULL, secret bytea)`,
		`CREATE TABLE te (id int PRIMARY KEY, org region NOT NULL, secret bytea)`,
		`CREATE TABLE tn (id int PRIMARY KEY, org org_name NOT NULL, secret bytea)`,
	} {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	badCfg := e.writeConfig("bad.yaml", e.config(""))
	r := e.run(ctx, 1, "check", "-c", badCfg, "--format", "json")
	for _, want := range []string{
		`"code": "key_context_type"`,
		"key_context column public.tt.org has type time without time zone",
		"key_context column public.ti.org has type inet",
		"key_context column public.td.org has type span",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check does not report %q:\n%s", want, r.stdout)
		}
	}
	_, err := harness.StartProxy(harness.ProxyOptions{Config: e.config("")})
	if err == nil {
		t.Fatal("pgveil serve started with key_context columns of type time, inet and a domain over interval")
	}
	for _, want := range []string{"public.tt.org has type time without time zone", "public.ti.org has type inet", "public.td.org has type span", "an enum or a domain over one"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("serve's refusal does not say %q:\n%v", want, err)
		}
	}

	// An enum and a domain over text are stored as written: accepted.
	good := `tables:
  public.te:
    key_context: org
    columns:
      secret: {type: text}
  public.tn:
    key_context: org
    columns:
      secret: {type: text}
`
	e.policy = good
	goodCfg := e.writeConfig("good.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", goodCfg, "--apply")
	r = e.run(ctx, -1, "check", "-c", goodCfg, "--format", "json")
	if strings.Contains(r.stdout, "key_context_type") {
		t.Errorf("check reports an enum or a domain over text:\n%s", r.stdout)
	}
	app := connectPgx(t, ctx, e.appURL(e.proxy(e.config(""))))
	for _, s := range []string{
		`INSERT INTO te (id, org, secret) VALUES (1, 'eu', 'enum tenant')`,
		`INSERT INTO tn (id, org, secret) VALUES (1, 'Acme ', 'domain tenant')`,
	} {
		if _, err := app.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	for table, want := range map[string]string{"te": "enum tenant", "tn": "domain tenant"} {
		var got string
		if err := app.QueryRow(ctx, "SELECT secret FROM "+table+" WHERE id = 1").Scan(&got); err != nil || got != want {
			t.Errorf("%s: read back %q, %v; want %q", table, got, err, want)
		}
	}
}
