package main

import (
	"runtime"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgveil/pgveil/policy"
)

// TestWarnFileLimit: serve warns when the open-file limit cannot hold
// what the connection limits allow (two sockets per client, one per
// connection being refused), and not otherwise or when it is unknown.
func TestWarnFileLimit(t *testing.T) {
	p := policy.ProxyOptions{MaxClientConnections: 10000, MaxPendingStartups: 1000}
	if got := filesNeeded(p); got != 21064 {
		t.Fatalf("filesNeeded = %d, want 21064", got)
	}
	for _, tc := range []struct {
		limit uint64
		warn  bool
	}{{1024, true}, {21063, true}, {21064, false}, {1 << 20, false}, {0, false}} {
		core, logs := observer.New(zap.WarnLevel)
		warnFileLimit(zap.New(core), p, tc.limit)
		if got := logs.Len() == 1; got != tc.warn {
			t.Errorf("open-file limit %d: warned %v, want %v", tc.limit, got, tc.warn)
		}
	}
	if runtime.GOOS == "linux" && openFileLimit() == 0 {
		t.Error("openFileLimit: 0 on Linux")
	}
}
