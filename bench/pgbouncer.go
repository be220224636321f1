package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgveil/pgveil/integration/harness"
)

// pgbouncerOptions vary the PgBouncer configuration.
type pgbouncerOptions struct {
	// serverLifetime0 sets server_lifetime = 0: a server connection is used
	// once and closed, i.e. no pooling across client connections.
	serverLifetime0 bool
}

// startPgBouncer runs Debian's pgbouncer in session pooling mode.
//
// Session mode is the fair comparison: pgveil holds one server connection
// per client connection for the client's whole life, and so does PgBouncer
// in session mode. Transaction mode would also break pgbench -M prepared
// on PgBouncer < 1.21 (named prepared statements do not survive a server
// switch). Authentication is trust for the bench role (listed in the
// auth_file, as PgBouncer requires), as the server trusts it too.
func (e *env) startPgBouncer(ctx context.Context, name string, po pgbouncerOptions) (*target, error) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/pgbouncer"); serr == nil {
			bin = "/usr/sbin/pgbouncer"
		} else {
			return nil, fmt.Errorf("pgbouncer not found (Debian: apt-get install -y pgbouncer)")
		}
	}
	e.versions["pgbouncer"] = commandVersion(bin, "--version")
	dir := filepath.Join(e.tmp, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	lifetime := ""
	if po.serverLifetime0 {
		lifetime = "server_lifetime = 0\n"
	}
	ini := fmt.Sprintf(`[databases]
%[1]s = host=127.0.0.1 port=%[2]d dbname=%[1]s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %[3]d
unix_socket_dir =
auth_type = trust
auth_file = %[4]s/userlist.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 40
server_reset_query = DISCARD ALL
logfile =
pidfile =
log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
stats_period = 60
%[5]s`, harness.Database, e.cluster.Port, port, dir, lifetime)
	if err := os.WriteFile(filepath.Join(dir, "pgbouncer.ini"), []byte(ini), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(fmt.Sprintf("%q \"\"\n", benchUser)), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	if os.Geteuid() == 0 {
		// PgBouncer refuses to run as root.
		cred, err := postgresCredential()
		if err != nil {
			return nil, err
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if err := chownDir(dir, cred); err != nil {
			return nil, err
		}
	}
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = nil
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	ready := make(chan struct{})
	logPath := filepath.Join(dir, "pgbouncer.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		cmd.Process.Kill()
		return nil, err
	}
	go func() {
		defer logFile.Close()
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if !signalled && strings.Contains(line, "listening on 127.0.0.1") {
				signalled = true
				close(ready)
			}
		}
		cmd.Wait()
		close(exited)
	}()
	// SIGTERM is PgBouncer's immediate shutdown.
	stop := func() { stopProcess(cmd, exited, syscall.SIGTERM, 10*time.Second) }
	e.defer_(stop)
	select {
	case <-ready:
	case <-exited:
		b, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("pgbouncer exited during startup:\n%s", b)
	case <-time.After(30 * time.Second):
		stop()
		return nil, fmt.Errorf("pgbouncer did not report listening within 30s")
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
	return &target{name: name, addr: fmt.Sprintf("127.0.0.1:%d", port), pid: cmd.Process.Pid, stop: stop}, nil
}

func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs a postgres user to run pgbouncer: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func chownDir(dir string, cred *syscall.Credential) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	})
}
