#!/usr/bin/env bash
# npm for the npm package's test (web/npm_browser_test.go), which installs
# the SDK's tarball into a sample app with esbuild and typescript from the
# npm registry. Debian's nodejs comes without npm: install Debian's npm
# when it is missing and we may (root).
# shellcheck source=scripts/browser.sh
source "$(dirname "${BASH_SOURCE[0]}")/browser.sh"

ensure_npm() {
  ensure_node || return 1
  command -v npm >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || { echo "npm.sh: npm is not installed (needed for the npm package test); install Debian's npm" >&2; return 1; }
  echo "npm.sh: installing Debian's npm" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq npm >/dev/null
}
