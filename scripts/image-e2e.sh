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
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

TAG="${IMAGE_E2E_TAG:-localhost/artifactapi:e2e}"
REAL_BASE="docker.io/library/node:20-bookworm-slim"
DEBIAN_STANDIN="localhost/artifactapi-standin-debian:bookworm"
NODE_STANDIN="localhost/artifactapi-standin-node:20-bookworm-slim"
STATE="${IMAGE_E2E_STATE:-/var/tmp/artifactapi-image-e2e}"

log() { echo "image-e2e: $*" >&2; }
die() { log "$*"; exit 1; }
T0=$(date +%s)
# podman without systemd cannot arm HEALTHCHECK timers and logs an error per container; the
# check itself works (`podman healthcheck run`), so drop that noise.
pm() { podman "$@" 2> >(grep -v -e 'unable to get systemd connection' -e 'Removing timer for container' >&2); }
step() { log "[$(( $(date +%s) - T0 ))s] $*"; }

[ "$(id -u)" = 0 ] || die "run as root (rootful podman; the cgroup fix needs mount)"
command -v podman >/dev/null || die "podman not found (apt-get install podman buildah crun)"
mkdir -p "$STATE"

# ---- host quirks ----
prepare_host() {
  local ctl=/sys/fs/cgroup/unified/cgroup.controllers
  if [ -f "$ctl" ] && [ -n "$(tr -d '[:space:]' <"$ctl")" ]; then
    log "cgroup hybrid mode with v2 controllers ($(cat "$ctl")): mounting the v1 hugetlb hierarchy"
    mkdir -p /sys/fs/cgroup/hugetlb
    mountpoint -q /sys/fs/cgroup/hugetlb || mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
    [ -z "$(tr -d '[:space:]' <"$ctl")" ] || die "cgroup2 still has controllers: $(cat "$ctl")"
  fi
  if [ -z "${CONTAINERS_CONF:-}" ]; then
    export CONTAINERS_CONF="$STATE/containers.conf"
    cat >"$CONTAINERS_CONF" <<'CONF'
# Written by scripts/image-e2e.sh: crun cannot raise rlimits in this VM, so pin them.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
CONF
  fi
}

# ---- base image ----
debian_mirror() {
  if [ -n "${IMAGE_E2E_MIRROR:-}" ]; then echo "$IMAGE_E2E_MIRROR"; return; fi
  local u
  u=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | grep -E '/debian/?( |$)' | head -n1 | awk '{print ($1=="deb") ? $2 : $2}' | sed 's/\[.*\]//')
  echo "${u:-http://deb.debian.org/debian}"
}

# debian:bookworm-slim look-alike: debootstrap minbase, then what the slim variant drops.
build_debian_standin() {
  command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
  local dir mirror
  dir=$(mktemp -d /var/tmp/artifactapi-rootfs.XXXXXX)
  mirror=$(debian_mirror)
  step "debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$STATE/debootstrap.log" 2>&1 \
    || { tail -n 20 "$STATE/debootstrap.log" >&2; rm -rf "$dir"; die "debootstrap failed"; }
  cat >"$dir/etc/apt/sources.list" <<SRC
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian*}/debian-security bookworm-security main
SRC
  # the slim variant's dpkg excludes (docs, man pages, locales) and an empty apt cache
  mkdir -p "$dir/etc/dpkg/dpkg.cfg.d"
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
    'path-include /usr/share/locale/locale.alias' >"$dir/etc/dpkg/dpkg.cfg.d/docker"
  find "$dir/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  rm -rf "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/var/cache/apt/archives/*.deb \
    "$dir"/var/cache/apt/*.bin "$dir"/var/lib/apt/lists/* "$dir"/var/log/* "$dir"/tmp/*
  find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  tar --numeric-owner -C "$dir" -c . | podman import \
    --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$DEBIAN_STANDIN" >/dev/null 2>&1
  rm -rf "$dir"
}

# node:20-bookworm-slim look-alike: the host's Node 20 (binary, npm, corepack, headers) in
# /usr/local like the official image, user `node` 1000:1000. Unlike the official image it has a
# global npmrc (/usr/local/etc/npmrc) for this machine: `cafile` = the host's CA bundle (npm
# traffic may pass a TLS-intercepting proxy) and `nodedir=/usr/local` (node-gyp builds
# better-sqlite3 against the bundled headers instead of downloading them from nodejs.org).
build_node_standin() {
  local node nodedir ctx
  node=$(readlink -f "$(command -v node)")
  "$node" -e 'process.exit(process.versions.node.split(".")[0] === "20" ? 0 : 1)' \
    || die "the stand-in copies the host's node, which must be Node 20 (found $("$node" -v))"
  nodedir=$(dirname "$(readlink -f "$(command -v npm)")")   # .../lib/node_modules/npm/bin
  nodedir=$(dirname "$(dirname "$nodedir")")                # .../lib/node_modules
  [ -d "$nodedir/npm" ] || die "cannot find the host's npm (looked in $nodedir)"
  ctx=$(mktemp -d /var/tmp/artifactapi-node-standin.XXXXXX)
  mkdir -p "$ctx/bin" "$ctx/lib"
  cp "$node" "$ctx/bin/node"
  cp -a "$nodedir/npm" "$ctx/lib/npm"
  [ -d "$nodedir/corepack" ] && cp -a "$nodedir/corepack" "$ctx/lib/corepack"
  mkdir -p "$ctx/lib/corepack" "$ctx/include" "$ctx/etc"
  local inc
  for inc in "$(dirname "$(dirname "$node")")/include/node" /usr/include/node /usr/local/include/node; do
    [ -f "$inc/node.h" ] && { cp -a "$inc" "$ctx/include/node"; break; }
  done
  [ -d "$ctx/include/node" ] || die "no Node headers found (include/node/node.h next to $node)"
  cp -L /etc/ssl/certs/ca-certificates.crt "$ctx/etc/host-ca.crt"
  printf '%s\n' 'cafile=/usr/local/etc/host-ca.crt' 'nodedir=/usr/local' >"$ctx/etc/npmrc"
  cat >"$ctx/Containerfile" <<EOF
FROM $DEBIAN_STANDIN
COPY bin/node /usr/local/bin/node
COPY lib/ /usr/local/lib/node_modules/
COPY include/ /usr/local/include/
COPY etc/ /usr/local/etc/
RUN groupadd --gid 1000 node \\
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && if [ -f /usr/local/lib/node_modules/corepack/dist/corepack.js ]; then ln -s ../lib/node_modules/corepack/dist/corepack.js /usr/local/bin/corepack; fi \\
 && node --version && npm --version
ENV NODE_VERSION=$("$node" -p process.versions.node)
CMD ["node"]
EOF
  step "building the Node stand-in $NODE_STANDIN (host node $("$node" -v))"
  podman build --network none --format docker -t "$NODE_STANDIN" "$ctx" >"$STATE/node-standin.log" 2>&1 \
    || { tail -n 30 "$STATE/node-standin.log" >&2; rm -rf "$ctx"; die "stand-in build failed"; }
  rm -rf "$ctx"
}

pick_base() {
  if [ -n "${IMAGE_E2E_BASE:-}" ]; then echo "$IMAGE_E2E_BASE"; return; fi
  if [ "${IMAGE_E2E_STANDIN:-}" != 1 ]; then
    if podman image exists "$REAL_BASE" || timeout 60 podman pull -q "$REAL_BASE" >/dev/null 2>&1; then
      echo "$REAL_BASE"; return
    fi
    log "cannot pull $REAL_BASE: using the local stand-in $NODE_STANDIN (debootstrap bookworm minbase + host Node 20)"
  fi
  if [ "${IMAGE_E2E_REBUILD_STANDIN:-}" = 1 ]; then podman rmi -f "$NODE_STANDIN" "$DEBIAN_STANDIN" >/dev/null 2>&1 || true; fi
  podman image exists "$DEBIAN_STANDIN" || build_debian_standin
  podman image exists "$NODE_STANDIN" || build_node_standin
  echo "$NODE_STANDIN"
}

# ---- main ----
step "preparing the host"
prepare_host
BASE=$(pick_base)
podman run --rm --network none --no-healthcheck --entrypoint node "$BASE" -v >/dev/null \
  || die "podman cannot run a container from $BASE (try: CONTAINERS_CONF=$CONTAINERS_CONF podman run --rm $BASE node -v)"

if [ "${IMAGE_E2E_SKIP_BUILD:-}" != 1 ]; then
  step "podman build $TAG (NODE_IMAGE=$BASE)"
  # --format docker keeps HEALTHCHECK (OCI image configs have no healthcheck);
  # --network host: npm ci and apt-get reach their registries through the host.
  if ! podman build --format docker --network host --build-arg "NODE_IMAGE=$BASE" -t "$TAG" . >"$STATE/build.log" 2>&1; then
    grep -v '^ *$' "$STATE/build.log" | tail -n 40 >&2; die "podman build failed (log: $STATE/build.log)"
  fi
  grep -E '^\[[0-9]/[0-9]\] STEP|^STEP' "$STATE/build.log" | cut -c1-120 >&2 || true
fi

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
# Write through the API into the volume, then check the bytes are on it, owned by node.
curl -fsS -X POST -H 'content-type: application/json' \
  --data '{"name":"hc-local","format":"generic","kind":"local"}' "http://127.0.0.1:$HC_PORT/api/v1/repositories" >/dev/null \
  || die "could not create a repository in the embedded-default container"
echo "image-e2e $$" | curl -fsS -X PUT --data-binary @- "http://127.0.0.1:$HC_PORT/hc-local/a/b.txt" >/dev/null \
  || die "upload into the embedded-default container failed"
[ "$(curl -fsS "http://127.0.0.1:$HC_PORT/hc-local/a/b.txt")" = "image-e2e $$" ] || die "download mismatch"
podman exec "$HC_NAME" sh -c 'ls -ld /data && find /data -maxdepth 1 | sort | head -n 20' >"$STATE/data-listing.txt"
if podman exec "$HC_NAME" sh -c 'find /data ! -user node | grep -q .'; then
  die "files on /data not owned by node: $(podman exec "$HC_NAME" sh -c 'find /data ! -user node' | head -n 5)"
fi
# Stop it, start a new container on the same volume: the upload is still there.
pm rm -f -t 10 "$HC_NAME" >/dev/null
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
