#!/usr/bin/env bash
# Throwaway PostgreSQL 15 + Redis for the test suite.
#   scripts/test-services.sh start|stop|restart-postgres
# start writes $STATE/env (TEST_DATABASE_URL, TEST_REDIS_URL, ...) for tests to source.
set -euo pipefail

STATE="${SAAS_SERVICES_DIR:-/tmp/saas-test-services}"
PG_PORT="${TEST_PG_PORT:-54329}"
REDIS_PORT="${TEST_REDIS_PORT:-63799}"
PG_BIN=/usr/lib/postgresql/15/bin
PGDATA="$STATE/pgdata"
PG_RUN="$STATE/pg"  # socket dir + log, must be writable by the postgres user
SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

die() { echo "test-services: $*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# PostgreSQL refuses to run as root.
as_pg() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

# nginx is for tests/test_proxy.py (the reverse proxy in front of gunicorn); the tests start
# their own instances, never the system service.
ensure_packages() {
  # curl: the walkthroughs of the README and the docs use it, and tests/test_readme.py runs them.
  if [ -x "$PG_BIN/initdb" ] && command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
    && [ -x /usr/sbin/nginx ] && command -v curl >/dev/null; then
    return
  fi
  is_root || die "PostgreSQL 15 / Redis / nginx / curl missing; install postgresql-15, redis-server, nginx and curl (needs root)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql-15 redis-server nginx curl >/dev/null
}

# Ports are read back from $STATE by stop/restart, which may run with a different env.
load_ports() {
  if [ -f "$STATE/ports" ]; then
    # shellcheck disable=SC1091
    . "$STATE/ports"
  fi
}

wait_for() {  # wait_for <what> <command...>: retry for up to 30 s
  local what="$1"; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  die "$what did not become ready within 30 s (logs in $STATE)"
}

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres; }

start_postgres() {
  mkdir -p "$PGDATA" "$PG_RUN"
  if is_root; then chown postgres:postgres "$PGDATA" "$PG_RUN"; fi
  chmod 700 "$PGDATA"

  local locale=C
  if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then locale=C.UTF-8; fi
  as_pg "$PG_BIN/initdb" -D "$PGDATA" --auth=trust -U postgres --encoding=UTF8 \
    --locale="$locale" >"$STATE/initdb.log" 2>&1 || { cat "$STATE/initdb.log" >&2; die "initdb failed"; }

  # Durability off: this data is thrown away, and tests run much faster.
  cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PG_RUN/postgres.log" -w -t 30 start >/dev/null \
    || { cat "$PG_RUN/postgres.log" >&2; die "PostgreSQL failed to start"; }
  wait_for PostgreSQL pg_ready
  as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres saas_test
}

start_redis() {
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
    --save '' --appendonly no --dir "$STATE" \
    --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log"
  wait_for Redis redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping
}

stop_postgres() {
  if [ -f "$PGDATA/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

stop_redis() {
  local pid
  [ -f "$STATE/redis.pid" ] || return 0
  pid="$(cat "$STATE/redis.pid")"
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$STATE/redis.pid"
}

cmd_start() {
  ensure_packages
  if [ -d "$STATE" ]; then
    # Idempotent: stop whatever a previous start left behind (with its own ports).
    (load_ports; stop_postgres; stop_redis)
    rm -rf "$STATE"
  fi
  mkdir -p "$STATE"
  chmod 755 "$STATE"  # the postgres user must be able to traverse it
  printf 'PG_PORT=%s\nREDIS_PORT=%s\n' "$PG_PORT" "$REDIS_PORT" >"$STATE/ports"

  start_postgres
  start_redis

  cat >"$STATE/env" <<EOF
export TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/saas_test
export TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export SAAS_SERVICES_DIR=$STATE
export TEST_SERVICES_SCRIPT=$SCRIPT
EOF
  cat "$STATE/env"
}

cmd_stop() {
  [ -d "$STATE" ] || return 0
  load_ports
  stop_postgres
  stop_redis
}

cmd_restart_postgres() {
  load_ports
  [ -f "$PGDATA/postmaster.pid" ] || die "PostgreSQL is not running (run: $0 start)"
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PG_RUN/postgres.log" -m fast -w -t 30 restart >/dev/null
  wait_for PostgreSQL pg_ready
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart-postgres) cmd_restart_postgres ;;
  *) echo "usage: $0 start|stop|restart-postgres" >&2; exit 2 ;;
esac
