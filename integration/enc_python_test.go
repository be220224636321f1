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
	return debianDriver(t, debianPython, []string{"-c", "import " + module}, "python3-"+module, "python")
}

// debianDriver checks that Debian's interpreter interp can load a driver
// (running it with load; the library is Debian's package pkg, which
// .ci/run installs) and returns the directory drivers/<dir> of the
// programs that use it.
func debianDriver(t *testing.T, interp string, load []string, pkg, dir string) string {
	t.Helper()
	if _, err := os.Stat(interp); err != nil {
		t.Fatalf("%s not found (.ci/run installs it: apt-get install -y %s)", interp, pkg)
	}
	if out, err := exec.Command(interp, load...).CombinedOutput(); err != nil {
		t.Fatalf("%s cannot load %s (apt-get install -y %s): %v\n%s", interp, pkg, pkg, err, out)
	}
	abs, err := filepath.Abs(filepath.Join("drivers", dir))
	if err != nil {
		t.Fatal(err)
	}
	return abs
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
