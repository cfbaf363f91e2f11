package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// perfDir, when set (-perf-dir), is where the server's CPU profiles go:
// perf record attached to the server process during the idle window and
// during an extra run of each widget-path scenario.
var perfDir string

// perfStart starts perf record on pid; the function it returns stops it,
// writes the report by symbol (self time) beside the data and prints its
// top lines. Without -perf-dir or perf, it does nothing.
func perfStart(name string, pid int) func() {
	if perfDir == "" {
		return func() {}
	}
	perf, err := exec.LookPath("perf")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatauth-load: -perf-dir: perf is not installed; no profile")
		return func() {}
	}
	os.MkdirAll(perfDir, 0o755)
	data := filepath.Join(perfDir, name+".perf.data")
	cmd := exec.Command(perf, "record", "-F", "999", "-g", "-p", strconv.Itoa(pid), "-o", data)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errb, &errb
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "chatauth-load: perf record:", err)
		return func() {}
	}
	return func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		report := func(children string) ([]byte, error) {
			return exec.Command(perf, "report", "-i", data, "--stdio", children, "-g", "none", "--sort", "symbol", "--percent-limit", "0.5").Output()
		}
		self, err := report("--no-children")
		if err != nil {
			fmt.Fprintf(os.Stderr, "chatauth-load: perf report: %v\n%s", err, errb.String())
			return
		}
		incl, _ := report("--children")
		base := filepath.Join(perfDir, name)
		os.WriteFile(base+".self.txt", self, 0o644)
		os.WriteFile(base+".inclusive.txt", incl, 0o644)
		fmt.Printf("    server profile, inclusive, our code and its main callees (%s.inclusive.txt; self time in .self.txt; data %s):\n", base, data)
		sc := bufio.NewScanner(bytes.NewReader(incl))
		n := 0
		for sc.Scan() && n < 16 {
			f := strings.Fields(sc.Text())
			if len(f) < 4 || f[0][0] == '#' {
				continue
			}
			sym := strings.Join(f[3:], " ")
			sym = strings.TrimSpace(strings.TrimRight(sym, "- "))
			if !interesting(sym) {
				continue
			}
			fmt.Printf("      %7s  %s\n", f[0], sym)
			n++
		}
	}
}

// interesting picks the frames of a profile worth printing: our
// packages (not their generic wrappers) and a few costly callees.
func interesting(sym string) bool {
	for _, w := range []string{"frame-fm", "serveRecovering", "-fm", "gowrap", ".func1"} {
		if strings.Contains(sym, w) && !strings.Contains(sym, "hub.") {
			return false
		}
	}
	for _, w := range []string{"chatauth/", "gorilla/sessions.(*CookieStore)", "gorilla/sessions.(*Session).Save", "runtime.gcBgMarkWorker", "database/sql.(*Tx).Commit", "jwt/v5.(*Token).SignedString", "encoding/json.Marshal", "net.(*conn).Write", "net.(*conn).Read"} {
		if strings.Contains(sym, w) {
			return true
		}
	}
	return false
}
