package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEncNode runs the scenario with node-postgres (npm `pg`, the exact
// version in drivers/node/package.json and package-lock.json, installed
// here by npm): prepared (named) statements, reused, and unnamed ones.
func TestEncNode(t *testing.T) {
	relayLeakCheck(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed (.ci/run installs nodejs and npm)")
	}
	dir, err := filepath.Abs(filepath.Join("drivers", "node"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 3*time.Minute)
	install := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund")
	install.Dir = dir
	install.Env = driverEnv()
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm install in %s: %v\n%s", dir, err, out)
	}
	p := startEncProxy(t, encOrgs(81, 1)...)
	s := newEncSpec(p, "node", 81)
	runDriver(t, ctx, "node-postgres", dir, node, "scenario.js", s.writeJSON(t))
	verifyThroughProxy(t, ctx, p, s)
	verifyAtRest(t, ctx, s.plaintexts())
}

// driverEnv is the environment of a driver program: ours without PG*
// variables (nothing outside the spec picks the server), UTF-8.
func driverEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") ||
			strings.HasPrefix(kv, "PYTHON") || strings.HasPrefix(kv, "JAVA_TOOL_OPTIONS") {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, "LC_ALL=C.UTF-8", "PYTHONIOENCODING=utf-8", "PYTHONDONTWRITEBYTECODE=1"), extra...)
}

// runDriver runs a scenario program and fails the test for each step it
// reports as failed ("FAIL …" lines), for a non-zero exit, or when it
// reports no step at all. It returns the program's output.
func runDriver(t *testing.T, ctx context.Context, what, dir, prog string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = dir
	cmd.Env = driverEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	text := out.String()
	oks, fails := 0, 0
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "ok "):
			oks++
		case strings.HasPrefix(line, "FAIL"):
			fails++
			if len(line) > 600 {
				line = line[:600] + "…"
			}
			t.Errorf("%s: %s", what, line)
		}
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if fails == 0 {
			t.Errorf("%s exited %d:\n%s", what, ee.ExitCode(), tail(text, 30))
		}
	default:
		t.Fatalf("%s: %v", what, err)
	}
	if oks == 0 && fails == 0 {
		t.Errorf("%s reported no step:\n%s", what, tail(text, 30))
	}
	t.Logf("%s: %d steps ok, %d failed", what, oks, fails)
	return text
}
