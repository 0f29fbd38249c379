#!/usr/bin/env bash
# Where the proxy spends its time: runs wrk against the public or the
# authenticated route of a platform-proxy built with line tables
# (target/prof), samples it with `perf record -e cpu-clock` (software clock:
# this machine has no hardware counters) and prints the hottest symbols.
#
# Usage: bench/profile.sh [public|auth] [seconds] [http|h2]
#   (needs perf, nginx, wrk; h2load for h2: 64 connections, 10 streams each)
# The profiling build: CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
#   cargo build --release --target-dir target/prof -p platform-proxy
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
which=${1:-auth}
secs=${2:-10}
proto=${3:-http}
case $proto in http|h2) ;; *) die "http or h2, not '$proto'" ;; esac
BENCH_BIN=$BENCH_ROOT/target/prof/release/platform-proxy
[ -x "$BENCH_BIN" ] || die "build the profiling binary first (see the header)"
command -v perf >/dev/null || die "perf is needed (Debian: linux-perf)"
base=${BENCH_PORT_BASE:-18080}
px_port=$base; up_port=$((base + 1))
bench_init
bench_port_free "$px_port" "$up_port"
bench_start_upstream "$up_port"
bench_start_pp "$px_port" prof
pp_route_pair "127.0.0.1:$up_port"
bench_target "$which"
perf record -e cpu-clock -F 2000 -g --call-graph dwarf,16384 -p "$px_pid" -o "$work/perf.data" -- sleep "$secs" >/dev/null 2>&1 &
rec=$!
if [ "$proto" = h2 ]; then
    # h2load takes :authority from the URL; -H ':authority: ...' names the route.
    h2hdr=(-H ":authority: $host")
    [ "$which" = auth ] && h2hdr+=(-H "cookie: $cookie")
    taskset -c 0 h2load -t1 -c64 -m10 -D "$secs" "${h2hdr[@]}" "http://127.0.0.1:$px_port/1k.txt" \
        | grep -E "^finished in|^status codes" || true
else
    taskset -c 0 wrk -t1 -c64 -d"${secs}s" -H "Host: $host" "${hdr[@]}" "${BENCH_FIELDS[@]}" \
        "http://127.0.0.1:$px_port/1k.txt" | grep -E "Requests/sec|Non-2xx" || true
fi
wait "$rec" || true
perf report -i "$work/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
  | grep -E '^ +[0-9]' | head -n "${PROFILE_TOP:-45}"
echo "--- inclusive (children) ---"
perf report -i "$work/perf.data" --children --sort symbol --stdio -g none 2>/dev/null \
  | grep -E '^ +[0-9]' | head -n "${PROFILE_TOP:-45}"
