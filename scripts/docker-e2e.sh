#!/usr/bin/env bash
# `npm run docker-e2e`: build the image, bring up the compose stack with the e2e overlay
# (artifactapi x2 + postgres + redis + minio + mock upstream), wait for /health, run the
# black-box suite in e2e-docker/ against http://127.0.0.1:8001, tear everything down.
# Needs a Docker engine with Compose v2.24+. Extra args go to vitest.
# E2E_KEEP_STACK=1 leaves the stack up; E2E_SKIP_BUILD=1 uses the image as tagged
# (ARTIFACTAPI_IMAGE, default artifactapi:latest). E2E_COMPOSE (default `docker compose`) and
# E2E_COMPOSE_FILES (default `docker-compose.yml docker-compose.e2e.yml`) swap the tool and the
# files: scripts/compose-e2e-podman.sh runs this script with Debian's docker-compose on podman.
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT="${E2E_PROJECT:-artifactapi-e2e}"
read -r -a COMPOSE_CMD <<<"${E2E_COMPOSE:-docker compose}"
FILE_ARGS=()
for f in ${E2E_COMPOSE_FILES:-docker-compose.yml docker-compose.e2e.yml}; do FILE_ARGS+=(-f "$f"); done
compose() { "${COMPOSE_CMD[@]}" -p "$PROJECT" "${FILE_ARGS[@]}" "$@"; }

teardown() {
  local rc=$?
  if [ "$rc" != 0 ]; then compose logs --no-color --tail 80 artifactapi upstream >&2 || true; fi
  if [ "${E2E_KEEP_STACK:-}" != 1 ]; then compose down -v --remove-orphans >/dev/null 2>&1 || true; fi
  exit "$rc"
}
trap teardown EXIT INT TERM

[ "${E2E_SKIP_BUILD:-}" = 1 ] || compose build
# Not `up --wait`: the one-shot minio-init exits by design, which some Compose versions count as a failure.
compose up -d

wait_health() {
  for _ in $(seq 180); do
    curl -fsS -o /dev/null "$1/health" 2>/dev/null && return 0
    sleep 1
  done
  echo "docker-e2e: $1/health did not answer" >&2
  return 1
}
wait_health http://127.0.0.1:8001
wait_health http://127.0.0.1:8003
for _ in $(seq 60); do curl -fsS -o /dev/null http://127.0.0.1:8002/__health 2>/dev/null && break; sleep 1; done

ARTIFACTAPI_URL=http://127.0.0.1:8001 \
ARTIFACTAPI_URL_2=http://127.0.0.1:8003 \
E2E_UPSTREAM_URL=http://upstream:8080 \
E2E_UPSTREAM_PUBLIC_URL=http://127.0.0.1:8002 \
  npx vitest run --config e2e-docker/vitest.config.ts "$@"
