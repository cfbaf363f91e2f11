package web_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/web/browsertest"
)

// cannotRun skips a test that lacks what it needs, except under
// ./build.sh test (CHATAUTH_REQUIRE_BROWSER=1), which provides all of it:
// there a missing piece is a failure, not a silent skip.
func cannotRun(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CHATAUTH_REQUIRE_BROWSER") == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// npmPackage is the package ./build.sh wrote: its folder and its tarball.
func npmPackage(t *testing.T) (dir, tgz string) {
	t.Helper()
	dir = filepath.Join("dist", "npm")
	raw, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		cannotRun(t, "the npm package is not built; run ./build.sh first")
	}
	var m struct{ Name, Version string }
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("dist/npm/package.json: %v", err)
	}
	// npm pack's name for @scope/name is scope-name-version.tgz.
	tgz, _ = filepath.Abs(filepath.Join("dist", strings.ReplaceAll(strings.TrimPrefix(m.Name, "@"), "/", "-")+"-"+m.Version+".tgz"))
	if _, err := os.Stat(tgz); err != nil {
		cannotRun(t, "the npm tarball is not built; run ./build.sh first: "+err.Error())
	}
	return dir, tgz
}

func npmPath(t *testing.T) string {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		cannotRun(t, "npm is not installed; ./build.sh test installs Debian's npm (scripts/npm.sh)")
	}
	return npm
}

// npmCache is where npm keeps the registry's packages between runs, so
// a second run installs esbuild and typescript without the network
// (--prefer-offline): CHATAUTH_NPM_CACHE, or chatauth-npm in the user's
// cache folder ($HOME/.cache).
func npmCache(t *testing.T) string {
	if d := os.Getenv("CHATAUTH_NPM_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("no cache folder for npm: %v (set CHATAUTH_NPM_CACHE)", err)
	}
	return filepath.Join(d, "chatauth-npm")
}

// runIn runs a command in dir and fails the test with its output.
func runIn(t *testing.T, ctx context.Context, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The tarball chatauth-npm writes holds exactly the files, and sizes,
// that npm pack would put in it for dist/npm/.
func TestNPMTarballIsWhatNPMPacks(t *testing.T) {
	npm := npmPath(t)
	dir, tgz := npmPackage(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var packs []struct {
		Files []struct {
			Path string
			Size int64
		}
	}
	if err := json.Unmarshal([]byte(runIn(t, ctx, dir, npm, "pack", "--dry-run", "--json", "--loglevel=error")), &packs); err != nil || len(packs) != 1 {
		t.Fatalf("npm pack --dry-run --json: %v (%d packages)", err, len(packs))
	}
	want := map[string]int64{}
	for _, f := range packs[0].Files {
		want[f.Path] = f.Size
	}
	got := map[string]int64{}
	f, err := os.Open(tgz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name, ok := strings.CutPrefix(hdr.Name, "package/")
		if !ok {
			t.Errorf("%s is outside package/, where npm looks", hdr.Name)
		}
		got[name] = hdr.Size
	}
	for name, size := range want {
		if got[name] != size {
			t.Errorf("%s: npm pack packs %d bytes, the tarball has %d", name, size, got[name])
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s is in the tarball but npm pack would leave it out", name)
		}
	}
}

// tokenLog records the Origin and the status of every visitor-token
// request the chatauth server answers.
type tokenLog struct {
	mu   sync.Mutex
	seen []tokenRequest
}

type tokenRequest struct {
	Origin string
	Status int
}

// statusWriter keeps the status a handler answers.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (l *tokenLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/customer/token" {
			h.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		l.mu.Lock()
		l.seen = append(l.seen, tokenRequest{Origin: r.Header.Get("Origin"), Status: sw.status})
		l.mu.Unlock()
	})
}

func (l *tokenLog) requests() []tokenRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen)
}

// buildNPMApp does to web/testdata/npmapp, in a temp dir, what
// docs/sdk.md ("Installing from npm") tells an app to do: npm install the
// tarball (and the app's pinned esbuild and typescript), type-check with
// tsc --strict, bundle with esbuild both ways the docs show. It returns
// the folder to serve.
func buildNPMApp(t *testing.T, npm, tgz string) string {
	t.Helper()
	app := t.TempDir()
	if err := os.CopyFS(app, os.DirFS(filepath.Join("testdata", "npmapp"))); err != nil {
		t.Fatal(err)
	}
	// The first run fetches esbuild and typescript (about 15 MB); later
	// runs take them from the cache.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	step := func(what string, name string, args ...string) {
		t.Helper()
		start := time.Now()
		runIn(t, ctx, app, name, args...)
		t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond))
	}
	step("npm install", npm, "install", "--cache", npmCache(t), "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error", tgz)
	bin := filepath.Join(app, "node_modules", ".bin")
	step("tsc --strict --noEmit", filepath.Join(bin, "tsc"), "--strict", "--noEmit", "-p", ".")
	step("esbuild app.ts (wasmUrl from the file loader)", filepath.Join(bin, "esbuild"), "src/app.ts", "--bundle", "--format=esm", "--loader:.wasm=file", "--outdir=dist", "--log-level=warning")
	step("esbuild plain.ts (the wasm copied beside it)", filepath.Join(bin, "esbuild"), "src/plain.ts", "--bundle", "--format=esm", "--outdir=dist", "--log-level=warning")
	dist := filepath.Join(app, "dist")
	for from, to := range map[string]string{
		"node_modules/@chatauth/sdk/chatauth.wasm": "chatauth.wasm",
		"app.html":   "app.html",
		"plain.html": "plain.html",
	} {
		b, err := os.ReadFile(filepath.Join(app, from))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dist, to), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dist
}

type npmResult struct {
	EntityID    string  `json:"entityId"`
	Identified  bool    `json:"identified"`
	ExpiresInMs float64 `json:"expiresInMs"`
	NoServerURL string  `json:"noServerUrl"`
	Error       string  `json:"error"`
}

// An app that installs the SDK from npm, bundles it with esbuild and is
// served from its own origin gets a visitor token in Chromium, with the
// wasm from esbuild's file loader and with the package's default URL.
func TestNPMPackageInChromium(t *testing.T) {
	if os.Getenv("CHATAUTH_CHROMIUM") == "" {
		// Not browsertest.Path's search: this test also reaches the npm
		// registry, which a plain go test should not do by surprise.
		cannotRun(t, "CHATAUTH_CHROMIUM is unset; ./build.sh test sets it")
	}
	npm := npmPath(t)
	_, tgz := npmPackage(t)
	start := time.Now()
	dist := buildNPMApp(t, npm, tgz)

	// chatauth on localhost, the app on 127.0.0.1: two origins and two
	// sites, as an app and its chatauth server are.
	// The issuer is the URL the SDK uses: its DPoP proofs name it (htu).
	var seen tokenLog
	front := httptest.NewUnstartedServer(nil)
	t.Cleanup(front.Close)
	server := strings.Replace("http://"+front.Listener.Addr().String(), "127.0.0.1", "localhost", 1)
	e := apptest.Start(t, sqlstoretest.SQLite(t), map[string]string{"CHATAUTH_ISSUER": server})
	front.Config.Handler = seen.wrap(e.App.Server.Handler())
	front.Start()
	// Which wasm each page fetched: the file loader's hashed copy, or the
	// package's own name beside the bundle.
	var wasmMu sync.Mutex
	var wasmPaths []string
	files := http.FileServer(http.Dir(dist))
	appSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".wasm") {
			wasmMu.Lock()
			wasmPaths = append(wasmPaths, r.URL.Path)
			wasmMu.Unlock()
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(appSrv.Close)
	admin := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
	cl := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "npm app", "client_type": "public", "allowed_origins": []string{appSrv.URL}}, admin)
	if cl.Status != 201 {
		t.Fatalf("client: %s", cl.Raw)
	}
	query := "?" + url.Values{"server": {server}, "client": {cl.Str("client_id")}}.Encode()

	ctx, cancel := browsertest.Start(t)
	defer cancel()
	for _, page := range []struct{ name, wasm string }{
		{"app.html", `^/chatauth-[A-Z0-9]+\.wasm$`},
		{"plain.html", `^/chatauth\.wasm$`},
	} {
		wasmMu.Lock()
		wasmPaths = nil
		wasmMu.Unlock()
		if err := chromedp.Do(ctx, chromedp.Navigate(appSrv.URL+"/"+page.name+query)); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.result !== undefined`, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			t.Fatalf("%s: no result: %v", page.name, err)
		}
		r := browsertest.Eval[npmResult](t, ctx, `window.result`)
		wasmMu.Lock()
		fetched := slices.Clone(wasmPaths)
		wasmMu.Unlock()
		t.Logf("%s: %+v, wasm %v", page.name, r, fetched)
		if r.Error != "" || r.EntityID == "" {
			t.Fatalf("%s: no visitor token: %+v; POST /customer/token answered %+v", page.name, r, seen.requests())
		}
		if r.ExpiresInMs <= 0 {
			t.Errorf("%s: the token expires in %v ms", page.name, r.ExpiresInMs)
		}
		if r.NoServerURL != "invalid_request" {
			t.Errorf("%s: init without serverUrl failed with %q, want invalid_request", page.name, r.NoServerURL)
		}
		if len(fetched) != 1 || !regexp.MustCompile(page.wasm).MatchString(fetched[0]) {
			t.Errorf("%s fetched the wasm as %v, want one path matching %s", page.name, fetched, page.wasm)
		}
	}
	reqs := seen.requests()
	if len(reqs) == 0 {
		t.Fatal("the server saw no POST /customer/token")
	}
	for _, r := range reqs {
		if r.Origin != appSrv.URL {
			t.Errorf("POST /customer/token from origin %q, want the app's %s", r.Origin, appSrv.URL)
		}
	}
	t.Logf("install, build and both pages: %v", time.Since(start).Round(time.Millisecond))
}
