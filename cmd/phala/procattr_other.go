//go:build !unix

package main

import "syscall"

// childProcAttr: no process groups here; Ctrl-C reaches every process.
func childProcAttr() *syscall.SysProcAttr { return nil }
