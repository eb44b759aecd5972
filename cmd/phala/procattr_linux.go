package main

import "syscall"

// childProcAttr puts a localnet process in its own process group (Ctrl-C
// reaches only the supervisor, which stops them in turn) and has the kernel
// send it SIGTERM if the supervisor dies.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
