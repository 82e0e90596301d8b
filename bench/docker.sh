#!/usr/bin/env bash
# Docker registry bench: docker-registry (CNCF distribution) and artifactapi serve
# the same image in the same run. Measures skopeo push and pull time, manifest
# GET req/s and blob GET MB/s (wrk), and prints artifactapi/docker-registry ratios.
# Bounded: each wrk run lasts DURATION seconds; both servers are stopped on exit.
#
#   bash bench/docker.sh        # LAYERS=6 LAYER_MB=50 DURATION=5 CONNECTIONS=32
#
# Needs: docker-registry, skopeo, wrk, curl, a built dist/ (npx tsc -p .).
set -euo pipefail
cd "$(dirname "$0")/.."
LAYERS=${LAYERS:-6}
LAYER_MB=${LAYER_MB:-50}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-32}

work=$(mktemp -d /tmp/docker-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

[ -f dist/cli/main.js ] || npx tsc -p .

echo "building a $LAYERS x $LAYER_MB MiB image..."
info=$(node bench/docker-image.mjs "$work/img" "$LAYERS" "$LAYER_MB")
manifest=$(echo "$info" | sed -E 's/.*"manifest":"([^"]+)".*/\1/')
blob=$(echo "$info" | sed -E 's/.*"biggest":"([^"]+)".*/\1/')

reg_port=$((20000 + RANDOM % 10000))
cat > "$work/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$reg_port
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)

port=$((30000 + RANDOM % 10000))
ARTIFACTAPI_AUTH_ANONYMOUS=admin ARTIFACTAPI_SERVER_LOG_LEVEL=warn ARTIFACTAPI_SERVER_VERIFY_ON_READ=${VERIFY_ON_READ:-true} node bin/artifactapi serve --host 127.0.0.1 --port "$port" --data-dir "$work/data" >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && curl -sf "http://127.0.0.1:$reg_port/v2/" >/dev/null && break; sleep 0.2; done
node bin/artifactapi repo add bench --format docker --kind local --url "http://127.0.0.1:$port" >/dev/null

reg="127.0.0.1:$reg_port/bench/img"
aa="127.0.0.1:$port/bench/img"
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l | xargs printf '%.2f'; }

t0=$(now); skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$work/img:bench" "docker://$reg:bench" >/dev/null; t1=$(now)
reg_push=$(secs "$t0" "$t1")
t0=$(now); skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$work/img:bench" "docker://$aa:bench" >/dev/null; t1=$(now)
aa_push=$(secs "$t0" "$t1")
t0=$(now); skopeo copy -q --src-tls-verify=false "docker://$reg:bench" "dir:$work/pull-reg" >/dev/null; t1=$(now)
reg_pull=$(secs "$t0" "$t1")
t0=$(now); skopeo copy -q --src-tls-verify=false "docker://$aa:bench" "dir:$work/pull-aa" >/dev/null; t1=$(now)
aa_pull=$(secs "$t0" "$t1")
rm -rf "$work/pull-reg" "$work/pull-aa"

accept='Accept: application/vnd.oci.image.manifest.v1+json'
# The biggest layer as stored (skopeo may recompress; ask the registry).
blob=$(curl -sf -H "$accept" "http://127.0.0.1:$reg_port/v2/bench/img/manifests/bench" \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const m=JSON.parse(s);console.log(m.layers.sort((a,b)=>b.size-a.size)[0].digest)})')
curl -sf -o /dev/null "http://127.0.0.1:$port/v2/bench/img/blobs/$blob" || { echo "artifactapi does not serve $blob" >&2; exit 1; }
rps() { wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -H "$accept" "$1" | awk '/Requests\/sec/ {print $2}'; }
mbps() {
  wrk -t2 -c4 -d"${DURATION}s" "$1" | awk '/Transfer\/sec/ {
    v=$2; u=substr(v, length(v)-1); n=substr(v, 1, length(v)-2);
    if (u=="GB") n*=1024; else if (u=="KB") n/=1024; else if (u!="MB") n/=1048576; printf "%.0f", n }'
}
reg_rps=$(rps "http://127.0.0.1:$reg_port/v2/bench/img/manifests/bench")
aa_rps=$(rps "http://127.0.0.1:$port/v2/bench/img/manifests/bench")
reg_mb=$(mbps "http://127.0.0.1:$reg_port/v2/bench/img/blobs/$blob")
aa_mb=$(mbps "http://127.0.0.1:$port/v2/bench/img/blobs/$blob")

ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
echo
echo "image: $LAYERS layers x $LAYER_MB MiB; wrk ${DURATION}s, $CONNECTIONS connections (manifests), 4 (blobs); $(nproc) cores, shared"
printf '%-22s %16s %16s %12s\n' metric docker-registry artifactapi ratio
printf '%-22s %16s %16s %12s\n' 'manifest GET req/s' "$reg_rps" "$aa_rps" "$(ratio "$aa_rps" "$reg_rps")x"
printf '%-22s %16s %16s %12s\n' 'blob GET MB/s' "$reg_mb" "$aa_mb" "$(ratio "$aa_mb" "$reg_mb")x"
printf '%-22s %16s %16s %12s\n' 'skopeo push s' "$reg_push" "$aa_push" "$(ratio "$aa_push" "$reg_push")x"
printf '%-22s %16s %16s %12s\n' 'skopeo pull s' "$reg_pull" "$aa_pull" "$(ratio "$aa_pull" "$reg_pull")x"
