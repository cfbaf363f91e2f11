package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// server is one chatauth process started by the tool.
type server struct {
	name       string
	cmd        *exec.Cmd
	addr, base string
	pid        int
	log        string
	// env is what the tool set beyond address, database and admin, as
	// the results say under which settings a figure was taken.
	env []string
}

// startServer starts bin serve on a free loopback port with database db
// and waits until it answers /healthz. issuer is the tokens' issuer
// (processes sharing a database share it); "" is the server's own URL.
func startServer(bin, dir, name, db, issuer string, env ...string) (*server, error) {
	addr := freeAddr()
	base := "http://" + addr
	if issuer == "" {
		issuer = base
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "CHATAUTH_ADDR="+addr, "CHATAUTH_ISSUER="+issuer, "CHATAUTH_DB="+db,
		"CHATAUTH_ADMIN_EMAIL=load@example.com", "CHATAUTH_ADMIN_PASSWORD=load-password", "CHATAUTH_LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, env...) // later entries win
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w (build it with ./build.sh)", bin, err)
	}
	logf.Close() // the child has its own descriptor
	s := &server{name: name, cmd: cmd, addr: addr, base: base, pid: cmd.Process.Pid, log: logPath, env: env}
	c := &http.Client{Timeout: 5 * time.Second}
	if err := waitHealthy(c, base); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s: %w; its log:\n%s", name, err, tail(logPath, 20))
	}
	return s, nil
}

// stop asks the server to shut down (it closes its streams with a retry
// hint) and kills it if it has not gone within 15 s.
func (s *server) stop() {
	if s == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// tail is the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// procRSS is a process's resident set (VmRSS of /proc/PID/status), in
// KiB; 0 where /proc is not there.
func procRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// procFDs is how many files a process has open (entries of
// /proc/PID/fd); -1 where they cannot be listed.
func procFDs(pid int) int {
	es, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(es)
}

// sourceIP is the i-th of the loopback addresses 127.0.1.1, 127.0.1.2, …
// (all of 127/8 is this host on Linux): the tool spreads new visitors over
// them, since the server lets one address create 60 visitors a minute.
func sourceIP(i int) net.IP {
	return net.IPv4(127, byte(1+i/250), byte(1+i%250), 1)
}
