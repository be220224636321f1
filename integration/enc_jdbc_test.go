package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// debianJDBC is the driver of Debian's libpostgresql-jdbc-java.
const debianJDBC = "/usr/share/java/postgresql.jar"

// TestEncJDBC runs the scenario with pgjdbc and the system java:
// PreparedStatement batches (addBatch/executeBatch), setString, setDate,
// setLong and setNull, getString (and getDate/getLong), a statement run
// past prepareThreshold, setArray for = ANY(?), DatabaseMetaData.getColumns
// (the logical types of the encrypted columns), and the COPY phase with
// CopyManager.
func TestEncJDBC(t *testing.T) {
	relayLeakCheck(t)
	if _, err := os.Stat(debianJDBC); err != nil {
		t.Fatalf("%s not found (.ci/run installs libpostgresql-jdbc-java)", debianJDBC)
	}
	javac, err := exec.LookPath("javac")
	if err != nil {
		t.Fatal("javac not found (.ci/run installs default-jdk-headless)")
	}
	java, err := exec.LookPath("java")
	if err != nil {
		t.Fatal("java not found")
	}
	src, err := filepath.Abs(filepath.Join("drivers", "java", "EncScenario.java"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 2*time.Minute)
	classes := t.TempDir()
	if out, err := exec.CommandContext(ctx, javac, "-encoding", "UTF-8", "-cp", debianJDBC, "-d", classes, src).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	cp := classes + string(os.PathListSeparator) + debianJDBC

	p := startEncProxy(t, encOrgs(111, 1)...)
	s := newEncSpec(p, "jdbc", 111)
	spec := s.writeProperties(t)
	t.Run("scenario", func(t *testing.T) {
		runDriver(t, ctx, "JDBC", classes, java, "-cp", cp, "EncScenario", spec, "scenario")
		verifyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})
	t.Run("copy_manager", func(t *testing.T) {
		runDriver(t, ctx, "JDBC CopyManager", classes, java, "-cp", cp, "EncScenario", spec, "copy")
		verifyCopyThroughProxy(t, ctx, p, s)
		verifyAtRest(t, ctx, s.plaintexts())
	})
}
