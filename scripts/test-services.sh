#!/usr/bin/env bash
# Sourced by scripts/test.sh: the real components the tests meet — a private PostgreSQL server (started here,
# stopped when the tests end) and Debian's Chromium with its WebDriver for the browser tests.
# Sets GRADPHOTO_TEST_POSTGRES unless it is set already (then that server is used).

as_root() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  }
}

if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  if as_root; then
    apt_install chromium chromium-driver fonts-noto-cjk
  else
    echo "gradphoto: the browser tests need chromium and chromium-driver (Debian: apt-get install chromium chromium-driver)" >&2
  fi
fi

if [ -z "${GRADPHOTO_TEST_POSTGRES:-}" ]; then
  pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -z "$pg_bin" ] && as_root; then
    apt_install postgresql
    pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  fi
  if [ -z "$pg_bin" ]; then
    echo "gradphoto: the PostgreSQL tests need a server: install postgresql or set GRADPHOTO_TEST_POSTGRES" >&2
  else
    pg_dir="$(mktemp -d /tmp/gradphoto-pg.XXXXXX)"
    pg_port="${GRADPHOTO_TEST_PG_PORT:-55432}"
    run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
    [ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
    run_pg "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U postgres >/dev/null
    # Throw-away data: no fsync, so the suite does not wait on the disk.
    run_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w start \
      -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" >/dev/null
    stop_pg() { run_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$pg_dir"; }
    trap stop_pg EXIT
    export GRADPHOTO_TEST_POSTGRES="postgres://postgres@127.0.0.1:$pg_port"
  fi
fi
