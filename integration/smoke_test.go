package integration

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pgveil/pgveil/integration/harness"
)

func TestSmoke(t *testing.T) {
	p, err := harness.StartProxy(harness.ProxyOptions{Config: fmt.Sprintf("listen: 127.0.0.1:0\nupstream:\n  address: %s\n  tls: disable\nadmin:\n  listen: 127.0.0.1:0\nlog:\n  level: debug\n", cluster.Addr())})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { t.Log(p.Log()); if err := p.Stop(); err != nil { t.Error(err) } }()
	ctx := context.Background()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeCacheDescribe} {
	cfg, _ := pgx.ParseConfig(harness.BuildURL(p.Addr, harness.SCRAMUser, harness.SCRAMPass, harness.Database, "sslmode=disable"))
	cfg.DefaultQueryExecMode = mode
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var s string
	if err := conn.QueryRow(ctx, "select $1::int + 1, $2::text", 41, "hi").Scan(&n, &s); err != nil || n != 42 {
		t.Fatal(n, err)
	}
	conn.Close(ctx)
	}
}
