#!/usr/bin/env bash
# `npm run image-e2e`: build the real Dockerfile with podman and run the black-box e2e-docker/
# suite against two containers of that image (host network) on the process stack of
# scripts/e2e.sh (Postgres + Redis from scripts/ci-services.sh, s3rver, mock upstream).
# For machines without a Docker engine; with Docker, `npm run docker-e2e` runs the compose stack.
#
# Steps: host quirks (below) -> base image (node:20-bookworm-slim, or a local stand-in when it
# cannot be pulled) -> `podman build --format docker` -> image checks (non-root user, /data,
# HEALTHCHECK, size) -> `E2E_IMAGE=... scripts/e2e.sh`.
#
# Host quirks handled (idempotent, nothing under /etc is edited):
#   - cgroups in hybrid mode (v1 hierarchies + a cgroup2 mount with controllers): crun refuses
#     "cgroups in hybrid mode not supported, drop all controllers from cgroupv2"; mounting the
#     v1 hugetlb hierarchy takes the last controller off the v2 mount.
#   - default rlimits crun cannot set ("setrlimit RLIMIT_NOFILE: Operation not permitted"):
#     a private containers.conf (CONTAINERS_CONF) with default_ulimits.
# Needs: root, podman (+ buildah, crun, netavark), curl; for the stand-in base: debootstrap.
#
# Env:
#   IMAGE_E2E_TAG=artifactapi:e2e      image to build and test
#   IMAGE_E2E_BASE=<ref>               base image to use as NODE_IMAGE (skips pull and stand-in)
#   IMAGE_E2E_STANDIN=1                use the stand-in even if the real base could be pulled
#   IMAGE_E2E_REBUILD_STANDIN=1        rebuild the cached stand-in base
#   IMAGE_E2E_SKIP_BUILD=1             reuse IMAGE_E2E_TAG as built
#   IMAGE_E2E_MIRROR=<url>             Debian mirror for debootstrap (default: from apt sources)
# Extra args go to vitest (e.g. `npm run image-e2e -- formats/generic`).
# Exit 77: containers cannot run on this machine at all (.ci/run reports it as skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

TAG="${IMAGE_E2E_TAG:-localhost/artifactapi:e2e}"
LOG_NAME=image-e2e
# shellcheck source=scripts/lib/podman.sh
. scripts/lib/podman.sh

# ---- main ----
step "preparing the host"
prepare_host
BASE=$(pick_base)
podman run --rm --network none --no-healthcheck --entrypoint node "$BASE" -v >/dev/null \
  || cannot_run "podman cannot run a container from $BASE (try: CONTAINERS_CONF=$CONTAINERS_CONF podman run --rm $BASE node -v)"

[ "${IMAGE_E2E_SKIP_BUILD:-}" = 1 ] || build_app_image "$TAG" "$BASE"

step "checking the image"
cfg_user=$(podman image inspect --format '{{.Config.User}}' "$TAG")
cfg_hc=$(podman image inspect --format '{{if .Config.Healthcheck}}{{.Config.Healthcheck.Test}}{{end}}' "$TAG")
cfg_vol=$(podman image inspect --format '{{range $k, $v := .Config.Volumes}}{{$k}} {{end}}' "$TAG")
cfg_ep=$(podman image inspect --format '{{.Config.Entrypoint}}' "$TAG")
size=$(podman image inspect --format '{{.Size}}' "$TAG")
base_size=$(podman image inspect --format '{{.Size}}' "$BASE")
ids=$(podman run --rm --network none --no-healthcheck --entrypoint /bin/sh "$TAG" -c 'id -u; id -g; stat -c %U:%G /data; artifactapi --version')
log "user=$cfg_user entrypoint=$cfg_ep volumes=$cfg_vol healthcheck=$cfg_hc"
log "in the container: uid/gid/data-owner/version = $(echo "$ids" | tr '\n' ' ')"
log "image size $((size / 1000000)) MB (base $((base_size / 1000000)) MB, app layers $(((size - base_size) / 1000000)) MB)"
[ "$cfg_user" = node ] || die "image USER is '$cfg_user', expected node"
[ "$(echo "$ids" | sed -n 1p)" = 1000 ] || die "container runs as uid $(echo "$ids" | sed -n 1p), expected 1000"
[ "$(echo "$ids" | sed -n 3p)" = node:node ] || die "/data is owned by $(echo "$ids" | sed -n 3p), expected node:node"
[ -n "$cfg_hc" ] || die "the image has no HEALTHCHECK (was it built with --format docker?)"
case " $cfg_vol " in *" /data "*) ;; *) die "the image declares no /data volume (has: $cfg_vol)";; esac

# The HEALTHCHECK command must fail when nothing answers (a container with no server in it).
if podman image inspect --format '{{json .Config.Healthcheck.Test}}' "$TAG" \
   | node -e 'const t=JSON.parse(require("fs").readFileSync(0,"utf8")); if (t[0]!=="CMD") process.exit(2); process.stdout.write(t.slice(1).join("\0"))' \
   | xargs -0 podman run --rm --network none --no-healthcheck --entrypoint "" "$TAG" >/dev/null 2>&1; then
  die "the HEALTHCHECK command passes with no server running"
fi

# Embedded default (SQLite + filesystem CAS on the /data volume): start, healthcheck, a round trip.
HC_NAME="artifactapi-image-e2e-hc-$$"
HC_VOL="artifactapi-image-e2e-hc-$$"
HC_PORT=$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
hc_cleanup() { pm rm -f -t 2 "$HC_NAME" >/dev/null 2>&1 || true; podman volume rm -f "$HC_VOL" >/dev/null 2>&1 || true; }
trap hc_cleanup EXIT
step "embedded-default container (SQLite on the /data volume) on 127.0.0.1:$HC_PORT"
pm run -d --name "$HC_NAME" --network host -v "$HC_VOL:/data" \
  -e ARTIFACTAPI_HOST=127.0.0.1 -e "ARTIFACTAPI_PORT=$HC_PORT" "$TAG" >/dev/null
ok=0
for _ in $(seq 60); do
  if podman healthcheck run "$HC_NAME" >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.5
done
[ "$ok" = 1 ] || { podman logs --tail 40 "$HC_NAME" >&2 || true; die "podman healthcheck run never passed"; }
log "HEALTHCHECK passes: $(podman inspect --format '{{.State.Health.Status}}' "$HC_NAME" 2>/dev/null || echo '?')"
# Auth as shipped: the first start wrote admin's password to the volume (0600, owned by node).
ADMIN_PW="$(podman exec "$HC_NAME" cat /data/admin.password)" || die "no /data/admin.password after the first start"
# Write through the API into the volume, then check the bytes are on it, owned by node.
curl -fsS -u "admin:$ADMIN_PW" -X POST -H 'content-type: application/json' \
  --data '{"name":"hc-local","format":"generic","kind":"local"}' "http://127.0.0.1:$HC_PORT/api/v1/repositories" >/dev/null \
  || die "could not create a repository in the embedded-default container"
echo "image-e2e $$" | curl -fsS -u "admin:$ADMIN_PW" -X PUT --data-binary @- "http://127.0.0.1:$HC_PORT/hc-local/a/b.txt" >/dev/null \
  || die "upload into the embedded-default container failed"
[ "$(curl -fsS "http://127.0.0.1:$HC_PORT/hc-local/a/b.txt")" = "image-e2e $$" ] || die "download mismatch"
podman exec "$HC_NAME" sh -c 'ls -ld /data && find /data -maxdepth 1 | sort | head -n 20' >"$STATE/data-listing.txt"
if podman exec "$HC_NAME" sh -c 'find /data ! -user node | grep -q .'; then
  die "files on /data not owned by node: $(podman exec "$HC_NAME" sh -c 'find /data ! -user node' | head -n 5)"
fi
# Stop it (SIGTERM must end it promptly and cleanly: node is PID 1 and handles the signal
# itself), start a new container on the same volume: the upload is still there.
t_stop=$(date +%s%N)
pm stop -t 15 "$HC_NAME" >/dev/null
t_stop=$(( ($(date +%s%N) - t_stop) / 1000000 ))
code=$(podman inspect --format '{{.State.ExitCode}}' "$HC_NAME")
log "stop (SIGTERM): exit code $code after ${t_stop} ms"
[ "$code" = 0 ] && [ "$t_stop" -lt 10000 ] || die "SIGTERM did not stop the container cleanly (exit $code after ${t_stop} ms)"
pm rm -f "$HC_NAME" >/dev/null
pm run -d --name "$HC_NAME" --network host -v "$HC_VOL:/data" \
  -e ARTIFACTAPI_HOST=127.0.0.1 -e "ARTIFACTAPI_PORT=$HC_PORT" "$TAG" >/dev/null
for _ in $(seq 60); do curl -fsS -o /dev/null "http://127.0.0.1:$HC_PORT/health" 2>/dev/null && break; sleep 0.5; done
[ "$(curl -fsS "http://127.0.0.1:$HC_PORT/hc-local/a/b.txt")" = "image-e2e $$" ] || die "the upload did not survive a container restart on the /data volume"
log "embedded default: upload kept on the /data volume across containers"
hc_cleanup
trap - EXIT

step "e2e-docker suite against two containers of $TAG (scripts/e2e.sh with E2E_IMAGE)"
E2E_IMAGE="$TAG" E2E_CONTAINER_CLI=podman scripts/e2e.sh "$@"
step "done"
