package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgveil/pgveil/integration/harness"
	"github.com/pgveil/pgveil/policy"
)

// The demo writes its config to a file, so the operator commands
// (check, migrate, rotate, shred) can be tried against its cluster.
func TestDemoConfigLoads(t *testing.T) {
	text := demoConfig("127.0.0.1:6432", "127.0.0.1:9187", "127.0.0.1:5999",
		"postgres://postgres@/app?host=/tmp/x&port=5999&sslmode=disable", "/tmp/x/pgveil-master.key")
	cfg, err := policy.LoadBytes("pgveil.yaml", []byte(text), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Listen != "127.0.0.1:9187" || cfg.Upstream.Address != "127.0.0.1:5999" || cfg.KeySource.Local.KeyFile != "/tmp/x/pgveil-master.key" {
		t.Errorf("demo config: admin %q, upstream %q, key file %q", cfg.Admin.Listen, cfg.Upstream.Address, cfg.KeySource.Local.KeyFile)
	}
	if tb := cfg.Table("public", "customers"); tb == nil || tb.Column("email") == nil || tb.Column("email").BlindIndex == nil {
		t.Errorf("demo config: customers.email with its blind index missing")
	}
}

// A closed terminal (SIGHUP) stops the demo as Ctrl-C does: cluster
// stopped, temp dir removed. SIGHUP used to kill the process at once.
func TestDemoStopsOnHangup(t *testing.T) {
	if _, err := harness.FindPostgresBin(); err != nil {
		t.Skip("no PostgreSQL server binaries:", err)
	}
	out := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, out, out)
	}()
	dirRE := regexp.MustCompile(`data in (\S+)\)`)
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out.String(), "Press Ctrl-C") {
		select {
		case code := <-done:
			t.Fatalf("demo exited with %d:\n%s", code, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo did not start:\n%s", out.String())
		}
	}
	m := dirRE.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no data dir in:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(m[1], "pgveil.yaml")); err != nil {
		t.Errorf("config file: %v", err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("demo after SIGHUP: exit %d", code)
		}
	case <-time.After(time.Minute):
		t.Fatal("demo did not stop on SIGHUP")
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("temp dir %s left behind (%v)", m[1], err)
		os.RemoveAll(m[1])
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
