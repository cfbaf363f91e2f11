#!/usr/bin/env bash
# Firefox ESR and puppeteer-core for the Firefox browser tests
# (web/firefox_browser_test.go, which runs the node scripts in web/firefox/).
#   ensure_firefox    finds Debian's firefox-esr, installing it when we may
#                     (root); prints its path
#   ensure_puppeteer  installs web/firefox's pinned puppeteer-core into a
#                     cache folder (never a browser); prints that folder
# Source it: source scripts/firefox.sh && CHATAUTH_FIREFOX=$(ensure_firefox)

FIREFOX_SH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

ensure_firefox() {
  for p in "${CHATAUTH_FIREFOX:-}" /usr/bin/firefox-esr; do
    [ -n "$p" ] && [ -x "$p" ] && { echo "$p"; return 0; }
  done
  if [ "$(id -u)" != 0 ]; then
    echo "firefox.sh: firefox-esr is not installed and we are not root; install Debian's firefox-esr" >&2
    return 1
  fi
  echo "firefox.sh: installing Debian's firefox-esr" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends firefox-esr >/dev/null || return 1
  [ -x /usr/bin/firefox-esr ] && echo /usr/bin/firefox-esr
}

# The folder holds a copy of web/firefox/package.json and its lockfile and
# the node_modules npm ci makes of them: CHATAUTH_PUPPETEER, or
# chatauth-firefox in the user's cache folder. Once the pinned version is
# there, nothing is fetched again (the tests then run offline).
ensure_puppeteer() {
  local src="$FIREFOX_SH_DIR/../web/firefox"
  local dir="${CHATAUTH_PUPPETEER:-${XDG_CACHE_HOME:-$HOME/.cache}/chatauth-firefox}"
  local want have
  command -v node >/dev/null 2>&1 || { echo "firefox.sh: node is not installed (scripts/browser.sh ensure_node)" >&2; return 1; }
  want=$(node -p 'require(process.argv[1]).dependencies["puppeteer-core"]' "$src/package.json") || return 1
  have=$(node -p 'require(process.argv[1]).version' "$dir/node_modules/puppeteer-core/package.json" 2>/dev/null || true)
  if [ "$have" = "$want" ] && cmp -s "$src/package-lock.json" "$dir/package-lock.json"; then
    echo "$dir"
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    # shellcheck source=scripts/npm.sh
    source "$FIREFOX_SH_DIR/npm.sh"
    ensure_npm || return 1
  fi
  echo "firefox.sh: installing puppeteer-core $want into $dir" >&2
  mkdir -p "$dir" || return 1
  cp "$src/package.json" "$src/package-lock.json" "$dir/" || return 1
  # PUPPETEER_SKIP_DOWNLOAD: puppeteer-core downloads no browser anyway;
  # this says so to anything in the tree that might.
  (cd "$dir" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --prefer-offline --no-audit --no-fund --loglevel=error >&2) || return 1
  echo "$dir"
}
