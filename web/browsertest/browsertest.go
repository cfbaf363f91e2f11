// Package browsertest starts headless Chromium (Debian's chromium) for
// the browser tests, with the flags this machine needs: no sandbox (we run
// as root), no GPU, no background networking (there is no internet, and
// Chromium stalls on refused connections without it), a fresh profile.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
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
