# Shared by scripts/image-e2e.sh and scripts/compose-e2e-podman.sh (sourced, not run):
# host quirks for podman on this kind of VM, and local stand-ins for base images that cannot be
# pulled (no container registry is reachable here). Every stand-in carries the label
# org.artifactapi.standin=true. Expects ROOT and LOG_NAME (the caller's name in log lines).

log() { echo "$LOG_NAME: $*" >&2; }
die() { log "$*"; exit 1; }
T0=$(date +%s)
step() { log "[$(( $(date +%s) - T0 ))s] $*"; }

REAL_BASE="docker.io/library/node:20-bookworm-slim"
DEBIAN_STANDIN="localhost/artifactapi-standin-debian:bookworm"
NODE_STANDIN="localhost/artifactapi-standin-node:20-bookworm-slim"
STATE="${IMAGE_E2E_STATE:-/var/tmp/artifactapi-image-e2e}"

# podman without systemd cannot arm HEALTHCHECK timers and logs an error per container; the
# check itself works (`podman healthcheck run`), so drop that noise.
pm() { podman "$@" 2> >(grep -v -e 'unable to get systemd connection' -e 'Removing timer for container' >&2); }

[ "$(id -u)" = 0 ] || die "run as root (rootful podman; the cgroup fix needs mount)"
command -v podman >/dev/null || die "podman not found (apt-get install podman buildah crun)"
mkdir -p "$STATE"

# ---- host quirks ----
# Exit 77: this machine cannot run containers at all (not a failure of what is tested); .ci/run
# reports it as skipped.
cannot_run() { log "cannot run containers here: $*"; exit 77; }

prepare_host() {
  local ctl=/sys/fs/cgroup/unified/cgroup.controllers
  if [ -f "$ctl" ] && [ -n "$(tr -d '[:space:]' <"$ctl")" ]; then
    log "cgroup hybrid mode with v2 controllers ($(cat "$ctl")): mounting the v1 hugetlb hierarchy"
    mkdir -p /sys/fs/cgroup/hugetlb
    mountpoint -q /sys/fs/cgroup/hugetlb || mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
    [ -z "$(tr -d '[:space:]' <"$ctl")" ] || cannot_run "cgroup2 still has controllers: $(cat "$ctl")"
  fi
  if [ -z "${CONTAINERS_CONF:-}" ]; then
    export CONTAINERS_CONF="$STATE/containers.conf"
    cat >"$CONTAINERS_CONF" <<'CONF'
# Written by scripts/lib/podman.sh: crun cannot raise rlimits in this VM, so pin them.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
CONF
  fi
}

# ---- base image ----
debian_mirror() {
  if [ -n "${IMAGE_E2E_MIRROR:-}" ]; then echo "$IMAGE_E2E_MIRROR"; return; fi
  local u
  u=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | grep -E '^[[:space:]]*(URIs:|deb )' | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ')
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
    --change 'CMD ["bash"]' --change 'LABEL org.artifactapi.standin=true' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
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
LABEL org.artifactapi.standin=true
ENV NODE_VERSION=$("$node" -p process.versions.node)
CMD ["node"]
EOF
  step "building the Node stand-in $NODE_STANDIN (host node $("$node" -v))"
  podman build --network none --format docker -t "$NODE_STANDIN" "$ctx" >"$STATE/node-standin.log" 2>&1 \
    || { tail -n 30 "$STATE/node-standin.log" >&2; rm -rf "$ctx"; die "stand-in build failed"; }
  rm -rf "$ctx"
}

is_standin() { [ "$(podman image inspect --format '{{index .Labels "org.artifactapi.standin"}}' "$1" 2>/dev/null)" = true ]; }

pick_base() {
  if [ -n "${IMAGE_E2E_BASE:-}" ]; then echo "$IMAGE_E2E_BASE"; return; fi
  if [ "${IMAGE_E2E_STANDIN:-}" != 1 ]; then
    if { podman image exists "$REAL_BASE" && ! is_standin "$REAL_BASE"; } \
       || timeout 120 podman pull -q "$REAL_BASE" >/dev/null 2>&1; then
      echo "$REAL_BASE"; return
    fi
    log "cannot pull $REAL_BASE: using the local stand-in $NODE_STANDIN (debootstrap bookworm minbase + host Node 20)"
  fi
  if [ "${IMAGE_E2E_REBUILD_STANDIN:-}" = 1 ]; then podman rmi -f "$NODE_STANDIN" "$DEBIAN_STANDIN" >/dev/null 2>&1 || true; fi
  podman image exists "$DEBIAN_STANDIN" || build_debian_standin
  podman image exists "$NODE_STANDIN" || build_node_standin
  echo "$NODE_STANDIN"
}


# podman build of the repository's Dockerfile, as is; NODE_IMAGE picks the base.
build_app_image() { # tag base
  step "podman build $1 (NODE_IMAGE=$2)"
  local old
  old=$(podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true)
  # --format docker keeps HEALTHCHECK (OCI image configs have no healthcheck);
  # --network host: npm ci and apt-get reach their registries through the host.
  if ! podman build --format docker --network host --build-arg "NODE_IMAGE=$2" -t "$1" "$ROOT" >"$STATE/build.log" 2>&1; then
    grep -v '^ *$' "$STATE/build.log" | tail -n 40 >&2; die "podman build failed (log: $STATE/build.log)"
  fi
  grep -E '^\[[0-9]/[0-9]\] STEP|^STEP' "$STATE/build.log" | cut -c1-120 >&2 || true
  # Drop the image this build replaced (its untagged layers) so reruns do not pile up; the
  # build cache of the current one stays. Everything built here carries the stand-in label
  # when built on a stand-in: `podman image prune -f --filter label=org.artifactapi.standin=true`.
  if [ -n "$old" ] && [ "$old" != "$(podman image inspect --format '{{.Id}}' "$1")" ]; then
    podman rmi "$old" >/dev/null 2>&1 || true
  fi
}
