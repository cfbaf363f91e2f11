package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"chatauth/backend/sqlstore/sqlstoretest"
)

type proc struct {
	cmd  *exec.Cmd
	base string
}

func startServer(t *testing.T, bin, dsn, addr string) *proc {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "CHATAUTH_DB="+dsn, "CHATAUTH_ADDR="+addr, "CHATAUTH_ISSUER=http://"+addr,
		"CHATAUTH_SECRET=kill-test-secret-0123456789-0123456789", "CHATAUTH_ADMIN_EMAIL=admin@example.com",
		"CHATAUTH_ADMIN_PASSWORD=admin-password-1", "CHATAUTH_REFRESH_GRACE=30s", "CHATAUTH_LOG_FORMAT=json")
	logf, _ := os.Create(filepath.Join(t.TempDir(), "server.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, base: "http://" + addr}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get(p.base + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("server did not start")
	return nil
}

type pairResp struct {
	Token        string `json:"token"`
	RefreshToken string `json:"refreshToken"`
}

func post(base string, body any) (int, pairResp, error) {
	b, _ := json.Marshal(body)
	c := http.Client{Timeout: 5 * time.Second}
	res, err := c.Post(base+"/api/v1/auth/token", "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, pairResp{}, err
	}
	defer res.Body.Close()
	var p pairResp
	json.NewDecoder(res.Body).Decode(&p)
	return res.StatusCode, p, nil
}

// TestKillDuringRefreshStorm: kill -9 the server while 100 clients
// refresh, restart it on the same PostgreSQL database. A refresh whose
// answer was lost in the crash is honoured once more within the grace
// window, so every sign-in keeps a working token; nothing is revoked by
// mistake; the database is consistent.
func TestKillDuringRefreshStorm(t *testing.T) {
	dsn := sqlstoretest.Postgres(t)
	bin := filepath.Join(t.TempDir(), "chatauth")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	srv := startServer(t, bin, dsn, addr)
	defer func() { srv.cmd.Process.Kill(); srv.cmd.Wait() }()

	const clients = 100
	tokens := make([]string, clients)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			status, p, err := post(srv.base, map[string]string{"email": "admin@example.com", "password": "admin-password-1"})
			if err != nil || status != 200 {
				t.Errorf("login %d: %d %v", i, status, err)
				return
			}
			tokens[i] = p.RefreshToken
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// The storm: every client refreshes in a loop, keeping the newest token.
	ctx, stop := context.WithCancel(context.Background())
	var mu sync.Mutex
	rotations := 0
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				rt := tokens[i]
				mu.Unlock()
				status, p, err := post(srv.base, map[string]string{"refreshToken": rt, "clientId": "admin@example.com"})
				if err == nil && status == 200 {
					mu.Lock()
					tokens[i] = p.RefreshToken
					rotations++
					mu.Unlock()
				} else if err == nil && status == 401 {
					t.Errorf("client %d refused during the storm", i)
					return
				} else {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	srv.cmd.Process.Signal(syscall.SIGKILL)
	srv.cmd.Wait()
	stop()
	wg.Wait()
	t.Logf("%d rotations before kill -9", rotations)

	srv = startServer(t, bin, dsn, addr)
	// Every client refreshes once more with the newest token it holds.
	for i := range clients {
		status, _, err := post(srv.base, map[string]string{"refreshToken": tokens[i], "clientId": "admin@example.com"})
		if err != nil || status != 200 {
			t.Errorf("client %d after restart: %d %v", i, status, err)
		}
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var families, revoked, orphans int
	db.QueryRow("SELECT COUNT(*), COUNT(revoked_at) FROM refresh_families WHERE kind = 'agent'").Scan(&families, &revoked)
	db.QueryRow("SELECT COUNT(*) FROM refresh_tokens t LEFT JOIN refresh_families f ON f.id = t.family_id WHERE f.id IS NULL").Scan(&orphans)
	if families != clients || revoked != 0 || orphans != 0 {
		t.Fatalf("families=%d revoked=%d orphan tokens=%d", families, revoked, orphans)
	}
}
