package proxy

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/integration/harness"
	"github.com/pgveil/pgveil/policy"
)

// Relay benchmarks: the same client work directly against PostgreSQL and
// through an in-process pgveil (relay config: no tables, plain TCP on both
// legs), so the difference is what the proxy costs. They run only with
// -bench, e.g.
//
//	go test ./proxy -run '^$' -bench Relay -benchtime 20x
//
// The client is pgconn reading rows without decoding or copying them, so
// its own cost stays small next to the relay's. allocs/op counts the whole
// process: the proxy's allocations per operation are pgveil's figure minus
// direct's. MB/s is result payload (the values' bytes) per second.

// relayBenchData creates the tables once per test binary.
var relayBenchData struct {
	once sync.Once
	err  error
}

const (
	relayBenchRows     = 100_000
	relayBenchBlobs    = 4
	relayBenchBlobSize = 10 << 20 // bytes per value
)

func relayBenchSetup(b *testing.B) {
	b.Helper()
	relayBenchData.once.Do(func() {
		ctx := context.Background()
		conn, err := cluster.Connect(ctx, harness.SuperUser, harness.Database)
		if err != nil {
			relayBenchData.err = err
			return
		}
		defer conn.Close(ctx)
		for _, s := range []string{
			"DROP TABLE IF EXISTS relay_bench_rows, relay_bench_blobs",
			// ~110 bytes of payload per row: an int and a 96-character text.
			fmt.Sprintf("CREATE TABLE relay_bench_rows AS SELECT g AS id, repeat(md5(g::text), 3) AS payload FROM generate_series(1, %d) g", relayBenchRows),
			// Values stored uncompressed (EXTERNAL) so the server's cost is
			// reading, not decompressing.
			"CREATE TABLE relay_bench_blobs (id int, v text)",
			"ALTER TABLE relay_bench_blobs ALTER COLUMN v SET STORAGE EXTERNAL",
			fmt.Sprintf("INSERT INTO relay_bench_blobs SELECT i, string_agg(md5(i::text || '-' || g::text), '') FROM generate_series(1, %d) i, generate_series(1, %d) g GROUP BY i",
				relayBenchBlobs, relayBenchBlobSize/32),
			"GRANT SELECT ON relay_bench_rows, relay_bench_blobs TO " + harness.TrustUser,
			"VACUUM ANALYZE relay_bench_rows, relay_bench_blobs",
		} {
			if _, err := conn.Exec(ctx, s); err != nil {
				relayBenchData.err = fmt.Errorf("%s: %w", s, err)
				return
			}
		}
	})
	if relayBenchData.err != nil {
		b.Fatal(relayBenchData.err)
	}
}

// relayBenchProxy starts an in-process pgveil with the relay config.
func relayBenchProxy(b *testing.B) string {
	b.Helper()
	yaml := fmt.Sprintf("listen: 127.0.0.1:0\nupstream:\n  address: %s\n  tls: disable\nadmin:\n  listen: \"\"\n", cluster.Addr())
	cfg, err := policy.LoadBytes("bench.yaml", []byte(yaml), nil)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(cfg, Options{Log: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	addr, err := srv.Listen()
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return addr.String()
}

// relayBenchTargets are the two ways to reach the server.
func relayBenchTargets(b *testing.B) []struct{ name, addr string } {
	return []struct{ name, addr string }{
		{"direct", cluster.Addr()},
		{"pgveil", relayBenchProxy(b)},
	}
}

func relayBenchConnect(b *testing.B, addr string) *pgconn.PgConn {
	b.Helper()
	ctx := context.Background()
	c, err := pgconn.Connect(ctx, harness.BuildURL(addr, harness.TrustUser, "", harness.Database, "sslmode=disable"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// readAll runs sql (simple protocol) and returns the payload bytes and
// rows received, without copying any value.
func readAll(ctx context.Context, c *pgconn.PgConn, sql string) (int64, int64, error) {
	mrr := c.Exec(ctx, sql)
	var bytes, rows int64
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		for rr.NextRow() {
			rows++
			for _, v := range rr.Values() {
				bytes += int64(len(v))
			}
		}
		if _, err := rr.Close(); err != nil {
			mrr.Close()
			return 0, 0, err
		}
	}
	return bytes, rows, mrr.Close()
}

// BenchmarkRelayLargeResult relays large result sets: many small rows, and
// a few rows of 10 MB values (which pgveil streams through without holding
// a whole message).
func BenchmarkRelayLargeResult(b *testing.B) {
	relayBenchSetup(b)
	queries := []struct{ name, sql string }{
		{fmt.Sprintf("rows=%dk", relayBenchRows/1000), "SELECT id, payload FROM relay_bench_rows"},
		{fmt.Sprintf("values=%dx%dMB", relayBenchBlobs, relayBenchBlobSize>>20), "SELECT id, v FROM relay_bench_blobs"},
	}
	for _, target := range relayBenchTargets(b) {
		for _, q := range queries {
			b.Run(q.name+"/"+target.name, func(b *testing.B) {
				ctx := context.Background()
				c := relayBenchConnect(b, target.addr)
				// One untimed run: warms the cache and sizes the result.
				n, rows, err := readAll(ctx, c, q.sql)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(n)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, got, err := readAll(ctx, c, q.sql); err != nil || got != rows {
						b.Fatalf("rows %d (want %d), err %v", got, rows, err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(rows), "rows/op")
			})
		}
	}
}

// BenchmarkRelayRoundTrip is one small prepared-statement round trip
// (Bind/Describe/Execute/Sync and its five responses): latency and
// allocations per round trip, with client and proxy in one process.
func BenchmarkRelayRoundTrip(b *testing.B) {
	for _, target := range relayBenchTargets(b) {
		b.Run(target.name, func(b *testing.B) {
			ctx := context.Background()
			c := relayBenchConnect(b, target.addr)
			if _, err := c.Prepare(ctx, "rt", "SELECT $1::int4 + 1", nil); err != nil {
				b.Fatal(err)
			}
			params := [][]byte{[]byte("41")}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rr := c.ExecPrepared(ctx, "rt", params, nil, nil)
				for rr.NextRow() {
				}
				if _, err := rr.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
