//go:build linux

package harness

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// A server a test process starts dies with that process, even when a test
// timeout's panic or SIGKILL ends it and no deferred Stop runs: such
// servers used to stay behind. The kernel sends a child its parent-death
// signal when the thread that forked it ends, not the process, and Go
// ends threads: one a goroutine locked ends with it (pgveil's event loops
// do, in the proxy package's in-process tests). So servers are started
// from one locked thread that lives as long as the process.

type spawn struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	spawnOnce sync.Once
	spawns    = make(chan spawn)
)

// startForLife starts cmd so that it gets sig when this process ends.
func startForLife(cmd *exec.Cmd, sig syscall.Signal) error {
	spawnOnce.Do(func() { go spawner() })
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = sig
	done := make(chan error, 1)
	spawns <- spawn{cmd, done}
	return <-done
}

// spawner forks every server from its own thread, which it never unlocks
// and never leaves.
func spawner() {
	runtime.LockOSThread()
	for s := range spawns {
		s.done <- s.cmd.Start()
	}
}

// SpawnerFunction is the spawner goroutine's function, for leak checks
// that look at the whole process (goleak.IgnoreTopFunction).
const SpawnerFunction = "github.com/pgveil/pgveil/integration/harness.spawner"
