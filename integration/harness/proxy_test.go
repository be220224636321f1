package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// raceReport is the shape of a report of Go's race detector.
const raceReport = `==================
WARNING: DATA RACE
Write at 0x00c000123456 by goroutine 7:
  github.com/pgveil/pgveil/proxy.(*session).run()
      /src/proxy/session.go:10 +0x44

Previous read at 0x00c000123456 by goroutine 8:
  github.com/pgveil/pgveil/proxy.(*Server).Serve()
      /src/proxy/server.go:20 +0x55
==================`

func TestRaceReports(t *testing.T) {
	out := `{"msg":"listening"}` + "\n" + raceReport + "\n" + `{"msg":"x"}` + "\n" + raceReport + "\nFound 2 data race(s)\n"
	got := RaceReports(out)
	if len(got) != 2 {
		t.Fatalf("%d reports, want 2: %q", len(got), got)
	}
	for _, r := range got {
		if !strings.HasPrefix(r, "WARNING: DATA RACE\n") || !strings.HasSuffix(r, "server.go:20 +0x55") {
			t.Errorf("report cut wrong: %q", r)
		}
	}
	if got := RaceReports(`{"msg":"listening"}` + "\n"); len(got) != 0 {
		t.Errorf("reports in a clean log: %q", got)
	}
}

// TestProxyStopReportsRace: a process that printed a race report and then
// exits 0 on SIGTERM still fails Stop, with the report.
func TestProxyStopReportsRace(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir) // where Stop keeps the report
	script := filepath.Join(dir, "fake-pgveil")
	// The report comes before "listening": StartProxy returns after it.
	body := "#!/bin/sh\ntrap 'exit 0' TERM\ncat >&2 <<'END'\n" + raceReport + "\nEND\necho '{\"msg\":\"listening\",\"addr\":\"127.0.0.1:1\"}' >&2\nwhile :; do sleep 0.05; done\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	buildOnce.Do(func() {}) // nothing built: the script stands in for pgveil
	saved, savedErr := buildPath, buildErr
	buildPath, buildErr = script, nil
	defer func() { buildPath, buildErr = saved, savedErr }()
	p, err := StartProxy(ProxyOptions{Config: "listen: 127.0.0.1:0\n"})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Stop()
	if err == nil || !strings.Contains(err.Error(), "1 data race report") || !strings.Contains(err.Error(), "session.go:10") {
		t.Fatalf("Stop: %v, want the race report", err)
	}
}
