//go:build unix

package main

import "syscall"

// openFiles is this process's open-files limit. Every event stream holds
// one, so it bounds the streams a process can keep. The Go runtime has
// already raised the soft limit to the hard one where the system allows
// (os, since Go 1.19); the start line says what that gave.
func openFiles() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return l.Cur
}
