// Package browsertest starts headless Chromium (Debian's chromium) for
// the browser tests, with the flags this machine needs: no sandbox (we run
// as root), no GPU, no background networking (there is no internet, and
// Chromium stalls on refused connections without it), a fresh profile.
package browsertest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"

	"chatauth/backend/apptest"
)

// Path finds the Chromium binary. When none is installed the test is
// skipped, unless CHATAUTH_REQUIRE_BROWSER=1 (set by ./build.sh test,
// which installs it) makes that a failure.
func Path(tb testing.TB) string {
	for _, p := range []string{os.Getenv("CHATAUTH_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("CHATAUTH_REQUIRE_BROWSER") == "1" {
		tb.Fatal("Chromium not found; ./build.sh test installs Debian's chromium")
	}
	tb.Skip("Chromium not found; install Debian's chromium (./build.sh test does)")
	return ""
}

// Start launches a browser and returns a context for its first tab.
func Start(tb testing.TB, extraFlags ...chromedp.ExecAllocatorOption) (context.Context, context.CancelFunc) {
	tb.Helper()
	opts := append([]chromedp.ExecAllocatorOption{},
		chromedp.ExecPath(Path(tb)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.WindowSize(1280, 900),
	)
	opts = append(opts, extraFlags...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil {
		cancelCtx()
		cancelAlloc()
		tb.Fatalf("start chromium: %v", err)
	}
	return ctx, func() { cancelCtx(); cancelAlloc() }
}

// Eval evaluates expr in the tab and decodes its value into T.
func Eval[T any](tb testing.TB, ctx context.Context, expr string) T {
	tb.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// Await evaluates expr, waits for the Promise it returns, and decodes
// the result into T; a rejection fails the test with its message.
func Await[T any](tb testing.TB, ctx context.Context, expr string) T {
	tb.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// Serve runs chatauth (apptest.Start) at the URL the browser will use, on
// host ("127.0.0.1", or "localhost" for a second site beside a page on
// 127.0.0.1), with CHATAUTH_ISSUER set to that URL. The SDK's DPoP
// proofs name the URL they are sent to (htu), and the server checks it
// against its issuer (docs/dpop.md): a server started with apptest's
// placeholder issuer refuses every proof. wrap, when not nil, sees each
// request before the server does. It returns the env, whose Srv is the
// server at that URL, and the URL.
func Serve(tb testing.TB, dsn string, extra map[string]string, host string, wrap func(http.Handler) http.Handler) (*apptest.Env, string) {
	tb.Helper()
	// The listener comes first: its port is the issuer's.
	srv := httptest.NewUnstartedServer(nil)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	url := "http://" + net.JoinHostPort(host, port)
	vars := map[string]string{"CHATAUTH_ISSUER": url}
	for k, v := range extra {
		vars[k] = v
	}
	e := apptest.Start(tb, dsn, vars)
	// apptest's own server listens elsewhere: serve the app from ours.
	e.Srv.Close()
	var h http.Handler = e.App.Server.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	srv.Config.Handler = h
	srv.Start()
	e.Srv = srv
	return e, url
}
