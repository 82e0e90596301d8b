#!/usr/bin/env bash
# PyPI read throughput: simple pages and wheel downloads through local, remote
# (cached) and virtual repos, measured with wrk. Bounded: every wrk run lasts
# DURATION seconds; the server and the static upstream are stopped on exit.
#
#   bash bench/pypi-bench.sh            # DURATION=5 CONNECTIONS=32 by default
#
# Needs: wrk, twine, python3 with pip (to build the test wheels), a built dist/ (npx tsc -p .).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-32}
PY=/usr/bin/python3
$PY -m pip --version >/dev/null 2>&1 || PY=python3

work=$(mktemp -d /tmp/pypi-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

[ -f dist/cli/main.js ] || npx tsc -p .

# Wheels from the fixtures (copied: setuptools writes into the source tree).
for f in demo-dep demo-app; do
  cp -r "fixtures/pypi/$f" "$work/$f"
  env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $PY -m pip wheel -q --no-deps --no-build-isolation --no-index -w "$work/wheels" "$work/$f" >/dev/null
done
dep_whl=$(cd "$work/wheels" && ls demo_dep-*.whl)
app_whl=$(cd "$work/wheels" && ls Demo_App-*.whl || ls demo_app-*.whl)

# A static PEP 503 upstream (python's http.server over a directory).
mkdir -p "$work/up/simple/demo-dep" "$work/up/files"
cp "$work/wheels/$dep_whl" "$work/up/files/"
sum=$(sha256sum "$work/up/files/$dep_whl" | cut -d' ' -f1)
echo "<a href=\"../../files/$dep_whl#sha256=$sum\" data-requires-python=\"&gt;=3.7\">$dep_whl</a>" > "$work/up/simple/demo-dep/index.html"
up_port=$((20000 + RANDOM % 10000))
(cd "$work/up" && exec $PY -m http.server "$up_port" --bind 127.0.0.1 >/dev/null 2>&1) &
pids+=($!)

port=$((30000 + RANDOM % 10000))
ARTIFACTAPI_AUTH_ANONYMOUS=admin ARTIFACTAPI_SERVER_LOG_LEVEL=warn node bin/artifactapi serve --host 127.0.0.1 --port "$port" --data-dir "$work/data" >"$work/server.log" 2>&1 &
pids+=($!)
base="http://127.0.0.1:$port"
for _ in $(seq 50); do curl -sf "$base/health" >/dev/null && break; sleep 0.2; done
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$up_port/simple/demo-dep/" >/dev/null && break; sleep 0.2; done

cli() { node bin/artifactapi "$@" --url "$base" >/dev/null; }
cli repo add py-local --format pypi --kind local
cli repo add py-remote --format pypi --kind remote --upstream "http://127.0.0.1:$up_port/"
cli repo add py-all --format pypi --kind virtual --member py-local --member py-remote
twine upload --repository-url "$base/py-local/" -u x -p x --non-interactive --disable-progress-bar "$work/wheels/$app_whl" >/dev/null

# Warm the remote cache (page and file), through the remote and the virtual repo.
curl -sf "$base/py-remote/simple/demo-dep/" >/dev/null
curl -sf "$base/py-remote/packages/demo-dep/$dep_whl" >/dev/null
curl -sf "$base/py-all/simple/demo-dep/" >/dev/null

JSON='Accept: application/vnd.pypi.simple.v1+json'
run() {
  local label=$1 url=$2 hdr=${3:-'X-Bench: 1'}
  local rps
  rps=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -H "$hdr" "$url" | awk '/Requests\/sec/ {print $2}')
  printf '%-44s %10s req/s\n' "$label" "$rps"
}
echo "pypi bench: ${DURATION}s per run, $CONNECTIONS connections, $(nproc) cores (shared)"
run 'local  simple page (HTML)'            "$base/py-local/simple/demo-app/"
run 'local  simple page (PEP 691 JSON)'    "$base/py-local/simple/demo-app/" "$JSON"
run 'local  wheel download'                "$base/py-local/packages/demo-app/$app_whl"
run 'remote simple page (cached, HTML)'    "$base/py-remote/simple/demo-dep/"
run 'remote wheel download (cached)'       "$base/py-remote/packages/demo-dep/$dep_whl"
run 'virtual simple page (merged)'         "$base/py-all/simple/demo-dep/"
run 'virtual wheel download (via remote)'  "$base/py-all/packages/demo-dep/$dep_whl"
run 'upstream: python http.server, same wheel' "http://127.0.0.1:$up_port/files/$dep_whl"
