//go:build linux || darwin || freebsd || netbsd || openbsd

package hub

import (
	"errors"
	"net"
	"syscall"
)

// peerClosed peeks at the socket without blocking: a read of zero bytes
// means the client closed it; "would block" means it is open and quiet.
// Nothing is consumed.
func peerClosed(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var buf [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n == 0 && err == nil || err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR)
		return true // one look, never wait
	})
	return closed
}
