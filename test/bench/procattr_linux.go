package main

import "syscall"

// childProcAttr kills the operator and kubectl with the benchmark, even when
// the benchmark itself is killed and cannot clean up.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
