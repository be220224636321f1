package integration

// Helpers of the end-to-end encryption suite (issue 5, "Tests"): every
// TestEnc* test starts the real pgveil binary with an encryption policy in
// front of the package's real Postgres cluster, drives one real client
// through a scenario written from an encSpec (the same values, the same
// steps, for every driver), and then proves from outside pgveil that what
// the database holds is ciphertext:
//
//	driver ── pgveil (log.level debug) ── Postgres
//	                                        │
//	superuser over the Unix socket ─────────┘  envelopes, blind indexes, no plaintext
//
// and that pgveil's whole log never carries a value the test wrote.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgveil/pgveil/integration/harness"
	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// encSchema is the realistic schema of the suite: tenants (orgs), users
// with encrypted columns of three logical types and two blind indexes, and
// contacts joined to users on the shared "email" index key. contacts.note
// is encrypted into a text column (in-place adoption: 'pgv1:' envelopes).
const encSchema = `
DROP TABLE IF EXISTS contacts, users, orgs;
CREATE TABLE orgs (id int8 PRIMARY KEY, name text NOT NULL);
CREATE TABLE users (
  id bigserial PRIMARY KEY,
  org_id int8 NOT NULL REFERENCES orgs,
  name text,
  email bytea,
  email_bidx bytea UNIQUE,
  phone bytea,
  ssn bytea,
  ssn_bidx bytea,
  birth_date bytea,
  api_token bytea,
  created_at timestamptz DEFAULT now()
);
CREATE INDEX users_ssn_bidx ON users (ssn_bidx);
CREATE TABLE contacts (
  id bigserial PRIMARY KEY,
  org_id int8 NOT NULL REFERENCES orgs,
  email bytea,
  email_bidx bytea,
  note text
);
CREATE INDEX contacts_email_bidx ON contacts (email_bidx);
GRANT SELECT, INSERT, UPDATE, DELETE ON orgs, users, contacts TO scram_user, md5_user, pass_user, trust_user;
GRANT USAGE, SELECT ON SEQUENCE users_id_seq, contacts_id_seq TO scram_user, md5_user, pass_user, trust_user;
`

// encPolicy is the tables section of the suite's config.
const encPolicy = `tables:
  public.users:
    key_context: org_id
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase, trim]
          key: email
          unique: true
      phone:
        type: text
      ssn:
        type: text
        blind_index:
          column: ssn_bidx
      birth_date:
        type: date
      api_token:
        type: int8
  public.contacts:
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase, trim]
          key: email
      note:
        type: text
`

// encMasterKey is the master key of every pgveil this test process starts:
// pgveil.keys lives as long as the cluster, and its data keys are wrapped
// under this key.
var encMasterKey = func() string {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(k)
}()

// setTableState records a table's state in pgveil.tables, signed with a
// key of the suite's key store, and announces it, as pgveil migrate does.
func setTableState(t *testing.T, ctx context.Context, table, state string) {
	t.Helper()
	pool, err := pgxpool.New(ctx, cluster.SocketURL(harness.SuperUser, harness.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	if err := os.WriteFile(keyFile, []byte(encMasterKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := keysource.NewMaster(ctx, policy.KeySource{Kind: policy.KeySourceLocal, Local: policy.LocalKeySource{KeyFile: keyFile}})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keysource.NewKeyring(ctx, pool, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proxy.SetTableState(ctx, pool, keys, table, state); err != nil {
		t.Fatalf("setting the state of %s: %v", table, err)
	}
}

// encProxy is a pgveil process with the encryption policy, and every
// plaintext the test sent through it (for the log check at the end).
type encProxy struct {
	*harness.Proxy
	mu     sync.Mutex
	secret []string
}

// remember records plaintexts that must never appear in pgveil's log.
func (p *encProxy) remember(values ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.secret = append(p.secret, values...)
}

func (p *encProxy) secrets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.secret)
}

// url is a URL to the app database through pgveil as scram_user.
func (p *encProxy) url(params ...string) string {
	return proxyURL(p.Proxy, harness.SCRAMUser, append([]string{"sslmode=disable"}, params...)...)
}

// startEncProxy recreates the schema, creates the orgs, and starts pgveil
// at log level debug. When the test ends it stops pgveil and checks that it
// exited cleanly, logged no panic and no tracker trouble, did log at debug
// level (so the grep below means something), and that none of the
// plaintexts remembered appear anywhere in its log.
func startEncProxy(t *testing.T, orgs ...int64) *encProxy {
	t.Helper()
	return startEncProxyLog(t, "  level: debug\n  format: json\n", orgs...)
}

// startEncProxyLog is startEncProxy with logYAML as the log: section.
func startEncProxyLog(t *testing.T, logYAML string, orgs ...int64) *encProxy {
	t.Helper()
	return startEncProxyPolicy(t, logYAML, encPolicy, orgs...)
}

// startEncProxyPolicy is startEncProxyLog with policy as the tables
// section (the suite's schema all the same).
func startEncProxyPolicy(t *testing.T, logYAML, policy string, orgs ...int64) *encProxy {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	su := superConn(t, ctx)
	if _, err := su.Exec(ctx, encSchema); err != nil {
		t.Fatalf("creating the schema: %v", err)
	}
	for _, org := range orgs {
		if _, err := su.Exec(ctx, `INSERT INTO orgs VALUES ($1, $2)`, org, fmt.Sprintf("org %d", org)); err != nil {
			t.Fatal(err)
		}
	}
	return startEncProxyOn(t, logYAML, policy, nil)
}

// startEncProxyOn starts pgveil with the suite's config on the schema as
// it is (another pgveil on the same database: its key cache is cold).
// When the test ends its log is checked as startEncProxy's is, against
// secrets (nil: the plaintexts remembered on the proxy returned).
func startEncProxyOn(t *testing.T, logYAML, policy string, secrets func() []string) *encProxy {
	t.Helper()
	conf := fmt.Sprintf(`listen: 127.0.0.1:0
upstream:
  address: %s
  tls: disable
  connect_timeout: 5s
  service_url: %q
keysource:
  kind: local
  local:
    key_env: PGVEIL_ENC_MASTER
admin:
  listen: 127.0.0.1:0
log:
%sproxy:
  shutdown_timeout: 30s
%s%s`, cluster.Addr(), cluster.SocketURL(harness.SuperUser, harness.Database), logYAML, eventLoopsSetting(), policy)
	hp, err := harness.StartProxy(harness.ProxyOptions{Config: conf, Env: []string{"PGVEIL_ENC_MASTER=" + encMasterKey}})
	if err != nil {
		t.Fatalf("starting pgveil: %v", err)
	}
	p := &encProxy{Proxy: hp}
	if secrets == nil {
		secrets = p.secrets
	}
	t.Cleanup(func() {
		logFile, err := os.Open(p.LogPath)
		if err != nil {
			t.Errorf("pgveil log: %v", err)
		}
		if err := p.Stop(); err != nil {
			t.Errorf("pgveil did not exit cleanly on SIGTERM: %v", err)
		}
		var logText string
		if logFile != nil {
			b, _ := io.ReadAll(logFile)
			logFile.Close()
			logText = string(b)
		}
		checkEncLog(t, logText, secrets())
		if t.Failed() {
			t.Logf("pgveil log (tail):\n%s", tail(logText, 120))
		}
	})
	return p
}

// checkEncLog is the log test of issue 5: pgveil ran at debug level, and
// its entire log holds no plaintext the test wrote, no panic, and no sign
// of the protocol tracker losing step.
func checkEncLog(t *testing.T, logText string, secrets []string) {
	t.Helper()
	for _, p := range logProblems(logText, secrets) {
		t.Error(p)
	}
}

// logProblems lists what is wrong with a pgveil log (see checkEncLog).
// A plaintext is looked for as it is, case-insensitively, and as JSON
// escapes it (a quote or a newline inside a logged string).
func logProblems(logText string, secrets []string) []string {
	var out []string
	if !strings.Contains(logText, `"level":"debug"`) {
		out = append(out, "pgveil's log has no debug record: the plaintext grep would prove nothing")
	}
	lower := strings.ToLower(logText)
	for _, bad := range []string{"panic", "out of step"} {
		if n := strings.Count(lower, bad); n > 0 {
			out = append(out, fmt.Sprintf("pgveil's log mentions %q %d times", bad, n))
		}
	}
	seen := map[string]bool{}
	hits := 0
	for _, s := range secrets {
		for _, needle := range searchNeedles(s) {
			if seen[needle] {
				continue
			}
			seen[needle] = true
			if strings.Contains(lower, strings.ToLower(needle)) || strings.Contains(lower, strings.ToLower(jsonEscape(needle))) {
				hits++
				if hits <= 10 {
					out = append(out, fmt.Sprintf("pgveil's log contains the plaintext %s", short(needle)))
				}
			}
		}
	}
	if hits > 10 {
		out = append(out, fmt.Sprintf("... %d plaintexts in pgveil's log in all", hits))
	}
	if len(seen) == 0 {
		out = append(out, "log check: no plaintext was registered")
	}
	return out
}

// jsonEscape is s as it appears inside a JSON string.
func jsonEscape(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	out := strings.TrimSuffix(b.String(), "\n")
	return strings.TrimSuffix(strings.TrimPrefix(out, `"`), `"`)
}

// searchNeedles are the strings a plaintext check looks for: the value
// itself when long enough to be unmistakable, and for long values windows
// at several offsets (a proxy that logged a prefix or a chunk is caught).
func searchNeedles(s string) []string {
	const minLen = 6
	if len(s) < minLen {
		return nil
	}
	if len(s) <= 256 {
		return []string{s}
	}
	out := []string{s[:64]}
	for off := 0; off+48 <= len(s); off += 256 << 10 {
		out = append(out, s[off:off+48])
	}
	return append(out, s[len(s)-48:])
}

// short renders a value for a failure message.
func short(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q… (%d bytes)", s[:60], len(s))
	}
	return strconv.Quote(s)
}
