package canon

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/integration/harness"
	"github.com/pgveil/pgveil/policy"
)

// The cluster starts on first use, not in TestMain, so that fuzz workers
// (separate processes that also run TestMain) never start one.
var (
	dbOnce    sync.Once
	dbURL     string
	dbErr     error
	dbCluster *harness.Cluster
)

func testDB(t *testing.T) string {
	dbOnce.Do(func() {
		dbCluster, dbErr = harness.StartCluster(harness.Options{})
		if dbErr == nil {
			dbURL = dbCluster.SocketURL(harness.SuperUser, harness.Database)
		}
	})
	if dbErr != nil {
		t.Fatalf("test cluster: %v", dbErr)
	}
	return dbURL
}

func TestMain(m *testing.M) {
	code := m.Run()
	if dbCluster != nil {
		dbCluster.Stop()
	}
	os.Exit(code)
}

// TestCanonicalFormsMatchPostgres holds every case against a real server:
// PostgreSQL reads each text and binary input, and what it prints (TimeZone
// UTC, DateStyle ISO, bytea_output hex) must be Wire's text output of our
// canonical plaintext; and PostgreSQL must read our binary output back to
// the same value.
func TestCanonicalFormsMatchPostgres(t *testing.T) {
	url := testDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET bytea_output = 'hex'"); err != nil {
		t.Fatal(err)
	}
	pg := conn.PgConn()
	var serverVersion int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int / 10000").Scan(&serverVersion); err != nil {
		t.Fatal(err)
	}
	asText := func(t policy.LogicalType, format int16, v []byte) (string, error) {
		res := pg.ExecParams(ctx, "SELECT $1::"+string(t), [][]byte{v}, []uint32{t.OID()}, []int16{format}, []int16{TextFormat}).Read()
		if res.Err != nil {
			return "", res.Err
		}
		return string(res.Rows[0][0]), nil
	}
	for _, c := range cases {
		want, _ := Wire(c.t, TextFormat, []byte(c.canon), nil)
		for _, s := range c.texts {
			if c.minPG > serverVersion {
				continue
			}
			got, err := asText(c.t, TextFormat, []byte(s))
			if err != nil || got != string(want) {
				t.Errorf("%s text %q: PostgreSQL prints %q (%v), we %q", c.t, s, got, err, want)
			}
		}
		for _, b := range c.binary {
			got, err := asText(c.t, BinaryFormat, b)
			if err != nil || got != string(want) {
				t.Errorf("%s binary %x: PostgreSQL prints %q (%v), we %q", c.t, b, got, err, want)
			}
		}
		bin, err := Wire(c.t, BinaryFormat, []byte(c.canon), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := asText(c.t, BinaryFormat, bin); err != nil || got != string(want) {
			t.Errorf("%s: PostgreSQL reads our binary %x as %q (%v), want %q", c.t, bin, got, err, want)
		}
	}
}
