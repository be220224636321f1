package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// debianRuby is Debian's interpreter, which has ruby-pg and
// ruby-activerecord; a ruby earlier on PATH (rbenv, rvm) may not.
const debianRuby = "/usr/bin/ruby"

// rubyDriver checks that Debian's ruby can load lib (from Debian package
// pkg) and returns the directory of the Ruby scenario programs.
func rubyDriver(t *testing.T, lib, pkg string) string {
	t.Helper()
	if _, err := os.Stat(debianRuby); err != nil {
		t.Fatalf("%s not found (.ci/run installs ruby-pg and ruby-activerecord: apt-get install -y ruby-pg ruby-activerecord)", debianRuby)
	}
	if out, err := exec.Command(debianRuby, "-e", "require "+`"`+lib+`"`).CombinedOutput(); err != nil {
		t.Fatalf("%s cannot require %q (apt-get install -y %s): %v\n%s", debianRuby, lib, pkg, err, out)
	}
	dir, err := filepath.Abs(filepath.Join("drivers", "ruby"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestEncRubyPG runs the scenario with ruby-pg: exec_params (unnamed,
// server-side parameters), prepare/exec_prepared (named, reused, dropped
// with DEALLOCATE and prepared again), exec with escape_literal (simple
// protocol), pipeline mode, the basic type maps (results decoded by the
// logical types pgveil reports), and copy_data in text and CSV, both
// directions, with and without the CopyRow coders.
func TestEncRubyPG(t *testing.T) {
	relayLeakCheck(t)
	dir := rubyDriver(t, "pg", "ruby-pg")
	p := startEncProxy(t, encOrgs(121, 1)...)
	ctx := testCtx(t, 2*time.Minute)
	s := newEncSpec(p, "ruby-pg", 121)
	spec := s.writeJSON(t)
	t.Run("scenario", func(t *testing.T) {
		runDriver(t, ctx, "ruby-pg", dir, debianRuby, "pg_scenario.rb", spec, "scenario")
		verifyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})
	t.Run("copy_data", func(t *testing.T) {
		runDriver(t, ctx, "ruby-pg copy_data", dir, debianRuby, "pg_scenario.rb", spec, "copy")
		verifyCopyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})
}
