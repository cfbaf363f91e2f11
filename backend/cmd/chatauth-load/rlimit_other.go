//go:build !unix

package main

import "errors"

func raiseNoFile() (uint64, error) { return 0, errors.New("no RLIMIT_NOFILE here") }
