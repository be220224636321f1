package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/integration/harness"
)

// psqlPath finds psql on PATH or beside the server binaries.
func psqlPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("psql"); err == nil {
		return p
	}
	p := filepath.Join(cluster.BinDir, "psql")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("psql not found on PATH or in %s (install postgresql-client)", cluster.BinDir)
	}
	return p
}

// psqlEnv is the environment psql runs with: ours without PG* variables
// (so nothing outside the test picks the server), C.UTF-8 messages.
func psqlEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "PSQL") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C.UTF-8", "PGCLIENTENCODING=UTF8", "PSQLRC=/dev/null")
	return append(env, extra...)
}

// psqlResult is what a psql run printed and how it exited.
type psqlResult struct {
	Stdout, Stderr string
	Code           int
}

var notificationPID = regexp.MustCompile(`server process with PID \d+`)

// normalise removes what legitimately differs between two runs: the pid of
// the backend that sent a notification.
func (r psqlResult) normalise() psqlResult {
	r.Stdout = notificationPID.ReplaceAllString(r.Stdout, "server process with PID <pid>")
	r.Stderr = notificationPID.ReplaceAllString(r.Stderr, "server process with PID <pid>")
	return r
}

// runPsql runs psql against url with stdin and extra arguments.
func runPsql(t *testing.T, ctx context.Context, url string, stdin []byte, env []string, args ...string) psqlResult {
	t.Helper()
	full := append([]string{"-X", "-P", "pager=off", "-d", url}, args...)
	cmd := exec.CommandContext(ctx, psqlPath(t), full...)
	cmd.Env = psqlEnv(env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := psqlResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	default:
		t.Fatalf("psql: %v", err)
	}
	return res
}

// TestRelayPsql runs psql scripts (from testdata/psql) and -c strings
// directly and through pgveil, and requires the same stdout, stderr and
// exit status, with notification pids normalised: COPY FROM STDIN with
// inline data, \copy from stdin, COPY ... TO STDOUT, LISTEN with NOTIFY from
// another connection, errors with and without ON_ERROR_STOP, failing COPY,
// and multi-statement strings sent as one simple Query.
func TestRelayPsql(t *testing.T) {
	relayLeakCheck(t)
	p := startRelayProxy(t, proxyConf{})
	ctx := testCtx(t, 2*time.Minute)
	psql := psqlPath(t)

	type target struct {
		name string
		url  string
	}
	targets := func(user string) (direct, proxied target) {
		return target{"direct", directURL(user, "sslmode=disable")}, target{"pgveil", proxyURL(p, user, "sslmode=disable")}
	}
	cases := []struct {
		name   string
		script string   // file in testdata/psql, fed on stdin
		args   []string // extra psql arguments
		code   int      // expected exit status
		want   []string // substrings the output must contain
	}{
		{name: "copy", script: "copy.sql", want: []string{
			"COPY 2", "COPY 2", "COPY 2", "1\talpha\t\\N", "2\tbéta 🐘\ttab\\there", "3\tgamma\tbackslash\\\\",
			"id,name\n6,\"multi\nline\"\n5,\"quoted, comma\"", "5,\"quoted, comma\",\n", "     6 | alpha|béta 🐘|gamma|delta|quoted, comma|multi+"}},
		{name: "bulk copy", script: "big.sql", want: []string{"COPY 200000", "UPDATE 200000", " 200000 | 20000100000 |", "199999\t", "150001,"}},
		{name: "notify", script: "notify.sql", want: []string{
			`Asynchronous notification "relay_psql_ch" with payload "hello from another session" received from server process with PID <pid>.`,
			`Asynchronous notification "relay_psql_ch" with payload "second ü" received from server process with PID <pid>.`,
			`Asynchronous notification "relay_psql_ch" with payload "self" received from server process with PID <pid>.`}},
		{name: "errors continue", script: "errors_continue.sql", want: []string{
			"ERROR:  division by zero", "continued", `invalid input syntax for type integer: "not a number"`,
			"CONTEXT:  COPY relay_psql_e, line 2", "Key (id)=(2) already exists", "current transaction is aborted",
			"NOTICE:  notice with detail\nDETAIL:  the detail\nHINT:  the hint", " done"}},
		{name: "on error stop", script: "errors_stop.sql", code: 3, want: []string{
			` before`, `ERROR:  relation "relay_psql_no_such_table" does not exist`}},
		{name: "multi-statement string", args: []string{"-c", "SELECT 1 AS a; SELECT 2 AS b; SELECT 1/0; SELECT 3 AS c"}, code: 1,
			want: []string{" a \n---\n 1\n", " b \n---\n 2\n", "ERROR:  division by zero"}},
		{name: "multi-statement transaction", args: []string{"-c", "CREATE TEMP TABLE m (i int); INSERT INTO m VALUES (1), (2); SELECT sum(i) AS total FROM m; BEGIN; SELECT 'in tx'; COMMIT"},
			want: []string{"INSERT 0 2", " total \n-------\n     3\n", "COMMIT"}},
		{name: "on error stop -c", args: []string{"-v", "ON_ERROR_STOP=1", "-c", "SELECT 'x' AS first", "-c", "SELECT * FROM nope", "-c", "SELECT 'y' AS third"}, code: 1,
			want: []string{" first \n-------\n x\n", `relation "nope" does not exist`}},
		{name: "echo and verbosity", args: []string{"-e", "-v", "VERBOSITY=verbose", "-c", "SELECT 1/0"}, code: 1,
			want: []string{"SELECT 1/0", "ERROR:  22012: division by zero", "LOCATION:  int4div"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdin []byte
			if tc.script != "" {
				b, err := os.ReadFile(filepath.Join("testdata", "psql", tc.script))
				if err != nil {
					t.Fatal(err)
				}
				stdin = b
			}
			args := tc.args
			if tc.script != "" {
				args = append([]string{"-f", "-"}, args...)
			}
			direct, proxied := targets(harness.SCRAMUser)
			var results [2]psqlResult
			for i, tg := range []target{direct, proxied} {
				env := []string{"RELAY_PSQL=" + psql, "RELAY_NOTIFY_URL=" + tg.url}
				results[i] = runPsql(t, ctx, tg.url, stdin, env, args...).normalise()
			}
			want, got := results[0], results[1]
			if want != got {
				t.Errorf("psql through pgveil differs from direct\n--- direct (exit %d) stdout:\n%s\n--- stderr:\n%s\n--- pgveil (exit %d) stdout:\n%s\n--- stderr:\n%s",
					want.Code, want.Stdout, want.Stderr, got.Code, got.Stdout, got.Stderr)
			}
			if got.Code != tc.code {
				t.Errorf("psql through pgveil exited %d, want %d\nstderr:\n%s", got.Code, tc.code, got.Stderr)
			}
			all := got.Stdout + got.Stderr
			for _, s := range tc.want {
				if !strings.Contains(all, s) {
					t.Errorf("psql through pgveil: output lacks %q\nstdout:\n%s\nstderr:\n%s", s, got.Stdout, got.Stderr)
				}
			}
			if tc.name == "on error stop" && strings.Contains(all, "never printed") {
				t.Errorf("ON_ERROR_STOP did not stop psql through pgveil:\n%s", all)
			}
		})
	}
}
