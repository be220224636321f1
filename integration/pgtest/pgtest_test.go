package pgtest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pgveil/pgveil/integration/harness"
)

var rewrite = flag.Bool("rewrite", os.Getenv("PGTEST_REWRITE") == "1",
	"regenerate testdata/*.pgt from runs directly against Postgres (also PGTEST_REWRITE=1)")

// cluster is the one Postgres every test here talks to.
var cluster *harness.Cluster

func TestMain(m *testing.M) {
	flag.Parse()
	c, err := harness.StartCluster(harness.Options{Settings: []string{
		// Pin what initdb would take from the machine, so ParameterStatus
		// and datetime output are the same everywhere.
		"timezone = 'UTC'",
		"datestyle = 'ISO, MDY'",
		"lc_messages = 'C'",
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest: starting Postgres:", err)
		os.Exit(1)
	}
	cluster = c
	code := m.Run()
	c.Stop()
	harness.RemoveBuild()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction(harness.SpawnerFunction)); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func scripts(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.pgt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in testdata: %v", err)
	}
	return files
}

func config(addr, user string) Config {
	return Config{Addr: addr, User: user, Password: harness.Passwords[user], Database: harness.Database}
}

func runFile(t *testing.T, cfg Config, path string) *Result {
	t.Helper()
	s, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg, s)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return res
}

func reportMismatches(t *testing.T, res *Result) {
	t.Helper()
	for _, m := range res.Mismatches() {
		t.Errorf("%s: %s", res.Script.Name, m)
	}
}

// TestScriptsDirect runs every script against Postgres itself. With -rewrite
// it writes what Postgres printed back into the files instead.
func TestScriptsDirect(t *testing.T) {
	cfg := config(cluster.Addr(), harness.TrustUser)
	for _, path := range scripts(t) {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".pgt"), func(t *testing.T) {
			t.Parallel()
			res := runFile(t, cfg, path)
			if *rewrite {
				if err := os.WriteFile(path, []byte(res.Rewrite()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			reportMismatches(t, res)
		})
	}
}

// startProxy runs the real pgveil binary in front of the cluster; extra is
// appended to its config.
func startProxy(t *testing.T, extra string) *harness.Proxy {
	t.Helper()
	yaml := fmt.Sprintf(`listen: 127.0.0.1:0
upstream:
  address: %s
  tls: disable
admin:
  listen: 127.0.0.1:0
log:
  level: debug
%s`, cluster.Addr(), extra)
	p, err := harness.StartProxy(harness.ProxyOptions{Config: yaml})
	if err != nil {
		t.Fatalf("starting pgveil: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pgveil log:\n%s", p.Log())
		}
		if err := p.Stop(); err != nil {
			t.Errorf("pgveil did not exit cleanly: %v", err)
		}
	})
	return p
}

// relayCores are pgveil's two ways to relay a session: the event loop
// (the default for plain-TCP sessions of a config without tables) and a
// goroutine pair per session (what every other session uses). logLine is
// the debug line each session relayed by that core logs.
var relayCores = []struct{ name, config, logLine string }{
	{"event_loop", "", "relaying on an event loop"},
	{"goroutines", "proxy:\n  event_loops: 0\n", "relaying on goroutines"},
}

// TestScriptsThroughPgveil runs every script through pgveil, relayed by
// each core. The output must equal the file, which only a direct run may
// write; and the raw output, which keeps the server's source locations and
// version, must equal a direct run's, so the proxy passes those fields
// unchanged too.
func TestScriptsThroughPgveil(t *testing.T) {
	for _, core := range relayCores {
		t.Run(core.name, func(t *testing.T) {
			p := startProxy(t, core.config)
			runScriptsThrough(t, p)
			t.Cleanup(func() {
				// Every session that got past startup ran on the core
				// under test.
				log := p.Log()
				if n, ready := strings.Count(log, core.logLine), strings.Count(log, `"session ready"`); n != ready || n < len(scripts(t))/2 {
					t.Errorf("%d sessions logged %q, %d were ready; want all, and most scripts' sessions (%d scripts)", n, core.logLine, ready, len(scripts(t)))
				}
			})
		})
	}
}

func runScriptsThrough(t *testing.T, p *harness.Proxy) {
	direct := config(cluster.Addr(), harness.TrustUser)
	proxied := config(p.Addr, harness.TrustUser)
	t.Cleanup(func() {
		// Output can match while pgveil's own bookkeeping went wrong (its
		// protocol tracker losing step, say); that is logged as an error.
		for _, line := range strings.Split(p.Log(), "\n") {
			if strings.Contains(line, `"level":"error"`) {
				t.Errorf("pgveil logged an error while relaying valid protocol: %s", line)
			}
		}
	})
	t.Run("scripts", func(t *testing.T) {
		for _, path := range scripts(t) {
			t.Run(strings.TrimSuffix(filepath.Base(path), ".pgt"), func(t *testing.T) {
				t.Parallel()
				got := runFile(t, proxied, path)
				reportMismatches(t, got)
				want := runFile(t, direct, path)
				for i := range want.Raw {
					if i < len(got.Raw) && !equalLines(want.Raw[i], got.Raw[i]) && equalLines(want.Outputs[i], got.Outputs[i]) {
						d := want.Script.Directives[i]
						t.Errorf("%s: line %d: %s: raw fields differ from a direct run:\n%s", path, d.Line, d.Cmd, LineDiff(want.Raw[i], got.Raw[i]))
					}
				}
			})
		}
	})
}

// authScript's output does not depend on the role or how it logged in.
const authScript = `send
{"Type":"Query","String":"select 1 as one"}
----

until
ReadyForQuery
----
{"Type":"RowDescription","Fields":[{"Name":"one","TableOID":0,"TableAttributeNumber":0,"DataTypeOID":23,"DataTypeSize":4,"TypeModifier":-1,"Format":0}]}
{"Type":"DataRow","Values":[{"text":"1"}]}
{"Type":"CommandComplete","CommandTag":"SELECT 1"}
{"Type":"ReadyForQuery","TxStatus":"I"}
`

// authUsers are the harness roles, one per authentication method.
var authUsers = []string{harness.TrustUser, harness.PasswordUser, harness.MD5User, harness.SCRAMUser}

// wrongPasswordScript is a failed SCRAM login: the exchange itself is not
// printed, the server's FATAL error is, and then the connection closes.
const wrongPasswordScript = `startup
----
{"Type":"ErrorResponse","Severity":"FATAL","SeverityUnlocalized":"FATAL","Code":"28P01","Message":"password authentication failed for user \"scram_user\""}

closed
----
`

// runAuthScripts logs in to addr with every role, and once with a wrong
// password.
func runAuthScripts(t *testing.T, addr string) {
	t.Helper()
	ok, err := Parse("auth", authScript)
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range authUsers {
		t.Run(user, func(t *testing.T) {
			res, err := Run(context.Background(), config(addr, user), ok)
			if err != nil {
				t.Fatal(err)
			}
			reportMismatches(t, res)
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		s, err := Parse("wrong password", wrongPasswordScript)
		if err != nil {
			t.Fatal(err)
		}
		cfg := config(addr, harness.SCRAMUser)
		cfg.Password = "wrong"
		res, err := Run(context.Background(), cfg, s)
		if err != nil {
			t.Fatal(err)
		}
		reportMismatches(t, res)
	})
}

// TestAuthDirect logs in directly with every authentication method the
// runner speaks: trust, cleartext, MD5 and SCRAM-SHA-256.
func TestAuthDirect(t *testing.T) {
	runAuthScripts(t, cluster.Addr())
}

// TestAuthThroughPgveil logs in through pgveil, which relays each method's
// exchange, with each relay core after it.
func TestAuthThroughPgveil(t *testing.T) {
	for _, core := range relayCores {
		t.Run(core.name, func(t *testing.T) {
			runAuthScripts(t, startProxy(t, core.config).Addr)
		})
	}
}
