package integration

import (
	"fmt"
	"os"
	"testing"

	"github.com/pgveil/pgveil/integration/harness"
)

// cluster is the one PostgreSQL server every test in this package uses.
var cluster *harness.Cluster

func TestMain(m *testing.M) {
	c, err := harness.StartCluster(harness.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: cannot start PostgreSQL:", err)
		os.Exit(1)
	}
	cluster = c
	code := m.Run()
	c.Stop()
	harness.RemoveBuild()
	os.Exit(code)
}
