#!/usr/bin/env bash
# chatauth build and test entry point.
#   ./build.sh          build bin/chatauth (and the wasm bundle once wasm/ has a main)
#   ./build.sh run      build and start the server (embedded SQLite by default)
#   ./build.sh test     every test: Go unit + integration on SQLite and on a
#                       throwaway PostgreSQL this script starts and stops
#   ./build.sh bench    the Go benchmarks and the HTTP load run (bench/results.json)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)

log() { printf '==> %s\n' "$*" >&2; }

need_go() {
  command -v go >/dev/null 2>&1 || { echo "build.sh: Go is not installed (https://go.dev/dl/); Go 1.24 or newer is needed" >&2; exit 1; }
  go mod download
}

build() {
  need_go
  log "building bin/chatauth"
  mkdir -p bin
  # The wasm bundle first: the server binary embeds web/dist.
  if [ -d wasm/cmd/chatauth ]; then
    log "building the wasm bundle into web/dist/"
    mkdir -p web/dist
    GOOS=js GOARCH=wasm go build -trimpath -ldflags="-s -w" -o web/dist/chatauth.wasm ./wasm/cmd/chatauth
    cp "$(go env GOROOT)/lib/wasm/wasm_exec.js" web/dist/wasm_exec.js 2>/dev/null || cp "$(go env GOROOT)/misc/wasm/wasm_exec.js" web/dist/wasm_exec.js
    go run ./backend/cmd/chatauth-bundle -src web/sdk -dist web/dist >/dev/null
  fi
  build_npm
  CGO_ENABLED=0 go build -trimpath -o bin/chatauth ./backend/cmd/chatauth
}

# ---- npm package (docs/sdk.md, "Installing from npm") ---------------------
# The SDK as an npm package for apps that bundle it: web/dist/npm/ and
# web/dist/chatauth-sdk-<version>.tgz (the version is web/npm/package.json's).
# Written in Go, not by npm pack, so the default build needs no Node; the
# test compares it with npm pack's listing. Before the server build, so
# the binary embeds the same web/dist on the first build as on the next.
build_npm() {
  [ -d wasm/cmd/chatauth ] && [ -f web/npm/package.json ] || return 0
  local tgz
  tgz=$(go run ./backend/cmd/chatauth-npm -template web/npm -src web/sdk -dist web/dist)
  log "wrote the npm package: web/dist/npm/ and $tgz"
}

# npm for web/npm_browser_test.go, which installs that tarball into a
# sample app; it runs with the browser tests.
test_npm_setup() {
  # shellcheck source=scripts/npm.sh
  source scripts/npm.sh
  ensure_npm || log "no npm: the npm package test will fail (CHATAUTH_REQUIRE_BROWSER=1)"
}
# ---------------------------------------------------------------------------

run_tests() {
  build
  log "gofmt and go vet"
  local unformatted
  unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
  if [ -n "$unformatted" ]; then echo "gofmt needed:" $unformatted >&2; exit 1; fi
  go vet ./...
  GOOS=js GOARCH=wasm go vet ./wasm/...

  # shellcheck source=scripts/browser.sh
  source scripts/browser.sh
  ensure_node
  log "wasm tests under Node (GOOS=js GOARCH=wasm)"
  PATH="$(go env GOROOT)/lib/wasm:$PATH" GOOS=js GOARCH=wasm go test -count=1 ./wasm/...
  # The fmt-free safejs fork (wasm/third_party/safejs/FORK.md) is its own
  # module, so ./... above does not reach its tests.
  (cd wasm/third_party/safejs && PATH="$(go env GOROOT)/lib/wasm:$PATH" GOOS=js GOARCH=wasm go test -count=1 ./...)
  if [ "${CHATAUTH_SKIP_BROWSER:-}" != 1 ]; then
    CHATAUTH_CHROMIUM=$(ensure_chromium)
    export CHATAUTH_CHROMIUM CHATAUTH_REQUIRE_BROWSER=1
    test_npm_setup
    # shellcheck source=scripts/firefox.sh
    source scripts/firefox.sh
    CHATAUTH_FIREFOX=$(ensure_firefox) && export CHATAUTH_FIREFOX || log "no firefox-esr: the Firefox tests will be skipped"
    CHATAUTH_PUPPETEER=$(ensure_puppeteer) && export CHATAUTH_PUPPETEER || log "no puppeteer-core: the Firefox tests will fail (CHATAUTH_REQUIRE_BROWSER=1)"
  fi

  # shellcheck source=scripts/postgres.sh
  source scripts/postgres.sh
  if [ -z "${CHATAUTH_TEST_POSTGRES:-}" ] && [ "${CHATAUTH_SKIP_POSTGRES:-}" != 1 ]; then
    pg_start
    trap pg_stop EXIT
  fi
  log "go test (SQLite${CHATAUTH_TEST_POSTGRES:+ and PostgreSQL})"
  go test -count=1 -timeout 20m ./...
}

case "${1:-build}" in
  build) build ;;
  run)
    build
    log "starting chatauth (Ctrl-C to stop)"
    exec ./bin/chatauth serve "${@:2}"
    ;;
  test) run_tests ;;
  bench)
    build
    log "Go benchmarks"
    go test -run '^$' -bench . -benchmem -count=1 ./...
    log "SDK bundle size against a bare syscall/js program, same toolchain"
    bare=$(mktemp -d)
    printf 'package main\n\nimport "syscall/js"\n\nfunc main() {\n\tjs.Global().Set("bare", js.FuncOf(func(js.Value, []js.Value) any { return nil }))\n\tselect {}\n}\n' > "$bare/main.go"
    printf 'module bare\n\ngo 1.24\n' > "$bare/go.mod"
    (cd "$bare" && GOOS=js GOARCH=wasm go build -trimpath -ldflags="-s -w" -o bare.wasm .)
    go run ./backend/cmd/chatauth-bundle -report web/dist/chatauth.wasm "$bare/bare.wasm"
    rm -rf "$bare"
    source scripts/browser.sh
    if CHATAUTH_CHROMIUM=$(ensure_chromium); then
      log "page load to first token in headless Chromium (median of 5)"
      CHATAUTH_CHROMIUM=$CHATAUTH_CHROMIUM CHATAUTH_BENCH=1 go test -count=1 -run TestSDKFirstTokenTiming -v ./web/ | grep -E 'first token|ok|FAIL'
    fi
    # shellcheck source=scripts/firefox.sh
    source scripts/firefox.sh
    if CHATAUTH_FIREFOX=$(ensure_firefox) && ensure_node && CHATAUTH_PUPPETEER=$(ensure_puppeteer); then
      log "page load to first token in headless Firefox ESR, strict tracking protection (median of 5)"
      CHATAUTH_FIREFOX=$CHATAUTH_FIREFOX CHATAUTH_PUPPETEER=$CHATAUTH_PUPPETEER CHATAUTH_BENCH=1 go test -count=1 -run TestFirefoxFirstTokenTiming -v ./web/ | grep -E 'first token|ok|FAIL'
    else
      log "no firefox-esr, node or puppeteer-core: the Firefox first-token timing is skipped"
    fi
    log "HTTP load, idle streams, fan-out on loopback (writes bench/results.json)"
    go build -o bin/chatauth-load ./backend/cmd/chatauth-load
    # The two-process fan-out and revocation need PostgreSQL: a throwaway
    # server like the test command's, unless CHATAUTH_BENCH_POSTGRES names one.
    pg_args=()
    if [ -z "${CHATAUTH_BENCH_POSTGRES:-}" ] && [ "${CHATAUTH_SKIP_POSTGRES:-}" != 1 ]; then
      # shellcheck source=scripts/postgres.sh
      source scripts/postgres.sh
      # free_port can pick a port that the benchmarks' loopback connections
      # still hold (TIME_WAIT): then the server cannot listen; try again.
      for _ in 1 2 3; do
        if pg_start; then
          trap pg_stop EXIT
          pg_args=(-pg "$CHATAUTH_TEST_POSTGRES")
          break
        fi
        pg_stop
      done
      [ ${#pg_args[@]} -gt 0 ] || log "no PostgreSQL: the two-process fan-out and revocation are skipped"
    fi
    ./bin/chatauth-load -bin bin/chatauth -duration "${BENCH_DURATION:-3s}" -pairs "${BENCH_PAIRS:-20}" -concurrency "${BENCH_CONCURRENCY:-16}" "${pg_args[@]}"
    ;;
  fuzz)
    need_go
    # Every fuzz target for FUZZTIME (60s) each; new inputs that widen
    # coverage land in testdata/fuzz/ (commit them).
    for target in $(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do
      pkg=./$(dirname "$target")
      for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$target" | cut -d' ' -f2); do
        log "fuzz $pkg $fn"
        # Start from the committed corpus alone: the cache may hold inputs
        # of an older signature of the target, which would not replay.
        found="$(go env GOCACHE)/fuzz/$(go list "$pkg")/$fn"
        rm -rf "$found"
        GOFLAGS= go test -run '^$' -fuzz "^$fn\$" -fuzztime "${FUZZTIME:-60s}" "$pkg" 2>&1 | tail -n 3
        # Keep what the fuzzer found, so the normal test run replays it.
        if [ -d "$found" ]; then
          mkdir -p "$pkg/testdata/fuzz/$fn"
          cp -n "$found"/* "$pkg/testdata/fuzz/$fn/" 2>/dev/null || true
        fi
      done
    done
    ;;
  *) echo "usage: ./build.sh [build|run|test|bench|fuzz]" >&2; exit 2 ;;
esac
