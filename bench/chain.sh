#!/usr/bin/env bash
# Two-level chain benchmark: cold-miss throughput of a single gatecache node
# (from the origin) next to that of a cold leaf whose parent already holds
# the object, in one run, on loopback.
#
#   HARNESS=DIR bench/chain.sh [SIZE]        # default 256MiB
#
# HARNESS is a Go module with two commands: cmd/origin, an HTTP origin
# serving deterministic objects of any size (-listen ADDR -max-lifetime D),
# and cmd/loadgen, which fetches them through a cache and prints one result
# line (-target ADDR -origin ADDR -mode query -size SIZE -objects N
# -scenario NAME -prefix P [-origin-stats ADDR]).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
harness=${HARNESS:?set HARNESS to the directory of the benchmark harness (cmd/origin, cmd/loadgen)}
size=${1:-256MiB}
work=$(mktemp -d /tmp/gatecache-chain.XXXXXX)
bin=$work/bin
mkdir -p "$bin"
(cd "$here" && go build -o "$bin/gatecache" ./cmd/gatecache)
(cd "$harness" && GOCACHE=${GOCACHE:-/tmp/bench-gocache} go build -o "$bin/" ./cmd/origin ./cmd/loadgen)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

origin=127.0.0.1:18180
"$bin/origin" -listen $origin -max-lifetime 30m >"$work/origin.log" 2>&1 & pids+=($!)
node() { # name listen summary [extra env...]
  local name=$1 listen=$2 summary=$3; shift 3
  env LISTEN_ADDR=$listen SUMMARY_ADDR=$summary CACHE_ROOT="$work/$name" \
    CACHEABLE_CUSTOM_1_HOST=$origin STORAGE_1_SIZE=4GiB "$@" "$bin/gatecache" >"$work/$name.log" 2>&1 &
  pids+=($!)
}
node single 127.0.0.1:18190 127.0.0.1:18191
node parent 127.0.0.1:18192 127.0.0.1:18193
node leaf   127.0.0.1:18194 127.0.0.1:18195 UPSTREAM_HOST=127.0.0.1:18192
for port in 18180 18190 18192 18194; do
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

# Each measurement starts with no dirty pages, so that it is not slowed by
# the kernel writing back what the previous one stored.
lg() { sync; "$bin/loadgen" -origin $origin -mode query -size "$size" -objects 1 "$@" | tail -1; }
echo "# chain benchmark $(date -u '+%F %T') UTC, nproc=$(nproc), object $size"
echo "single node, cold miss from the origin:"
lg -target 127.0.0.1:18190 -scenario S1-single-cold -prefix single -origin-stats $origin
echo "parent warmed with the object (not measured):"
lg -target 127.0.0.1:18192 -scenario warm-parent -prefix chain >/dev/null
echo "cold leaf, parent holds the object:"
lg -target 127.0.0.1:18194 -scenario S1-leaf-cold-parent-warm -prefix chain -origin-stats $origin
