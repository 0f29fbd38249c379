#!/usr/bin/env bash
# Where the kernel's time a request goes, HAProxy beside platform-proxy:
# runs wrk (HTTP/1.1, 1 KiB GET, 64 connections) against each in turn,
# samples the proxy's process with `perf record -g -e cpu-clock` (kernel
# symbols included; this machine has no hardware counters), and prints,
# for the kernel entry points and the functions under them, the time a
# request each accounts for (inclusive), side by side. `bench/counts.sh`
# says whether a gap in system time is more calls or dearer ones; this
# says which calls are dearer (a `recvfrom` that copies more bytes, say).
#
# Usage: bench/kernel.sh [public|auth] [secs] [rows]
#   (needs perf with kernel symbols readable: /proc/kallsyms non-zero,
#    nginx, haproxy, wrk; BENCH_BROWSER=1 as in bench/lib.sh). Sampling
#    costs each proxy a similar share, so the columns compare; their sum
#    is above counts.sh's times.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
which=${1:-auth}
secs=${2:-6}
rows=${3:-40}
[[ "$which" =~ ^(public|auth)$ ]] || die "public or auth, not '$which'"
command -v perf >/dev/null || die "perf is needed (Debian: linux-perf)"
hz=2000
base=${BENCH_PORT_BASE:-18080}
up=$((base + 1)); hap=$((base + 3)); px=$((base + 4))
bench_init
bench_build proxy
bench_port_free "$up" "$hap" "$px"
bench_start_upstream "$up"
bench_start_haproxy "$hap" "$up"
bench_start_pp "$px" kernel
pp_route_pair "127.0.0.1:$up"
bench_target "$which"
# A first run warms the proxy's pools and heap: growing them is start-up,
# not a request's cost.
bench_load wrk -t1 -c"$BENCH_CONNS" -d3s -H "Host: $host" "${hdr[@]}" "${BENCH_FIELDS[@]}" "http://127.0.0.1:$px/1k.txt" >/dev/null

# sample NAME PID PORT HOST [COOKIE]: one wrk run (bench_wrk) while perf
# samples PID; writes $work/NAME.us, one "symbol microseconds-a-request"
# line per kernel symbol.
sample() {
    local name=$1 pid=$2 port=$3 hostv=$4 cookie=${5:-} total
    perf record -g -e cpu-clock -F "$hz" -p "$pid" -o "$work/$name.data" -- sleep "$secs" >/dev/null 2>&1 &
    local rec=$!
    bench_wrk "$name" "$secs" "http://127.0.0.1:$port/1k.txt" "$hostv" "$cookie"
    wait "$rec" || true
    total=$(perf script -i "$work/$name.data" -F period 2>/dev/null | wc -l)
    echo "$name: $wrk_requests requests, $total samples" >&2
    # --children columns: inclusive %, self %, [k], symbol.
    perf report -i "$work/$name.data" --children --sort symbol --stdio -g none 2>/dev/null \
        | awk -v t="$total" -v n="$wrk_requests" -v hz="$hz" '$3 == "[k]" {
              p = $1; sub("%", "", p); printf "%s %.3f\n", $4, p * t / 100 / hz / n * 1e6 }' \
        | sort -k1,1 >"$work/$name.us"
}
sample haproxy "$hap_pid" "$hap" 127.0.0.1
ck=""
[ "$which" = auth ] && ck=$cookie
sample pp "$px_pid" "$px" "$host" "$ck"

echo "## Kernel time a request (µs, inclusive), wrk -t1 -c$BENCH_CONNS -d${secs}s, pp-$which"
echo "| function | haproxy | pp-$which | difference |"
echo "| --- | ---: | ---: | ---: |"
join -a1 -a2 -e0 -o 0,1.2,2.2 "$work/haproxy.us" "$work/pp.us" \
    | awk '{ d = $3 - $2; printf "| %s | %.3f | %.3f | %+.3f |\n", $1, $2, $3, d }' \
    | sort -t'|' -k4 -g -r | head -n "$rows"
