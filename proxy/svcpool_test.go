package proxy

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TestSvcPoolHolders: the service pool stays open while anyone holds it,
// closes with the last hold, and cannot be held again once closed; holds
// taken and given back at once never close it early.
func TestSvcPoolHolders(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), "postgres://pgveil@127.0.0.1:1/none") // never dialled
	if err != nil {
		t.Fatal(err)
	}
	p := &svcPool{pool: pool}
	p.holders.Store(1) // the server's
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if !p.hold() {
					t.Error("hold failed while the server holds the pool")
					return
				}
				p.drop()
			}
		}()
	}
	wg.Wait()
	if !p.hold() {
		t.Fatal("hold failed")
	}
	p.drop() // the server lets go: the session's hold keeps it open
	if _, err := pool.Acquire(canceledCtx()); err != nil && err.Error() == "closed pool" {
		t.Fatal("closed while a session holds it")
	}
	p.drop()
	if _, err := pool.Acquire(context.Background()); err == nil || err.Error() != "closed pool" {
		t.Fatalf("after the last drop: Acquire %v, want closed pool", err)
	}
	if p.hold() {
		t.Fatal("a closed pool was held again")
	}
}

func canceledCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
