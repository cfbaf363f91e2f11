package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// ownPostgres is a PostgreSQL cluster of this test's own, so restarting
// it does not disturb the rest of the suite, which shares the script's.
type ownPostgres struct {
	bin, dir string
	port     int
}

func asPostgres(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

func startOwnPostgres(t *testing.T) *ownPostgres {
	t.Helper()
	bin := os.Getenv("CHATAUTH_TEST_PG_BIN")
	if bin == "" {
		t.Skip("CHATAUTH_TEST_PG_BIN is not set (./build.sh test sets it)")
	}
	dir, err := os.MkdirTemp("", "chatauth-pgrestart")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := &ownPostgres{bin: bin, dir: dir, port: port}
	if out, err := asPostgres(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		asPostgres(filepath.Join(bin, "pg_ctl"), "-D", filepath.Join(dir, "data"), "-m", "immediate", "-w", "stop").Run()
		os.RemoveAll(dir)
	})
	p.ctl(t, "start")
	return p
}

func (p *ownPostgres) ctl(t *testing.T, action string, extra ...string) {
	t.Helper()
	args := append([]string{"-D", filepath.Join(p.dir, "data"), "-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "60",
		"-o", "-p " + strconv.Itoa(p.port) + " -k " + p.dir + " -h 127.0.0.1 -c fsync=off"}, extra...)
	if out, err := asPostgres(filepath.Join(p.bin, "pg_ctl"), append(args, action)...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
		t.Fatalf("pg_ctl %s: %v\n%s\n%s", action, err, out, log)
	}
}

func (p *ownPostgres) dsn() string {
	return "postgres://postgres@127.0.0.1:" + strconv.Itoa(p.port) + "/postgres?sslmode=disable"
}

// TestPostgresRestartUnderLoad restarts PostgreSQL while clients read
// and refresh: while it is down the server answers 503 with Retry-After,
// never 500; once it is back the same server process serves every client
// again (no restart of its own), and every refresh chain still works.
func TestPostgresRestartUnderLoad(t *testing.T) {
	pg := startOwnPostgres(t)
	bin := filepath.Join(t.TempDir(), "chatauth")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	srv := startServer(t, bin, pg.dsn(), addr)
	defer func() { srv.cmd.Process.Kill(); srv.cmd.Wait() }()

	const clients = 8
	access := make([]string, clients)
	refresh := make([]string, clients)
	for i := range clients {
		status, p, err := post(srv.base, map[string]string{"email": "admin@example.com", "password": "admin-password-1"})
		if err != nil || status != 200 {
			t.Fatalf("login: %d %v", status, err)
		}
		access[i], refresh[i] = p.Token, p.RefreshToken
	}
	hc := http.Client{Timeout: 10 * time.Second}
	get := func(tok string) (int, string) {
		req, _ := http.NewRequest("GET", srv.base+"/api/v1/profile", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := hc.Do(req)
		if err != nil {
			return 0, ""
		}
		res.Body.Close()
		return res.StatusCode, res.Header.Get("Retry-After")
	}

	ctx, stop := context.WithCancel(context.Background())
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				var status int
				retry := "1"
				if n%2 == 0 {
					status, retry = get(access[i])
				} else {
					var p pairResp
					var err error
					status, p, err = post(srv.base, map[string]string{"refreshToken": refresh[i], "clientId": "admin@example.com"})
					if err != nil {
						status = 0
					} else if status == 200 {
						access[i], refresh[i] = p.Token, p.RefreshToken
					}
				}
				mu.Lock()
				counts[status]++
				mu.Unlock()
				if status == 503 && retry == "" {
					t.Errorf("503 without Retry-After")
				}
				if status == 503 {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(time.Second)
	pg.ctl(t, "restart", "-m", "fast")
	restarted := time.Now()
	time.Sleep(2 * time.Second)
	stop()
	wg.Wait()
	t.Logf("statuses under load across the restart: %v", counts)
	for status, n := range counts {
		if status != 200 && status != 503 {
			t.Errorf("%d answers with status %d (want only 200, or 503 while the database is down)", n, status)
		}
	}

	// Recovered without restarting the server: every client reads and
	// refreshes again.
	deadline := restarted.Add(10 * time.Second)
	for i := range clients {
		for {
			s, _ := get(access[i])
			rs, p, err := post(srv.base, map[string]string{"refreshToken": refresh[i], "clientId": "admin@example.com"})
			if s == 200 && err == nil && rs == 200 {
				access[i], refresh[i] = p.Token, p.RefreshToken
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("client %d not served 10 s after the restart: profile %d, refresh %d %v", i, s, rs, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if srv.cmd.ProcessState != nil {
		t.Fatal("the server process exited")
	}
	if res, err := hc.Get(srv.base + "/healthz"); err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz after the restart: %v %v", res, err)
	}
}
