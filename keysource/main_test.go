package keysource

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/pgveil/pgveil/integration/harness"
	"github.com/pgveil/pgveil/policy"
)

// One real PostgreSQL cluster serves every test of the package.
var (
	dbURL   string
	dbErr   error
	testSeq atomic.Int64
)

func TestMain(m *testing.M) {
	c, err := harness.StartCluster(harness.Options{})
	if err != nil {
		dbErr = err
	} else {
		dbURL = c.SocketURL(harness.SuperUser, harness.Database)
	}
	code := m.Run()
	if c != nil {
		c.Stop()
	}
	if code == 0 {
		// Every watcher, heartbeat and singleflight goroutine a test
		// started has ended with it (pools closed by t.Cleanup).
		if err := goleak.Find(goleak.IgnoreTopFunction(harness.SpawnerFunction)); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testPool connects to the test cluster; the test fails if there is none.
func testPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	if dbErr != nil {
		t.Fatalf("test cluster: %v", dbErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func testMasterKey(t testing.TB) []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func testMaster(t testing.TB) Master {
	m, err := NewLocalMaster(testMasterKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testKeyring(t testing.TB, pool *pgxpool.Pool, m Master) *Keyring {
	t.Helper()
	k, err := NewKeyring(context.Background(), pool, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testTable makes a uniquely named table, so tests sharing pgveil.keys
// never see each other's keys. tenant says whether it has key_context.
func testTable(tenant bool, cols ...string) *policy.Table {
	n := testSeq.Add(1)
	t := &policy.Table{Schema: "public", Name: fmt.Sprintf("t%d_%d", n, time.Now().UnixNano()%1e6)}
	if tenant {
		t.KeyContext = "org_id"
	}
	for _, c := range cols {
		t.Columns = append(t.Columns, &policy.Column{Table: t, Name: c, Type: policy.TypeText,
			BlindIndex: &policy.BlindIndex{Column: c + "_bidx", Key: t.QualifiedName() + "." + c}})
	}
	return t
}

func ctx() context.Context { return context.Background() }

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// isolatedPool connects to a new, empty database of its own, for tests that
// look at every row of pgveil.keys (RewrapAll).
func isolatedPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	admin := testPool(t)
	name := fmt.Sprintf("iso_%d_%d", testSeq.Add(1), time.Now().UnixNano()%1e9)
	if _, err := admin.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Database = name
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}
