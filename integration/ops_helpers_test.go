package integration

// Helpers of the operator-command tests (issue 6): each test gets a
// database of its own in the package's cluster (so its pgveil.keys and
// pgveil.tables are its own), a master key file, a config, and runs the
// real pgveil binary as an operator would.
//
//	pgveil migrate/rotate/shred/check ──┐ service_url (Unix socket, superuser)
//	application ── pgveil serve ────────┴── Postgres: database ops_<test>

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/integration/harness"
)

// opsEnv is one test's database, key and config directory.
type opsEnv struct {
	t      *testing.T
	db     string
	dir    string
	key    string // master key file
	policy string // the tables section
}

// newOpsEnv (re)creates database db and writes a fresh master key.
func newOpsEnv(t *testing.T, db, policy string) *opsEnv {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	su, err := cluster.Connect(ctx, harness.SuperUser, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	for _, s := range []string{"DROP DATABASE IF EXISTS " + db + " WITH (FORCE)", "CREATE DATABASE " + db} {
		if _, err := su.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	e := &opsEnv{t: t, db: db, dir: t.TempDir(), policy: policy}
	e.key = filepath.Join(e.dir, "master.key")
	e.run(ctx, 0, "keygen", "-o", e.key)
	return e
}

// conn is a superuser connection to the test's database (direct).
func (e *opsEnv) conn(ctx context.Context) *pgx.Conn {
	e.t.Helper()
	c, err := cluster.Connect(ctx, harness.SuperUser, e.db)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// config is the YAML of a pgveil for this database; keyfile "" is e.key.
func (e *opsEnv) config(keyFile string, previous ...string) string {
	if keyFile == "" {
		keyFile = e.key
	}
	prev := "[]"
	if len(previous) > 0 {
		prev = "[" + strings.Join(previous, ", ") + "]"
	}
	return fmt.Sprintf(`listen: 127.0.0.1:0
upstream:
  address: %s
  tls: disable
  service_url: %q
keysource:
  kind: local
  local:
    key_file: %s
    previous_key_files: %s
admin:
  listen: 127.0.0.1:0
log:
  level: %s
  format: json
%s`, cluster.Addr(), cluster.SocketURL(harness.SuperUser, e.db), keyFile, prev, logLevel(), e.policy)
}

// writeConfig writes a config file and returns its path.
func (e *opsEnv) writeConfig(name, yaml string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// opsResult is one finished pgveil command.
type opsResult struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// run runs pgveil with args and fails the test unless it exits with want
// (-1: any code).
func (e *opsEnv) run(ctx context.Context, want int, args ...string) opsResult {
	e.t.Helper()
	bin, err := harness.BuildPgveil()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = os.Environ()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err = cmd.Run()
	r := opsResult{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("pgveil %s: %v", strings.Join(args, " "), err)
	}
	for _, race := range harness.RaceReports(r.stderr) {
		e.t.Errorf("pgveil %s printed a data race report:\n%s", strings.Join(args, " "), race)
	}
	if os.Getenv("OPS_TIMING") != "" {
		e.t.Logf("%s: pgveil %s", r.took.Round(time.Millisecond), strings.Join(args, " "))
	}
	if want >= 0 && r.code != want {
		e.t.Fatalf("pgveil %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, want, r.stdout, tail(r.stderr, 40))
	}
	return r
}

// start runs pgveil in the background; the returned process is killed
// when the test ends if it is still running.
func (e *opsEnv) start(args ...string) (*exec.Cmd, *syncBuffer, *syncBuffer) {
	e.t.Helper()
	bin, err := harness.BuildPgveil()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	out, errb := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, errb
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
		}
		for _, race := range harness.RaceReports(errb.String()) {
			e.t.Errorf("pgveil %s printed a data race report:\n%s", strings.Join(args, " "), race)
		}
	})
	return cmd, out, errb
}

// proxy starts `pgveil serve` with this database's config.
func (e *opsEnv) proxy(yaml string) *harness.Proxy {
	e.t.Helper()
	p, err := harness.StartProxy(harness.ProxyOptions{Config: yaml})
	if err != nil {
		e.t.Fatalf("starting pgveil: %v", err)
	}
	e.t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			e.t.Errorf("pgveil serve did not exit cleanly: %v", err)
		}
	})
	return p
}

// appURL is the application's URL: through p to the test's database.
func (e *opsEnv) appURL(p *harness.Proxy) string {
	return harness.BuildURL(p.Addr, harness.SuperUser, harness.Passwords[harness.SuperUser], e.db, "sslmode=disable")
}

// appConn connects through a proxy to the test's database.
func (e *opsEnv) appConn(ctx context.Context, p *harness.Proxy) *pgx.Conn {
	e.t.Helper()
	return connectPgx(e.t, ctx, e.appURL(p))
}

// tableState is the table's row in pgveil.tables ("" when none).
func (e *opsEnv) tableState(ctx context.Context, c *pgx.Conn, table string) string {
	e.t.Helper()
	var s string
	err := c.QueryRow(ctx, `SELECT state FROM pgveil.tables WHERE table_name = $1`, table).Scan(&s)
	if err != nil && err != pgx.ErrNoRows {
		e.t.Fatal(err)
	}
	return s
}

// syncBuffer is a bytes.Buffer safe for a writer process and a reader test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rowsPerSecond reads the rate from a summary line of migrate or rotate:
// "...: N rows examined, M rewritten in 8.1s (24690 rows/s); ...".
func rowsPerSecond(out, what string) (rows int, rate int) {
	re := regexp.MustCompile(regexp.QuoteMeta(what) + `: (\d+) rows examined, \d+ rewritten in \S+ \((\d+) rows/s\)`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		return 0, 0
	}
	rows, _ = strconv.Atoi(m[1])
	rate, _ = strconv.Atoi(m[2])
	return rows, rate
}

// progressRows is the highest "rows" of migrate's progress log lines.
func progressRows(stderr string) int {
	best := 0
	for _, m := range regexp.MustCompile(`"msg":"progress"[^\n]*"rows":(\d+)`).FindAllStringSubmatch(stderr, -1) {
		if n, _ := strconv.Atoi(m[1]); n > best {
			best = n
		}
	}
	return best
}

func logLevel() string {
	if l := os.Getenv("OPS_LOG_LEVEL"); l != "" {
		return l
	}
	return "info"
}
