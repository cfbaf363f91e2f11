package httpapi_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"chatauth/backend/app"
	"chatauth/backend/apptest"
	"chatauth/backend/config"
	"chatauth/backend/sqlstore"
)

// mountTmpfs mounts a small tmpfs, so the disk can really fill up; it
// skips where the test may not mount (not root, no CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); this test needs root with CAP_SYS_ADMIN", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	return mnt
}

// fill writes a file until the disk is full and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				for n := 4096; n >= 1; n /= 2 { // the last partial blocks
					for {
						if _, err := f.Write(chunk[:n]); err != nil {
							break
						}
					}
				}
				return p
			}
			t.Fatal(err)
		}
	}
}

func integrityOK(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q %v", res, err)
	}
}

// TestFullDisk fills the disk under a running server: writes answer 503
// with a message that says the disk is full (never a 500), reads keep
// working, nothing acknowledged is lost, and writes work again once
// space is freed, without a restart.
func TestFullDisk(t *testing.T) {
	mnt := mountTmpfs(t, "16m")
	path := filepath.Join(mnt, "chatauth.db")
	e := apptest.Start(t, "sqlite:"+path, nil)
	admin := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
	var saved []string
	create := func(body string) apptest.Response {
		r := e.Do("POST", "/api/v1/knowledge_items", map[string]any{"title": "t" + strconv.Itoa(len(saved)), "body": body}, admin)
		if r.Status == 201 {
			saved = append(saved, strconv.Itoa(int(r.Body["id"].(float64))))
		}
		return r
	}
	for range 5 {
		if r := create(strings.Repeat("k", 1000)); r.Status != 201 {
			t.Fatalf("before the disk fills: %d %s", r.Status, r.Raw)
		}
	}
	filler := fill(t, mnt)

	full := 0
	for i := 0; i < 200 && full == 0; i++ {
		r := create(strings.Repeat(strconv.Itoa(i%10), 40000))
		switch r.Status {
		case 201:
		case 503:
			full++
			if !strings.Contains(r.Str("message"), "disk is full") || r.Header.Get("Retry-After") == "" {
				t.Fatalf("503 without an actionable message or Retry-After: %s %v", r.Raw, r.Header)
			}
		default:
			t.Fatalf("a write on a full disk answered %d %s", r.Status, r.Raw)
		}
	}
	if full == 0 {
		t.Fatal("200 large writes on a full 16 MB disk all succeeded")
	}
	if r := e.Do("GET", "/api/v1/knowledge_items?limit=100", nil, admin); r.Status != 200 {
		t.Fatalf("reads on a full disk: %d %s", r.Status, r.Raw)
	}
	if r := e.Do("GET", "/api/v1/profile", nil, admin); r.Status != 200 {
		t.Fatalf("profile on a full disk: %d %s", r.Status, r.Raw)
	}

	os.Remove(filler)
	if r := create("after"); r.Status != 201 {
		t.Fatalf("after freeing space: %d %s", r.Status, r.Raw)
	}
	for _, id := range saved {
		if r := e.Do("GET", "/api/v1/knowledge_items/"+id, nil, admin); r.Status != 200 {
			t.Fatalf("acknowledged item %s lost: %d %s", id, r.Status, r.Raw)
		}
	}
	e.Stop()
	integrityOK(t, path)
}

// TestReadOnlyDatabase starts the app on a database whose file system is
// mounted read-only: it refuses to start with a message that names the
// problem, and the database is untouched.
func TestReadOnlyDatabase(t *testing.T) {
	mnt := mountTmpfs(t, "16m")
	path := filepath.Join(mnt, "chatauth.db")
	e := apptest.Start(t, "sqlite:"+path, nil)
	e.Stop()
	if out, err := exec.Command("mount", "-o", "remount,ro", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v %s", err, out)
	}
	vars := map[string]string{"CHATAUTH_DB": "sqlite:" + path, "CHATAUTH_SECRET": apptest.Secret, "CHATAUTH_ISSUER": "http://chatauth.test"}
	cfg, err := config.Load(func(k string) string { return vars[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, discardLog())
	if err == nil {
		a.Close()
		t.Fatal("the app started on a read-only database")
	}
	msg, ok := sqlstore.Unavailable(err)
	if !ok || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("start-up error does not say the database is read-only: %v (%q)", err, msg)
	}
	exec.Command("mount", "-o", "remount,rw", mnt).Run()
	integrityOK(t, path)
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
