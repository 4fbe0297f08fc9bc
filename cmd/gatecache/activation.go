package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Socket activation, the protocol of sd_listen_fds(3): systemd (or anything
// speaking it, such as systemd-socket-activate or Podman) binds the ports
// and passes the listening sockets from descriptor 3 on, counted in
// LISTEN_FDS, for the process LISTEN_PID, named in LISTEN_FDNAMES. The
// sockets outlive the process, so a connection made while gatecache
// restarts waits in the kernel's accept queue instead of being refused: the
// Delivery Optimization agent bans a cache that refuses a connection for
// 15 minutes, for every origin.

const listenFDsStart = 3

// socketNames are the listeners, in the order sockets without one of these
// names are given to them: a socket unit passes its sockets in the order of
// its ListenStream= lines, and FileDescriptorName= names all of a unit's
// sockets alike.
var socketNames = [2]string{"content", "summary"}

// activatedListeners returns the sockets passed by socket activation,
// indexed like socketNames; an entry is nil when no socket was passed for
// it (the listener is then opened on its address variable). The LISTEN_*
// variables are removed from the environment, as sd_listen_fds does.
func activatedListeners() ([2]net.Listener, error) {
	var out [2]net.Listener
	pid, fds, names := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(v)
	}
	if fds == "" || pid != strconv.Itoa(os.Getpid()) {
		return out, nil // none, or meant for another process
	}
	n, err := strconv.Atoi(fds)
	if err != nil || n < 1 || n > len(out) {
		return out, fmt.Errorf("LISTEN_FDS=%q: want 1 or 2 sockets (content, then summary)", fds)
	}
	slots, err := assignSockets(n, names)
	if err != nil {
		return out, err
	}
	for i, slot := range slots {
		l, err := fileListener(listenFDsStart + i)
		if err != nil {
			for _, l := range out {
				if l != nil {
					l.Close()
				}
			}
			return [2]net.Listener{}, fmt.Errorf("LISTEN_FDS=%q: descriptor %d: %w", fds, listenFDsStart+i, err)
		}
		out[slot] = l
	}
	return out, nil
}

// assignSockets maps the n passed sockets to listeners: by name when named
// "content" or "summary", else in order to the listeners still free.
func assignSockets(n int, names string) ([]int, error) {
	var list []string
	if names != "" {
		list = strings.Split(names, ":")
		if len(list) != n {
			return nil, fmt.Errorf("LISTEN_FDNAMES=%q: %d names for %d sockets", names, len(list), n)
		}
	}
	slots := make([]int, n)
	var taken [len(socketNames)]bool
	for i := range slots {
		slots[i] = -1
		for j, name := range socketNames {
			if list != nil && list[i] == name {
				if taken[j] {
					return nil, fmt.Errorf("LISTEN_FDNAMES=%q: two sockets named %s", names, name)
				}
				slots[i], taken[j] = j, true
			}
		}
	}
	for i := range slots {
		for j := range socketNames {
			if slots[i] < 0 && !taken[j] {
				slots[i], taken[j] = j, true
			}
		}
	}
	return slots, nil
}

// fileListener makes a listener of a passed descriptor, which must be a
// listening stream socket.
func fileListener(fd int) (net.Listener, error) {
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "socket-"+strconv.Itoa(fd))
	defer f.Close() // FileListener holds a duplicate
	l, err := net.FileListener(f)
	if err != nil {
		return nil, err
	}
	listening := 0
	if sc, ok := l.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) {
				listening, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
			})
		}
	}
	if listening != 1 {
		l.Close()
		return nil, fmt.Errorf("not a listening socket (%s)", l.Addr())
	}
	return l, nil
}
