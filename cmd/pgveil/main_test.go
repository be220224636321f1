package main

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, _ := runCLI(t, args...)
		if code != exitOK || !strings.Contains(out, "Commands:") || !strings.Contains(out, "serve") || !strings.Contains(out, "PGVEIL_") {
			t.Fatalf("%v: code %d\n%s", args, code, out)
		}
	}
	code, _, errOut := runCLI(t, "serve", "--help")
	if code != exitOK || !strings.Contains(errOut, "--upstream") || !strings.Contains(errOut, "PGVEIL_UPSTREAM") {
		t.Fatalf("serve --help: %d\n%s", code, errOut)
	}
	code, out, _ := runCLI(t, "version")
	if code != exitOK || !strings.HasPrefix(out, "pgveil ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	if code, _, errOut := runCLI(t, "frobnicate"); code != exitUsage || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: %d %s", code, errOut)
	}
	if code, _, _ := runCLI(t, "serve", "--no-such-flag"); code != exitUsage {
		t.Fatalf("bad flag: %d", code)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listen: 127.0.0.1:0\nupstream:\n  tls: sometimes\n"), 0o600)
	code, _, errOut := runCLI(t, "serve", "-c", bad)
	if code != exitUsage || !strings.Contains(errOut, bad+":3: upstream.tls") {
		t.Fatalf("bad config: %d %s", code, errOut)
	}
	t.Setenv("PGVEIL_LOG_LEVEL", "chatty")
	if code, _, errOut := runCLI(t, "serve"); code != exitUsage || !strings.Contains(errOut, "chatty") {
		t.Fatalf("bad env level: %d %s", code, errOut)
	}
}

func TestKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.key")
	code, out, errOut := runCLI(t, "keygen", "-o", path)
	if code != exitOK || !strings.Contains(out, path) {
		t.Fatalf("keygen: %d %s %s", code, out, errOut)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
	b, _ := os.ReadFile(path)
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		t.Fatalf("key: %d bytes, %v", len(key), err)
	}
	// Never overwrite a master key.
	if code, _, errOut := runCLI(t, "keygen", "-o", path); code != exitProblem || !strings.Contains(errOut, "refusing") {
		t.Fatalf("overwrite: %d %s", code, errOut)
	}
	b2, _ := os.ReadFile(path)
	if !bytes.Equal(b, b2) {
		t.Fatal("key file changed")
	}
	// The flag also comes from the environment.
	envPath := filepath.Join(t.TempDir(), "env.key")
	t.Setenv("PGVEIL_O", envPath)
	if code, _, _ := runCLI(t, "keygen"); code != exitOK {
		t.Fatal("keygen via PGVEIL_O")
	}
	if _, err := os.Stat(envPath); err != nil {
		t.Fatal(err)
	}
}

// A --grace shorter than the active-key TTL lets a replica that missed the
// rotation's notification seal values under a version rotate then drops:
// rotate warns (tests use short graces on purpose, so it is not refused).
func TestRotateShortGraceWarns(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.yaml")
	_, _, errOut := runCLI(t, "rotate", "-c", missing, "--grace", "1s")
	if !strings.Contains(errOut, "warning: --grace 1s is shorter than the 1m0s active-key TTL") {
		t.Errorf("rotate --grace 1s: no warning\n%s", errOut)
	}
	for _, args := range [][]string{{}, {"--keep-retired", "--grace", "1s"}, {"--master", "--grace", "1s"}} {
		_, _, errOut := runCLI(t, append([]string{"rotate", "-c", missing}, args...)...)
		if strings.Contains(errOut, "warning") {
			t.Errorf("rotate %v: unexpected warning\n%s", args, errOut)
		}
	}
}

// The overview lines the summaries up however long a command's name is
// ("healthcheck" ran into its summary), and a command without flags
// prints no empty "Flags" heading.
func TestUsageLayout(t *testing.T) {
	_, out, _ := runCLI(t, "--help")
	col := -1
	for _, line := range strings.Split(out, "\n") {
		for _, c := range commands() {
			if strings.HasPrefix(line, "  "+c.name+" ") {
				i := strings.Index(line, c.summary)
				if col >= 0 && i != col {
					t.Errorf("summary of %s at column %d, others at %d:\n%s", c.name, i, col, out)
				}
				col = i
			}
		}
	}
	_, _, errOut := runCLI(t, "version", "--help")
	if strings.Contains(errOut, "Flags") {
		t.Errorf("version --help prints a Flags heading without flags:\n%s", errOut)
	}
}

// A shred that destroyed no key does not claim the tenant was shredded
// before: a mistyped --tenant never had keys.
func TestShredNoKeysMessage(t *testing.T) {
	if got := fmtIDs(nil); strings.Contains(got, "none left: already shredded") || !strings.Contains(got, "never written") {
		t.Errorf("fmtIDs(nil) = %q", got)
	}
	if got := fmtIDs([]uint32{3, 5}); got != "key ids 3, 5" {
		t.Errorf("fmtIDs = %q", got)
	}
}
