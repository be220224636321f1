//go:build linux

package harness

import "syscall"

// dieWithParent has the kernel send sig to a server this process started
// when this process ends, even by a test timeout's panic or SIGKILL, when
// no deferred Stop runs: such servers used to stay behind.
func dieWithParent(a *syscall.SysProcAttr, sig syscall.Signal) *syscall.SysProcAttr {
	if a == nil {
		a = &syscall.SysProcAttr{}
	}
	a.Pdeathsig = sig
	return a
}
