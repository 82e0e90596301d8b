#!/usr/bin/env bash
# Cached generic GET: the embedded default (SQLite + fs CAS + in-process) against the
# full stack (Postgres + S3 + Redis), same machine, same run, bounded (wrk -d).
#   bench/stack.sh                  # 1 KiB and 10 MiB files, 5 s each
# Env: BENCH_DURATION (5s), BENCH_CONNS (32), BENCH_THREADS (1), BENCH_SKIP_BUILD=1,
#      BENCH_S3_ENDPOINT/BENCH_S3_ACCESS_KEY/BENCH_S3_SECRET_KEY to use a real S3/MinIO
#      instead of s3rver (s3rver is a slow Node fake: it bounds the stack's big-file figure).
# Needs wrk, curl, and scripts/ci-services.sh's postgres + redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR="${BENCH_DURATION:-5s}"
CONNS="${BENCH_CONNS:-32}"
THREADS="${BENCH_THREADS:-1}"
command -v wrk >/dev/null || { echo "bench: wrk not found (apt-get install wrk)" >&2; exit 1; }

free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
WORK="$(mktemp -d /tmp/artifactapi-bench.XXXXXX)"
PIDS=()
DB="artifactapi_bench_$$"
DB_CREATED=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null || true; done
  if [ "$DB_CREATED" = 1 ]; then
    node -e "const pg=require('pg');const c=new pg.Client({connectionString:process.argv[1]});c.connect().then(()=>c.query('DROP DATABASE IF EXISTS '+process.argv[2]+' WITH (FORCE)')).then(()=>c.end()).catch(()=>{})" "$ARTIFACTAPI_TEST_POSTGRES_URL" "$DB" || true
  fi
  [ "$rc" != 0 ] && for f in "$WORK"/*.log; do echo "----- $f" >&2; tail -n 20 "$f" >&2; done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT INT TERM

if [ -z "${ARTIFACTAPI_TEST_POSTGRES_URL:-}" ] || [ -z "${ARTIFACTAPI_TEST_REDIS_URL:-}" ]; then
  scripts/ci-services.sh >/dev/null
  . "${ARTIFACTAPI_CI_ENV:-/tmp/artifactapi-ci.env}"
fi
node -e "const pg=require('pg');const c=new pg.Client({connectionString:process.argv[1]});c.connect().then(()=>c.query('CREATE DATABASE '+process.argv[2])).then(()=>c.end())" "$ARTIFACTAPI_TEST_POSTGRES_URL" "$DB"
DB_CREATED=1
PG_URL="$(node -e "const u=new URL(process.argv[1]);u.pathname='/'+process.argv[2];console.log(u.toString())" "$ARTIFACTAPI_TEST_POSTGRES_URL" "$DB")"
[ "${BENCH_SKIP_BUILD:-}" = 1 ] || npx tsc -p tsconfig.json

# Upstream files, generated.
mkdir -p "$WORK/files"
head -c 1024 /dev/urandom >"$WORK/files/small.bin"
head -c $((10 * 1024 * 1024)) /dev/urandom >"$WORK/files/big.bin"
UP_PORT="$(free_port)"
FIXTURES_DIR="$WORK/files" node e2e-docker/mock-upstream.mjs --host 127.0.0.1 --port "$UP_PORT" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)

if [ -n "${BENCH_S3_ENDPOINT:-}" ]; then
  S3_ENDPOINT="$BENCH_S3_ENDPOINT"; S3_AK="${BENCH_S3_ACCESS_KEY:-}"; S3_SK="${BENCH_S3_SECRET_KEY:-}"; S3_KIND=s3
else
  S3_PORT="$(free_port)"; mkdir -p "$WORK/s3"
  node node_modules/s3rver/bin/s3rver.js -d "$WORK/s3" -a 127.0.0.1 -p "$S3_PORT" --silent >"$WORK/s3rver.log" 2>&1 &
  PIDS+=($!)
  S3_ENDPOINT="http://127.0.0.1:$S3_PORT"; S3_AK=S3RVER; S3_SK=S3RVER; S3_KIND=s3rver
fi

EMB_PORT="$(free_port)"
ARTIFACTAPI_DATA_DIR="$WORK/embedded" ARTIFACTAPI_SERVER_LOG_LEVEL=warn \
  node bin/artifactapi serve --host 127.0.0.1 --port "$EMB_PORT" >"$WORK/embedded.log" 2>&1 &
PIDS+=($!)
STACK_PORT="$(free_port)"
ARTIFACTAPI_DATA_DIR="$WORK/stack" ARTIFACTAPI_SERVER_LOG_LEVEL=warn NODE_NO_WARNINGS=1 \
ARTIFACTAPI_DATABASE_URL="$PG_URL" ARTIFACTAPI_REDIS_URL="$ARTIFACTAPI_TEST_REDIS_URL" \
ARTIFACTAPI_STORAGE_TYPE=s3 ARTIFACTAPI_STORAGE_ENDPOINT="$S3_ENDPOINT" ARTIFACTAPI_STORAGE_BUCKET="bench-$$" \
ARTIFACTAPI_STORAGE_ACCESS_KEY="$S3_AK" ARTIFACTAPI_STORAGE_SECRET_KEY="$S3_SK" \
  node bin/artifactapi serve --host 127.0.0.1 --port "$STACK_PORT" >"$WORK/stack.log" 2>&1 &
PIDS+=($!)

for port in "$EMB_PORT" "$STACK_PORT"; do
  for _ in $(seq 150); do curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null && break; sleep 0.2; done
  curl -fsS -o /dev/null -X POST -H 'content-type: application/json' \
    -d "{\"name\":\"gen\",\"format\":\"generic\",\"kind\":\"remote\",\"upstream\":\"http://127.0.0.1:$UP_PORT/\"}" \
    "http://127.0.0.1:$port/api/v1/repositories"
  for f in small.bin big.bin; do
    for _ in $(seq 100); do
      src="$(curl -fsS -o /dev/null -D - "http://127.0.0.1:$port/gen/$f" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-artifact-source"{print $2}')"
      [ "$src" = cache ] && break; sleep 0.1
    done
    [ "$src" = cache ] || { echo "bench: $f never came from the cache on :$port" >&2; exit 1; }
  done
done

run() { # port file -> "req/s MB/s"
  wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency "http://127.0.0.1:$1/gen/$2" >"$WORK/wrk.out" 2>&1
  local rps mbs
  rps="$(awk '/^Requests\/sec/{print $2}' "$WORK/wrk.out")"
  mbs="$(awk '/^Transfer\/sec/{v=$2; if (v ~ /GB/) {sub("GB","",v); v*=1024} else if (v ~ /KB/) {sub("KB","",v); v/=1024} else sub("MB","",v); print v}' "$WORK/wrk.out")"
  if grep -q 'Non-2xx' "$WORK/wrk.out"; then echo "bench: errors during run on :$1 $2" >&2; cat "$WORK/wrk.out" >&2; fi
  echo "$rps $mbs"
}

echo "cached generic GET, wrk -t$THREADS -c$CONNS -d$DUR, stack = postgres + $S3_KIND + redis"
printf '%-10s %-22s %-22s %s\n' file embedded stack ratio
for f in small.bin big.bin; do
  read -r e_rps e_mbs <<<"$(run "$EMB_PORT" "$f")"
  read -r s_rps s_mbs <<<"$(run "$STACK_PORT" "$f")"
  if [ "$f" = small.bin ]; then
    printf '%-10s %-22s %-22s %s\n' "1 KiB" "$e_rps req/s" "$s_rps req/s" "$(awk -v a="$s_rps" -v b="$e_rps" 'BEGIN{printf "%.2fx", a/b}')"
  else
    printf '%-10s %-22s %-22s %s\n' "10 MiB" "$e_mbs MB/s" "$s_mbs MB/s" "$(awk -v a="$s_mbs" -v b="$e_mbs" 'BEGIN{printf "%.2fx", a/b}')"
  fi
done
