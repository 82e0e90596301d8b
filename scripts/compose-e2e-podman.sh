#!/usr/bin/env bash
# `npm run compose-e2e-podman`: our docker-compose.yml + docker-compose.e2e.yml, brought up by
# Debian's docker-compose 1.29 on podman's Docker-compatible API, then scripts/docker-e2e.sh
# (waits, the e2e-docker/ suite against :8001/:8003, teardown) - for machines without a Docker
# engine or registry access. It checks OUR compose wiring (service names, ARTIFACTAPI_* env,
# healthchecks, depends_on conditions, ports, volumes, the mock upstream reached as
# http://upstream:8080 over compose DNS) with the image built from our Dockerfile.
#
# NOT the real thing, in three ways (say so when quoting a result):
#  - third-party images are local stand-ins (scripts/standins/README.md): postgres = Debian
#    PostgreSQL 15, redis = Debian redis 7.0, minio = s3rver (no SigV4 check), mc = a shim;
#    node:20-bookworm-slim is the stand-in of scripts/image-e2e.sh when it cannot be pulled.
#  - docker-compose 1.29 predates two Compose v2 features our files use, so it reads copies in
#    which the top-level `name:` is dropped (the project name is passed with -p) and the
#    `!override` tags are dropped (1.29 then merges `ports` by concatenation: artifactapi is
#    published on 8000 and 8001, minio's console on 9001 stays published).
#  - without systemd podman runs no HEALTHCHECK timers; a loop here runs `podman healthcheck
#    run` on the project's containers every 2 s in their place.
# The stand-in tags (postgres:16-bookworm, ...) are added for the run and removed afterwards.
#
# Needs: root, podman, docker-compose (apt), debootstrap (for the stand-ins); host ports
# 8000-8003 and 9001 free. Env: IMAGE_E2E_SKIP_BUILD=1 (reuse the app image),
# IMAGE_E2E_REBUILD_STANDIN=1, E2E_KEEP_STACK=1. Extra args go to vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
LOG_NAME=compose-e2e-podman
# shellcheck source=scripts/lib/podman.sh
. scripts/lib/podman.sh

PROJECT=artifactapi-e2e
APP="${IMAGE_E2E_TAG:-localhost/artifactapi:compose-e2e}"
command -v docker-compose >/dev/null || die "docker-compose not found (apt-get install docker-compose)"
for p in 8000 8001 8002 8003 9001; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then die "host port $p is in use (the compose files publish it)"; fi
done

SVC_PID=""
TICK_PID=""
TAGGED=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$TICK_PID" ] && kill "$TICK_PID" 2>/dev/null || true
  if [ "${E2E_KEEP_STACK:-}" != 1 ]; then
    if [ -n "$SVC_PID" ] && [ -f "${GEN:-/nonexistent}/docker-compose.yml" ]; then
      [ "$rc" != 0 ] && compose_ logs --no-color --tail 3000 >"$STATE/compose-logs.txt" 2>&1 && log "service logs: $STATE/compose-logs.txt"
      compose_ down -v --remove-orphans >/dev/null 2>&1 || true
    fi
    [ -n "$SVC_PID" ] && kill "$SVC_PID" 2>/dev/null || true
    [ -n "$SVC_PID" ] && wait "$SVC_PID" 2>/dev/null || true
    for t in "${TAGGED[@]:-}"; do [ -n "$t" ] && podman untag "$t" "$t" >/dev/null 2>&1 || true; done  # only that name
  else
    log "stack kept: DOCKER_HOST=$DOCKER_HOST; podman service pid $SVC_PID; stand-in tags kept: ${TAGGED[*]:-}"
  fi
  exit "$rc"
}
trap cleanup EXIT INT TERM

step "preparing the host"
prepare_host
BASE=$(pick_base)
[ "${IMAGE_E2E_SKIP_BUILD:-}" = 1 ] || build_app_image "$APP" "$BASE"

standin() { # name containerfile base
  if [ "${IMAGE_E2E_REBUILD_STANDIN:-}" = 1 ] || ! podman image exists "$1"; then
    step "building stand-in $1"
    podman build --format docker --network host --build-arg "BASE=$3" -f "scripts/standins/$2" -t "$1" scripts/standins \
      >"$STATE/standin-$2.log" 2>&1 || { tail -n 30 "$STATE/standin-$2.log" >&2; die "stand-in $1 failed"; }
  fi
}
standin localhost/artifactapi-standin-postgres:16-bookworm Containerfile.postgres "$DEBIAN_STANDIN"
standin localhost/artifactapi-standin-redis:7-bookworm Containerfile.redis "$DEBIAN_STANDIN"
standin localhost/artifactapi-standin-minio:latest Containerfile.minio "$NODE_STANDIN"
standin localhost/artifactapi-standin-mc:latest Containerfile.mc "$NODE_STANDIN"

# Tag the stand-ins with the names the compose files use, unless a real image is there.
as_compose_name() { # standin name
  if podman image exists "$2" && ! is_standin "$2"; then log "using the real $2"; return; fi
  podman tag "$1" "$2"
  TAGGED+=("$2")
}
as_compose_name localhost/artifactapi-standin-postgres:16-bookworm docker.io/library/postgres:16-bookworm
as_compose_name localhost/artifactapi-standin-redis:7-bookworm docker.io/library/redis:7-bookworm
as_compose_name localhost/artifactapi-standin-minio:latest docker.io/minio/minio:latest
as_compose_name localhost/artifactapi-standin-mc:latest docker.io/minio/mc:latest
[ "$BASE" = "$REAL_BASE" ] || as_compose_name "$BASE" "$REAL_BASE"
log "stand-ins in use: ${TAGGED[*]:-none}"

# Docker-compatible API socket for docker-compose.
SOCK="$STATE/podman.sock"
rm -f "$SOCK"
podman system service --time=0 "unix://$SOCK" >"$STATE/podman-service.log" 2>&1 &
SVC_PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || die "podman system service did not create $SOCK"
export DOCKER_HOST="unix://$SOCK"

# In place of the HEALTHCHECK timers podman cannot arm without systemd.
(
  while :; do
    for c in $(podman ps -q --filter "label=com.docker.compose.project=$PROJECT" 2>/dev/null); do
      podman healthcheck run "$c" >/dev/null 2>&1 || true
    done
    sleep 2
  done
) &
TICK_PID=$!

# Copies of the compose files for docker-compose 1.29 (see the header).
GEN="$STATE/compose"
mkdir -p "$GEN"
sed '/^name: /d' docker-compose.yml >"$GEN/docker-compose.yml"
sed 's/ !override//' docker-compose.e2e.yml >"$GEN/docker-compose.e2e.yml"
docker-compose --project-directory "$ROOT" -p "$PROJECT" -f "$GEN/docker-compose.yml" -f "$GEN/docker-compose.e2e.yml" config -q \
  || die "docker-compose rejects the compose files"

compose_() { docker-compose --project-directory "$ROOT" -p "$PROJECT" -f "$GEN/docker-compose.yml" -f "$GEN/docker-compose.e2e.yml" "$@"; }

step "docker-compose up + e2e-docker suite (scripts/docker-e2e.sh)"
# docker-e2e.sh leaves the stack up (E2E_KEEP_STACK=1) so the stores can be looked at below;
# the cleanup trap here takes it down.
E2E_KEEP_STACK=1 ARTIFACTAPI_IMAGE="$APP" E2E_SKIP_BUILD=1 E2E_PROJECT="$PROJECT" \
E2E_COMPOSE="docker-compose --project-directory $ROOT" \
E2E_COMPOSE_FILES="$GEN/docker-compose.yml $GEN/docker-compose.e2e.yml" \
  scripts/docker-e2e.sh "$@"

# The suite went through the services the compose wiring names, not a fallback.
in_svc() { # service command...
  local id
  id=$(podman ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1" | head -n1)
  [ -n "$id" ] || die "no running container for service $1"
  shift
  podman exec "$id" "$@"
}
blobs=$(in_svc postgres psql -U "${POSTGRES_USER:-artifactapi}" -d "${POSTGRES_DB:-artifactapi}" -qAtc 'SELECT count(*) FROM blobs')
repos=$(in_svc postgres psql -U "${POSTGRES_USER:-artifactapi}" -d "${POSTGRES_DB:-artifactapi}" -qAtc 'SELECT count(*) FROM repos')
objects=$(in_svc minio sh -c "find /data/${S3_BUCKET:-artifactapi} -type f -name '*._S3rver_object' | wc -l")
redis_cmds=$(in_svc redis redis-cli info stats | tr -d '\r' | sed -n 's/^total_commands_processed://p')
uid1=$(in_svc artifactapi id -u)
uid2=$(in_svc artifactapi-2 id -u)
log "postgres: $blobs blob rows, $repos repos left; minio stand-in: $objects objects in bucket ${S3_BUCKET:-artifactapi}; redis: $redis_cmds commands; artifactapi uids $uid1/$uid2"
[ "$blobs" -gt 0 ] || die "no blob rows in the compose Postgres"
[ "$objects" -gt 0 ] || die "no objects in the compose MinIO stand-in"
[ "$redis_cmds" -gt 10 ] || die "the compose Redis was hardly used ($redis_cmds commands)"
[ "$uid1" = 1000 ] && [ "$uid2" = 1000 ] || die "artifactapi containers run as $uid1/$uid2, expected 1000"
# docker-compose.yml's own port line (8000; 1.29 merges it with the overlay's 8001, see the header)
curl -fsS -o /dev/null http://127.0.0.1:8000/health || die "artifactapi is not published on host port 8000 (docker-compose.yml)"
log "docker-compose.yml publishes artifactapi on :8000 too; depends_on artifactapi healthy let artifactapi-2 start"
step "done"
