package harness

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestClusterAuthMethods starts a cluster and logs in with every role over
// TCP with and without TLS, proving the fixture matches what tests assume.
func TestClusterAuthMethods(t *testing.T) {
	c, err := StartCluster(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if c.Version < 13 {
		t.Fatalf("server version %d", c.Version)
	}
	ctx := context.Background()
	for _, u := range []string{SCRAMUser, MD5User, PasswordUser, TrustUser} {
		for _, mode := range []string{"sslmode=disable", "sslmode=verify-full&sslrootcert=" + c.Certs.CACert} {
			conn, err := pgx.Connect(ctx, c.URL(u, Database, mode))
			if err != nil {
				t.Fatalf("%s %s: %v", u, mode, err)
			}
			var who string
			if err := conn.QueryRow(ctx, "select current_user").Scan(&who); err != nil || who != u {
				t.Fatalf("%s: current_user %q %v", u, who, err)
			}
			conn.Close(ctx)
		}
	}
	bad := BuildURL(c.Addr(), SCRAMUser, "wrong", Database, "sslmode=disable")
	if _, err := pgx.Connect(ctx, bad); err == nil {
		t.Fatal("wrong password accepted")
	}
}
