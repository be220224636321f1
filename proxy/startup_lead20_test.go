package proxy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/integration/harness"
)

// TestLead20PhysicalReplicationAsServer: physicalReplication must say
// true exactly where PostgreSQL starts a physical WAL sender (which runs
// no SQL): such a session is relayed without encryption, so a value the
// server reads otherwise must never pass as physical. Each value is sent
// to the real server, whose answer to SELECT 1 tells the two apart.
// (Values with spaces around them are not sent: the URL's parser trims
// them before the server sees them.)
func TestLead20PhysicalReplicationAsServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, v := range []string{"true", "TRUE", "t", "T", "tr", "tRu", "y", "ye", "yes", "YES", "on", "On", "1",
		"o", "of", "off", "0", "false", "f", "n", "no", "database", "DATABASE", "t rue", "2", "truex", "yess", "10", "onn"} {
		url := harness.BuildURL(cluster.Addr(), harness.SuperUser, harness.Passwords[harness.SuperUser], harness.Database, "sslmode=disable", "replication="+v)
		physical := false
		conn, err := pgconn.Connect(ctx, url)
		if err == nil {
			_, err = conn.Exec(ctx, "SELECT 1").ReadAll()
			physical = err != nil && strings.Contains(err.Error(), "WAL sender for physical replication")
			conn.Close(ctx)
		}
		if got := physicalReplication(v); got != physical {
			t.Errorf("replication=%q: physicalReplication %v, PostgreSQL physical %v (%v)", v, got, physical, err)
		}
	}
}
