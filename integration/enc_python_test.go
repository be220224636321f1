package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// debianPython is Debian's interpreter, which has python3-psycopg2 and
// python3-psycopg; a python3 earlier on PATH (pyenv) does not.
const debianPython = "/usr/bin/python3"

func pythonDriver(t *testing.T, module string) string {
	t.Helper()
	if _, err := os.Stat(debianPython); err != nil {
		t.Fatalf("%s not found (.ci/run installs python3-psycopg2 and python3-psycopg)", debianPython)
	}
	if out, err := exec.Command(debianPython, "-c", "import "+module).CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import %s (apt-get install python3-%s): %v\n%s", debianPython, module, module, err, out)
	}
	dir, err := filepath.Abs(filepath.Join("drivers", "python"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestEncPsycopg2 runs the scenario with psycopg2: parameters
// interpolated client-side into literals over the simple protocol,
// executemany, and copy_expert in text and CSV, both directions.
func TestEncPsycopg2(t *testing.T) {
	relayLeakCheck(t)
	dir := pythonDriver(t, "psycopg2")
	p := startEncProxy(t, encOrgs(91, 1)...)
	ctx := testCtx(t, 2*time.Minute)
	s := newEncSpec(p, "psycopg2", 91)
	spec := s.writeJSON(t)
	t.Run("scenario", func(t *testing.T) {
		runDriver(t, ctx, "psycopg2", dir, debianPython, "psycopg2_scenario.py", spec, "scenario")
		verifyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})
	t.Run("copy_expert", func(t *testing.T) {
		runDriver(t, ctx, "psycopg2 copy_expert", dir, debianPython, "psycopg2_scenario.py", spec, "copy")
		verifyCopyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})
}

// TestEncPsycopg3 runs the scenario with psycopg 3: server-side
// parameters, prepare=True on every statement, executemany, and
// cursor.copy() in text and CSV, both directions.
func TestEncPsycopg3(t *testing.T) {
	relayLeakCheck(t)
	dir := pythonDriver(t, "psycopg")
	p := startEncProxy(t, encOrgs(101, 1)...)
	ctx := testCtx(t, 2*time.Minute)
	s := newEncSpec(p, "psycopg3", 101)
	spec := s.writeJSON(t)
	t.Run("scenario", func(t *testing.T) {
		runDriver(t, ctx, "psycopg 3", dir, debianPython, "psycopg3_scenario.py", spec, "scenario")
		verifyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})
	t.Run("copy", func(t *testing.T) {
		runDriver(t, ctx, "psycopg 3 copy", dir, debianPython, "psycopg3_scenario.py", spec, "copy")
		verifyCopyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})
}
