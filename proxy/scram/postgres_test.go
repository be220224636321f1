package scram

import (
	"context"
	"testing"

	"github.com/pgveil/pgveil/integration/harness"
	"go.uber.org/goleak"
)

// TestPostgresUpstream logs in to a real PostgreSQL with what pgveil has in
// auth mode "scram": the role's secret from pg_authid and the ClientKey
// recovered from a client's proof, never the password.
func TestPostgresUpstream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster; run without -short")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreTopFunction(harness.SpawnerFunction))
	c, err := harness.StartCluster(harness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()

	ctx := context.Background()
	conn, err := c.Connect(ctx, harness.SuperUser, harness.Database)
	if err != nil {
		t.Fatal(err)
	}
	var scramSecret, md5Secret string
	const q = "SELECT rolpassword FROM pg_authid WHERE rolname = $1"
	err1 := conn.QueryRow(ctx, q, harness.SCRAMUser).Scan(&scramSecret)
	err2 := conn.QueryRow(ctx, q, harness.MD5User).Scan(&md5Secret)
	conn.Close(ctx)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	v, err := ParseVerifier(scramSecret)
	if err != nil {
		t.Fatal(err)
	}

	// Our key derivation agrees with PostgreSQL's.
	if NewVerifier(harness.SCRAMPass, v.Salt, v.Iterations).Encode() != scramSecret {
		t.Fatal("NewVerifier differs from the secret PostgreSQL stored for the same password and salt")
	}
	if MD5Verifier(harness.MD5Pass, harness.MD5User) != md5Secret {
		t.Fatal("MD5Verifier differs from PostgreSQL's md5 secret")
	}

	// Recovery, as pgveil does it: the user logs in to pgveil (Server,
	// bound to pgveil's certificate) and pgveil keeps the ClientKey.
	srv := NewServer(v, testCB)
	clientKey, err := exchange(srv, NewClientFromPassword(harness.SCRAMPass), MechanismSCRAMPlus, testCB)
	if err != nil {
		t.Fatal(err)
	}

	// A key consistent with a verifier of its own, but not the role's:
	// passes the local checks, fails at PostgreSQL.
	wrongV := NewVerifier("not-the-password", v.Salt, v.Iterations)
	wrongKey, _ := keysFromPassword("not-the-password", v.Salt, v.Iterations)

	addr, ca := c.Addr(), c.Certs.CACert
	for _, tc := range []struct {
		name  string
		ca    string
		user  string
		creds loginCreds
		code  string // SQLSTATE of PostgreSQL's ErrorResponse; "" for success
	}{
		{"SCRAM-SHA-256 over TCP with recovered key", "", harness.SCRAMUser,
			loginCreds{scram: NewClientFromKey(clientKey, v)}, ""},
		{"SCRAM-SHA-256-PLUS over TLS with recovered key", ca, harness.SCRAMUser,
			loginCreds{scram: NewClientFromKey(clientKey, v), mechanism: MechanismSCRAMPlus}, ""},
		{"SCRAM-SHA-256 over TLS without binding", ca, harness.SCRAMUser,
			loginCreds{scram: NewClientFromKey(clientKey, v), mechanism: MechanismSCRAM}, "28000"}, // "y": PostgreSQL sees a downgrade
		{"SCRAM-SHA-256 with password", "", harness.SCRAMUser,
			loginCreds{scram: NewClientFromPassword(harness.SCRAMPass)}, ""},
		{"SCRAM-SHA-256-PLUS with password", ca, harness.SCRAMUser,
			loginCreds{scram: NewClientFromPassword(harness.SCRAMPass)}, ""},
		{"wrong key over TCP", "", harness.SCRAMUser,
			loginCreds{scram: NewClientFromKey(wrongKey, wrongV)}, "28P01"},
		{"wrong key over TLS", ca, harness.SCRAMUser,
			loginCreds{scram: NewClientFromKey(wrongKey, wrongV)}, "28P01"},
		{"md5 from verifier", "", harness.MD5User, loginCreds{md5: md5Secret}, ""},
		{"md5 from verifier over TLS", ca, harness.MD5User, loginCreds{md5: md5Secret}, ""},
		{"md5 wrong verifier", "", harness.MD5User, loginCreds{md5: MD5Verifier("wrong", harness.MD5User)}, "28P01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := startupLogin(addr, tc.ca, tc.user, harness.Database, tc.creds)
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("login failed: %v", err)
			case tc.code != "" && pgState(err) != tc.code:
				t.Fatalf("got %v, want PostgreSQL's ErrorResponse with SQLSTATE %s", err, tc.code)
			}
		})
	}

	// A password change since the verifier was read: the key client refuses
	// before sending anything PostgreSQL could count as a failed login.
	oldV := NewVerifier(harness.SCRAMPass, []byte("an older salt..."), v.Iterations)
	oldKey, _ := keysFromPassword(harness.SCRAMPass, oldV.Salt, oldV.Iterations)
	err = startupLogin(addr, "", harness.SCRAMUser, harness.Database, loginCreds{scram: NewClientFromKey(oldKey, oldV)})
	if sqlState(err) != CodeInvalidAuthorizationSpec {
		t.Fatalf("stale verifier: %v", err)
	}
}

func pgState(err error) string {
	if e, ok := err.(*pgError); ok {
		return e.code
	}
	return ""
}
