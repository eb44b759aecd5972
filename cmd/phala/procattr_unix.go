//go:build unix && !linux

package main

import "syscall"

// childProcAttr puts a localnet process in its own process group (Ctrl-C
// reaches only the supervisor, which stops them in turn).
func childProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
