//go:build !linux

package harness

import "syscall"

// dieWithParent is a no-op where the kernel has no parent-death signal.
func dieWithParent(a *syscall.SysProcAttr, sig syscall.Signal) *syscall.SysProcAttr { return a }
