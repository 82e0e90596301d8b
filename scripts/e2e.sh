#!/usr/bin/env bash
# `npm run e2e`: the black-box e2e-docker/ suite against a local process stack,
# the same shape as docker-compose.e2e.yml without Docker:
#   Postgres + Redis  (scripts/ci-services.sh, private, loopback; reused when already up)
#   s3rver            (npm stand-in for MinIO, fresh temp dir)
#   mock upstream     (e2e-docker/mock-upstream.mjs serving e2e-docker/fixtures/)
#   artifactapi       (built dist/, Postgres + S3 + Redis adapters), two instances
# then runs the suite with ARTIFACTAPI_URL set, and stops what it started.
# Extra args go to vitest (e.g. `npm run e2e -- formats/generic`).
# Env: E2E_SKIP_BUILD=1 to reuse dist/; E2E_KEEP=1 to leave the temp dir for inspection.
#      E2E_IMAGE=<image>: run the two artifactapi instances as containers of that image instead
#      of dist/ (host network, each with its own named /data volume; scripts/image-e2e.sh
#      builds the image and sets this); E2E_CONTAINER_CLI=podman|docker (default: podman if
#      installed, else docker).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
log() { echo "e2e: $*" >&2; }

WORK="$(mktemp -d /tmp/artifactapi-e2e.XXXXXX)"
PIDS=()
CONTAINERS=()
CLI="${E2E_CONTAINER_CLI:-}"
if [ -n "${E2E_IMAGE:-}" ] && [ -z "$CLI" ]; then command -v podman >/dev/null && CLI=podman || CLI=docker; fi
# podman without systemd cannot arm HEALTHCHECK timers and logs an error per container (the
# check itself works: check_container_health below); drop that noise.
cli() { "$CLI" "$@" 2> >(grep -v -e 'unable to get systemd connection' -e 'Removing timer for container' >&2); }
DB=""
DB_CREATED=0
drop_db() {
  node -e "
    const pg = require('pg');
    const c = new pg.Client({ connectionString: process.argv[1] });
    c.connect().then(() => c.query('DROP DATABASE IF EXISTS ' + process.argv[2] + ' WITH (FORCE)')).then(() => c.end()).catch(() => process.exit(0));
  " "$ARTIFACTAPI_TEST_POSTGRES_URL" "$DB" || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null || true; done
  for c in "${CONTAINERS[@]:-}"; do
    [ -n "$c" ] || continue
    if [ "$rc" != 0 ]; then "$CLI" logs "$c" >"$WORK/container-$c.log" 2>&1 || true; fi
    "$CLI" stop -t 5 "$c" >/dev/null 2>&1 || true   # `stop -t` works in docker and podman, `rm -t` only in podman
    "$CLI" rm -f "$c" >/dev/null 2>&1 || true
    "$CLI" volume rm -f "$c" >/dev/null 2>&1 || true
  done
  if [ "$rc" != 0 ]; then
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "----- $f (tail)" >&2; tail -n 40 "$f" >&2; }; done
  fi
  [ "$DB_CREATED" = 1 ] && drop_db
  [ "${E2E_KEEP:-}" = 1 ] && log "kept $WORK" || rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT INT TERM

# 1. Postgres + Redis
if [ -z "${ARTIFACTAPI_TEST_POSTGRES_URL:-}" ] || [ -z "${ARTIFACTAPI_TEST_REDIS_URL:-}" ]; then
  scripts/ci-services.sh >/dev/null
  # shellcheck disable=SC1091
  . "${ARTIFACTAPI_CI_ENV:-/tmp/artifactapi-ci.env}"
fi
DB="artifactapi_e2e_$$"
node -e "
  const pg = require('pg');
  const c = new pg.Client({ connectionString: process.argv[1] });
  c.connect().then(() => c.query('CREATE DATABASE ' + process.argv[2])).then(() => c.end()).catch((e) => { console.error(e.message); process.exit(1); });
" "$ARTIFACTAPI_TEST_POSTGRES_URL" "$DB"
DB_CREATED=1
PG_URL="$(node -e "const u=new URL(process.argv[1]);u.pathname='/'+process.argv[2];console.log(u.toString())" "$ARTIFACTAPI_TEST_POSTGRES_URL" "$DB")"
REDIS_URL="$ARTIFACTAPI_TEST_REDIS_URL"

# 2. Build
if [ -z "${E2E_IMAGE:-}" ] && [ "${E2E_SKIP_BUILD:-}" != 1 ]; then log "building dist/"; npx tsc -p tsconfig.json; fi

# 3. s3rver
S3_PORT="$(free_port)"
mkdir -p "$WORK/s3"
node node_modules/s3rver/bin/s3rver.js -d "$WORK/s3" -a 127.0.0.1 -p "$S3_PORT" --silent --configure-bucket artifactapi >"$WORK/s3rver.log" 2>&1 &
PIDS+=($!)

# 4. mock upstream
UP_PORT="$(free_port)"
node e2e-docker/mock-upstream.mjs --host 127.0.0.1 --port "$UP_PORT" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)

# 5. artifactapi: two instances on the same Postgres + S3 + Redis (the suite mostly talks to the
#    first; e2e-docker/instances.test.ts uses both)
start_api() { # name port
  if [ -n "${E2E_IMAGE:-}" ]; then start_container "$@"; return; fi
  ARTIFACTAPI_DATA_DIR="$WORK/data-$1" \
  ARTIFACTAPI_DATABASE_URL="$PG_URL" \
  ARTIFACTAPI_STORAGE_TYPE=s3 \
  ARTIFACTAPI_STORAGE_ENDPOINT="http://127.0.0.1:$S3_PORT" \
  ARTIFACTAPI_STORAGE_BUCKET=artifactapi \
  ARTIFACTAPI_STORAGE_ACCESS_KEY=S3RVER \
  ARTIFACTAPI_STORAGE_SECRET_KEY=S3RVER \
  ARTIFACTAPI_REDIS_URL="$REDIS_URL" \
  ARTIFACTAPI_AUTH_ANONYMOUS=admin \
  NODE_NO_WARNINGS=1 \
    node bin/artifactapi serve --host 127.0.0.1 --port "$2" >"$WORK/artifactapi-$1.log" 2>&1 &
  PIDS+=($!)
}
start_container() { # name port: the image's own entrypoint (`artifactapi serve`), user and /data volume
  local c="artifactapi-e2e-$$-$1"
  CONTAINERS+=("$c")
  cli run -d --name "$c" --network host -v "$c:/data" \
    -e ARTIFACTAPI_HOST=127.0.0.1 -e ARTIFACTAPI_PORT="$2" \
    -e ARTIFACTAPI_DATABASE_URL="$PG_URL" \
    -e ARTIFACTAPI_STORAGE_TYPE=s3 \
    -e ARTIFACTAPI_STORAGE_ENDPOINT="http://127.0.0.1:$S3_PORT" \
    -e ARTIFACTAPI_STORAGE_BUCKET=artifactapi \
    -e ARTIFACTAPI_STORAGE_ACCESS_KEY=S3RVER \
    -e ARTIFACTAPI_STORAGE_SECRET_KEY=S3RVER \
    -e ARTIFACTAPI_REDIS_URL="$REDIS_URL" \
    -e ARTIFACTAPI_AUTH_ANONYMOUS=admin \
    "$E2E_IMAGE" >/dev/null
}
# podman can run an image's HEALTHCHECK on demand (docker only on its timer)
check_container_health() {
  [ -n "${E2E_IMAGE:-}" ] && [ "$CLI" = podman ] || return 0
  local c
  for c in "${CONTAINERS[@]}"; do
    podman healthcheck run "$c" >/dev/null || { log "HEALTHCHECK of $c failed"; return 1; }
  done
  log "HEALTHCHECK passes in ${CONTAINERS[*]}"
}
API_PORT="$(free_port)"
start_api a "$API_PORT"
API_PORT_2="$(free_port)"

wait_http() {
  local url=$1 what=$2
  for _ in $(seq 150); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.2
  done
  log "$what did not answer at $url"; return 1
}
wait_http "http://127.0.0.1:$UP_PORT/__health" "mock upstream"
wait_http "http://127.0.0.1:$API_PORT/health" "artifactapi"
start_api b "$API_PORT_2" # after the first has migrated the schema
wait_http "http://127.0.0.1:$API_PORT_2/health" "artifactapi (second instance)"
check_container_health
log "artifactapi${E2E_IMAGE:+ (containers of $E2E_IMAGE)} http://127.0.0.1:$API_PORT and :$API_PORT_2 (postgres $DB, s3rver :$S3_PORT, redis), upstream :$UP_PORT"

# 6. the suite
ARTIFACTAPI_URL="http://127.0.0.1:$API_PORT" \
ARTIFACTAPI_URL_2="http://127.0.0.1:$API_PORT_2" \
E2E_UPSTREAM_URL="http://127.0.0.1:$UP_PORT" \
  npx vitest run --config e2e-docker/vitest.config.ts "$@"
