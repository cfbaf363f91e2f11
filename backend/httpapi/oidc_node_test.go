package httpapi_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
)

// openidClientVersion is the npm openid-client the node relying party
// runs, pinned: a new release is taken on purpose, not by a test run.
const openidClientVersion = "6.8.8"

// cannotRunNode skips a test that lacks node or npm, except under
// ./build.sh test (CHATAUTH_REQUIRE_BROWSER=1, which installs both through
// scripts/browser.sh ensure_node and scripts/npm.sh ensure_npm): there a
// missing piece is a failure.
func cannotRunNode(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CHATAUTH_REQUIRE_BROWSER") == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// openidClient installs openid-client once into the npm cache folder
// (CHATAUTH_NPM_CACHE, or $HOME/.cache/chatauth-npm, as web/'s npm test
// uses) and returns the folder whose node_modules holds it. Later runs
// find it there and need neither npm nor the network.
func openidClient(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("CHATAUTH_NPM_CACHE")
	if cache == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			t.Fatalf("no cache folder for npm: %v (set CHATAUTH_NPM_CACHE)", err)
		}
		cache = filepath.Join(d, "chatauth-npm")
	}
	dir := filepath.Join(cache, "openid-client-"+openidClientVersion)
	installed := func() bool {
		raw, err := os.ReadFile(filepath.Join(dir, "node_modules", "openid-client", "package.json"))
		var m struct{ Version string }
		return err == nil && json.Unmarshal(raw, &m) == nil && m.Version == openidClientVersion
	}
	if installed() {
		return dir
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		cannotRunNode(t, "npm is not installed; ./build.sh test installs Debian's npm (scripts/npm.sh)")
	}
	// Installed beside, then renamed into place: a run that dies half-way,
	// or another test process installing at the same time, never leaves a
	// half-filled folder that looks installed.
	tmp, err := os.MkdirTemp(cache, "openid-client-install-")
	if err != nil {
		if err := os.MkdirAll(cache, 0o755); err != nil {
			t.Fatal(err)
		}
		if tmp, err = os.MkdirTemp(cache, "openid-client-install-"); err != nil {
			t.Fatal(err)
		}
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), []byte(`{"private": true, "type": "module"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--cache", filepath.Join(cache, "_npm"), "--prefer-offline", "--no-audit", "--no-fund",
		"--loglevel=error", "--save-exact", "openid-client@"+openidClientVersion)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		cannotRunNode(t, "npm install openid-client@"+openidClientVersion+": "+err.Error()+"\n"+string(out))
	}
	if err := os.Rename(tmp, dir); err != nil && !installed() {
		t.Fatalf("install openid-client: %v", err)
	}
	if !installed() {
		t.Fatalf("openid-client %s is not in %s after npm install", openidClientVersion, dir)
	}
	return dir
}

// TestOIDCWithNodeOpenIDClient: the npm openid-client package, as a
// relying party in node, against a real server on a loopback port whose
// URL is its issuer: discovery, authorization code with PKCE, nonce and
// state (sign-in and consent driven with fetch and a cookie jar), RFC
// 9207 iss, ID token validation including the JWKS signature, userinfo,
// refresh, and RP-initiated logout through the end-session URL it
// builds (testdata/openid_client.mjs).
func TestOIDCWithNodeOpenIDClient(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		cannotRunNode(t, "node is not installed; ./build.sh test installs it (scripts/browser.sh ensure_node)")
	}
	if out, err := exec.Command(node, "-e", "process.exit(+process.versions.node.split('.')[0] >= 20 ? 0 : 1)").CombinedOutput(); err != nil {
		cannotRunNode(t, "openid-client "+openidClientVersion+" needs node 20 or later: "+string(out))
	}
	dir := openidClient(t)
	script, err := os.ReadFile(filepath.Join("testdata", "openid_client.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	// The script runs beside node_modules, where an ES module finds
	// openid-client (NODE_PATH does not apply to import).
	run := filepath.Join(dir, "openid_client_"+strconv.Itoa(os.Getpid())+".mjs")
	if err := os.WriteFile(run, script, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(run) })

	e := apptest.StartLoopback(t, sqlstoretest.SQLite(t), nil)
	issuer := e.Cfg.Issuer
	if !strings.HasPrefix(issuer, "http://127.0.0.1:") || issuer != e.Srv.URL {
		t.Fatalf("issuer %s, server %s", issuer, e.Srv.URL)
	}
	admin := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
	const cb, out = "http://127.0.0.1:9/callback", "http://127.0.0.1:9/signed-out"
	r := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "node RP", "client_type": "confidential", "redirect_uris": []string{cb},
		"post_logout_redirect_uris": []string{out}, "scopes": []string{"read"}}, admin)
	expect(t, r, 201, "")

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, run)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ISSUER="+issuer, "CLIENT_ID="+r.Str("client_id"), "CLIENT_SECRET="+r.Str("client_secret"),
		"REDIRECT_URI="+cb, "POST_LOGOUT_URI="+out, "EMAIL="+apptest.AdminEmail, "PASSWORD="+apptest.AdminPassword)
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node openid-client: %v\n%s", err, res)
	}
	var got struct {
		Sub, SID string
		Logout   bool
	}
	lines := strings.Split(strings.TrimSpace(string(res)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil || got.Sub == "" || got.SID == "" || !got.Logout {
		t.Fatalf("node openid-client printed %q: %v", res, err)
	}
}
