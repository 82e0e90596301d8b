#!/usr/bin/env bash
# Starts a private PostgreSQL and Redis on loopback for the store-contract,
# two-instance and e2e tests. Idempotent: a second run reuses what is running.
#
#   scripts/ci-services.sh          # start (or reuse), write the env file, print it
#   scripts/ci-services.sh stop     # stop both
#   . /tmp/artifactapi-ci.env       # then: ARTIFACTAPI_TEST_POSTGRES_URL, ARTIFACTAPI_TEST_REDIS_URL
#
# Overridable: ARTIFACTAPI_CI_DIR (default /tmp/artifactapi-ci), ARTIFACTAPI_CI_PG_PORT (55432),
# ARTIFACTAPI_CI_REDIS_PORT (56379), ARTIFACTAPI_CI_ENV (default /tmp/artifactapi-ci.env).
# Needs: postgresql (initdb, pg_ctl; apt: postgresql) and redis-server (apt: redis-server).
set -euo pipefail

DIR="${ARTIFACTAPI_CI_DIR:-/tmp/artifactapi-ci}"
PG_PORT="${ARTIFACTAPI_CI_PG_PORT:-55432}"
REDIS_PORT="${ARTIFACTAPI_CI_REDIS_PORT:-56379}"
ENV_FILE="${ARTIFACTAPI_CI_ENV:-/tmp/artifactapi-ci.env}"
PGDATA="$DIR/pg"
PG_USER=artifactapi
PG_PASS=artifactapi
PG_DB=artifactapi

pgbin() {
  local b
  for b in /usr/lib/postgresql/*/bin/"$1"; do [ -x "$b" ] && { echo "$b"; return; }; done
  command -v "$1" || { echo "ci-services: $1 not found (apt-get install postgresql)" >&2; exit 1; }
}

# initdb and postgres refuse to run as root: run them as an unprivileged user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    local u=postgres
    id -u "$u" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$u"
    runuser -u "$u" -- "$@"
  else
    "$@"
  fi
}

stop() {
  if [ -f "$PGDATA/postmaster.pid" ]; then as_pg "$(pgbin pg_ctl)" -D "$PGDATA" -m fast -w stop || true; fi
  if [ -f "$DIR/redis.pid" ]; then kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true; rm -f "$DIR/redis.pid"; fi
}

if [ "${1:-start}" = stop ]; then stop; exit 0; fi

mkdir -p "$DIR"
if [ "$(id -u)" = 0 ]; then id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres; fi

# --- PostgreSQL ---
if [ ! -f "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  [ "$(id -u)" = 0 ] && chown postgres "$PGDATA" && chmod 700 "$PGDATA"
  as_pg "$(pgbin initdb)" -D "$PGDATA" -U postgres --auth=trust --no-sync -E UTF8 >"$DIR/initdb.log" 2>&1
fi
if ! as_pg "$(pgbin pg_ctl)" -D "$PGDATA" status >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] && chown postgres "$DIR" 2>/dev/null || true
  as_pg "$(pgbin pg_ctl)" -D "$PGDATA" -l "$DIR/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PGDATA -c fsync=off -c max_connections=300" start >/dev/null
fi
psql_() { as_pg "$(pgbin psql)" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
if [ "$(psql_ -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname='$PG_USER'")" != 1 ]; then
  psql_ -d postgres -c "CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASS'"
fi
if [ "$(psql_ -d postgres -c "SELECT 1 FROM pg_database WHERE datname='$PG_DB'")" != 1 ]; then
  psql_ -d postgres -c "CREATE DATABASE $PG_DB OWNER $PG_USER"
fi

# --- Redis ---
if ! { [ -f "$DIR/redis.pid" ] && kill -0 "$(cat "$DIR/redis.pid")" 2>/dev/null; }; then
  command -v redis-server >/dev/null || { echo "ci-services: redis-server not found (apt-get install redis-server)" >&2; exit 1; }
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --dir "$DIR"
  for _ in $(seq 50); do [ -s "$DIR/redis.pid" ] && break; sleep 0.1; done
fi
if command -v redis-cli >/dev/null; then
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

cat >"$ENV_FILE" <<ENV
export ARTIFACTAPI_TEST_POSTGRES_URL=postgres://$PG_USER:$PG_PASS@127.0.0.1:$PG_PORT/$PG_DB
export ARTIFACTAPI_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
ENV
cat "$ENV_FILE"
