#!/usr/bin/env bash
# Throwaway PostgreSQL for the test suite, on loopback, in a temp folder.
#   source scripts/postgres.sh; pg_start   → exports CHATAUTH_TEST_POSTGRES
#   pg_stop                                  → stops it and removes the folder
# Installs Debian's postgresql when no server binaries are present and we
# may (root).

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  return 1
}

pg_install() {
  if pg_bindir >/dev/null; then return 0; fi
  if [ "$(id -u)" != 0 ]; then
    echo "postgres.sh: PostgreSQL is not installed and we are not root; install Debian's postgresql or unset the PostgreSQL suite" >&2
    return 1
  fi
  echo "postgres.sh: installing Debian's postgresql" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq postgresql >/dev/null || return 1
  pg_bindir >/dev/null
}

free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 30000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

# as_pg runs a command as the postgres user when we are root (initdb
# refuses to run as root), else as ourselves.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
  pg_install || return 1
  local bin; bin=$(pg_bindir)
  PG_DIR=$(mktemp -d /tmp/chatauth-pg.XXXXXX)
  chmod 755 "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
  PG_PORT=$(free_port) || { echo "postgres.sh: no free port" >&2; return 1; }
  as_pg "$bin/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-sync -E UTF8 >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  as_pg "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR -h 127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null \
    || { cat "$PG_DIR/server.log" >&2; return 1; }
  export PG_BIN="$bin" PG_DIR PG_PORT
  # The PostgreSQL-restart test starts a cluster of its own from these binaries.
  export CHATAUTH_TEST_PG_BIN="$bin"
  export CHATAUTH_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
  echo "postgres.sh: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT" >&2
}

pg_stop() {
  [ -n "${PG_DIR:-}" ] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  unset PG_DIR CHATAUTH_TEST_POSTGRES CHATAUTH_TEST_PG_BIN
}
