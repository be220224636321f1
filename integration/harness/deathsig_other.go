//go:build !linux

package harness

import (
	"os/exec"
	"syscall"
)

// startForLife starts cmd; where the kernel has no parent-death signal, a
// server outlives a test process that ends without stopping it.
func startForLife(cmd *exec.Cmd, sig syscall.Signal) error { return cmd.Start() }

// SpawnerFunction names no goroutine here.
const SpawnerFunction = "github.com/pgveil/pgveil/integration/harness.spawner"
