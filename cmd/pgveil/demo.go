package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/integration/harness"
	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// demoSchema is the example table: customers of several tenants (org_id),
// with an email searchable through its blind index, a phone and a birth
// date, all stored as ciphertext.
const demoSchema = `
CREATE TABLE customers (
  id         bigserial PRIMARY KEY,
  org_id     int8 NOT NULL,
  name       text NOT NULL,
  email      bytea,
  email_bidx bytea UNIQUE,
  phone      bytea,
  birth_date bytea
);
GRANT ALL ON customers TO %[1]s;
GRANT ALL ON SEQUENCE customers_id_seq TO %[1]s;
`

const demoPolicy = `
tables:
  public.customers:
    key_context: org_id
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase, trim]
      phone:
        type: text
      birth_date:
        type: date
`

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", stderr, `Start a throwaway PostgreSQL cluster in a temp dir (initdb; as the postgres
user when run as root), with pgveil in front of it: a fresh local master key, an
example policy encrypting customers.email, .phone and .birth_date, and three rows
written through pgveil. Prints both URLs with psql commands that show plaintext
through pgveil and ciphertext direct, the admin address (/metrics, /healthz,
/readyz) and the config file it wrote for check, migrate, rotate and shred.
Runs until SIGINT (Ctrl-C), SIGTERM or SIGHUP; then the temp dir is removed.
Under "go run", signal the pgveil process (its pid is printed), not "go run".`)
	listen := fs.String("listen", "127.0.0.1:6432", "where pgveil listens (a free port is picked if this one is taken)")
	adminListen := fs.String("admin-listen", "127.0.0.1:9187", "address of /metrics, /healthz, /readyz (a free port is picked if this one is taken)")
	logLevel := fs.String("log-level", "warn", "pgveil's log level while the demo runs")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "pgveil demo: %v\n", err)
		return exitProblem
	}
	// Caught from the start: a signal during set-up stops the demo once
	// it is up, and a closed terminal (SIGHUP) cleans up like Ctrl-C.
	// Left to their default, they killed the process and left the temp
	// dir (data, key) behind.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	fmt.Fprintln(stdout, "Starting a throwaway PostgreSQL cluster...")
	cluster, err := harness.StartCluster(harness.Options{})
	if err != nil {
		return fail(err)
	}
	defer cluster.Stop()
	ctx := context.Background()
	user, pass := harness.SCRAMUser, harness.SCRAMPass
	if err := demoCreateSchema(ctx, cluster, user); err != nil {
		return fail(err)
	}
	keyFile := filepath.Join(cluster.Dir, "pgveil-master.key")
	if err := keysource.GenerateKeyFile(keyFile); err != nil {
		return fail(err)
	}

	addr, adminAddr := freeAddr(*listen), freeAddr(*adminListen)
	cfgPath := filepath.Join(cluster.Dir, "pgveil.yaml")
	cfgText := demoConfig(addr, adminAddr, cluster.Addr(), cluster.SocketURL(harness.SuperUser, harness.Database), keyFile)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return fail(err)
	}
	cfg, err := policy.LoadBytes(cfgPath, []byte(cfgText), nil)
	if err != nil {
		return fail(err)
	}
	cfg.Log.Level = *logLevel
	log, err := newLogger(cfg.Log, zap.NewAtomicLevel(), stderr)
	if err != nil {
		return fail(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := proxy.New(cfg, proxy.Options{Log: log, Registry: reg})
	if err != nil {
		return fail(err)
	}
	bound, err := srv.Listen()
	if err != nil {
		return fail(err)
	}
	actx, stopAdmin := context.WithCancel(ctx)
	defer stopAdmin()
	admin, _, err := proxy.ServeAdmin(actx, adminAddr, srv.AdminHandler(reg))
	if err != nil {
		return fail(fmt.Errorf("admin listen on %s: %w", adminAddr, err))
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()

	via := harness.BuildURL(bound.String(), user, pass, harness.Database, "sslmode=disable")
	direct := harness.BuildURL(cluster.Addr(), user, pass, harness.Database, "sslmode=disable")
	if err := demoInsert(ctx, via); err != nil {
		return fail(fmt.Errorf("writing the example rows through pgveil: %w", err))
	}
	query := "SELECT name, email, phone, birth_date FROM customers ORDER BY id"
	lookup := "SELECT name FROM customers WHERE email = 'GRACE@example.com'"
	fmt.Fprintf(stdout, `
pgveil is running in front of a throwaway PostgreSQL %d (data in %s).

  through pgveil:  %s
  direct:          %s
  admin:           http://%s/metrics (and /healthz, /readyz)
  config:          %s (try: pgveil check -c %[6]s)

The table customers has email, phone and birth_date encrypted (policy below);
three rows were written through pgveil. The same query, both ways:

  psql '%s' -c '%s'
  psql '%s' -c '%s'

Through pgveil you read plaintext; direct, the database holds only ciphertext
(bytea envelopes) and a blind index (email_bidx) that still finds rows by email:

  psql '%s' -c "%s"

The policy:%s
Press Ctrl-C (or kill -INT %d) to stop; the cluster, the key and the data directory are removed.
`, cluster.Version, cluster.Dir, via, direct, admin, cfgPath, via, query, direct, query, via, lookup, indent(demoPolicy), os.Getpid())

	select {
	case <-sigs:
	case err := <-served:
		fmt.Fprintf(stderr, "pgveil demo: proxy stopped: %v\n", err)
	}
	fmt.Fprintln(stdout, "\nStopping...")
	return exitOK
}

func demoCreateSchema(ctx context.Context, c *harness.Cluster, user string) error {
	conn, err := c.Connect(ctx, harness.SuperUser, harness.Database)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, fmt.Sprintf(demoSchema, user))
	return err
}

func demoInsert(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows := []struct {
		org         int64
		name, email string
		phone       string
		born        time.Time
	}{
		{1, "Ada Lovelace", "ada@example.com", "+44 20 7946 0018", time.Date(1815, 12, 10, 0, 0, 0, 0, time.UTC)},
		{1, "Alan Turing", "alan@example.com", "+44 20 7946 0912", time.Date(1912, 6, 23, 0, 0, 0, 0, time.UTC)},
		{2, "Grace Hopper", "grace@example.com", "+1 202 555 0147", time.Date(1906, 12, 9, 0, 0, 0, 0, time.UTC)},
	}
	for _, r := range rows {
		if _, err := conn.Exec(ctx, `INSERT INTO customers (org_id, name, email, phone, birth_date) VALUES ($1, $2, $3, $4, $5)`,
			r.org, r.name, r.email, r.phone, r.born); err != nil {
			return err
		}
	}
	return nil
}

// demoConfig is the demo's config file: the policy above, the cluster as
// upstream, its superuser over the Unix socket as pgveil's service role.
func demoConfig(listen, admin, upstream, serviceURL, keyFile string) string {
	return fmt.Sprintf(`# pgveil demo: removed when the demo stops.
listen: %s
upstream:
  address: %s
  tls: prefer
  service_url: %s
keysource:
  local:
    key_file: %s
admin:
  listen: %s
%s`, listen, upstream, serviceURL, keyFile, admin, demoPolicy)
}

// freeAddr is addr if it can be bound now, else 127.0.0.1 with a port that
// was free a moment ago.
func freeAddr(addr string) string {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return addr // Listen reports it
		}
	}
	defer l.Close()
	return l.Addr().String()
}

func indent(s string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}
