//go:build unix

package sqlstore

import "syscall"

// writable checks that the process may write in dir. access(2) sees a
// read-only mount even for root, where file modes would not stop it.
func writable(dir string) error {
	const wOK = 2
	return syscall.Access(dir, wOK)
}
