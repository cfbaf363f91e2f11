#!/usr/bin/env bash
# Makes sure Debian's chromium is present for the browser tests, installing
# it when we may (root). Prints the path.
ensure_chromium() {
  for p in "${CHATAUTH_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    [ -n "$p" ] && [ -x "$p" ] && { echo "$p"; return 0; }
  done
  if [ "$(id -u)" != 0 ]; then
    echo "browser.sh: chromium is not installed and we are not root; install Debian's chromium" >&2
    return 1
  fi
  echo "browser.sh: installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null || return 1
  [ -x /usr/bin/chromium ] && echo /usr/bin/chromium
}

ensure_node() {
  command -v node >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || { echo "browser.sh: node is not installed (needed for the wasm tests)" >&2; return 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq nodejs >/dev/null
}
