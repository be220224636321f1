// Package harness starts the real parts that pgveil's tests run against: a
// throwaway PostgreSQL cluster (initdb in a temp dir, TLS on, users for every
// authentication method) and the real pgveil binary as a subprocess.
//
// Nothing here is a mock. Servers are started on free ports and stopped by the
// test that started them; readiness is detected from the server's own log
// line, never by sleeping.
package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Roles created in every cluster, one per authentication method pg_hba.conf
// assigns. Passwords are test fixtures, not secrets.
const (
	SuperUser    = "postgres"
	SCRAMUser    = "scram_user"
	SCRAMPass    = "scram-secret"
	MD5User      = "md5_user"
	MD5Pass      = "md5-secret"
	PasswordUser = "pass_user"
	PasswordPass = "pass-secret"
	TrustUser    = "trust_user"
	Database     = "app"
)

// Passwords maps each test role to its password ("" for trust).
var Passwords = map[string]string{
	SuperUser: "super-secret", SCRAMUser: SCRAMPass, MD5User: MD5Pass, PasswordUser: PasswordPass, TrustUser: "",
}

// Cluster is a running PostgreSQL server in a temp dir.
type Cluster struct {
	Dir     string // data directory's parent: holds data/, certs, socket, log
	BinDir  string
	Host    string // 127.0.0.1
	Port    int
	Version int // server major version
	Certs   *Certs

	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
	mu      sync.Mutex
	stopped bool

	// The server's stderr reaches logPath through a pipe and a goroutine,
	// so a line the server wrote may not be in the file yet; SyncLog waits
	// for it. logGrew is closed, and replaced, each time a line lands.
	logMu   sync.Mutex
	logGrew chan struct{}
	marks   atomic.Int64
}

// Options tune a cluster.
type Options struct {
	// Settings are extra postgresql.conf lines ("max_connections = 300").
	Settings []string
}

// StartCluster runs initdb and starts postgres. It works as root by running
// the server as the "postgres" user. Call Stop when done.
func StartCluster(opts Options) (*Cluster, error) {
	bin, err := FindPostgresBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgveil-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, BinDir: bin, Host: "127.0.0.1", exited: make(chan struct{})}
	if err := c.init(opts); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.createRoles(); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// FindPostgresBin locates the server binaries: initdb on PATH, or the newest
// /usr/lib/postgresql/*/bin (Debian's layout).
func FindPostgresBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries not found (no initdb on PATH or in /usr/lib/postgresql/*/bin); install them: apt-get install -y postgresql")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// serverUser returns the credential to run the server as: the postgres user
// when we are root (Postgres refuses to run as root), else nil (ourselves).
func serverUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs a postgres user to run the server: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (c *Cluster) command(name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(filepath.Join(c.BinDir, name), args...)
	cred, err := serverUser()
	if err != nil {
		return nil, err
	}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "LANG=C.UTF-8")
	return cmd, nil
}

// chownTree hands dir to the server user when we run as root.
func chownTree(dir string) error {
	cred, err := serverUser()
	if err != nil || cred == nil {
		return err
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	})
}

func (c *Cluster) init(opts Options) error {
	if err := os.Chmod(c.Dir, 0o755); err != nil {
		return err
	}
	certs, err := WriteCerts(c.Dir)
	if err != nil {
		return err
	}
	c.Certs = certs
	pwFile := filepath.Join(c.Dir, "pwfile")
	if err := os.WriteFile(pwFile, []byte(Passwords[SuperUser]+"\n"), 0o600); err != nil {
		return err
	}
	if err := chownTree(c.Dir); err != nil {
		return err
	}
	data := filepath.Join(c.Dir, "data")
	cmd, err := c.command("initdb", "-D", data, "-U", SuperUser, "--pwfile", pwFile,
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if err != nil {
		return err
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	c.Port = port
	conf := []string{
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("port = %d", port),
		fmt.Sprintf("unix_socket_directories = '%s'", c.Dir),
		"ssl = on",
		fmt.Sprintf("ssl_cert_file = '%s'", certs.ServerCert),
		fmt.Sprintf("ssl_key_file = '%s'", certs.ServerKey),
		"fsync = off",
		"synchronous_commit = off",
		"full_page_writes = off",
		"max_connections = 200",
		"password_encryption = 'scram-sha-256'",
		"log_min_messages = warning",
		"logging_collector = off",
		"shared_buffers = 64MB",
		// PREPARE TRANSACTION (rotate waits for prepared transactions).
		"max_prepared_transactions = 10",
		// Notice a client (or pgveil) that went away even while a query
		// runs, so tests can watch a backend end after a disconnect.
		"client_connection_check_interval = 200ms",
		// The same zone on every machine: a timestamptz parameter converts
		// to a timestamp or date column through it (tests that need
		// another zone SET it).
		"timezone = 'UTC'",
	}
	conf = append(conf, opts.Settings...)
	if err := appendFile(filepath.Join(data, "postgresql.conf"), strings.Join(conf, "\n")+"\n"); err != nil {
		return err
	}
	hba := strings.Join([]string{
		"local all all trust",
		// Replication connections (CopyBoth) for the superuser, over TCP.
		"host replication " + SuperUser + " 127.0.0.1/32 trust",
		"host all " + TrustUser + " 127.0.0.1/32 trust",
		"host all " + MD5User + " 127.0.0.1/32 md5",
		"host all " + PasswordUser + " 127.0.0.1/32 password",
		"host all all 127.0.0.1/32 scram-sha-256",
	}, "\n") + "\n"
	return os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600)
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// start runs postgres in the foreground of a child process and waits for its
// "ready to accept connections" log line.
func (c *Cluster) start() error {
	cmd, err := c.command("postgres", "-D", filepath.Join(c.Dir, "data"))
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = io.Discard
	c.logPath = filepath.Join(c.Dir, "postgres.log")
	logFile, err := os.Create(c.logPath)
	if err != nil {
		return err
	}
	// SIGQUIT: the postmaster's immediate shutdown, children included.
	if err := startForLife(cmd, syscall.SIGQUIT); err != nil {
		logFile.Close()
		return err
	}
	c.cmd = cmd
	ready := make(chan struct{})
	c.logGrew = make(chan struct{})
	go func() {
		defer logFile.Close()
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			c.logMu.Lock()
			close(c.logGrew)
			c.logGrew = make(chan struct{})
			c.logMu.Unlock()
			if !signalled && strings.Contains(line, "database system is ready to accept connections") {
				signalled = true
				close(ready)
			}
		}
		cmd.Wait()
		close(c.exited)
	}()
	select {
	case <-ready:
	case <-c.exited:
		log, _ := os.ReadFile(c.logPath)
		return fmt.Errorf("postgres exited during startup:\n%s", log)
	case <-time.After(60 * time.Second):
		c.Stop()
		return errors.New("postgres did not become ready within 60s")
	}
	ver, err := c.serverVersion()
	if err != nil {
		c.Stop()
		return err
	}
	c.Version = ver
	return nil
}

func (c *Cluster) serverVersion() (int, error) {
	conn, err := c.Connect(context.Background(), SuperUser, "postgres")
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var v int
	err = conn.QueryRow(context.Background(), "SELECT current_setting('server_version_num')::int / 10000").Scan(&v)
	return v, err
}

func (c *Cluster) createRoles() error {
	ctx := context.Background()
	conn, err := c.Connect(ctx, SuperUser, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	stmts := []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", SCRAMUser, SCRAMPass),
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", PasswordUser, PasswordPass),
		fmt.Sprintf("CREATE ROLE %s LOGIN", TrustUser),
		"SET password_encryption = 'md5'",
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", MD5User, MD5Pass),
		"RESET password_encryption",
		fmt.Sprintf("CREATE DATABASE %s", Database),
		fmt.Sprintf("GRANT ALL ON DATABASE %s TO %s, %s, %s, %s", Database, SCRAMUser, MD5User, PasswordUser, TrustUser),
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	app, err := c.Connect(ctx, SuperUser, Database)
	if err != nil {
		return err
	}
	defer app.Close(ctx)
	_, err = app.Exec(ctx, fmt.Sprintf("GRANT ALL ON SCHEMA public TO %s, %s, %s, %s", SCRAMUser, MD5User, PasswordUser, TrustUser))
	return err
}

// Connect opens a pgx connection over the Unix socket as a superuser-trusted
// role (no password, no TLS): the harness's own back door for set-up and for
// checking what is stored at rest.
func (c *Cluster) Connect(ctx context.Context, user, db string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, c.SocketURL(user, db))
}

// SocketURL is a URL over the cluster's Unix socket (trust authentication).
func (c *Cluster) SocketURL(user, db string) string {
	return fmt.Sprintf("postgres://%s@/%s?host=%s&port=%d&sslmode=disable", url.PathEscape(user), db, url.QueryEscape(c.Dir), c.Port)
}

// Addr is host:port of the TCP listener.
func (c *Cluster) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// URL is a TCP URL for user (with its fixture password) to db, with extra
// query parameters ("sslmode=disable").
func (c *Cluster) URL(user, db string, params ...string) string {
	return BuildURL(c.Addr(), user, Passwords[user], db, params...)
}

// BuildURL makes a postgres:// URL.
func BuildURL(addr, user, password, db string, params ...string) string {
	u := url.URL{Scheme: "postgres", Host: addr, Path: "/" + db}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	u.RawQuery = strings.Join(params, "&")
	return u.String()
}

// Log returns the server log so far, for failure messages. Lines the
// server wrote a moment ago may be missing: checks of what the log holds
// use SyncLog.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

// SyncLog returns the server log with every line that any backend wrote
// before the call. It has a new session raise a WARNING with a unique
// marker (log_min_messages is warning) and waits until the marker line is
// in the file: backends write whole lines to the one stderr pipe, in the
// order they write them, so what came before the marker is there too.
func (c *Cluster) SyncLog(ctx context.Context) (string, error) {
	mark := fmt.Sprintf("pgveil-harness-log-mark-%d-%d", os.Getpid(), c.marks.Add(1))
	conn, err := c.Connect(ctx, SuperUser, "postgres")
	if err != nil {
		return "", err
	}
	_, err = conn.Exec(ctx, "DO $$BEGIN RAISE WARNING '"+mark+"'; END$$")
	conn.Close(ctx)
	if err != nil {
		return "", err
	}
	for {
		c.logMu.Lock()
		grew := c.logGrew
		c.logMu.Unlock()
		if log := c.Log(); strings.Contains(log, mark) {
			return log, nil
		}
		select {
		case <-grew:
		case <-c.exited:
			return "", errors.New("postgres exited before its log caught up")
		case <-ctx.Done():
			return "", fmt.Errorf("the server log lacks the marker %s: %w", mark, ctx.Err())
		}
	}
}

// Stop shuts the server down (fast shutdown) and removes its directory.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			c.cmd.Process.Kill()
			<-c.exited
		}
	}
	os.RemoveAll(c.Dir)
}

// FreePort asks the kernel for a free TCP port on loopback.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
